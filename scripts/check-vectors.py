#!/usr/bin/env python3
# Cross-checks protocol/vectors/changeset-v1*.json with an independent implementation
# (Python cryptography, hashlib and zstandard; not libsodium, not Swift): keys, key ids,
# crypto_kx session keys, decompression, signed message, signature, XChaCha20-Poly1305
# (HChaCha20 written out here) and the whole envelope.
# Usage: pip install cryptography zstandard; scripts/check-vectors.py protocol/vectors/changeset-v1*.json
import json, sys, hashlib, struct, zlib
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization as ser

def raw(pk): return pk.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
def b2(data, n): return hashlib.blake2b(data, digest_size=n).digest()
def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(s, a, b, c, d):
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],16)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],12)
    s[a]=(s[a]+s[b])&0xffffffff; s[d]=rotl(s[d]^s[a],8)
    s[c]=(s[c]+s[d])&0xffffffff; s[b]=rotl(s[b]^s[c],7)
def hchacha20(key, n16):
    s = [0x61707865,0x3320646e,0x79622d32,0x6b206574] + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', n16))
    for _ in range(10):
        qr(s,0,4,8,12); qr(s,1,5,9,13); qr(s,2,6,10,14); qr(s,3,7,11,15)
        qr(s,0,5,10,15); qr(s,1,6,11,12); qr(s,2,7,8,13); qr(s,3,4,9,14)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))

def check(path):
    v = json.load(open(path)); st = v['stages']; H = bytes.fromhex
    ok = True
    def eq(name, a, b):
        nonlocal ok
        if a != b: ok = False; print('  MISMATCH', name)
    for who in ('agent', 'hub'):
        k = v['keys'][who]
        ed = Ed25519PrivateKey.from_private_bytes(H(k['ed25519_seed']))
        eq(who+' ed25519_public', raw(ed.public_key()).hex(), k['ed25519_public'])
        eq(who+' signing_key_id', b2(H(k['ed25519_public']), 8).hex(), k['signing_key_id'])
        sk = b2(H(k['x25519_seed']), 32)
        x = X25519PrivateKey.from_private_bytes(sk)
        eq(who+' x25519_public', raw(x.public_key()).hex(), k['x25519_public'])
        eq(who+' kx_key_id', b2(H(k['x25519_public']), 8).hex(), k['kx_key_id'])
    a, h = v['keys']['agent'], v['keys']['hub']
    ask = X25519PrivateKey.from_private_bytes(b2(H(a['x25519_seed']), 32))
    q = ask.exchange(X25519PublicKey.from_public_bytes(H(h['x25519_public'])))
    keys = hashlib.blake2b(q + H(a['x25519_public']) + H(h['x25519_public']), digest_size=64).digest()
    eq('agent_rx', keys[:32].hex(), v['session']['agent_rx']); eq('agent_tx', keys[32:].hex(), v['session']['agent_tx'])
    eq('hub_rx', keys[32:].hex(), v['session']['hub_rx']); eq('hub_tx', keys[:32].hex(), v['session']['hub_tx'])
    body, comp, hdr = H(st['body']), H(st['compressed_body']), H(st['header'])
    c = v['header']['compression']
    if c == 'zstd': eq('zstd decompress', zstandard.ZstdDecompressor().decompress(comp, max_output_size=1<<20), body)
    elif c == 'zlib': eq('zlib', zlib.decompress(comp), body)
    else: eq('none', comp, body)
    eq('body_size', len(body), v['header']['body_size'])
    signed = b'ferry/changeset/v1\x00' + struct.pack('>I', len(hdr)) + hdr + comp
    eq('signed_message', signed.hex(), st['signed_message'])
    Ed25519PublicKey.from_public_bytes(H(a['ed25519_public'])).verify(H(st['signature']), signed)
    eq('signature', Ed25519PrivateKey.from_private_bytes(H(a['ed25519_seed'])).sign(signed).hex(), st['signature'])
    ad = b'FRY1\x01' + struct.pack('>I', len(hdr)) + hdr
    eq('associated_data', ad.hex(), st['associated_data'])
    pt = H(st['signature']) + comp
    eq('plaintext', pt.hex(), st['plaintext'])
    nonce = H(v['nonce']); key = keys[32:]
    sub = hchacha20(key, nonce[:16])
    ct = ChaCha20Poly1305(sub).encrypt(b'\x00'*4 + nonce[16:], pt, ad)
    eq('ciphertext', ct.hex(), st['ciphertext'])
    eq('envelope', (ad + nonce + ct).hex(), st['envelope'])
    print(path, 'OK' if ok else 'FAILED')
    return ok

sys.exit(0 if all([check(p) for p in sys.argv[1:]]) else 1)

import FerryCore
import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Synchronization

/// (e) Authenticated input: a real hub store (SQLite file) with a real
/// enrolled agent key. Each input is a change-set body that the harness signs
/// and seals as that agent and sends through the hub's own steps (peek, look
/// up the agent, open, ingest), so hostile bytes reach ingest and validation
/// behind a valid signature. What the hub accepts is then served to a second
/// agent of the commune and applied to its replica.
///
/// Input: byte 0 sets the header (see ``Control``), the rest is the body
/// before compression (the protobuf of SPEC §5, which no encoder has to have written).
public final class IngestHarness: Sendable {
    /// The harness of the fuzz executable; created on first use.
    public static let shared: IngestHarness = {
        // libFuzzer ends with exit(): remove the store's files then.
        atexit { IngestHarness.shared.reset() }
        return IngestHarness()
    }()

    /// The agent id seeds are written for; the enrolled agent is renamed to it.
    public static let agentID = "a-24781-f022f022"
    public static let commune = "24781"
    /// The hub's (manual) clock: seeds carry timestamps just before it.
    public static let hubMillis: UInt64 = 1_764_000_000_000
    /// Inputs per store before it is thrown away, so the file stays small.
    static let inputsPerStore = 5_000

    struct World: Sendable {
        let dir: String
        let hub: SQLiteHubStore
        let peer: AgentStore
        let peerInfo: AgentInfo
    }

    let state = Mutex<(world: World?, inputs: Int)>((nil, 0))
    let agent: Identity
    let hubIdentity: Identity
    let keys: SessionKeys?
    let hubKeys: SessionKeys?

    public init() {
        agent = Identity(
            signing: (try? SigningKeyPair(seed: VectorFixtures.counting(from: 0x11))) ?? SigningKeyPair(),
            kx: (try? KXKeyPair(seed: VectorFixtures.counting(from: 0x31))) ?? KXKeyPair())
        hubIdentity = Identity(
            signing: (try? SigningKeyPair(seed: VectorFixtures.counting(from: 0x51))) ?? SigningKeyPair(),
            kx: (try? KXKeyPair(seed: VectorFixtures.counting(from: 0x71))) ?? KXKeyPair())
        keys = try? agent.kx.clientSessionKeys(server: hubIdentity.kx.publicKey)
        hubKeys = try? hubIdentity.kx.serverSessionKeys(client: agent.kx.publicKey)
    }

    /// A fresh hub store with the land-record form, one enrolled agent
    /// (renamed to ``agentID``) and a peer agent with its own replica.
    static func makeWorld(agent: Identity) throws -> World {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
        let dir = base + "ferry-fuzz-ingest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let hub = try SQLiteHubStore(path: dir + "/hub.sqlite", wall: ManualClock(millis: hubMillis))
        try hub.publish(form: try Seed.form)
        for c in Seed.communes where c.code == commune {
            try hub.publish(.commune, key: c.code, json: Array(try JSONEncoder().encode(c)))
        }
        let info = try hub.enroll(
            secret: try hub.issueToken(commune: commune), commune: commune, signKey: agent.signing.publicKey,
            kxKey: agent.kx.publicKey, hostname: "fuzz")
        // Seeds name a fixed origin; the store makes a random id, so rename it.
        try hub.pool.write { db in
            try db.execute(sql: "UPDATE agents SET id = ? WHERE id = ?", arguments: [agentID, info.id])
            try db.execute(sql: "UPDATE tokens SET used_by = ? WHERE used_by = ?", arguments: [agentID, info.id])
        }
        let peerKey = Identity()
        let peerInfo = try hub.enroll(
            secret: try hub.issueToken(commune: commune), commune: commune, signKey: peerKey.signing.publicKey,
            kxKey: peerKey.kx.publicKey, hostname: "fuzz-peer")
        let peer = try AgentStore(
            path: dir + "/peer.sqlite", origin: OriginID(peerInfo.id), wall: ManualClock(millis: hubMillis))
        try peer.putCatalog([
            CatalogItem(kind: .form, key: "land-record@1", seq: 1, json: Array(Seed.landRecordForm.utf8))
        ])
        return World(dir: dir, hub: hub, peer: peer, peerInfo: peerInfo)
    }

    /// Removes the current store's files (the next input makes a new one).
    public func reset() {
        let old = state.withLock { s in
            let w = s.world
            s = (nil, 0)
            return w
        }
        if let old { try? FileManager.default.removeItem(atPath: old.dir) }
    }

    /// How byte 0 shapes the header the harness signs.
    struct Control {
        let raw: UInt8
        /// 0: exactly the next range for the writes; 1: one too many; 2: overlaps; 3: leaves a gap.
        var sequence: UInt8 { raw & 3 }
        var zstd: Bool { raw & 4 != 0 }
        /// 0: ack 0; 1: the hub's applied seq; 2: Int64.max; 3: the stream head.
        var ack: UInt8 { (raw >> 3) & 3 }
        /// 0: created now; 1: 9 min ahead; 2: 11 min ahead (over the bound); 3: at the newest write.
        var created: UInt8 { (raw >> 5) & 3 }
        /// Send the same envelope twice (the duplicate path).
        var twice: Bool { raw & 0x80 != 0 }
    }

    /// Seals `body` as the agent and runs it through the hub's upload steps.
    public func run(_ bytes: [UInt8]) -> FuzzOutcome {
        guard let first = bytes.first, let keys, let hubKeys else { return .skipped("empty") }
        let world: World
        do {
            world = try state.withLock { s in
                if s.inputs >= Self.inputsPerStore, let w = s.world {
                    try? FileManager.default.removeItem(atPath: w.dir)
                    s.world = nil
                }
                if s.world == nil { s = (try Self.makeWorld(agent: agent), 0) }
                s.inputs += 1
                guard let w = s.world else { throw HarnessFailure("no world") }
                return w
            }
        } catch {
            return .skipped("cannot make a hub store: \(error)")
        }
        let control = Control(raw: first)
        let body = Array(bytes.dropFirst())
        guard let applied = try? world.hub.agent(id: Self.agentID)?.appliedSeq,
            let head = try? world.hub.streamSeq()
        else { return .skipped("agent missing") }
        // Number the writes the way an honest agent would, then perturb.
        let decoded = try? BodyCodec.decode(body, normalize: false)
        let n = UInt64(max(decoded?.writes.count ?? 1, 1))
        var from = applied + 1
        var to = applied + n
        switch control.sequence {
        case 1: to += 1
        case 2: from = max(applied, 1)
        case 3: (from, to) = (from + 1, to + 1)
        default: break
        }
        // Acks at and past the stream head, up to 2^64−1 (refused as malformed past the head).
        let ack: UInt64 =
            switch control.ack {
            case 1: applied
            case 2: UInt64.max
            case 3: head
            default: 0
            }
        let newest = decoded?.writes.map(\.id.hlc).max() ?? HLC(millis: Self.hubMillis, counter: 0)
        let created: HLC =
            switch control.created {
            case 1: HLC(millis: Self.hubMillis + 540_000, counter: 0)
            case 2: HLC(millis: Self.hubMillis + 660_000, counter: 0)
            case 3: newest
            default: HLC(millis: Self.hubMillis, counter: 0)
            }
        let header = ChangeSetHeader(
            id: Array(SHA.digest16(bytes)), origin: OriginID(Self.agentID), seqFrom: from, seqTo: to, ack: ack,
            senderKeyID: agent.signing.publicKey.id, recipientKeyID: hubIdentity.kx.publicKey.id, createdHLC: created,
            compression: control.zstd ? .zstd : .none, commune: Self.commune)
        guard
            let sealed = try? Envelope.seal(
                header: header, bodyBytes: body, signer: agent.signing, key: keys.transmit,
                nonce: VectorFixtures.nonce, zstdLevel: 1)
        else { return .skipped("seal failed") }
        var outcome = upload(sealed.envelope, world: world, hubKeys: hubKeys)
        if control.twice { outcome = upload(sealed.envelope, world: world, hubKeys: hubKeys) }
        // Only what the hub took can reach a peer; refusals skip the second store.
        if outcome.isAccepted { serveToPeer(world, since: head) }
        return outcome
    }

    /// The hub's upload steps (HubService.uploadInner): peek, agent, open, ingest.
    func upload(_ envelope: [UInt8], world: World, hubKeys: SessionKeys) -> FuzzOutcome {
        do {
            let header = try Envelope.peek(envelope)
            guard let info = try world.hub.agent(id: header.origin.rawValue), info.isActive else {
                return .refused("unknown_key")
            }
            let opened = try Envelope.open(
                envelope, recipientKeyID: hubIdentity.kx.publicKey.id,
                author: try SigningPublicKey(bytes: info.signPublicKey), key: hubKeys.receive, normalize: true)
            let r = try IngestPipeline.apply(opened, from: info.id, store: world.hub).result
            return .accepted("\(r.status) merged \(r.merged) quarantined \(r.quarantined)")
        } catch let e as ChangeSetError {
            return .refused(e.code.rawValue)
        } catch let e as HubError {
            return .refused(e.code.rawValue)
        } catch {
            return .refused("other: \(error)")
        }
    }

    /// The hub stream after `since` for the peer agent, encoded, decoded and
    /// applied to the peer's replica, as a pull would deliver it.
    func serveToPeer(_ world: World, since: UInt64) {
        guard let c = try? world.hub.changes(for: world.peerInfo, since: since, maxBytes: 1 << 20) else { return }
        guard let body = try? BodyCodec.decode(BodyCodec.encode(c.body), normalize: false) else { return }
        _ = try? world.peer.applyRemote(body, cursor: c.seqTo)
    }
}

struct HarnessFailure: Error {
    let message: String
    init(_ m: String) { message = m }
}

/// A 16-byte digest for change-set ids, so the same input gives the same id.
enum SHA {
    static func digest16(_ bytes: [UInt8]) -> [UInt8] {
        Array(keyID(of: bytes) + keyID(of: bytes + [1]))
    }
}

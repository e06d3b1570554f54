import CZlib
import CZstd

/// zstd (level 3) and zlib (level 6) over the system libraries.
public enum Compressor {
    /// Compresses `bytes` with `algorithm`.
    /// zstd level for what goes on the wire: the links are 64–256 kbit/s, so
    /// bytes cost far more than CPU. On W4's 2.2 MB initial state level 19 is
    /// ~16 % smaller than level 3 and ~10 % smaller than zlib level 6.
    public static let wireLevel: Int32 = 19

    /// Compresses `bytes` with `algorithm` (`level` applies to zstd; the receiver does not need it).
    public static func compress(_ bytes: [UInt8], _ algorithm: Compression, level: Int32 = 3) -> [UInt8] {
        switch algorithm {
        case .none:
            return bytes
        case .zstd:
            let cap = ZSTD_compressBound(bytes.count)
            var out = [UInt8](repeating: 0, count: cap)
            let n = out.withUnsafeMutableBytes { o in
                bytes.withUnsafeBytes { i in ZSTD_compress(o.baseAddress, cap, i.baseAddress, bytes.count, level) }
            }
            // ZSTD_compress fails only when the buffer is too small, and it is the bound.
            return ZSTD_isError(n) != 0 ? [] : Array(out.prefix(n))
        case .zlib:
            var cap = compressBound(uLong(bytes.count))
            var out = [UInt8](repeating: 0, count: Int(cap))
            let rc = compress2(&out, &cap, bytes, uLong(bytes.count), 6)
            return rc == Z_OK ? Array(out.prefix(Int(cap))) : []
        }
    }

    /// Decompresses untrusted bytes that must expand to exactly `size` bytes.
    /// - Throws: ``ChangeSetError`` (malformed) when the data is corrupt or its size differs.
    public static func decompress(_ bytes: [UInt8], _ algorithm: Compression, size: Int) throws(ChangeSetError)
        -> [UInt8]
    {
        switch algorithm {
        case .none:
            guard bytes.count == size else { throw .malformed("body is \(bytes.count) bytes, header says \(size)") }
            return bytes
        case .zstd:
            var out = [UInt8](repeating: 0, count: max(size, 1))
            let n = out.withUnsafeMutableBytes { o in
                bytes.withUnsafeBytes { i in ZSTD_decompress(o.baseAddress, size, i.baseAddress, bytes.count) }
            }
            guard ZSTD_isError(n) == 0, n == size else {
                throw .malformed("the zstd body is corrupt or not \(size) bytes")
            }
            return Array(out.prefix(size))
        case .zlib:
            // One spare byte: with a 0-byte buffer zlib inflates into a private byte and
            // reports success, so a non-empty stream would pass as an empty body.
            var out = [UInt8](repeating: 0, count: size + 1)
            var len = uLong(size + 1)
            let rc = uncompress(&out, &len, bytes, uLong(bytes.count))
            guard rc == Z_OK, Int(len) == size else {
                throw .malformed("the zlib body is corrupt or not \(size) bytes")
            }
            return Array(out.prefix(size))
        }
    }
}

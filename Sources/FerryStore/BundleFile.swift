import FerryProtocol
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and writing offline bundle files (SPEC §12): a bounded read that
/// checks the size before it reads a byte, and an atomic write (temporary file
/// in the same directory, fsync, rename, fsync of the directory), so a USB
/// stick pulled out mid-write leaves the old file or none, never half of one.
public enum BundleFile {
    /// The bytes of the bundle at `path`, refusing a file over `maxBytes` before reading it.
    /// - Throws: ``BundleError`` `unreadable` or `oversized`.
    public static func read(_ path: String, maxBytes: Int) throws(BundleError) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw BundleError(
                .unreadable,
                "cannot open \(path): check the file name and that the USB stick is plugged in and readable")
        }
        defer { try? handle.close() }
        let size: UInt64
        do { size = try handle.seekToEnd() } catch {
            throw BundleError(.unreadable, "cannot read \(path) (\(error))")
        }
        guard size <= UInt64(max(0, maxBytes)) else {
            throw BundleError(
                .oversized,
                "\(path) is \(size) bytes, over the \(maxBytes)-byte limit for a bundle: it is not a Ferry bundle, or export smaller bundles more often"
            )
        }
        do {
            try handle.seek(toOffset: 0)
            // At most maxBytes + 1: a file that grew since the size check is refused, not read on.
            let data = try handle.read(upToCount: maxBytes + 1) ?? Data()
            guard data.count <= maxBytes else {
                throw BundleError(.oversized, "\(path) grew past \(maxBytes) bytes while it was read")
            }
            return [UInt8](data)
        } catch let e as BundleError {
            throw e
        } catch {
            throw BundleError(.unreadable, "cannot read \(path) (\(error)): copy the file again")
        }
    }

    /// Writes `bytes` to `path` atomically and durably.
    /// - Throws: ``BundleError`` `unreadable` naming the path and what to check.
    public static func write(_ bytes: [UInt8], to path: String) throws(BundleError) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".\(Platform.pid).tmp"
        func fail(_ what: String) -> BundleError {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            return BundleError(
                .unreadable,
                "cannot write \(path): \(what) failed (\(reason)); check that the USB stick is plugged in, writable and has \(bytes.count) bytes free"
            )
        }
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("creating a temporary file") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                posixWrite(fd, raw.baseAddress.map { $0 + written }, bytes.count - written)
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                close(fd)
                throw fail("writing")
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            close(fd)
            throw fail("flushing to the disk")
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw fail("renaming the temporary file") }
        // The rename itself is durable only once the directory is flushed.
        let dfd = open(dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

/// POSIX `write(2)` (inside ``BundleFile`` the name means its own `write`).
private func posixWrite(_ fd: Int32, _ buf: UnsafeRawPointer?, _ n: Int) -> Int { write(fd, buf, n) }

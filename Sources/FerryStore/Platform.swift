import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The few operating-system calls Ferry needs beyond Foundation: an advisory
/// lock on a directory, file modes and free space. Everything that differs
/// between operating systems lives in this file (DESIGN §7: nothing Linux-only
/// outside one small platform layer); elsewhere these calls are portable.
public enum Platform {
    /// The permission bits of `path`, or nil when it does not exist (or on a
    /// system without POSIX modes).
    public static func mode(_ path: String) -> UInt16? {
        #if os(Windows)
            return nil
        #else
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            return UInt16(truncatingIfNeeded: st.st_mode) & 0o7777
        #endif
    }

    /// Sets the permission bits of `path` (no-op on a system without POSIX modes).
    public static func setMode(_ path: String, _ mode: UInt16) {
        #if !os(Windows)
            _ = chmod(path, mode_t(mode))
        #endif
    }

    /// Bytes free for an unprivileged writer on the file system holding `path`, or nil when unknown.
    public static func freeBytes(_ path: String) -> UInt64? {
        #if os(Windows)
            return nil
        #else
            var s = statvfs()
            guard statvfs(path, &s) == 0 else { return nil }
            let (bytes, overflow) = UInt64(s.f_bavail).multipliedReportingOverflow(by: UInt64(s.f_frsize))
            return overflow ? UInt64.max : bytes
        #endif
    }

    /// True when the file system holding `path` is mounted read-only.
    public static func isReadOnlyMount(_ path: String) -> Bool {
        #if os(Windows)
            return false
        #else
            var s = statvfs()
            guard statvfs(path, &s) == 0 else { return false }
            return (UInt(s.f_flag) & UInt(ST_RDONLY)) != 0
        #endif
    }

    /// True when this process may write in `path` (a directory or file).
    public static func isWritable(_ path: String) -> Bool {
        FileManager.default.isWritableFile(atPath: path) && !isReadOnlyMount(path)
    }

    /// Replaces `destination` with `source` in one step (POSIX `rename`), so a
    /// crash leaves either the old file or the new one, never half of one.
    public static func replace(_ destination: String, with source: String) throws {
        guard rename(source, destination) == 0 else {
            throw StoreError(
                "cannot move \(source) to \(destination) (\(String(cString: strerror(errno)))): check the directory's permissions and free space"
            )
        }
    }

    /// The process id.
    public static var pid: Int32 { ProcessInfo.processInfo.processIdentifier }
}

/// Another process already holds a directory's lock.
public struct LockError: Error, Sendable, CustomStringConvertible {
    /// The PID written by the holder, when readable.
    public let holder: Int32?
    public let description: String
}

/// An exclusive advisory lock (`flock`) on a file in a directory, held until
/// the process ends or ``release()`` (one process per hub or agent directory:
/// two writers on one replica would number writes twice). The file holds the
/// holder's PID so the refusal can name it. The kernel drops the lock when the
/// process dies, even by SIGKILL or a power cut, so a stale file never blocks.
public final class DirectoryLock: @unchecked Sendable {
    // @unchecked: `fd` is only changed by `release()`, which the owner calls once at the end.
    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { release() }

    /// Takes the lock file `name` in `directory`.
    /// - Parameter what: how to name the holder in the refusal, e.g. "a ferry hub".
    /// - Throws: ``LockError`` naming the PID that holds it; or when the file cannot be opened.
    /// - Parameter note: a line written after the PID (e.g. what the holder
    ///   is and since when), read back by ``probe(directory:name:)``.
    public static func acquire(directory: String, name: String, what: String, note: String? = nil) throws
        -> DirectoryLock
    {
        let path = directory + "/" + name
        #if os(Windows)
            return DirectoryLock(path: path, fd: -1)
        #else
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let reason = String(cString: strerror(errno))
                let why =
                    errno == EROFS || errno == EACCES || errno == EPERM
                    ? "\(directory) is read-only or not writable by this user; make it writable (remount the disk read-write, fix the permissions)"
                    : "check that \(directory) exists and is writable"
                throw LockError(holder: nil, description: "cannot open the lock file \(path) (\(reason)): \(why)")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let busy = errno == EWOULDBLOCK
                let reason = String(cString: strerror(errno))
                var buf = [UInt8](repeating: 0, count: 32)
                let n = pread(fd, &buf, buf.count, 0)
                close(fd)
                let text = String(decoding: buf.prefix(max(0, n)), as: UTF8.self)
                let firstLine = text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
                let holder = Int32(firstLine.trimmingCharacters(in: .whitespacesAndNewlines))
                guard busy else {
                    throw LockError(holder: nil, description: "cannot lock \(path) (\(reason))")
                }
                throw LockError(
                    holder: holder,
                    description:
                        "\(what) is already running on \(directory) (PID \(holder.map(String.init) ?? "unknown"), lock \(path)): only one process may use a directory at a time; stop that one first, or use another directory"
                )
            }
            let pid = Array("\(Platform.pid)\n\(note.map { $0 + "\n" } ?? "")".utf8)
            _ = ftruncate(fd, 0)
            _ = pwrite(fd, pid, pid.count, 0)
            return DirectoryLock(path: path, fd: fd)
        #endif
    }

    /// Whether a process holds the lock file `name` in `directory` now, without
    /// taking it for more than an instant (a shared `flock`, released at once).
    /// - Returns: ``LockState/held(pid:note:)`` with what the holder wrote;
    ///   ``LockState/free`` when nobody holds it (or the file does not exist);
    ///   ``LockState/unknown`` when this process cannot tell (no permission to
    ///   open the file, or a system without `flock`).
    public static func probe(directory: String, name: String) -> LockState {
        let path = directory + "/" + name
        #if os(Windows)
            return .unknown
        #else
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return errno == ENOENT ? .free : .unknown }
            defer { close(fd) }
            if flock(fd, LOCK_SH | LOCK_NB) == 0 {
                _ = flock(fd, LOCK_UN)
                return .free
            }
            guard errno == EWOULDBLOCK else { return .unknown }
            var buf = [UInt8](repeating: 0, count: 256)
            let n = pread(fd, &buf, buf.count, 0)
            let lines = String(decoding: buf.prefix(max(0, n)), as: UTF8.self).split(separator: "\n").map(String.init)
            return .held(pid: lines.first.flatMap { Int32($0) }, note: lines.dropFirst().first)
        #endif
    }

    /// What ``probe(directory:name:)`` found.
    public enum LockState: Sendable, Equatable {
        case free
        case held(pid: Int32?, note: String?)
        case unknown
    }

    /// Releases the lock (also done when the object goes away or the process ends).
    public func release() {
        #if !os(Windows)
            if fd >= 0 {
                close(fd)
                fd = -1
            }
        #endif
    }
}

/// Ferry's files are private (SPEC §2 threat model: records are personal data):
/// directories 0700, keys, tokens and databases 0600.
public enum FilePrivacy {
    /// Warnings for each of `paths` (existing ones only) whose mode lets other
    /// users in: group or other bits set. Directories should be 0700, files 0600.
    public static func warnings(_ paths: [String]) -> [String] {
        paths.compactMap { p in
            guard let m = mode(p), m & 0o077 != 0 else { return nil }
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: p, isDirectory: &isDir)
            let want: UInt16 = isDir.boolValue ? 0o700 : 0o600
            return
                "\(p) is readable by other users of this computer (mode \(String(m, radix: 8))): run `chmod \(String(want, radix: 8)) \(p)`"
        }
    }

    private static func mode(_ p: String) -> UInt16? { Platform.mode(p) }

    /// The SQLite files of a database: the file and its -wal and -shm companions.
    public static func databaseFiles(_ path: String) -> [String] { [path, path + "-wal", path + "-shm"] }
}

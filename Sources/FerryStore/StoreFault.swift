import Foundation
import GRDB

/// The disk let a store down: full, read-only, failing, or the file is damaged.
///
/// This is the one place where SQLite's result codes become typed errors with
/// a message a person can act on (hub operator or commune clerk). A fault
/// never damages what is stored: SQLite rolls the transaction back, so the
/// write is refused whole and can be made again once the disk is fixed.
public struct StoreFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable strings for the JSON error `code` (SPEC §9.5).
    public enum Code: String, Sendable, Equatable, CaseIterable {
        /// SQLITE_FULL: no space left on the disk.
        case diskFull = "disk_full"
        /// SQLITE_READONLY, or any write error on a read-only mount.
        case readOnly = "read_only"
        /// SQLITE_IOERR and SQLITE_CANTOPEN otherwise.
        case ioError = "io_error"
        /// SQLITE_CORRUPT, SQLITE_NOTADB, or `PRAGMA quick_check` found damage.
        case corrupt
        /// The hub's PostgreSQL database cannot be reached or failed the statement (issue 10).
        case databaseUnavailable = "database_unavailable"
    }

    public let code: Code
    /// The database file concerned.
    public let path: String
    public let message: String
    public var description: String { message }

    /// The HTTP status a hub answers with: 507 when full, 503 while the disk
    /// cannot be written (both clear by themselves once it is fixed), 500 when damaged.
    public var httpStatus: Int {
        switch code {
        case .diskFull: 507
        case .readOnly, .ioError, .databaseUnavailable: 503
        case .corrupt: 500
        }
    }

    public init(_ code: Code, path: String, detail: String = "") {
        self.code = code
        self.path = path
        let d = detail.isEmpty ? "" : " (\(detail))"
        switch code {
        case .diskFull:
            message =
                "the disk holding \(path) is full\(d): nothing was written and nothing stored is damaged; free some space and Ferry carries on by itself"
        case .readOnly:
            message =
                "\(path) cannot be written: the disk or directory is read-only\(d); nothing was written and nothing stored is damaged; make it writable again (remount the disk read-write, fix the permissions) and Ferry carries on by itself"
        case .ioError:
            message =
                "the disk failed while using \(path)\(d): nothing was written; check the disk (cable, free space, `dmesg`) and retry"
        case .databaseUnavailable:
            message =
                "the hub's database \(path) did not take the request\(d): nothing was written; check that PostgreSQL runs and accepts this hub's connections (see hub/OPERATIONS.md), then retry"
        case .corrupt:
            message =
                "the database file \(path) is damaged\(d): stop Ferry, move the file aside (with its -wal and -shm files) and restore the latest backup (see hub/OPERATIONS.md, \"Backups\"); an agent can instead be enrolled again in a new directory"
        }
    }

    /// The typed fault behind `error`, when it is a storage fault.
    /// - Parameter path: the database file, to name it and to look at its mount.
    public static func from(_ error: any Error, path: String) -> StoreFault? {
        if let f = error as? StoreFault { return f }
        guard let e = error as? DatabaseError else { return nil }
        let dir = (path as NSString).deletingLastPathComponent
        let detail = "SQLite \(e.extendedResultCode.rawValue): \(e.message ?? "")"
        switch e.resultCode {
        case .SQLITE_FULL:
            return StoreFault(.diskFull, path: path)
        case .SQLITE_READONLY:
            return StoreFault(.readOnly, path: path)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return StoreFault(.corrupt, path: path, detail: detail)
        case .SQLITE_IOERR, .SQLITE_CANTOPEN:
            // A write refused by a read-only mount or a full disk can surface as
            // a plain I/O error (EROFS, ENOSPC from write or fsync): name the cause.
            if Platform.isReadOnlyMount(dir.isEmpty ? "." : dir) || !Platform.isWritable(dir.isEmpty ? "." : dir) {
                return StoreFault(.readOnly, path: path)
            }
            if let free = Platform.freeBytes(dir.isEmpty ? "." : dir), free < 64 * 1024 {
                return StoreFault(.diskFull, path: path)
            }
            return StoreFault(.ioError, path: path, detail: detail)
        default:
            return nil
        }
    }

    /// `error` as a person should read it: a storage fault's message, or the error itself.
    public static func describe(_ error: any Error, path: String) -> String {
        from(error, path: path)?.message ?? "\(error)"
    }

    /// Runs `PRAGMA quick_check` (SPEC §9.5: a damaged file is found at start, not mid-sync).
    /// - Throws: ``StoreFault`` `corrupt` naming the first problem found.
    static func quickCheck(_ pool: DatabasePool, path: String) throws {
        let rows: [String]
        do {
            rows = try pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check(5)") }
        } catch {
            throw from(error, path: path) ?? error
        }
        guard rows == ["ok"] else {
            throw StoreFault(.corrupt, path: path, detail: "quick_check: " + rows.joined(separator: "; "))
        }
    }
}

/// Creates an empty database file private to this user (0600) when it does
/// not exist yet. SQLite gives the -wal and -shm files the database file's
/// mode, so this makes all three private.
func createPrivately(_ path: String) {
    if !FileManager.default.fileExists(atPath: path) {
        _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
    }
}

import FerryStore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A `postgres://user:password@host:port/database` URL, parsed; its
/// `description` never shows the password (hub logs, `ferry hub` output).
public struct PostgresURL: Sendable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String

    /// - Throws: ``HubError`` `badRequest` naming what is wrong (without the password).
    public init(_ text: String) throws {
        guard let c = URLComponents(string: text), c.scheme == "postgres" || c.scheme == "postgresql" else {
            throw HubError(
                .badRequest, "the store must be a postgres://user@host:port/database URL (or a SQLite hub directory)")
        }
        guard let host = c.host, !host.isEmpty else {
            throw HubError(.badRequest, "the postgres:// URL names no host: postgres://user@host:port/database")
        }
        let db = String(c.path.drop { $0 == "/" })
        guard !db.isEmpty, !db.contains("/") else {
            throw HubError(.badRequest, "the postgres:// URL names no database: postgres://user@host:port/database")
        }
        guard let user = c.user, !user.isEmpty else {
            throw HubError(.badRequest, "the postgres:// URL names no user: postgres://user@host:port/database")
        }
        if let p = c.port, !(1...65535).contains(p) {
            throw HubError(.badRequest, "the postgres:// URL's port \(p) is not in 1…65535")
        }
        self.user = user.removingPercentEncoding ?? user
        password = c.password.map { $0.removingPercentEncoding ?? $0 }
        self.host = host
        port = c.port ?? 5432
        database = db.removingPercentEncoding ?? db
    }

    /// True when `text` names a PostgreSQL store rather than a file.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// The URL with the password masked.
    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }
}

/// Connections to one database, reused across requests. The hub's service is
/// synchronous: each call blocks its thread on the connection's futures (never
/// an event-loop thread; the HTTP handlers run store calls off the loops).
final class PostgresConnectionPool: Sendable {
    let configuration: PostgresConnection.Configuration
    let logger: Logger
    let url: PostgresURL
    private let idle = Mutex<[PostgresConnection]>([])
    private let ids = Atomic<Int>(0)
    /// Idle connections kept for reuse; more may be open while requests run.
    static let keepIdle = 16

    init(url: PostgresURL, logger: Logger) {
        self.url = url
        self.logger = logger
        var c = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
            tls: .disable)
        c.options.connectTimeout = .seconds(10)
        configuration = c
    }

    func connect() throws -> PostgresConnection {
        do {
            return try PostgresConnection.connect(
                on: PostgresConnection.defaultEventLoopGroup.any(), configuration: configuration,
                id: ids.add(1, ordering: .relaxed).newValue, logger: logger
            ).wait()
        } catch {
            throw StoreFault(
                .databaseUnavailable, path: url.description,
                detail: "cannot connect: \(PostgresFailure.describe(error))")
        }
    }

    /// Runs `body` on a connection of the pool; a connection that failed is closed, not reused.
    func with<T>(_ body: (PGConnection) throws -> T) throws -> T {
        var conn: PostgresConnection? = nil
        while conn == nil, let c = idle.withLock({ $0.popLast() }) {
            if !c.isClosed { conn = c }
        }
        let c = try conn ?? connect()
        do {
            let r = try body(PGConnection(connection: c, logger: logger))
            release(c)
            return r
        } catch {
            if PostgresFailure.isConnectionLost(error) { _ = try? c.close().wait() } else { release(c) }
            throw error
        }
    }

    private func release(_ c: PostgresConnection) {
        guard !c.isClosed else { return }
        let extra = idle.withLock { list -> PostgresConnection? in
            if list.count < Self.keepIdle {
                list.append(c)
                return nil
            }
            return c
        }
        if let extra { _ = try? extra.close().wait() }
    }

    func close() {
        for c in idle.withLock({ l in
            defer { l = [] }; return l
        }) { _ = try? c.close().wait() }
    }
}

/// One connection, as the store's code uses it: blocking queries.
struct PGConnection {
    let connection: PostgresConnection
    let logger: Logger

    func rows(_ q: PostgresQuery) throws -> [PostgresRandomAccessRow] {
        try connection.query(q, logger: logger).wait().rows.map { $0.makeRandomAccess() }
    }

    @discardableResult
    func exec(_ q: PostgresQuery) throws -> Int {
        try connection.query(q, logger: logger).wait().metadata.rows ?? 0
    }

    func one(_ q: PostgresQuery) throws -> PostgresRandomAccessRow? { try rows(q).first }
}

/// What a PostgreSQL error means to the hub.
enum PostgresFailure {
    /// SQLSTATE of a server error, if any.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// A transaction the server aborted to keep concurrent ones consistent: run it again.
    static func isRetryable(_ error: any Error) -> Bool {
        ["40001", "40P01"].contains(sqlState(error) ?? "")
    }

    static func isConnectionLost(_ error: any Error) -> Bool {
        guard let e = error as? PSQLError else { return false }
        return e.serverInfo == nil
    }

    /// The server's message (never the connection's configuration, which holds the password).
    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let m = e.serverInfo?[.message] { return "\(m) (SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"))" }
            return "\(e.code)"
        }
        return "\(type(of: error))"
    }
}

extension PostgresRandomAccessRow {
    func string(_ i: Int) throws -> String { try self[i].decode(String.self) }
    func optString(_ i: Int) throws -> String? { try self[i].decode(String?.self) }
    func int64(_ i: Int) throws -> Int64 { try self[i].decode(Int64.self) }
    func optInt64(_ i: Int) throws -> Int64? { try self[i].decode(Int64?.self) }
    func int(_ i: Int) throws -> Int { Int(try self[i].decode(Int64.self)) }
    func u64(_ i: Int) throws -> UInt64 { UInt64(clamping: try int64(i)) }
    func bytes(_ i: Int) throws -> [UInt8] { Array(buffer: try self[i].decode(ByteBuffer.self)) }
    func optBytes(_ i: Int) throws -> [UInt8]? { try self[i].decode(ByteBuffer?.self).map { Array(buffer: $0) } }
}

extension ByteBuffer {
    init(_ bytes: [UInt8]) { self.init(bytes: bytes) }
}

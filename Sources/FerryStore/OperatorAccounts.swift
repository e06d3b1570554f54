import FerryCrypto
import Foundation
import GRDB

/// What an operator may do at the hub. Each role includes the ones below it.
public enum OperatorRole: String, Sendable, Codable, CaseIterable, Comparable {
    /// Reads everything: progress, fleet, conflicts, quarantine, records, audit.
    case viewer
    /// Also resolves conflicts, edits and creates records, handles quarantine.
    case `operator`
    /// Also manages users, forms, campaigns, enrollment tokens and agents.
    case admin

    var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// An operator account as stored (the password hash never leaves the store's callers).
public struct OperatorAccount: Sendable, Codable, Equatable {
    public var name: String
    public var role: OperatorRole
    public var disabled: Bool
    public var createdMs: UInt64
    /// The `crypto_pwhash_str` string; nil for a token-only account.
    public var passwordHash: String?
    public init(name: String, role: OperatorRole, disabled: Bool, createdMs: UInt64, passwordHash: String?) {
        self.name = name
        self.role = role
        self.disabled = disabled
        self.createdMs = createdMs
        self.passwordHash = passwordHash
    }
}

/// One operator action in the hub's operator log (who did what to which record).
/// The hub's one operator log (`operator_log`): `ferry audit`, the console's
/// record page and `GET /v1/ops/actions` read it; the hub's log prints the same fields.
public struct OperatorAction: Sendable, Codable, Equatable {
    public var atMs: UInt64
    /// The operator's name (`admin` for the shared operator token).
    public var user: String
    /// `records/edit`, `conflicts/resolve`, `form.publish`, `quarantine.fixed`, ...
    public var action: String
    /// The record the action wrote, when it wrote one.
    public var record: String?
    /// Never values, passwords or tokens: field names, counts, the operator's note.
    public var detail: String
    /// What the action was about when it is not (only) a record: `form@2`, `#12`, a campaign id.
    public var target: String
    public init(atMs: UInt64, user: String, action: String, record: String?, detail: String, target: String = "") {
        self.atMs = atMs
        self.user = user
        self.action = action
        self.record = record
        self.detail = detail
        self.target = target
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        atMs = try c.decode(UInt64.self, forKey: .atMs)
        user = try c.decode(String.self, forKey: .user)
        action = try c.decode(String.self, forKey: .action)
        record = try c.decodeIfPresent(String.self, forKey: .record)
        detail = try c.decode(String.self, forKey: .detail)
        // A hub from before the unified log sends no target.
        target = try c.decodeIfPresent(String.self, forKey: .target) ?? ""
    }
}

/// Operator accounts, their API tokens and the operator log: the few methods a
/// hub backend (SQLite here, PostgreSQL too) implements for the console and `/v1/ops`.
public protocol OperatorAccountStore: Sendable {
    /// - Throws: ``HubError`` `conflict` when the name is taken.
    func addOperator(_ account: OperatorAccount) throws
    func operatorAccounts() throws -> [OperatorAccount]
    func operatorAccount(name: String) throws -> OperatorAccount?
    /// - Throws: ``HubError`` `notFound` when there is no such user.
    func setOperatorDisabled(name: String, disabled: Bool) throws
    /// Stores `tokenHash` (a digest of the secret, never the secret) for `name`.
    func addOperatorToken(name: String, tokenHash: [UInt8], label: String, expiresMs: UInt64) throws
    /// The enabled account holding an unexpired token with this hash.
    func operatorAccount(tokenHash: [UInt8]) throws -> OperatorAccount?
    func logOperatorAction(_ action: OperatorAction) throws
    /// The newest actions first, optionally about one record.
    func operatorActions(record: String?, limit: Int) throws -> [OperatorAction]

    /// Keeps a console session; expired sessions are dropped, and past `keep`
    /// live sessions the one ending first makes room.
    func addOperatorSession(_ session: OperatorSession, keep: Int) throws
    /// The unexpired session with this id digest.
    func operatorSession(idHash: [UInt8]) throws -> OperatorSession?
    func deleteOperatorSession(idHash: [UInt8]) throws
    /// Removes the session with this id digest and returns it when it was
    /// unexpired, atomically: of two hub processes taking it at once, one gets
    /// it (one-time login links).
    func takeOperatorSession(idHash: [UInt8]) throws -> OperatorSession?
}

extension SQLiteHubStore: OperatorAccountStore {
    /// Migration "v4-operators": accounts, hashed API tokens, the operator log.
    static func registerOperatorMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v4-operators") { db in
            try db.execute(
                sql: """
                    CREATE TABLE operators(name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT,
                        disabled INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL);
                    CREATE TABLE operator_tokens(hash BLOB PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL,
                        created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
                    CREATE TABLE operator_log(id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, name TEXT NOT NULL,
                        action TEXT NOT NULL, record TEXT, detail TEXT NOT NULL);
                    CREATE INDEX operator_log_record ON operator_log(record, id);
                    """)
        }
    }

    /// Migration "v5-operator-sessions": console sessions, so a restart keeps operators signed in.
    static func registerSessionMigrations(_ m: inout DatabaseMigrator) {
        m.registerMigration("v5-operator-sessions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE operator_sessions(hash BLOB PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
                        csrf TEXT NOT NULL, expires_ms INTEGER NOT NULL);
                    CREATE INDEX operator_sessions_expiry ON operator_sessions(expires_ms);
                    """)
        }
    }

    public func addOperatorSession(_ s: OperatorSession, keep: Int) throws {
        let now = Int64(clamping: nowMillis())
        try write { db in
            try db.execute(sql: "DELETE FROM operator_sessions WHERE expires_ms <= ?", arguments: [now])
            let live = try Int.fetchOne(db, sql: "SELECT count(*) FROM operator_sessions") ?? 0
            if live >= keep {
                try db.execute(
                    sql: """
                        DELETE FROM operator_sessions WHERE hash IN
                        (SELECT hash FROM operator_sessions ORDER BY expires_ms LIMIT ?)
                        """, arguments: [live - keep + 1])
            }
            try db.execute(
                sql:
                    "INSERT OR REPLACE INTO operator_sessions(hash, name, role, csrf, expires_ms) VALUES (?, ?, ?, ?, ?)",
                arguments: [Data(s.idHash), s.name, s.role.rawValue, s.csrf, Int64(clamping: s.expiresMs)])
        }
    }

    public func operatorSession(idHash: [UInt8]) throws -> OperatorSession? {
        try pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM operator_sessions WHERE hash = ? AND expires_ms > ?",
                arguments: [Data(idHash), Int64(clamping: nowMillis())]
            ).map {
                OperatorSession(
                    idHash: idHash, name: $0["name"], role: OperatorRole(rawValue: $0["role"]) ?? .viewer,
                    csrf: $0["csrf"], expiresMs: UInt64(clamping: $0["expires_ms"] as Int64))
            }
        }
    }

    public func deleteOperatorSession(idHash: [UInt8]) throws {
        try write { db in try db.execute(sql: "DELETE FROM operator_sessions WHERE hash = ?", arguments: [Data(idHash)])
        }
    }

    public func takeOperatorSession(idHash: [UInt8]) throws -> OperatorSession? {
        // One write transaction: SQLite runs one writer at a time, so the read and
        // the delete cannot interleave with another process's.
        let now = Int64(clamping: nowMillis())
        return try write { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM operator_sessions WHERE hash = ?", arguments: [Data(idHash)])
            guard let row else { return nil }
            try db.execute(sql: "DELETE FROM operator_sessions WHERE hash = ?", arguments: [Data(idHash)])
            guard (row["expires_ms"] as Int64) > now else { return nil }
            return OperatorSession(
                idHash: idHash, name: row["name"], role: OperatorRole(rawValue: row["role"]) ?? .viewer,
                csrf: row["csrf"], expiresMs: UInt64(clamping: row["expires_ms"] as Int64))
        }
    }

    /// Migration "v5-operator-log": the form-lifecycle actions (`operator_actions`,
    /// written by `noteAction`) and the request log (`operator_log`) recorded the
    /// same writes in two shapes. One table stays: every old row is carried over,
    /// counted, and the migration fails (the store does not open) rather than drop one.
    static func registerOperatorLogMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration("v5-operator-log") { db in
            try db.execute(sql: "ALTER TABLE operator_log ADD COLUMN target TEXT NOT NULL DEFAULT ''")
            let before = try Int.fetchOne(db, sql: "SELECT count(*) FROM operator_log") ?? 0
            let old = try Row.fetchAll(db, sql: "SELECT * FROM operator_actions ORDER BY at_ms, id")
            for r in old {
                let action: String = r["action"]
                let target: String = r["target"]
                // Old lifecycle rows named no record; a quarantine entry knows its record, so keep it.
                var record: String?
                if action.hasPrefix("quarantine."), let id = Int64(String(target.drop { $0 == "#" })) {
                    record = try Row.fetchOne(db, sql: "SELECT * FROM quarantine WHERE id = ?", arguments: [id])
                        .map { Self.quarantineEntry($0).record }
                }
                try logOperatorAction(
                    db,
                    OperatorAction(
                        atMs: UInt64(clamping: r["at_ms"] as Int64), user: r["by"], action: action, record: record,
                        detail: r["detail"], target: target))
            }
            let after = try Int.fetchOne(db, sql: "SELECT count(*) FROM operator_log") ?? 0
            guard after == before + old.count else {
                throw StoreError(
                    "the operator-log migration carried \(after - before) of \(old.count) old rows; the store is left as it was: send this message to the developers"
                )
            }
            try db.execute(sql: "DROP TABLE operator_actions")
        }
    }

    static func account(_ r: Row) -> OperatorAccount {
        OperatorAccount(
            name: r["name"], role: OperatorRole(rawValue: r["role"]) ?? .viewer, disabled: (r["disabled"] as Int) != 0,
            createdMs: UInt64(clamping: r["created_ms"] as Int64), passwordHash: r["password"])
    }

    public func addOperator(_ a: OperatorAccount) throws {
        try write { db in
            if try Row.fetchOne(db, sql: "SELECT 1 FROM operators WHERE name = ?", arguments: [a.name]) != nil {
                throw HubError(.conflict, "user \(a.name) exists already: pick another name")
            }
            try db.execute(
                sql: "INSERT INTO operators(name, role, password, disabled, created_ms) VALUES (?, ?, ?, ?, ?)",
                arguments: [a.name, a.role.rawValue, a.passwordHash, a.disabled ? 1 : 0, Int64(clamping: a.createdMs)])
        }
    }

    public func operatorAccounts() throws -> [OperatorAccount] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM operators ORDER BY name").map(Self.account) }
    }

    public func operatorAccount(name: String) throws -> OperatorAccount? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM operators WHERE name = ?", arguments: [name]).map(Self.account)
        }
    }

    public func setOperatorDisabled(name: String, disabled: Bool) throws {
        try write { db in
            try db.execute(
                sql: "UPDATE operators SET disabled = ? WHERE name = ?", arguments: [disabled ? 1 : 0, name])
            if db.changesCount == 0 {
                throw HubError(.notFound, "there is no user \(name): see `ferry hub users list`")
            }
        }
    }

    public func addOperatorToken(name: String, tokenHash: [UInt8], label: String, expiresMs: UInt64) throws {
        try write { db in
            try db.execute(
                sql: "INSERT INTO operator_tokens(hash, name, label, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    Data(tokenHash), name, label, Int64(clamping: nowMillis()), Int64(clamping: expiresMs),
                ])
        }
    }

    public func operatorAccount(tokenHash: [UInt8]) throws -> OperatorAccount? {
        try pool.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT o.* FROM operator_tokens t JOIN operators o ON o.name = t.name
                    WHERE t.hash = ? AND t.expires_ms > ? AND o.disabled = 0
                    """, arguments: [Data(tokenHash), Int64(clamping: nowMillis())]
            ).map(Self.account)
        }
    }

    public func logOperatorAction(_ a: OperatorAction) throws {
        try write { db in try Self.logOperatorAction(db, a) }
    }

    /// Writes one operator-log row in the caller's transaction.
    static func logOperatorAction(_ db: Database, _ a: OperatorAction) throws {
        try db.execute(
            sql: "INSERT INTO operator_log(at_ms, name, action, record, detail, target) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [Int64(clamping: a.atMs), a.user, a.action, a.record, a.detail, a.target])
    }

    public func operatorActions(record: String?, limit: Int) throws -> [OperatorAction] {
        try pool.read { db in
            let rows =
                try record.map {
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM operator_log WHERE record = ? ORDER BY id DESC LIMIT ?",
                        arguments: [$0, limit])
                }
                ?? Row.fetchAll(db, sql: "SELECT * FROM operator_log ORDER BY id DESC LIMIT ?", arguments: [limit])
            return rows.map {
                OperatorAction(
                    atMs: UInt64(clamping: $0["at_ms"] as Int64), user: $0["name"], action: $0["action"],
                    record: $0["record"], detail: $0["detail"], target: $0["target"])
            }
        }
    }
}

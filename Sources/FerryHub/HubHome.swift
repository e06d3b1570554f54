import FerryCore
import FerryCrypto
import FerryPostgres
import FerryProtocol
import FerryStore
import Foundation

/// The files of one hub (directory 0700): `hub.key`, `hub.sqlite`, `operator.token` (0600), `hub.url`, `hub.lock`.
public struct HubHome: Sendable {
    public let directory: String
    public init(directory: String) { self.directory = directory }

    public var keyPath: String { directory + "/hub.key" }
    public var storePath: String { directory + "/hub.sqlite" }
    public var tokenPath: String { directory + "/operator.token" }
    public var urlPath: String { directory + "/hub.url" }
    /// The PostgreSQL URL of a hub whose store is a database (0600; it may hold a password).
    public var storeURLPath: String { directory + "/hub.store" }

    /// The PostgreSQL store's URL, or nil for the SQLite file `hub.sqlite`.
    public func storeURL() -> String? {
        FileManager.default.contents(atPath: storeURLPath).map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    public var isInitialized: Bool { FileManager.default.fileExists(atPath: keyPath) }

    /// Creates keys, the store, the operator token, and seeds the province's
    /// communes, the land-record form and the land campaign.
    /// With `storeURL` (postgres://…) the records live in that database and
    /// the directory keeps the keys, the operator token and the URL.
    public func initialize(storeURL: String? = nil) throws -> Identity {
        if isInitialized {
            throw HubError(
                .conflict, "\(directory) already holds a hub: use it with `ferry hub serve --dir \(directory)`")
        }
        // Private by default: the directory holds the keys and every record.
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        Platform.setMode(directory, 0o700)
        let identity = Identity()
        try identity.save(path: keyPath)
        let token = hex(randomBytes(24))
        guard
            FileManager.default.createFile(
                atPath: tokenPath, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw HubError(.badRequest, "cannot write \(tokenPath): check the directory's permissions and free space")
        }
        if let storeURL {
            _ = try PostgresURL(storeURL)
            guard
                FileManager.default.createFile(
                    atPath: storeURLPath, contents: Data((storeURL + "\n").utf8),
                    attributes: [.posixPermissions: 0o600])
            else {
                throw HubError(
                    .badRequest, "cannot write \(storeURLPath): check the directory's permissions and free space")
            }
        }
        let store = try self.store()
        for c in Seed.communes {
            try store.publish(.commune, key: c.code, json: try JSONEncoder().encode(c).map { $0 })
        }
        try store.publish(form: try Seed.form)
        let campaign = try Seed.campaign
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        try store.publish(.campaign, key: campaign.id, json: try e.encode(campaign).map { $0 })
        return identity
    }

    public func identity() throws -> Identity { try Identity.load(path: keyPath) }

    public var lockPath: String { directory + "/hub.lock" }

    /// Takes the directory's lock (`hub.lock`): one `ferry hub serve` per directory.
    /// - Throws: ``LockError`` naming the PID of the hub already running.
    public func lock() throws -> DirectoryLock {
        try DirectoryLock.acquire(directory: directory, name: "hub.lock", what: "a ferry hub")
    }

    /// Warnings for files other users can read (the directory should be 0700;
    /// the key, the operator token and the store with its -wal and -shm, 0600).
    public func privacyWarnings() -> [String] {
        FilePrivacy.warnings([directory, keyPath, tokenPath] + FilePrivacy.databaseFiles(storePath))
    }

    public func operatorToken() throws -> String {
        guard let d = FileManager.default.contents(atPath: tokenPath) else {
            throw HubError(
                .notFound,
                "no operator token at \(tokenPath): is \(directory) the hub's directory? Name it with --hub-dir DIR (or $FERRY_HUB_DIR), or give --hub URL --token TOKEN; only a new hub is made with `ferry hub init`"
            )
        }
        return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The URL the running hub wrote when it started.
    public func url() throws -> String {
        guard let d = FileManager.default.contents(atPath: urlPath) else {
            throw HubError(
                .notFound,
                "no running hub found for \(directory) (\(urlPath) is missing): start it with `ferry hub serve --dir \(directory)`"
            )
        }
        return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The hub's store: the database named in `hub.store`, else `hub.sqlite`.
    public func store(futureBoundMillis: UInt64 = 600_000) throws -> any HubServiceStore {
        if let url = storeURL() { return try PostgresHubStore(url: url, futureBoundMillis: futureBoundMillis) }
        return try SQLiteHubStore(path: storePath, futureBoundMillis: futureBoundMillis)
    }
}

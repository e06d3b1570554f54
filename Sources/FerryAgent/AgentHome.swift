import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// The agent's configuration file (`agent.json` in the agent directory).
public struct AgentConfig: Codable, Sendable, Equatable {
    public var hubURL: String
    public var agentID: String
    public var commune: String
    public var hubSignPublicKey: String
    public var hubKxPublicKey: String
    /// Seconds between syncs when all is well.
    public var syncIntervalSeconds: Double
    /// Largest change set to send, in bytes (the adaptive bound starts lower).
    public var maxChangeSetBytes: Int

    public init(
        hubURL: String, agentID: String, commune: String, hubSignPublicKey: String, hubKxPublicKey: String,
        syncIntervalSeconds: Double = 30, maxChangeSetBytes: Int = 512 * 1024
    ) {
        self.hubURL = hubURL
        self.agentID = agentID
        self.commune = commune
        self.hubSignPublicKey = hubSignPublicKey
        self.hubKxPublicKey = hubKxPublicKey
        self.syncIntervalSeconds = syncIntervalSeconds
        self.maxChangeSetBytes = maxChangeSetBytes
    }
}

/// The files of one agent (directory 0700): `agent.json`, `agent.key` and `replica.sqlite` (0600), `agent.lock`.
public struct AgentHome: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var configPath: String { directory + "/agent.json" }
    public var keyPath: String { directory + "/agent.key" }
    public var replicaPath: String { directory + "/replica.sqlite" }

    /// True when the directory holds an enrolled agent.
    public var isEnrolled: Bool { FileManager.default.fileExists(atPath: configPath) }

    public func config() throws -> AgentConfig {
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw AgentError(
                "no agent is enrolled in \(directory): run `ferry agent enroll HUB_URL TOKEN --dir \(directory)`")
        }
        do {
            return try JSONDecoder().decode(AgentConfig.self, from: data)
        } catch {
            throw AgentError("\(configPath) is not a valid agent config (\(error)): fix it or enroll again")
        }
    }

    public func save(_ config: AgentConfig) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(config).write(to: URL(fileURLWithPath: configPath), options: .atomic)
    }

    public func identity() throws -> Identity { try Identity.load(path: keyPath) }

    /// Opens the replica.
    public func store(wall: any WallClock = SystemClock()) throws -> AgentStore {
        let c = try config()
        return try AgentStore(path: replicaPath, origin: OriginID(c.agentID), wall: wall)
    }

    /// Takes the directory's lock (`agent.lock`): one agent process per directory.
    /// - Throws: ``LockError`` naming the PID of the agent already running.
    public func lock() throws -> DirectoryLock {
        try DirectoryLock.acquire(directory: directory, name: "agent.lock", what: "a ferry agent")
    }

    /// Warnings for files other users can read (the directory should be 0700;
    /// the key and the replica with its -wal and -shm, 0600).
    public func privacyWarnings() -> [String] {
        FilePrivacy.warnings([directory, keyPath] + FilePrivacy.databaseFiles(replicaPath))
    }

    /// The hub's pinned keys.
    public func hubKeys() throws -> (sign: SigningPublicKey, kx: KXPublicKey) {
        let c = try config()
        guard let s = unhex(c.hubSignPublicKey), let k = unhex(c.hubKxPublicKey) else {
            throw AgentError("the hub keys in \(configPath) are not hex: enroll again")
        }
        return (try SigningPublicKey(bytes: s), try KXPublicKey(bytes: k))
    }
}

/// An agent-side problem, phrased for the person at the commune PC.
public struct AgentError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

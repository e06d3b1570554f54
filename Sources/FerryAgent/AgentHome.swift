import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// The agent's configuration file (`agent.json` in the agent directory).
public struct AgentConfig: Codable, Sendable, Equatable {
    /// The hub's address: the first one tried (and the only one older agents read).
    public var hubURL: String
    /// Every address of the same hub, in order of preference (`"hubs"` in
    /// agent.json; absent = only ``hubURL``): processes of one hub in front of
    /// one database, or its standby. The agent fails over down the list and
    /// returns to the first when it answers again.
    public var hubs: [String]?
    public var agentID: String
    public var commune: String
    public var hubSignPublicKey: String
    public var hubKxPublicKey: String
    /// Seconds between syncs when all is well.
    public var syncIntervalSeconds: Double
    /// Largest change set to send, in bytes (the adaptive bound starts lower).
    public var maxChangeSetBytes: Int
    /// Timeouts, transfer sizes and retry waits; absent = the defaults (``LinkSettings``).
    public var link: LinkSettings?
    /// The local data-entry page of `ferry agent run`; absent = on, port 8441.
    public var entryPage: EntryPageSettings?

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

    /// Most hub addresses an agent keeps (a longer list is cut: each one tried costs a timeout).
    public static let maxHubURLs = 8

    /// The hub addresses in order: ``hubURL`` first, then ``hubs``, each once
    /// (without a trailing slash), at most ``maxHubURLs``.
    public var hubURLs: [String] {
        var seen: Set<String> = []
        var out: [String] = []
        for u in [hubURL] + (hubs ?? []) {
            let n = u.hasSuffix("/") ? String(u.dropLast()) : u
            guard !n.isEmpty, out.count < Self.maxHubURLs, seen.insert(n).inserted else { continue }
            out.append(n)
        }
        return out
    }
}

/// How the agent treats its link (`"link"` in agent.json; every key optional).
///
/// The defaults are sized for the link profiles of WORKLOAD.md and what TCP
/// was measured to do on them (PLATFORM.md, "Networks for link tests"):
/// during an outage `connect()` just hangs, so connecting gives up after 12 s;
/// a request that has gone quiet for 30 s (no byte sent or received) is
/// abandoned and retried at once on a fresh connection, which retransmits
/// after 1 s instead of waiting out TCP's backed-off timer; transfers target
/// 10 s of the measured throughput and stay under 96 KiB.
public struct LinkSettings: Codable, Sendable, Equatable {
    /// Seconds to establish a TCP connection (default 12).
    public var connectTimeoutSeconds: Double?
    /// Seconds without a byte read (from the end of the request: the first
    /// byte of the answer, then between bytes) or written before the request is
    /// abandoned (default 30).
    public var idleTimeoutSeconds: Double?
    /// The slowest rate, in bytes per second, a transfer may average before its
    /// overall deadline ends it (default 1,000; the deadline is connect + idle +
    /// bytes / rate).
    public var minRateBytesPerSecond: Double?
    /// Seconds of measured throughput a change set or page targets (default 10).
    public var transferTargetSeconds: Double?
    /// Largest change set or page, in sealed bytes (default 96 KiB).
    public var maxTransferBytes: Int?
    /// Smallest change set or page budget, in sealed bytes (default 8 KiB).
    public var minTransferBytes: Int?
    /// Most writes in one change set (default 16,384), which bounds memory.
    public var maxWritesPerChangeSet: Int?
    /// Seconds to wait after a round that failed but moved data (default 1).
    public var retryAfterProgressSeconds: Double?
    /// First backoff when nothing moves, doubling per round (default 2).
    public var backoffMinSeconds: Double?
    /// Longest backoff when nothing moves (default 60).
    public var backoffMaxSeconds: Double?
    /// Seconds between checks, while on another hub address, that the first
    /// one answers again (default 60).
    public var failbackSeconds: Double?

    public init() {}

    /// The resolved timeouts (seconds).
    public var connectTimeout: Double { Self.positive(connectTimeoutSeconds, 12) }
    public var idleTimeout: Double { Self.positive(idleTimeoutSeconds, 30) }
    public var minRate: Double { Self.positive(minRateBytesPerSecond, 1000) }
    public var failback: Double { Self.positive(failbackSeconds, 60) }

    static func positive(_ v: Double?, _ d: Double) -> Double {
        guard let v, v.isFinite, v > 0 else { return d }
        return min(v, 86_400)
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
    /// - Parameter role: written into the lock file as `ROLE STARTED_MS`
    ///   (`run` for the service loop, `sync` for one round), so `ferry status`
    ///   can tell whether the service runs and since when.
    public func lock(role: String? = nil) throws -> DirectoryLock {
        try DirectoryLock.acquire(
            directory: directory, name: "agent.lock", what: "a ferry agent",
            note: role.map { "\($0) \(UInt64(max(0, Date().timeIntervalSince1970 * 1000)))" })
    }

    /// Which agent process holds the directory's lock now, if any.
    public func lockHolder() -> AgentProcess {
        switch DirectoryLock.probe(directory: directory, name: "agent.lock") {
        case .free: return .none
        case .unknown: return .unknown
        case .held(let pid, let note):
            let parts = (note ?? "").split(separator: " ").map(String.init)
            let since = parts.count > 1 ? UInt64(parts[1]) : nil
            return parts.first == "run" ? .service(pid: pid, sinceMs: since) : .other(pid: pid, sinceMs: since)
        }
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

/// The process holding an agent directory's lock (`agent.lock`).
public enum AgentProcess: Sendable, Equatable {
    /// Nobody: no agent runs on the directory.
    case none
    /// `ferry agent run` (the service loop), with its PID and start time.
    case service(pid: Int32?, sinceMs: UInt64?)
    /// Another holder: `ferry agent sync`, `enroll`, or an agent too old to say.
    case other(pid: Int32?, sinceMs: UInt64?)
    /// This process cannot tell (no permission to read the lock, or no `flock`).
    case unknown
}

/// An agent-side problem, phrased for the person at the commune PC.
public struct AgentError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public let kind: Kind

    /// What sort of problem: decides whether the agent can clear it by itself
    /// (it retries) or a person must act, and what `ferry status` advises.
    public struct Kind: Sendable, Equatable, Hashable, CustomStringConvertible {
        private enum Code: String {
            case network, hubUnavailable = "hub_unavailable", notFerry = "not_ferry", refused, revoked, clock
            case verification, sequence, local, other, cloned = "cloned_replica", update = "update_needed"
        }
        private let code: Code
        private init(_ c: Code) { code = c }

        /// The hub could not be reached, or the request was cut or timed out.
        public static let network = Kind(.network)
        /// The hub answered 5xx or 429: it is up but busy or failing.
        public static let hubUnavailable = Kind(.hubUnavailable)
        /// Something that is not a Ferry hub answered (a captive portal, a proxy page).
        public static let notFerry = Kind(.notFerry)
        /// The hub refused a change set or download for a reason the agent cannot fix.
        public static let refused = Kind(.refused)
        /// The hub operator revoked this agent.
        public static let revoked = Kind(.revoked)
        /// This PC's clock is too far off.
        public static let clock = Kind(.clock)
        /// A hub answer failed verification against the pinned keys.
        public static let verification = Kind(.verification)
        /// The hub's and the agent's sequence numbers disagree (a restored backup?).
        public static let sequence = Kind(.sequence)
        /// A problem on this PC (disk, files).
        public static let local = Kind(.local)
        public static let other = Kind(.other)
        /// The hub refused this replica as a copy of another PC's (SPEC §7.2).
        public static let cloned = Kind(.cloned)
        /// The hub needs a newer agent software (SPEC §9.1, `agent_too_old`).
        public static let update = Kind(.update)

        /// The stable name stored in the replica's meta table.
        public var description: String { code.rawValue }

        /// Parses a stored name.
        public init?(name: String) {
            guard let c = Code(rawValue: name) else { return nil }
            code = c
        }

        /// True when a person must act; the agent keeps retrying slowly anyway.
        public var needsPerson: Bool {
            switch code {
            case .network, .hubUnavailable, .notFerry: false
            default: true
            }
        }
    }

    public init(_ d: String, kind: Kind = .other) {
        description = d
        self.kind = kind
    }
}

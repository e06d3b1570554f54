import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import GRDB
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// What a finished `ferry` command did.
struct CommandResult {
    var status: Int32
    var out: String
    var err: String
    var text: String { out + err }
}

/// One test's world: a temporary directory, the `ferry` processes started in
/// it, and their logs. `close()` kills every process still running (SIGKILL)
/// and removes the directory; call it from a `defer`.
final class Sandbox {
    let root: String
    let ferry: String
    private var children: [Process] = []
    private var handles: [FileHandle] = []
    private var counter = 0

    init(_ name: String) throws {
        ferry = try FerryBinary.path()
        let base = NSTemporaryDirectory() + "ferry-e2e-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: base + "/logs", withIntermediateDirectories: true)
        root = base
    }

    func path(_ p: String) -> String { root + "/" + p }

    func close() {
        for p in children where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
        }
        for p in children { waitBounded(p, seconds: 10) }
        for h in handles { try? h.close() }
        try? FileManager.default.removeItem(atPath: root)
    }

    private func launch(_ args: [String], log: String, executable: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable ?? ferry)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        var env = ProcessInfo.processInfo.environment
        env["FERRY_LOG_LEVEL"] = env["FERRY_LOG_LEVEL"] ?? "info"
        p.environment = env
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let fh = FileHandle(forWritingAtPath: log) else { throw HarnessError("cannot open \(log)") }
        handles.append(fh)
        p.standardOutput = fh
        p.standardError = fh
        p.standardInput = FileHandle.nullDevice
        try p.run()
        children.append(p)
        return p
    }

    /// Runs `ferry args` to completion within `timeout` seconds (killed after).
    @discardableResult
    func run(_ args: [String], timeout: Double = 60) async throws -> CommandResult {
        counter += 1
        let outPath = path("logs/cmd\(counter).out")
        let errPath = path("logs/cmd\(counter).err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
            throw HarnessError("cannot create output files in \(root)")
        }
        handles += [out, err]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ferry)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        children.append(p)
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            waitBounded(p, seconds: 10)
            throw HarnessError("`ferry \(args.joined(separator: " "))` did not finish in \(timeout) s")
        }
        p.waitUntilExit()
        let o = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return CommandResult(status: p.terminationStatus, out: o, err: e)
    }

    /// Runs a command that must succeed and returns its standard output.
    @discardableResult
    func ok(_ args: [String], timeout: Double = 60) async throws -> String {
        let r = try await run(args, timeout: timeout)
        guard r.status == 0 else {
            throw HarnessError("`ferry \(args.joined(separator: " "))` failed (exit \(r.status)): \(r.text)")
        }
        return r.out
    }

    /// Starts a long-running `ferry` command (or `executable`, e.g. `ip netns exec`
    /// for the link lab); its output goes to logs/NAME.log.
    func start(_ args: [String], name: String, executable: String? = nil) throws -> Process {
        try launch(args, log: path("logs/\(name).log"), executable: executable)
    }

    func log(_ name: String) -> String {
        (try? String(contentsOfFile: path("logs/\(name).log"), encoding: .utf8)) ?? ""
    }

    /// SIGKILL, like a power cut: no shutdown code runs.
    func kill9(_ p: Process) {
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        waitBounded(p, seconds: 10)
    }

    /// SIGTERM, then SIGKILL after `seconds`.
    func stop(_ p: Process, seconds: Double = 10) {
        if p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        kill9(p)
    }

    private func waitBounded(_ p: Process, seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if !p.isRunning { p.waitUntilExit() }
    }

    // MARK: hub and agents

    /// A hub directory with its running `ferry hub serve`.
    struct Hub {
        var dir: String
        var url: String
        var process: Process
        var home: String { dir }
    }

    /// `ferry hub init` in `name`.
    func initHub(_ name: String = "hub") async throws -> String {
        try await ok(["hub", "init", "--dir", path(name)])
        return path(name)
    }

    /// Starts `ferry hub serve` on `port` (0 = any) and waits for it to write its URL.
    func serveHub(dir: String, port: Int = 0, name: String = "hub") async throws -> Hub {
        let urlFile = dir + "/hub.url"
        try? FileManager.default.removeItem(atPath: urlFile)
        let p = try start(["hub", "serve", "--dir", dir, "--port", String(port)], name: name)
        var url: String?
        let up = try await waitUntil(timeout: 30) {
            guard p.isRunning else { return true }
            url = (try? String(contentsOfFile: urlFile, encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines)
            return url?.isEmpty == false
        }
        guard up, p.isRunning, let url else {
            throw HarnessError("the hub did not start within 30 s: \(log(name))")
        }
        return Hub(dir: dir, url: url, process: p)
    }

    /// Issues a token for `commune`, enrolls an agent in `name` and syncs once
    /// (so it has the forms). Returns the agent directory.
    func enrollAgent(_ name: String, hub: Hub, commune: String) async throws -> String {
        let token = try await ok(["hub", "token", "--commune", commune, "--hub-dir", hub.dir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try await ok(["agent", "enroll", hub.url, token, "--dir", path(name)])
        try await ok(["agent", "sync", "--dir", path(name)])
        return path(name)
    }
}

/// Polls `body` every `interval` seconds until it is true or `timeout` passes.
func waitUntil(timeout: Double, interval: Double = 0.2, _ body: () throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try body() { return true }
        try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
    }
    return try body()
}

/// A new TCP socket (IPv4).
func tcpSocket() throws -> Int32 {
    #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw HarnessError("socket() failed") }
    return fd
}

/// 127.0.0.1:`port` (0 = any free port when binding).
func loopbackAddress(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(clamping: port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

/// A TCP port that was free a moment ago: bind to port 0, read it, release it.
func freePort() throws -> Int {
    let fd = try tcpSocket()
    defer { close(fd) }
    var addr = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw HarnessError("bind() failed") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    guard named == 0 else { throw HarnessError("getsockname() failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// The entry page's address from `page.url` once the agent in `dir` wrote it ("" if it did not).
func entryPageURL(_ dir: String, _ agent: Process) async throws -> String {
    var base = ""
    _ = try await waitUntil(timeout: 30) {
        base =
            (try? String(contentsOfFile: dir + "/page.url", encoding: .utf8))?.trimmingCharacters(
                in: .whitespacesAndNewlines) ?? ""
        return !base.isEmpty || !agent.isRunning
    }
    return base
}

/// Publishes land-record v2 without the choice "submitted" and moves every
/// record to it, at the hub in `hubDir`: an agent still on v1 that writes
/// "submitted" then has that value quarantined.
func publishFormDroppingSubmitted(_ sb: Sandbox, hubDir: String) async throws {
    var v2 = try Seed.form
    v2.version = 2
    if let i = v2.fields.firstIndex(where: { $0.name == "status" }) {
        v2.fields[i].choices = ["draft", "verified", "needs_fix"]
    }
    let v2Path = sb.path("v2.json")
    try JSONEncoder().encode(v2).write(to: URL(fileURLWithPath: v2Path))
    try await sb.ok(["forms", "publish", v2Path, "--hub-dir", hubDir])
    try await sb.ok(["forms", "migrate", "land-record", "--from", "1", "--to", "2", "--hub-dir", hubDir])
}

// MARK: reading replicas

/// Opens an agent's replica from its directory.
func agentStore(_ dir: String) throws -> (AgentStore, AgentConfig) {
    let home = AgentHome(directory: dir)
    return (try home.store(), try home.config())
}

func hubStore(_ hubDir: String) throws -> SQLiteHubStore { try SQLiteHubStore(path: hubDir + "/hub.sqlite") }

/// Every field of every record of the agent's commune, agent vs hub.
struct Comparison: CustomStringConvertible {
    var agentRecords: Int
    var hubRecords: Int
    var differing: [RecordID]

    var identical: Bool { differing.isEmpty && agentRecords == hubRecords }
    var description: String {
        "agent \(agentRecords) records, hub \(hubRecords) records, \(differing.count) differ (first: \(differing.prefix(3).map(\.description)))"
    }
}

func compare(agentDir: String, hub: SQLiteHubStore) throws -> Comparison {
    let (store, config) = try agentStore(agentDir)
    let mine = try store.fullState()
    let theirs = try hub.winners(commune: config.commune)
    let differing = Set(mine.keys).union(theirs.keys).filter { mine[$0] ?? [:] != theirs[$0] ?? [:] }.sorted()
    return Comparison(agentRecords: mine.count, hubRecords: theirs.count, differing: differing)
}

/// True when the agent has nothing pending or in flight and its replica equals the hub's.
func converged(agentDir: String, hub: SQLiteHubStore) throws -> Bool {
    let (store, _) = try agentStore(agentDir)
    let c = try store.counts()
    guard c.pendingWrites == 0 && c.inFlightWrites == 0 else { return false }
    return try compare(agentDir: agentDir, hub: hub).identical
}

/// One change set as the hub recorded it.
struct HubChangeSet: Equatable {
    var seqFrom: UInt64
    var seqTo: UInt64
    var writes: Int
}

func hubChangeSets(_ hub: SQLiteHubStore, origin: String) throws -> [HubChangeSet] {
    try hub.pool.read { db in
        try Row.fetchAll(
            db, sql: "SELECT seq_from, seq_to, writes FROM changesets WHERE origin = ? ORDER BY seq_from",
            arguments: [origin]
        )
        .map {
            HubChangeSet(
                seqFrom: UInt64($0["seq_from"] as Int64), seqTo: UInt64($0["seq_to"] as Int64), writes: $0["writes"])
        }
    }
}

/// Asserts that no acknowledged write was lost or applied twice: the replicas
/// are identical field for field, the hub's change sets for the agent tile
/// 1...last_seq exactly once, and the hub's applied sequence is the agent's last.
func expectNoLossNoDuplicate(agentDir: String, hub: SQLiteHubStore, sourceLocation: SourceLocation = #_sourceLocation)
    throws
{
    let (store, config) = try agentStore(agentDir)
    let counts = try store.counts()
    #expect(
        counts.pendingWrites == 0 && counts.inFlightWrites == 0, "agent still has writes queued: \(counts)",
        sourceLocation: sourceLocation)
    let cmp = try compare(agentDir: agentDir, hub: hub)
    #expect(cmp.identical, "replicas differ: \(cmp)", sourceLocation: sourceLocation)
    let live = try hub.pool.read { db in
        try Int.fetchOne(
            db, sql: "SELECT count(*) FROM records WHERE commune = ? AND deleted = 0", arguments: [config.commune]) ?? 0
    }
    #expect(
        live == counts.records - counts.deleted,
        "hub has \(live) live records, agent \(counts.records - counts.deleted)", sourceLocation: sourceLocation)

    let sets = try hubChangeSets(hub, origin: config.agentID)
    var next: UInt64 = 1
    var total = 0
    for cs in sets {
        #expect(cs.seqFrom == next, "change sets do not tile the sequence: \(sets)", sourceLocation: sourceLocation)
        #expect(
            UInt64(cs.writes) == cs.seqTo - cs.seqFrom + 1, "change set \(cs) holds \(cs.writes) writes",
            sourceLocation: sourceLocation)
        next = cs.seqTo + 1
        total += cs.writes
    }
    #expect(
        next - 1 == counts.lastSeq, "hub change sets end at \(next - 1), agent last_seq is \(counts.lastSeq)",
        sourceLocation: sourceLocation)
    #expect(
        UInt64(total) == counts.lastSeq, "hub holds \(total) writes of the agent, agent numbered \(counts.lastSeq)",
        sourceLocation: sourceLocation)
    let info = try hub.agent(id: config.agentID)
    #expect(
        info?.appliedSeq == counts.lastSeq,
        "hub applied_seq \(String(describing: info?.appliedSeq)) != agent last_seq \(counts.lastSeq)",
        sourceLocation: sourceLocation)
}

/// A canonical text of a record's values, for multiset comparisons with the source rows.
func canonical(_ values: [String: Value]) -> String {
    values.filter { $0.key != deletedField }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
        separator: "|")
}

/// Writes `count` sample records as CSV in the sandbox; returns the path and the rows it holds.
func sampleCSV(_ sandbox: Sandbox, name: String, seed: UInt64, count: Int) throws -> (
    path: String, rows: [[String: Value]]
) {
    var a = SampleLandRecords(seed: seed)
    var b = SampleLandRecords(seed: seed)
    let path = sandbox.path(name)
    try a.csv(count: count).write(toFile: path, atomically: true, encoding: .utf8)
    return (path, (0..<count).map { _ in b.next() })
}

/// Calls the hub over HTTP with a client that is always shut down.
func withHubClient<T>(_ url: String, _ body: (HubClient) async throws -> T) async throws -> T {
    let client = HubClient(baseURL: url)
    do {
        let r = try await body(client)
        await client.shutdown()
        return r
    } catch {
        await client.shutdown()
        throw error
    }
}

/// Decodes a `ferry ... --json` output (snake_case keys).
func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    let d = JSONDecoder()
    d.keyDecodingStrategy = .convertFromSnakeCase
    return try d.decode(T.self, from: Data(text.utf8))
}

struct StatusJSON: Decodable {
    var inSync: Bool
    var pendingWrites: Int
    var inFlightWrites: Int
    var records: Int
    var problem: String?
    var summary: String
}

struct SyncJSON: Decodable {
    var uploadedChangeSets: Int
    var uploadedWrites: Int
    var downloadedWrites: Int
    var duplicates: Int
    var pendingWrites: Int
    var complete: Bool
}

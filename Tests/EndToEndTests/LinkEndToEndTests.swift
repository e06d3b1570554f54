import FerryAgent
import FerryCore
import FerryStore
import Foundation
import GRDB
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Real `ferry` processes on 127.0.0.1: `ferry status` tells the truth in
/// every state, `set-hub` moves an agent, and the sync loop resumes within
/// seconds after cuts.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct LinkEndToEndTests {
    static let commune = "24781"

    /// Writes link settings into an agent's agent.json.
    static func setLink(_ dir: String, _ settings: [String: Any]) throws {
        let path = dir + "/agent.json"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard var json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HarnessError("agent.json is not an object")
        }
        json["link"] = settings
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(
            to: URL(fileURLWithPath: path))
    }

    static func enrollOnly(_ sb: Sandbox, _ name: String, hub: Sandbox.Hub) async throws -> String {
        let token = try await sb.ok(["hub", "token", "--commune", commune, "--hub-dir", hub.dir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try await sb.ok(["agent", "enroll", hub.url, token, "--dir", sb.path(name)])
        return sb.path(name)
    }

    static func status(_ sb: Sandbox, _ dir: String) async throws -> (Int32, FullStatusJSON) {
        let r = try await sb.run(["status", "--dir", dir, "--json"])
        return (r.status, try decodeJSON(FullStatusJSON.self, r.out))
    }

    @Test func aHalfDownloadedReplicaIsNotInSyncAndSaysHowFarBehindTheHub() async throws {
        let sb = try Sandbox("behind")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "a.csv", seed: 5, count: 400)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])

        // A reinstalled PC of the same commune, on small pages: two requests
        // get part of the commune's records.
        let b = try await Self.enrollOnly(sb, "b", hub: hub)
        try Self.setLink(b, ["maxTransferBytes": 4096, "minTransferBytes": 1024])
        try await sb.ok(["agent", "sync", "--dir", b, "--max-requests", "2"])
        let (code, half) = try await Self.status(sb, b)
        #expect(code == 1, "still downloading: exit 1, got \(code): \(half.summary)")
        #expect(!half.inSync)
        #expect(!half.localCopyComplete)
        #expect(half.pendingWrites == 0, "nothing waits at b: only the download is incomplete")
        #expect(half.records > 0, "b holds \(half.records) of 400 records")
        #expect(half.summary.contains("still downloading"), "\(half.summary)")
        // "How far behind" is the hub's own count of what b still lacks.
        let hubStore = try hubStore(hub.dir)
        let (bStore, bConfig) = try agentStore(b)
        let cursor = try bStore.counts().hubCursor
        let lacking = try await hubStore.pool.read { db in
            try Int.fetchOne(
                db, sql: "SELECT count(*) FROM leaves WHERE commune = ? AND seq > ? AND origin != ?",
                arguments: [Self.commune, Int64(cursor), bConfig.agentID]) ?? 0
        }
        #expect(lacking > 0)
        #expect(!(try compare(agentDir: b, hub: hubStore).identical), "b must lack some fields")
        #expect(half.changesBehind == UInt64(lacking), "status says \(String(describing: half.changesBehind))")
        #expect(half.summary.contains("\(lacking) change(s) behind the hub"), "\(half.summary)")
        #expect(half.lastDownloadMs != nil && half.hubHead != nil)

        try await sb.ok(["agent", "sync", "--dir", b])
        let (doneCode, done) = try await Self.status(sb, b)
        #expect(doneCode == 0, "in sync: exit 0, got \(doneCode): \(done.summary)")
        #expect(done.inSync && done.localCopyComplete && done.changesBehind == 0)
        #expect(try compare(agentDir: b, hub: hubStore).identical)
    }

    @Test func hubLastReachedMovesOnAnUploadAcknowledgementAlone() async throws {
        let sb = try Sandbox("ackcontact")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let (store, _) = try agentStore(a)
        // Pretend the hub was last reached three hours ago.
        let old = UInt64(Date().timeIntervalSince1970 * 1000) - 3 * 3_600_000
        try store.setMeta(["last_contact_ms": String(old), "last_download_ms": String(old)])
        try await sb.ok([
            "records", "add", "owner_name=Phạm Thị Hồng", "owner_id=068000000011", "status=draft", "--dir", a,
        ])
        let started = UInt64(Date().timeIntervalSince1970 * 1000)
        // One request: the upload, and no download.
        try await sb.ok(["agent", "sync", "--dir", a, "--max-requests", "1"])
        let (_, s) = try await Self.status(sb, a)
        #expect(s.lastDownloadMs == old, "no download ran")
        let ack = try #require(s.lastUploadAckMs)
        #expect(ack >= started)
        #expect((s.lastContactMs ?? 0) >= started, "hub last reached: \(String(describing: s.lastContactMs))")
        #expect(s.summary.contains("Hub last reached:") && !s.summary.contains("Hub last reached: 3 h ago"))
        #expect(s.summary.contains("Last download applied: 3 h ago"), "\(s.summary)")
    }

    @Test func aHubThatAcceptsButNeverAnswersShowsTheRequestAndGivesUpAtTheIdleTimeout() async throws {
        let sb = try Sandbox("hang")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let hole = try BlackHole()
        defer { hole.close() }
        try await sb.ok(["agent", "set-hub", "http://127.0.0.1:\(hole.port)", "--no-check", "--dir", a])
        try Self.setLink(a, ["idleTimeoutSeconds": 3, "connectTimeoutSeconds": 3])
        try await sb.ok([
            "records", "add", "owner_name=Đỗ Văn Nam", "owner_id=068000000012", "status=draft", "--dir", a,
        ])
        let began = Date()
        let p = try sb.start(["agent", "sync", "--dir", a], name: "hang")
        var seen: FullStatusJSON?
        _ = try await waitUntil(timeout: 10) {
            let s = try AgentHome(directory: a).store().meta("request_what")
            return s != nil
        }
        seen = try await Self.status(sb, a).1
        #expect(seen?.requestInProgress?.contains("upload") == true, "status during the hang: \(seen?.summary ?? "")")
        #expect(seen?.summary.contains("Request in progress: upload") == true)
        let ended = try await waitUntil(timeout: 20) { !p.isRunning }
        let took = Date().timeIntervalSince(began)
        #expect(ended, "the request hung past the idle timeout")
        #expect(took < 15, "gave up after \(took) s with a 3 s idle timeout")
        let (code, after) = try await Self.status(sb, a)
        #expect(code == 1, "an unanswered hub is not the clerk's problem: exit 1, got \(code)")
        #expect(after.requestInProgress == nil)
        #expect(after.lastError?.contains("stopped answering") == true, "\(after.lastError ?? "no error")")
        #expect(after.pendingWrites + after.inFlightWrites > 0)
    }

    @Test func setHubMovesAnAgentToTheHubsNewPortAndRefusesABadOrForeignAddress() async throws {
        let sb = try Sandbox("sethub")
        defer { sb.close() }
        let dir = try await sb.initHub()
        var hub = try await sb.serveHub(dir: dir)
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let before = try AgentHome(directory: a).config()

        // A missing scheme, a wrong scheme, no host: refused with what to type.
        let noScheme = try await sb.run(["agent", "set-hub", "hub.example:8440", "--dir", a])
        #expect(noScheme.status != 0)
        #expect(noScheme.text.contains("http://hub.example:8440"), "\(noScheme.text)")
        let ftp = try await sb.run(["agent", "set-hub", "ftp://hub.example", "--dir", a])
        #expect(ftp.status != 0 && ftp.text.contains("http:// or https://"), "\(ftp.text)")
        let noHost = try await sb.run(["agent", "set-hub", "http://", "--dir", a])
        #expect(noHost.status != 0 && noHost.text.contains("host"), "\(noHost.text)")
        // Another hub (other keys) is refused: its answers do not verify.
        let other = try await sb.serveHub(dir: try await sb.initHub("other"), name: "other")
        let foreign = try await sb.run(["agent", "set-hub", other.url, "--dir", a])
        #expect(foreign.status != 0, "\(foreign.text)")
        #expect(foreign.text.contains("same hub") || foreign.text.contains("not the hub"), "\(foreign.text)")
        #expect(try AgentHome(directory: a).config() == before, "a refused address changes nothing")

        // The province moves its hub to another port while the agent runs.
        let agent = try sb.start(["agent", "run", "--dir", a, "--interval", "1"], name: "agent")
        sb.stop(hub.process)
        hub = try await sb.serveHub(dir: dir, name: "hub-moved")
        #expect(hub.url != before.hubURL)
        try await sb.ok([
            "records", "add", "owner_name=Vũ Thị Lan", "owner_id=068000000013", "status=draft", "--dir", a,
        ])
        let out = try await sb.ok(["agent", "set-hub", hub.url, "--dir", a])
        #expect(out.contains("same hub"), "\(out)")
        let after = try AgentHome(directory: a).config()
        #expect(after.hubURL == hub.url)
        #expect(after.hubSignPublicKey == before.hubSignPublicKey && after.hubKxPublicKey == before.hubKxPublicKey)
        // The running agent follows the new address without a restart.
        let followed = try await waitUntil(timeout: 30) { try converged(agentDir: a, hub: try hubStore(dir)) }
        #expect(followed, "the running agent did not follow set-hub: \(sb.log("agent").suffix(1500))")
        sb.stop(agent)
        try await sb.ok(["agent", "sync", "--dir", a])
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(dir))
        let (code, s) = try await Self.status(sb, a)
        #expect(code == 0 && s.inSync, "\(s.summary)")
    }

    /// The hub is killed three times during a long upload and comes back two
    /// seconds later each time: the running agent resumes within seconds every
    /// time (its backoff resets on progress), and every write arrives once.
    @Test func theRunningAgentResumesWithinSecondsAfterEachHubRestart() async throws {
        let sb = try Sandbox("restart")
        defer { sb.close() }
        let dir = try await sb.initHub()
        let port = try freePort()
        var hub = try await sb.serveHub(dir: dir, port: port)
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "a.csv", seed: 9, count: 3000)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        // Small change sets, so the upload takes many requests.
        try Self.setLink(a, ["maxTransferBytes": 4096, "minTransferBytes": 1024])
        let (_, config) = try agentStore(a)
        let agent = try sb.start(["agent", "run", "--dir", a, "--interval", "60"], name: "agent")
        func acked() throws -> Int { try hubChangeSets(try hubStore(dir), origin: config.agentID).count }
        var resumes: [Double] = []
        for cut in 1...3 {
            let target = try acked() + 2
            let moving = try await waitUntil(timeout: 60) { try acked() >= target }
            try #require(moving, "the upload did not move before cut \(cut): \(sb.log("agent"))")
            sb.kill9(hub.process)
            try await Task.sleep(nanoseconds: 2_000_000_000)
            let count = try acked()
            hub = try await sb.serveHub(dir: dir, port: port, name: "hub\(cut)")
            let back = Date()
            let resumed = try await waitUntil(timeout: 40, interval: 0.1) { try acked() > count }
            #expect(resumed, "no change set acknowledged within 40 s of restart \(cut)")
            resumes.append(Date().timeIntervalSince(back))
        }
        print("resume after restart (s): \(resumes.map { String(format: "%.1f", $0) })")
        for (i, r) in resumes.enumerated() { #expect(r < 8, "restart \(i + 1): resumed after \(r) s") }
        let done = try await waitUntil(timeout: 90) { try converged(agentDir: a, hub: try hubStore(dir)) }
        #expect(done, "the agent did not finish: \(sb.log("agent").suffix(2000))")
        sb.stop(agent)
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(dir))
    }
}

/// `ferry status --json` with every field this suite checks.
struct FullStatusJSON: Decodable {
    var inSync: Bool
    var state: String
    var exitCode: Int32
    var pendingWrites: Int
    var inFlightWrites: Int
    var records: Int
    var localCopyComplete: Bool
    var changesBehind: UInt64?
    var hubHead: UInt64?
    var lastContactMs: UInt64?
    var lastUploadAckMs: UInt64?
    var lastDownloadMs: UInt64?
    var requestInProgress: String?
    var lastError: String?
    var nextAttemptMs: UInt64?
    var summary: String
}

/// A TCP port that accepts connections (the kernel completes the handshake)
/// and never answers: a hub caught by an outage mid-request.
final class BlackHole {
    let fd: Int32
    let port: Int

    init() throws {
        fd = try tcpSocket()
        var addr = loopbackAddress(port: 0)
        let fd = self.fd
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw HarnessError("bind/listen failed") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw HarnessError("getsockname() failed") }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    func close() {
        #if canImport(Glibc)
            _ = Glibc.close(fd)
        #endif
    }
}

import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// Download pages resumable by HTTP `Range` (SPEC §9.12) with real `ferry`
/// processes on 127.0.0.1: a page cut in transit is resumed from the bytes
/// the agent holds, and hostile resume headers get typed refusals.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ResumableDownloadEndToEndTests {
    /// A pull signed with an enrolled agent's key, with extra headers.
    static func pull(_ agentDir: String, url: String, since: UInt64, extra: [String: String] = [:]) async throws
        -> HubAnswer
    {
        let home = AgentHome(directory: agentDir)
        let agent = try home.config().agentID
        let identity = try home.identity()
        let time = UInt64(Date().timeIntervalSince1970 * 1000)
        let sig = identity.signing.sign(PullAuth.message(agent: agent, since: since, maxBytes: 65536, timeMs: time))
        var headers = ["X-Ferry-Agent": agent, "X-Ferry-Time": String(time), "X-Ferry-Signature": hex(sig)]
        headers.merge(extra) { _, b in b }
        let h = headers
        return try await withHubClient(url) {
            try await $0.send(.GET, "/v1/changes?since=\(since)&max_bytes=65536", headers: h)
        }
    }

    static func metric(_ text: String, _ name: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
    }

    @Test func aPageCutInTransitIsResumedByRangeFromTheBytesHeld() async throws {
        let sb = try Sandbox("range")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: "24781")
        let b = try await sb.enrollAgent("b", hub: hub, commune: "24781")
        let csv = try sampleCSV(sb, name: "a.csv", seed: 12, count: 1200)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a], timeout: 120)
        guard let port = URL(string: hub.url)?.port else { throw HarnessError("no port in \(hub.url)") }
        // A relay that cuts its first connection after 20,000 bytes from the hub.
        let relayPort = try freePort()
        let relay = Process()
        relay.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        relay.arguments = [
            "python3", LinkLab.repo + "/scripts/delay-relay.py", "127.0.0.1", String(relayPort), "127.0.0.1",
            String(port), "0", "down:20000",
        ]
        relay.standardOutput = FileHandle.nullDevice
        relay.standardError = FileHandle.nullDevice
        try relay.run()
        defer { sb.kill9(relay) }
        try await Task.sleep(nanoseconds: 800_000_000)
        try await sb.ok(["agent", "set-hub", "http://127.0.0.1:\(relayPort)", "--no-check", "--dir", b])

        let first = try await sb.run(["agent", "sync", "--dir", b])
        #expect(first.status != 0, "the cut download must not look finished: \(first.text)")
        let (store, _) = try agentStore(b)
        let before = try store.counts()
        let partialPath = b + "/download.partial"
        let held = (try FileManager.default.attributesOfItem(atPath: partialPath)[.size] as? NSNumber)?.intValue ?? 0
        #expect(held > 10_000 && held <= 20_000, "the partial holds what arrived before the cut: \(held)")
        let noted = try #require(try store.meta("download_partial"), "the partial page is noted in the replica")
        #expect(noted.contains("\"since\":\(before.hubCursor)"), "\(noted)")

        let second = try sb.start(["agent", "sync", "--dir", b], name: "resume")
        let ended = try await waitUntil(timeout: 60) { !second.isRunning }
        try #require(ended && second.terminationStatus == 0, "\(sb.log("resume"))")
        let log = sb.log("resume")
        let offset = log.range(of: #"ferry\.offset=(\d+)/(\d+)"#, options: .regularExpression).map {
            String(log[$0]).dropFirst("ferry.offset=".count).split(separator: "/").compactMap { Int($0) }
        }
        let o = try #require(offset, "no resume in the log: \(log.suffix(2000))")
        #expect(o.count == 2 && o[0] == held && o[1] > held, "resumed at \(o), held \(held)")
        // The hub served the rest as a 206 from that offset, once.
        let metrics = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/metrics") }
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(Self.metric(text, "ferry_pull_ranges_total") == 1, "\(text.suffix(3000))")
        #expect(Self.metric(text, "ferry_pull_range_skipped_bytes_total") == Double(held))
        #expect(!FileManager.default.fileExists(atPath: partialPath), "the partial is dropped once applied")
        #expect(try store.meta("download_partial") == nil)
        // Field by field, the resumed replica is the hub's, and nothing doubled.
        let cmp = try compare(agentDir: b, hub: try hubStore(hub.dir))
        #expect(cmp.identical, "replicas differ: \(cmp)")
        #expect(try store.counts().records == (try agentStore(a).0.counts().records))
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(hub.dir))
    }

    @Test func hostileResumeHeadersGetTypedRefusalsAndRangesAreExact() async throws {
        let sb = try Sandbox("range-hostile")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: "24781")
        let csv = try sampleCSV(sb, name: "a.csv", seed: 13, count: 300)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])

        let whole = try await Self.pull(a, url: hub.url, since: 0)
        try #require(whole.status == 200, "\(whole.status)")
        let tag = try #require(whole.etag, "a page carries an ETag")
        let n = whole.body.count
        // A kept page is served byte-identical from any offset.
        for start in [0, 1, 100, n - 1] {
            let part = try await Self.pull(
                a, url: hub.url, since: 0, extra: ["Range": "bytes=\(start)-", "If-Range": tag])
            #expect(part.status == 206 && part.etag == tag, "\(start): \(part.status)")
            #expect(part.contentRange == "bytes \(start)-\(n - 1)/\(n)")
            #expect(part.body == Array(whole.body[start...]), "bytes from \(start)")
        }
        let closed = try await Self.pull(a, url: hub.url, since: 0, extra: ["Range": "bytes=5-9", "If-Range": tag])
        #expect(closed.status == 206 && closed.body == Array(whole.body[5...9]))
        let past = try await Self.pull(a, url: hub.url, since: 0, extra: ["Range": "bytes=\(n)-", "If-Range": tag])
        #expect(
            past.status == 416 && past.error?.code == "range_not_satisfiable" && past.contentRange == "bytes */\(n)")
        let huge = try await Self.pull(
            a, url: hub.url, since: 0, extra: ["Range": "bytes=9999999999999999999-", "If-Range": tag])
        #expect(huge.status == 416, "\(huge.status)")
        for bad in [
            ["Range": "bytes=0-1,5-9", "If-Range": tag], ["Range": "bytes=-100", "If-Range": tag],
            ["Range": "bytes=99999999999999999999-", "If-Range": tag], ["Range": "bytes=9-5", "If-Range": tag],
            ["Range": "bytes=-1-", "If-Range": tag], ["Range": "lines=0-", "If-Range": tag], ["Range": "bytes=100-"],
            ["Range": "bytes=100-", "If-Range": "W/" + tag], ["Range": "bytes=100-", "If-Range": "yesterday"],
        ] {
            let r = try await Self.pull(a, url: hub.url, since: 0, extra: bad)
            #expect(r.status == 400 && r.error?.code == "bad_range", "\(bad): \(r.status) \(r.error?.code ?? "-")")
        }
        // Another tag: the Range is ignored and a fresh page comes whole.
        let other = try await Self.pull(
            a, url: hub.url, since: 0, extra: ["Range": "bytes=100-", "If-Range": "\"0123\""])
        #expect(other.status == 200 && other.body.count > 100 && other.etag != nil)
        // The fresh page replaced the kept one: the old tag no longer resumes.
        let stale = try await Self.pull(a, url: hub.url, since: 0, extra: ["Range": "bytes=100-", "If-Range": tag])
        #expect(stale.status == 200, "\(stale.status)")
        // A pull past the page acknowledges it: it is dropped.
        let fresh = try #require(stale.etag)
        let cursor = try #require(stale.cursor)
        _ = try await Self.pull(a, url: hub.url, since: cursor)
        let gone = try await Self.pull(a, url: hub.url, since: 0, extra: ["Range": "bytes=100-", "If-Range": fresh])
        #expect(gone.status == 200, "an acknowledged page is not kept: \(gone.status)")
        let health = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/health") }
        #expect(health.status == 200, "the hub keeps serving")
    }
}

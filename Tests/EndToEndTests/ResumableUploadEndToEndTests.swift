import FerryAgent
import FerryStore
import Foundation
import Testing

/// Resumable uploads (SPEC §9.10) with real `ferry` processes on 127.0.0.1:
/// the link is cut in the middle of a change set; the next attempt sends only
/// the bytes the hub did not get, and every write arrives exactly once.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ResumableUploadEndToEndTests {
    @Test func aCutInMidUploadResumesFromTheHubsOffsetAndAppliesOnce() async throws {
        let sb = try Sandbox("resume")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: "24781")
        let csv = try sampleCSV(sb, name: "a.csv", seed: 11, count: 400)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        guard let port = URL(string: hub.url)?.port else { throw HarnessError("no port in \(hub.url)") }
        // A relay that cuts its first connection after 12,000 bytes from the agent.
        let relayPort = try freePort()
        let relay = Process()
        relay.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        relay.arguments = [
            "python3", LinkLab.repo + "/scripts/delay-relay.py", "127.0.0.1", String(relayPort), "127.0.0.1",
            String(port), "0", "12000",
        ]
        relay.standardOutput = FileHandle.nullDevice
        relay.standardError = FileHandle.nullDevice
        try relay.run()
        defer { sb.kill9(relay) }
        try await Task.sleep(nanoseconds: 800_000_000)
        try await sb.ok(["agent", "set-hub", "http://127.0.0.1:\(relayPort)", "--no-check", "--dir", a])

        let first = try await sb.run(["agent", "sync", "--dir", a])
        #expect(first.status != 0, "the cut upload must not look finished: \(first.text)")
        let (store, config) = try agentStore(a)
        let inflight = try #require(try store.inFlight(), "the cut change set stays frozen")
        #expect(inflight.envelope.count > 12_000, "the change set is larger than the cut: \(inflight.envelope.count)")
        let before = try hubChangeSets(try hubStore(hub.dir), origin: config.agentID)
        #expect(
            before.allSatisfy { $0.seqTo < inflight.seqFrom }, "nothing of the cut change set was applied: \(before)")

        let second = try sb.start(["agent", "sync", "--dir", a], name: "resume")
        let ended = try await waitUntil(timeout: 60) { !second.isRunning }
        try #require(ended && second.terminationStatus == 0, "\(sb.log("resume"))")
        let log = sb.log("resume")
        // The agent asked the hub and sent only the rest.
        let offset = log.range(of: #"ferry\.offset=(\d+)/(\d+)"#, options: .regularExpression).map {
            String(log[$0]).dropFirst("ferry.offset=".count).split(separator: "/").compactMap { Int($0) }
        }
        let o = try #require(offset, "no resume in the log: \(log.suffix(2000))")
        #expect(o.count == 2 && o[0] > 8_000 && o[0] <= 12_000 && o[1] == inflight.envelope.count, "resumed at \(o)")
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(hub.dir))
    }
}

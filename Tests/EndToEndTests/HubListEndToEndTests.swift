import FerryAgent
import FerryTesting
import Foundation
import Testing

/// An agent that knows several addresses of its hub (SPEC §9.10), on the
/// SQLite hub: a first address where nothing listens is passed over within
/// the same sync, `ferry status` says which address is in use, and the first
/// is used again as soon as it answers. (Failover and back between two live
/// hub processes on one database is in MultiHubEndToEndTests.)
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HubListEndToEndTests {
    @Test func aDeadFirstAddressIsPassedOverAndUsedAgainWhenItAnswers() async throws {
        let sb = try Sandbox("hublist")
        defer { sb.close() }
        let dir = try await sb.initHub()
        var hub = try await sb.serveHub(dir: dir)
        let a = try await sb.enrollAgent("a", hub: hub, commune: "24781")
        let deadPort = try freePort()
        let dead = "http://127.0.0.1:\(deadPort)"

        // The dead address cannot be checked; --no-check saves it first in the list.
        let refused = try await sb.run(["agent", "set-hub", dead, hub.url, "--dir", a])
        #expect(refused.status != 0, "\(refused.text)")
        try await sb.ok(["agent", "set-hub", dead, hub.url, "--no-check", "--dir", a])
        #expect(try AgentHome(directory: a).config().hubURLs == [dead, hub.url])
        // --add keeps the list and each address once; more than 8 is refused.
        try await sb.ok(["agent", "set-hub", "--add", hub.url, "--dir", a])
        #expect(try AgentHome(directory: a).config().hubURLs == [dead, hub.url])
        let many = (1...8).map { "http://127.0.0.1:\(60000 + $0)" }
        let tooMany = try await sb.run(["agent", "set-hub", "--add", "--no-check", "--dir", a] + many)
        #expect(tooMany.status != 0 && tooMany.text.contains("at most 8"), "\(tooMany.text)")

        // One sync: refused at the first address, done at the second.
        try await sb.ok([
            "records", "add", "owner_name=Vũ Thị Lan", "owner_id=068000000013", "status=draft", "--dir", a,
        ])
        try await sb.ok(["agent", "sync", "--dir", a], timeout: 60)
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(dir))
        #expect(try converged(agentDir: a, hub: try hubStore(dir)))
        let onSecond = try await sb.run(["status", "--dir", a])
        #expect(onSecond.status == 0, "\(onSecond.text)")
        #expect(onSecond.text.contains("using \(hub.url) because the first did not answer"), "\(onSecond.text)")

        // The hub comes back at the first address: the next sync uses it.
        sb.stop(hub.process)
        hub = try await sb.serveHub(dir: dir, port: deadPort, name: "hub-first")
        #expect(hub.url == dead)
        try await sb.ok([
            "records", "add", "owner_name=Trần Văn Minh", "owner_id=068000000014", "status=draft", "--dir", a,
        ])
        try await sb.ok(["agent", "sync", "--dir", a], timeout: 60)
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(dir))
        let onFirst = try await sb.run(["status", "--dir", a])
        #expect(onFirst.status == 0, "\(onFirst.text)")
        #expect(onFirst.text.contains("Hub addresses: \(dead), "), "\(onFirst.text)")
        #expect(!onFirst.text.contains("did not answer"), "\(onFirst.text)")
    }
}

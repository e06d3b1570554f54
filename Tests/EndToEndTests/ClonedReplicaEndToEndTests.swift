import FerryAgent
import FerryCore
import FerryStore
import Foundation
import Testing

/// A second PC started from a copy of an agent directory (SPEC §7.2): the hub
/// refuses the copy's change sets as `cloned_replica` instead of dropping them
/// as duplicates, both sides say so, and re-enrolling the copy keeps every write.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ClonedReplicaEndToEndTests {
    static let commune = "24781"

    struct AgentsJSON: Decodable {
        var id: String
        var clonedMs: UInt64?
        var clonedRefusals: Int?
    }

    @Test func clonedReplicaIsRefusedShownAndReEnrollingTheCopyKeepsEveryWrite() async throws {
        let sb = try Sandbox("clone")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let pc1 = try await sb.enrollAgent("pc1", hub: hub, commune: Self.commune)
        let hubStore = try hubStore(hub.dir)
        // record → owner_id as each PC wrote it.
        var written: [RecordID: String] = [:]
        func add(_ dir: String, _ name: String, _ ownerID: String) async throws -> RecordID {
            let out = try await sb.ok([
                "records", "add", "owner_name=\(name)", "owner_id=\(ownerID)", "status=draft", "--dir", dir,
            ]).trimmingCharacters(in: .whitespacesAndNewlines)
            let id = try #require(RecordID(out), "`records add` printed \(out)")
            written[id] = ownerID
            return id
        }
        let shared = try await add(pc1, "Nguyễn Văn Chung", "068100000001")
        _ = try await add(pc1, "Lê Thị Chung", "068100000002")
        try await sb.ok(["agent", "sync", "--dir", pc1])

        // The directory is copied to a second PC; both keep working.
        let pc2 = sb.path("pc2")
        try FileManager.default.copyItem(atPath: pc1, toPath: pc2)
        for i in 0..<3 { _ = try await add(pc1, "Máy một \(i)", "06811111111\(i)") }
        for i in 0..<2 { _ = try await add(pc2, "Máy hai \(i)", "06822222222\(i)") }
        try await sb.ok(["records", "edit", shared.description, "status=submitted", "--dir", pc1])
        try await sb.ok(["records", "edit", shared.description, "members=5", "--dir", pc2])

        try await sb.ok(["agent", "sync", "--dir", pc1])
        let refused = try await sb.run(["agent", "sync", "--dir", pc2])
        #expect(refused.status != 0, "the copy's sync must fail: \(refused.text)")
        #expect(refused.text.contains("copy"), "\(refused.text)")
        #expect(refused.text.contains("ferry agent enroll"), "\(refused.text)")
        #expect(!refused.text.contains("IN SYNC: every change"), "\(refused.text)")

        // Exit 2: a person must act (SPEC: status exit codes).
        let statusRun = try await sb.run(["status", "--dir", pc2, "--json"])
        #expect(statusRun.status == 2, "\(statusRun.text)")
        let status = try decodeJSON(StatusJSON.self, statusRun.out)
        #expect(!status.inSync, "status: \(status.summary)")
        #expect(status.summary.contains("NOT IN SYNC"), "\(status.summary)")
        #expect(status.summary.contains("copy of another PC"), "\(status.summary)")
        #expect(status.summary.contains("ferry agent enroll"), "\(status.summary)")
        #expect(status.pendingWrites + status.inFlightWrites >= 3, "the copy keeps its writes: \(status)")

        // The hub shows it: on the agent, in `hub agents` and in metrics.
        let original = try agentStore(pc1).1.agentID
        struct Page: Decodable { var items: [AgentsJSON] }
        let agents = try decodeJSON(
            Page.self, try await sb.ok(["hub", "agents", "--hub-dir", hub.dir, "--json"])
        ).items
        let marked = try #require(agents.first { $0.id == original })
        #expect(marked.clonedMs != nil && marked.clonedRefusals == 1, "\(agents)")
        let listing = try await sb.ok(["hub", "agents", "--hub-dir", hub.dir])
        #expect(listing.contains("CLONED REPLICA"), "\(listing)")
        let metrics = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/metrics") }
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(text.contains("ferry_changesets_refused_total{code=\"cloned_replica\"} 1"), "\(text)")
        #expect(text.contains("ferry_hub_agents_cloned 1.0"), "\(text)")

        // Nothing the copy wrote after the copy reached the hub, and it stops sending.
        let atHub = try hubStore.winners(commune: Self.commune)
        #expect(atHub.count == 5, "2 shared + 3 of pc1 at the hub, got \(atHub.count)")
        #expect(atHub[shared]?["members"] == nil, "the copy's edit must not be at the hub yet")
        let again = try await sb.run(["agent", "sync", "--dir", pc2])
        #expect(again.status != 0)
        #expect(try hubStore.agent(id: original)?.clonedRefusals == 1, "the copy must not upload again")

        // Re-enroll the copy as its own agent: new keys, its writes re-queued.
        let token = try await sb.ok(["hub", "token", "--commune", Self.commune, "--hub-dir", hub.dir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // (Enrolling over a directory the hub did not refuse still needs --reenroll.)
        let stray = try await sb.run(["agent", "enroll", hub.url, token, "--dir", pc1])
        #expect(stray.status != 0 && stray.text.contains("--reenroll"), "\(stray.text)")
        let reenrolled = try await sb.ok(["agent", "enroll", hub.url, token, "--dir", pc2])
        #expect(reenrolled.contains("Re-enrolled"), "\(reenrolled)")
        let copyID = try agentStore(pc2).1.agentID
        #expect(copyID != original)
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: pc2 + "/agent.key"))
                != Data(contentsOf: URL(fileURLWithPath: pc1 + "/agent.key")))

        try await sb.ok(["agent", "sync", "--dir", pc2])
        try await sb.ok(["agent", "sync", "--dir", pc1])
        try await sb.ok(["agent", "sync", "--dir", pc2])

        // Every write of both PCs is at the hub exactly once, and both replicas equal it.
        try expectNoLossNoDuplicate(agentDir: pc1, hub: hubStore)
        try expectNoLossNoDuplicate(agentDir: pc2, hub: hubStore)
        let final = try hubStore.winners(commune: Self.commune)
        #expect(final.count == written.count, "hub holds \(final.count) records, the PCs wrote \(written.count)")
        for (id, owner) in written {
            #expect(final[id]?["owner_id"] == .string(owner), "record \(id) of owner \(owner) at the hub")
        }
        let owners = final.values.compactMap { $0["owner_id"] }
        #expect(Set(owners).count == owners.count, "no record twice")
        #expect(final[shared]?["status"] == .string("submitted"))
        #expect(final[shared]?["members"] == .int(5))
        for dir in [pc1, pc2] {
            let s = try decodeJSON(StatusJSON.self, try await sb.ok(["status", "--dir", dir, "--json"]))
            #expect(s.inSync, "\(dir): \(s.summary)")
        }
    }
}

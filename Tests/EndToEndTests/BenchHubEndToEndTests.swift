import FerryAgent
import FerryCore
import FerryPostgres
import FerryStore
import FerryTesting
import Foundation
import Testing

/// `ferry bench hub` at a small scale: its own hub process, enrolled agents,
/// one JSON object whose exactly-once verdict the hub's store confirms.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BenchHubEndToEndTests {
    static let keys = [
        "wall_s", "field_writes_per_s", "change_sets", "hub_cpu_s", "writes_per_hub_cpu_s", "upload_p50_ms",
        "upload_p99_ms", "hub_rss_peak_kb", "store_bytes", "exactly_once",
    ]

    @Test func aSmallRunPrintsEveryFigureAndFindsEachWriteAtTheHubExactlyOnce() async throws {
        let sb = try Sandbox("bench-hub")
        defer { sb.close() }
        let work = sb.path("w2")
        let r = try await sb.run(
            ["bench", "hub", "--agents", "3", "--records", "50", "--concurrency", "2", "--workdir", work], timeout: 60)
        try #require(r.status == 0, "ferry bench hub failed (exit \(r.status)): \(r.err.suffix(2000))")
        let line = try #require(r.out.split(separator: "\n").last, "no JSON on stdout")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "stdout is not a JSON object")
        for k in Self.keys { #expect(json[k] != nil, "missing key \(k)") }
        #expect(json["exactly_once"] as? Bool == true, "\(r.err.suffix(2000))")
        #expect(json["field_writes"] as? Int == 3 * 50 * 12)
        #expect((json["change_sets"] as? Int ?? 0) >= 3, "each agent sends at least one change set")
        #expect((json["hub_cpu_s"] as? Double ?? 0) > 0, "the hub's own CPU time is measured")
        #expect((json["hub_rss_peak_kb"] as? Int ?? 0) > 1000)
        #expect((json["store_bytes"] as? Int ?? 0) > 0)
        let p50 = json["upload_p50_ms"] as? Double ?? -1
        let p99 = json["upload_p99_ms"] as? Double ?? -1
        #expect(p50 > 0 && p99 >= p50)

        // Independently of the bench's own check: the hub's store holds the 150
        // records, 12 fields each, and nothing else.
        let totals = try hubStore(work + "/hub").totals()
        #expect(totals["records"] == 150)
        #expect(totals["leaves"] == 1800)
        #expect(totals["quarantined"] == 0 && totals["conflicts"] == 0)
        #expect(json["store"] as? String == "sqlite" && json["hubs"] as? Int == 1)
    }

    /// The same JSON from two `ferry hub serve` processes in front of one
    /// PostgreSQL database (the tests' throwaway server): the agents spread
    /// over both hubs, and the database holds exactly what they sent.
    @Test func twoHubsOnPostgresPrintTheSameFiguresAndHoldEachWriteOnce() async throws {
        let sb = try Sandbox("bench-hub-pg")
        defer { sb.close() }
        let url = try PostgresTestServer.shared().makeDatabase("bench")
        let work = sb.path("w2")
        let r = try await sb.run(
            [
                "bench", "hub", "--agents", "4", "--records", "40", "--concurrency", "2", "--workdir", work,
                "--store", url, "--hubs", "2",
            ], timeout: 120)
        try #require(r.status == 0, "ferry bench hub --store failed (exit \(r.status)): \(r.err.suffix(3000))")
        let line = try #require(r.out.split(separator: "\n").last, "no JSON on stdout")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "stdout is not a JSON object")
        for k in Self.keys + ["postgres_cpu_s", "cpu_counted", "store_bytes_per_field_write"] {
            #expect(json[k] != nil, "missing key \(k)")
        }
        #expect(json["exactly_once"] as? Bool == true, "\(r.err.suffix(2000))")
        #expect(json["store"] as? String == "postgres" && json["hubs"] as? Int == 2)
        #expect(json["field_writes"] as? Int == 4 * 40 * 12)
        #expect(json["duplicates"] as? Int == 0)
        #expect((json["hub_cpu_s"] as? Double ?? 0) > 0, "both hubs' CPU time is measured")
        #expect((json["store_bytes"] as? Int ?? 0) > 0)
        let p50 = json["upload_p50_ms"] as? Double ?? -1
        let p99 = json["upload_p99_ms"] as? Double ?? -1
        #expect(p50 > 0 && p99 >= p50)
        // Round robin: agents 0 and 2 enrolled at (and uploaded to) one hub, 1 and 3 at the other.
        let hubOf = try (0..<4).map { try AgentHome(directory: work + "/agents/\($0)").config().hubURL }
        #expect(hubOf[0] == hubOf[2] && hubOf[1] == hubOf[3] && hubOf[0] != hubOf[1], "\(hubOf)")

        // Independently of the bench: the database holds the 160 records, 12
        // fields each, one change set row per acknowledged set, and nothing else.
        let store = try PostgresHubStore(url: url)
        let totals = try store.totals()
        #expect(totals["records"] == 160)
        #expect(totals["leaves"] == 1920)
        #expect(totals["changesets"] == json["change_sets"] as? Int)
        #expect(totals["stream_seq"].map { $0 >= 1920 } == true)
        #expect(totals["quarantined"] == 0 && totals["conflicts"] == 0)
        let agents = try store.agents()
        #expect(agents.count == 4)
        #expect(agents.allSatisfy { $0.appliedSeq == 40 * 12 }, "\(agents.map(\.appliedSeq))")
    }
}

import FerryAgent
import FerryCore
import FerryStore
import Foundation
import Testing

/// `/v1/metrics` (swift-metrics + swift-prometheus) and `--log-format json`
/// against a real hub: every family exists from the first scrape, and
/// refusals, enrollments and operator writes are counted and logged by name.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct MetricsEndToEndTests {
    /// The value of the series `series` (exact name and labels) in a scrape.
    static func value(_ series: String, _ text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test func metricsArePresentFromStartAndCountRefusalsEnrollmentsAndAgentsWithJSONLogs() async throws {
        let sb = try Sandbox("metrics")
        defer { sb.close() }
        let hubDir = try await sb.initHub()
        let urlFile = hubDir + "/hub.url"
        let p = try sb.start(["hub", "serve", "--dir", hubDir, "--port", "0", "--log-format", "json"], name: "hub")
        var url = ""
        #expect(
            try await waitUntil(timeout: 30) {
                url =
                    (try? String(contentsOfFile: urlFile, encoding: .utf8))?.trimmingCharacters(
                        in: .whitespacesAndNewlines)
                    ?? ""
                return !url.isEmpty || !p.isRunning
            })
        try #require(p.isRunning && !url.isEmpty, "the hub did not start: \(sb.log("hub"))")
        let hub = Sandbox.Hub(dir: hubDir, url: url, process: p)
        func scrape() async throws -> String {
            let a = try await withHubClient(url) { try await $0.send(.GET, "/v1/metrics") }
            try #require(a.status == 200)
            return String(decoding: a.body, as: UTF8.self)
        }

        // Before any event: the families an alert would watch are there, at 0.
        let first = try await scrape()
        for series in [
            #"ferry_changesets_refused_total{code="revoked"}"#,
            #"ferry_changesets_refused_total{code="bad_signature"}"#,
            #"ferry_pulls_refused_total{code="revoked"}"#, #"ferry_enrollments_refused_total{code="bad_token"}"#,
            "ferry_internal_errors_total", "ferry_operator_logins_failed_total", "ferry_ingest_duration_seconds_count",
            "ferry_pull_duration_seconds_count", "ferry_hub_conflicts", "ferry_hub_quarantined",
        ] {
            #expect(Self.value(series, first) == 0, "\(series) must be 0 at start")
        }
        #expect(first.contains("# TYPE ferry_ingest_duration_seconds histogram"))

        // An agent enrolls and syncs; a second use of its token is refused.
        let token = try await sb.ok(["hub", "token", "--commune", "24781", "--hub-dir", hubDir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try await sb.ok(["agent", "enroll", url, token, "--dir", sb.path("a")])
        let again = try await sb.run(["agent", "enroll", url, token, "--dir", sb.path("a2")])
        #expect(again.status != 0)
        try await sb.ok(["agent", "sync", "--dir", sb.path("a")])
        let csv = try sampleCSV(sb, name: "a.csv", seed: 5, count: 4)
        try await sb.ok(["records", "import", csv.path, "--dir", sb.path("a")])
        try await sb.ok(["agent", "sync", "--dir", sb.path("a")])
        let agent = try #require(try hubStore(hubDir).agents().first)

        let second = try await scrape()
        #expect(
            Self.value(#"ferry_enrollments_refused_total{code="bad_token"}"#, second) == 1,
            "\(again.text)\n\(second.split(separator: "\n").filter { $0.contains("enrollments") })")
        #expect(Self.value("ferry_enrollments_total", second) == 1)
        #expect((Self.value("ferry_ingest_duration_seconds_count", second) ?? 0) >= 1)
        #expect((Self.value("ferry_pull_duration_seconds_count", second) ?? 0) >= 1)
        let lag = try hubStore(hubDir).lag(of: agent)
        #expect(
            Self.value(#"ferry_agent_lag{agent="\#(agent.id)",commune="24781"}"#, second) == Double(lag)
                || Self.value(#"ferry_agent_lag{commune="24781",agent="\#(agent.id)"}"#, second) == Double(lag),
            "per-agent lag \(lag): \(second)")
        #expect(second.contains("ferry_agent_last_contact_age_seconds{"))
        #expect(Self.value("ferry_hub_records", second) == 4)

        // Revoked: its next sync is refused and counted under "revoked".
        try await sb.ok(["hub", "revoke", agent.id, "--hub-dir", hubDir])
        try await sb.ok([
            "records", "add", "owner_name=Lê Văn Tám", "owner_id=068000000001", "status=draft", "members=2", "--dir",
            sb.path("a"),
        ])
        _ = try await sb.run(["agent", "sync", "--dir", sb.path("a")])
        let third = try await scrape()
        let revoked =
            (Self.value(#"ferry_changesets_refused_total{code="revoked"}"#, third) ?? 0)
            + (Self.value(#"ferry_pulls_refused_total{code="revoked"}"#, third) ?? 0)
        #expect(revoked >= 1, "\(third)")

        // JSON logs: every line one object; refusals and operator actions name who.
        sb.stop(hub.process)
        let lines = sb.log("hub").split(separator: "\n")
        var objects: [[String: String]] = []
        for l in lines {
            let o = try? JSONDecoder().decode([String: String].self, from: Data(l.utf8))
            #expect(o != nil, "not a JSON object: \(l)")
            if let o { objects.append(o) }
        }
        #expect(objects.contains { $0["msg"] == "enrollment refused" && $0["ferry.code"] == "bad_token" })
        #expect(
            objects.contains {
                ($0["msg"] == "change set refused" || $0["msg"] == "download refused") && $0["ferry.code"] == "revoked"
                    && $0["ferry.agent"]?.hasPrefix(agent.id) == true
            }, "a refusal names the agent")
        #expect(
            objects.contains {
                $0["msg"] == "operator write" && $0["ferry.user"] == "admin" && $0["ferry.action"] == "agents/revoke"
            })
        #expect(!sb.log("hub").contains(token), "an enrollment token never reaches the log")
    }
}

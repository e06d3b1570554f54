import FerryAgent
import FerryCore
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// Form lifecycle, campaigns and quarantine closed by a person, against a
/// real hub and agent (issue 11 items 3, 4 and 7).
@Suite(.serialized, .timeLimit(.minutes(4)))
struct OperatorLifecycleEndToEndTests {
    static let commune = "24781"

    static func write(_ sb: Sandbox, _ name: String, _ text: String) throws -> String {
        let p = sb.path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    /// land-record v2: a new `notes` field, and `needs_fix` no longer a status.
    static func v2() throws -> String {
        var form = try JSONDecoder().decode(FormDefinition.self, from: Data(Seed.landRecordForm.utf8))
        form.version = 2
        form.fields = form.fields.map { f in
            var f = f
            if f.name == "status" { f.choices = ["draft", "submitted", "verified"] }
            return f
        }
        form.fields.append(FieldSpec(name: "notes", type: .string, label: "Ghi chú"))
        return String(decoding: try JSONEncoder().encode(form), as: UTF8.self)
    }

    struct Page<T: Decodable>: Decodable {
        var items: [T]
        var remaining: Int
    }
    struct Entry: Decodable {
        var id: Int64
        var record: String
        var field: String
        var status: String
        var closedBy: String?
        var reason: String
    }

    @Test func aDraftIsHiddenUntilReleasedRecordsMigrateKeepingValuesAndQuarantineIsClosedByAPerson() async throws {
        let sb = try Sandbox("oplifecycle")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let h = ["--hub-dir", hub.dir]
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)

        // A definition with mistakes is refused, each problem typed.
        let bad = try Self.write(
            sb, "bad.json",
            #"{"id":"bad","version":1,"title":"Bad","fields":[{"name":"n","type":"int","min":5,"max":1},{"name":"c","type":"string","choices":[]},{"name":"c","type":"string","choices":["x","x"]}]}"#
        )
        let refused = try await sb.run(["forms", "publish", bad] + h)
        for code in ["range_inverted", "empty_choices", "duplicate_field", "duplicate_choice"] {
            #expect(refused.status != 0 && refused.text.contains(code), "\(code): \(refused.text)")
        }
        // The hub checks too, whatever the client did.
        let token = try String(contentsOfFile: hub.dir + "/operator.token", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let raw = try await withHubClient(hub.url) {
            try await $0.send(
                .POST, "/v1/ops/forms", body: [UInt8](try String(contentsOfFile: bad, encoding: .utf8).utf8),
                headers: ["Authorization": "Bearer \(token)"])
        }
        #expect(raw.status == 422 && raw.error?.code == "invalid_form", "\(raw.status) \(raw.error?.message ?? "")")
        let body = try HubJSON.decoder.decode(ErrorBody.self, from: Data(raw.body))
        #expect(body.error.problems?.count == 4, "\(body.error.problems ?? [])")

        // v1 records: one the new version will reject (needs_fix), two drafts.
        var made: [String] = []
        for (name, status) in [
            ("Nguyễn Thị Thu Hà", "needs_fix"), ("Trần Văn Long An", "draft"), ("Lê Thị Ánh Hồng", "draft"),
        ] {
            made.append(
                try await sb.ok([
                    "records", "add", "owner_name=\(name)", "owner_id=068123456789", "status=\(status)", "--dir", a,
                ]).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let rid = made[0]
        let recordID = try #require(RecordID(rid))
        try await sb.ok(["agent", "sync", "--dir", a])

        // A draft: not listed, not sent to agents.
        let v2 = try Self.write(sb, "v2.json", try Self.v2())
        try await sb.ok(["forms", "publish", v2, "--draft"] + h)
        #expect(!(try await sb.ok(["forms", "list"] + h)).contains("v2"))
        #expect(try await sb.ok(["forms", "list", "--drafts"] + h).contains("land-record v2"))
        try await sb.ok(["agent", "sync", "--dir", a])
        #expect(try agentStore(a).0.form("land-record", version: 2) == nil, "a draft never reaches an agent")
        let diff = try await sb.ok(["forms", "diff", "land-record@1", "land-record@2"] + h)
        #expect(diff.contains("+ notes") && diff.contains("choices removed: needs_fix"), "\(diff)")

        try await sb.ok(["forms", "release", "land-record", "2"] + h)
        try await sb.ok(["agent", "sync", "--dir", a])
        #expect(try agentStore(a).0.form("land-record", version: 2) != nil)

        // Migration: a dry run reports, the real one moves and keeps every value.
        let dry = try decodeJSON(
            MigrationReportV1.self,
            try await sb.ok(["forms", "migrate", "land-record", "--from", "1", "--to", "2", "--dry-run", "--json"] + h))
        #expect(dry.records == 3 && dry.dryRun && dry.problemCount == 1, "\(dry)")
        #expect(dry.problems.contains { $0.record == rid && $0.field == "status" && $0.value == .string("needs_fix") })
        let hubStore = try hubStore(hub.dir)
        #expect(try hubStore.record(recordID)?.scope.formVersion == 1, "a dry run changes nothing")
        let done = try await sb.ok(["forms", "migrate", "land-record", "--from", "1", "--to", "2"] + h)
        #expect(done.contains("Moved 3 record") && done.contains("needs_fix"), "\(done)")
        let moved = try #require(try hubStore.record(recordID))
        #expect(moved.scope.formVersion == 2 && moved.winners["status"] == .string("needs_fix"), "value kept")

        // Retire v1: agents are told, new records take v2.
        try await sb.ok(["forms", "retire", "land-record", "1"] + h)
        #expect(try await sb.ok(["forms", "list"] + h).contains("RETIRED"))

        // The agent, not synced since the migration, edits under v1: the hub
        // accepts the change set and quarantines what v2 refuses.
        try await sb.ok(["records", "edit", rid, "owner_name=Nguyễn Thị Thu Hằng", "--dir", a])
        try await sb.ok(["records", "edit", made[1], "status=needs_fix", "--dir", a])
        try await sb.ok(["records", "edit", made[2], "status=needs_fix", "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])
        #expect(try agentStore(a).0.form("land-record")?.version == 2, "newest version that is not retired")
        #expect(try hubStore.record(recordID)?.winners["owner_name"] == .string("Nguyễn Thị Thu Hằng"))
        let q = try decodeJSON(Page<Entry>.self, try await sb.ok(["quarantine", "list", "--json"] + h))
        #expect(q.items.count == 2, "\(q.items)")
        let entry = try #require(q.items.first { $0.record == made[1] && $0.field == "status" }, "\(q.items)")
        #expect(entry.reason.contains("one of"))

        // The commune PC shows the reason next to the value.
        let shown = try await sb.ok(["records", "show", made[1], "--dir", a])
        #expect(shown.contains("REFUSED BY THE HUB") && shown.contains("one of"), "\(shown)")

        // A person fixes it; the fix is audited with their name and cannot be repeated.
        let detail = try await sb.ok(["quarantine", "show", String(entry.id)] + h)
        #expect(detail.contains("needs_fix") && detail.contains("quarantine fix"), "\(detail)")
        try await sb.ok(["quarantine", "fix", String(entry.id), "verified", "--note", "checked by phone"] + h)
        let fixed = try #require(RecordID(made[1]))
        #expect(try hubStore.record(fixed)?.winners["status"] == .string("verified"))
        let again = try await sb.run(["quarantine", "fix", String(entry.id), "verified"] + h)
        #expect(again.status != 0 && again.text.contains("already fixed"), "\(again.text)")
        let all = try decodeJSON(
            Page<Entry>.self, try await sb.ok(["quarantine", "list", "--status", "all", "--json"] + h))
        #expect(all.items.first { $0.id == entry.id }?.closedBy == "admin")
        let actions = try hubStore.operatorActions(record: nil, limit: 100)
        #expect(
            actions.contains {
                $0.action == "quarantine.fixed" && $0.user == "admin" && $0.detail == "checked by phone"
                    && $0.record == made[1] && $0.target == "#\(entry.id)"
            })
        // One row per write: the request log no longer repeats what the lifecycle noted.
        #expect(!actions.contains { $0.action == "quarantine/fix" }, "\(actions.map(\.action))")
        #expect(actions.contains { $0.action == "form.migrate" } && actions.contains { $0.action == "form.retire" })

        // The other refusal, released without a write: the value stays recorded.
        let second = try #require(q.items.first { $0.record == made[2] })
        try await sb.ok(["quarantine", "release", String(second.id), "--note", "clerk re-enters it"] + h)
        let after = try decodeJSON(Page<Entry>.self, try await sb.ok(["quarantine", "list", "--json"] + h))
        #expect(after.items.isEmpty && after.remaining == 0)
        #expect(try hubStore.quarantineEntry(id: second.id)?.status == "released")
        #expect(try hubStore.quarantineEntry(id: second.id)?.value == .string("needs_fix"))
    }

    @Test func aCampaignWithMistakesIsRefusedProblemByProblemAndProgressKeepsToItsPeriod() async throws {
        let sb = try Sandbox("opcampaigns")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let h = ["--hub-dir", hub.dir]
        let bad = try Self.write(
            sb, "bad.json",
            #"{"id":"x","title":"X","form":"nope","starts":"2025-12-31","ends":"2025-01-01","status":"actve","targets":{"99999":5,"24781":-4}}"#
        )
        let r = try await sb.run(["campaigns", "publish", bad] + h)
        for code in ["unknown_form", "dates_reversed", "bad_status", "unknown_commune", "negative_target"] {
            #expect(r.status != 0 && r.text.contains(code), "\(code): \(r.text)")
        }
        #expect(!(try await sb.ok(["campaigns", "list"] + h)).contains("[x]"), "nothing was published")
        // A file with a key missing says which, not DecodingError.keyNotFound.
        let missing = try Self.write(sb, "missing.json", #"{"id":"y","form":"land-record"}"#)
        let m = try await sb.run(["campaigns", "publish", missing] + h)
        #expect(m.status != 0 && m.text.contains("'title' is missing") && !m.text.contains("keyNotFound"), "\(m.text)")

        // Periods: a record made now counts for a campaign running now, not for last year's.
        for i in 0..<3 {
            try await sb.ok(
                [
                    "records", "add", "owner_name=Nguyễn Văn An \(i)", "owner_id=068123456789", "status=draft",
                    "--at-hub",
                    "--commune", Self.commune,
                ] + h)
        }
        let now = CivilDate(daysSinceEpoch: Int32(Date().timeIntervalSince1970 / 86400))
        let current = try Self.write(
            sb, "now.json",
            #"{"id":"now","title":"Now","form":"land-record","starts":"2020-01-01","ends":"\#(CivilDate(daysSinceEpoch: now.daysSinceEpoch + 30))","status":"active","targets":{"24781":10}}"#
        )
        let past = try Self.write(
            sb, "past.json",
            #"{"id":"past","title":"Past","form":"land-record","starts":"2020-01-01","ends":"2020-12-31","status":"closed","targets":{"24781":10}}"#
        )
        try await sb.ok(["campaigns", "publish", current] + h)
        try await sb.ok(["campaigns", "publish", past] + h)
        let cs = try decodeJSON([CampaignJSON].self, try await sb.ok(["campaigns", "list", "--json"] + h))
        #expect(cs.first { $0.campaign.id == "now" }?.done == 3)
        #expect(cs.first { $0.campaign.id == "past" }?.done == 0, "records made after the period do not count")
    }
}

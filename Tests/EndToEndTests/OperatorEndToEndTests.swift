import FerryCore
import FerryStore
import Foundation
import Testing

/// The operator CLI against a real `ferry hub serve`: lists that page and say
/// how many more exist, typed JSON values, conflicts filtered and closed, and
/// messages a person can act on (issue 11).
@Suite(.serialized, .timeLimit(.minutes(4)))
struct OperatorEndToEndTests {
    static let commune = "24781"

    struct Page<T: Decodable>: Decodable {
        var items: [T]
        var nextCursor: String?
        var remaining: Int
    }
    struct RecordJSON: Decodable {
        var id: String
        var commune: String
    }
    struct ConflictJSON: Decodable {
        var record: String
        var field: String
        var commune: String
    }

    func addAtHub(_ sb: Sandbox, _ hub: Sandbox.Hub, name: String, members: Int) async throws -> String {
        try await sb.ok([
            "records", "add", "owner_name=\(name)", "owner_id=068123456789", "status=draft", "members=\(members)",
            "--at-hub", "--hub-dir", hub.dir, "--commune", Self.commune,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func recordListsPageWithACursorSayHowManyMoreAndKeepJSONTypes() async throws {
        let sb = try Sandbox("oplists")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        var made: [String] = []
        for i in 0..<7 { made.append(try await addAtHub(sb, hub, name: "Nguyễn Văn An \(i)", members: i + 1)) }
        let base = ["records", "list", "--at-hub", "--hub-dir", hub.dir, "--limit", "3"]

        let first = try decodeJSON(Page<RecordJSON>.self, try await sb.ok(base + ["--json"]))
        #expect(first.items.count == 3 && first.remaining == 4, "\(first.items.count) + \(first.remaining)")
        let cursor = try #require(first.nextCursor, "a page with more after it names the next cursor")
        let second = try decodeJSON(Page<RecordJSON>.self, try await sb.ok(base + ["--json", "--cursor", cursor]))
        #expect(second.items.count == 3 && second.remaining == 1)
        #expect(Set(first.items.map(\.id)).isDisjoint(with: second.items.map(\.id)), "pages do not overlap")

        let all = try decodeJSON(Page<RecordJSON>.self, try await sb.ok(base + ["--json", "--all-pages"]))
        #expect(all.remaining == 0 && all.nextCursor == nil)
        #expect(Set(all.items.map(\.id)) == Set(made) && all.items.count == made.count, "every record once")
        #expect(all.items.map(\.id) == made.reversed(), "newest first")

        // Text says how many more, and how to get them.
        let text = try await sb.ok(base)
        #expect(text.contains("4 more") && text.contains("--cursor"), "\(text)")

        // JSON values keep their types: members is a number, owner_name a string.
        let raw = try await sb.ok(["records", "show", made[2], "--at-hub", "--hub-dir", hub.dir, "--json"])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any])
        let fields = try #require(obj["fields"] as? [String: [String: Any]])
        #expect((fields["members"]?["value"] as? NSNumber)?.intValue == 3, "\(raw)")
        #expect(fields["owner_name"]?["value"] is String)
        #expect(raw.contains("\"value\" : 3"), "a JSON number, not \"3\": \(raw)")

        // Deleted records: hidden by default, shown with --all.
        try await sb.ok(["records", "delete", made[0], "--at-hub", "--hub-dir", hub.dir])
        let live = try decodeJSON(
            Page<RecordJSON>.self, try await sb.ok(base + ["--json", "--all-pages", "--limit", "100"]))
        #expect(live.items.count == 6 && !live.items.contains { $0.id == made[0] })
        let withDeleted = try decodeJSON(
            Page<RecordJSON>.self, try await sb.ok(base + ["--json", "--all-pages", "--limit", "100", "--all"]))
        #expect(withDeleted.items.count == 7)

        // A cursor the hub never gave is refused, not read as "from the start".
        let bad = try await sb.run(base + ["--cursor", "zz"])
        #expect(bad.status != 0 && bad.text.contains("cursor"), "\(bad.text)")
    }

    @Test func conflictsFilterRefuseAResolveWithoutConflictAndAPlainEditClosesThem() async throws {
        let sb = try Sandbox("opconflicts")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let rid = try await sb.ok([
            "records", "add", "owner_name=Nguyễn Thị Thu Hà", "owner_id=068123456789", "status=draft", "--dir", a,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        try await sb.ok(["agent", "sync", "--dir", a])
        // Both sides change status without seeing the other: a conflict.
        try await sb.ok(["records", "edit", rid, "status=needs_fix", "--at-hub", "--hub-dir", hub.dir])
        try await sb.ok(["records", "edit", rid, "status=verified", "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])
        let list = ["conflicts", "list", "--hub-dir", hub.dir, "--json"]
        let open = try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list))
        try #require(open.items.count == 1, "one conflict expected: \(open.items)")
        #expect(open.items[0].record == rid && open.items[0].field == "status")

        // Filters: commune, field, form, age.
        #expect(
            try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list + ["--commune", Self.commune])).items.count
                == 1)
        #expect(try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list + ["--commune", "99999"])).items.isEmpty)
        #expect(
            try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list + ["--field", "owner_name"])).items.isEmpty)
        #expect(
            try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list + ["--form", "land-record"])).items.count == 1)
        #expect(
            try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list + ["--older-than-hours", "1"])).items.isEmpty)

        // The hub's status puts this commune first.
        let status = try await sb.ok(["status", "--at-hub", "--hub-dir", hub.dir])
        #expect(
            status.contains("Needs attention first") && status.contains("[\(Self.commune)]: 1 open conflict"),
            "\(status)")

        // Resolving a field with no conflict is refused and says so.
        let none = try await sb.run(["conflicts", "resolve", rid, "owner_name", "--hub-dir", hub.dir])
        #expect(
            none.status != 0 && none.text.contains("no open conflict") && none.text.contains("no_conflict"),
            "\(none.text)")

        // A plain operator edit of the conflicted field closes the conflict.
        try await sb.ok(["records", "edit", rid, "status=submitted", "--at-hub", "--hub-dir", hub.dir])
        let after = try decodeJSON(Page<ConflictJSON>.self, try await sb.ok(list))
        #expect(after.items.isEmpty, "the edit named every leaf: \(after.items)")
        let store = try hubStore(hub.dir)
        #expect(try store.totals()["conflicts"] == 0)
        let recordID = try #require(RecordID(rid))
        let view = try #require(try store.record(recordID))
        #expect(view.winners["status"] == .string("submitted"))
    }

    @Test func operatorMessagesSayWhatToDo() async throws {
        let sb = try Sandbox("opmessages")
        defer { sb.close() }
        let hubDir = try await sb.initHub()
        let hub = try await sb.serveHub(dir: hubDir)
        let port = try #require(URLComponents(string: hub.url)?.port)

        // --hub without a token: ask for the token, never for `hub init`.
        let noToken = try await sb.run(["hub", "agents", "--hub", hub.url])
        #expect(
            noToken.status != 0 && noToken.text.contains("--token") && !noToken.text.contains("hub init"),
            "\(noToken.text)")
        // A URL without http://.
        let bare = try await sb.run(["hub", "agents", "--hub", "127.0.0.1:\(port)", "--token", "x"])
        #expect(bare.status != 0 && bare.text.contains("http://127.0.0.1:\(port)"), "\(bare.text)")
        #expect(!bare.text.contains("invalidURL"))
        // The port taken: name it.
        let other = try await sb.run(
            ["hub", "serve", "--dir", try await sb.initHub("hub2"), "--port", String(port)], timeout: 30)
        #expect(
            other.status != 0 && other.text.contains("port \(port)") && other.text.contains("already in use"),
            "\(other.text)")
        // A hub directory that is not one.
        let wrongDir = try await sb.run(["hub", "agents", "--hub-dir", sb.path("nowhere")])
        #expect(wrongDir.status != 0 && wrongDir.text.contains("nowhere"), "\(wrongDir.text)")
    }
}

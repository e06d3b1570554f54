import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// The local data-entry page of `ferry agent run` (issue 12), driven as a
/// clerk would: real hub and agent processes, HTTP on 127.0.0.1, headless
/// Chromium to render the pages, then the record checked in the replica and,
/// after the agent's own sync, at the hub.
@Suite(.serialized) struct EntryPageEndToEndTests {
    static let commune = "24781"

    /// `ferry status --json`, with the service fields.
    struct ServiceStatus: Decodable {
        var inSync: Bool
        var exitCode: Int32
        var service: String
        var servicePid: Int32?
        var serviceSinceMs: UInt64?
        var summary: String
        var pendingWrites: Int
    }

    @Test func aClerkFillsTheFormInTheBrowserAndTheRecordReachesTheHub() async throws {
        let chromium = try Chromium.find()
        let sb = try Sandbox("entry")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let agent = try sb.start(["agent", "run", "--dir", a, "--interval", "0.5", "--page-port", "0"], name: "agent")
        var base = try await entryPageURL(a, agent)
        let up = !base.isEmpty
        #expect(up && agent.isRunning && base.hasPrefix("http://127.0.0.1:"), "page.url: \(base) \(sb.log("agent"))")
        if base.hasSuffix("/") { base.removeLast() }

        // Status agrees with the service: running, with its PID and start time.
        let running = try decodeJSON(ServiceStatus.self, try await sb.run(["status", "--dir", a, "--json"]).out)
        #expect(running.service == "running" && running.servicePid == agent.processIdentifier, "\(running.summary)")
        #expect(running.serviceSinceMs != nil && running.summary.contains("Agent service: running"))

        let (store, _) = try agentStore(a)
        let before = try store.counts().records
        try await withHubClient(base) { http in
            // The form, rendered from the definition: rules shown before saving.
            let form = try await http.send(.GET, "/new?form=land-record")
            let html = String(decoding: form.body, as: UTF8.self)
            #expect(form.status == 200)
            #expect(html.contains("<meta charset=\"utf-8\">"))
            #expect(html.contains("Họ tên chủ sử dụng") && html.contains("đúng 12 chữ số / exactly 12 digits"))
            #expect(html.contains("<option value=\"CLN\">") && html.contains("từ 40 đến 5000"))
            let csrf = try #require(Self.csrf(html), "no CSRF token in the form")

            // A bad value: refused in plain words, what was typed is kept, nothing saved.
            var fields = [
                "_csrf": csrf, "_form": "land-record", "f.owner_name": "Nguyễn Thị Ánh", "f.owner_id": "01234",
                "f.status": "draft", "f.area_m2": "120,5", "f.land_use": "CLN", "f.members": "4",
            ]
            let bad = try await http.send(.POST, "/records", body: Self.encode(fields), headers: Self.formHeaders)
            let badHTML = String(decoding: bad.body, as: UTF8.self)
            #expect(bad.status == 422)
            #expect(badHTML.contains("Phải có đúng 12 chữ số") && badHTML.contains("Must be exactly 12 digits"))
            #expect(badHTML.contains("value=\"Nguyễn Thị Ánh\"") && badHTML.contains("value=\"120,5\""))
            #expect(try store.counts().records == before)

            // No CSRF token (another site's form): refused, nothing saved.
            var forged = fields
            forged["_csrf"] = "0"
            forged["f.owner_id"] = "012345678901"
            let refused = try await http.send(.POST, "/records", body: Self.encode(forged), headers: Self.formHeaders)
            #expect(refused.status == 403)
            #expect(try store.counts().records == before)

            // The right value: saved into the replica through the AgentStore path.
            fields["f.owner_id"] = "012345678901"
            let saved = try await http.send(.POST, "/records", body: Self.encode(fields), headers: Self.formHeaders)
            #expect(saved.status == 200 || saved.status == 303, "\(saved.status)")
        }
        let mine = try store.records(limit: 50).first { $0.values["owner_id"] == .string("012345678901") }
        let record = try #require(mine, "the record is in the replica")
        #expect(record.values["owner_name"] == .string("Nguyễn Thị Ánh"))
        #expect(record.values["area_m2"] == .double(120.5))
        #expect(record.values["members"] == .int(4))
        #expect(record.scope.commune == Self.commune)

        // Chromium renders the pages with the record (Vietnamese intact).
        let dom = try await chromium.dom("\(base)/records/\(record.id)", sandbox: sb)
        #expect(dom.contains("Nguyễn Thị Ánh") && dom.contains("Lưu / Save"), "\(dom.prefix(600))")
        let list = try await chromium.dom("\(base)/", sandbox: sb)
        #expect(list.contains(record.id.description) && list.contains("Nguyễn Thị Ánh"))
        let shot =
            (ProcessInfo.processInfo.environment["FERRY_SCREENSHOT_DIR"].map { $0 + "/" } ?? sb.root + "/")
            + "entry-page.png"
        try await chromium.screenshot("\(base)/records/\(record.id)?saved=1", to: shot, sandbox: sb)
        let png = try Data(contentsOf: URL(fileURLWithPath: shot))
        #expect(png.count > 10_000 && png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "screenshot \(png.count) bytes")

        // The agent's own loop sends it: the hub holds the same values.
        let hubStore = try hubStore(hub.dir)
        let atHub = try await waitUntil(timeout: 30) {
            try hubStore.winners(commune: Self.commune)[record.id]?["owner_name"] == .string("Nguyễn Thị Ánh")
        }
        #expect(atHub, "the record reached the hub: \(sb.log("agent").suffix(800))")

        // An edit on the page: only the changed field is written, and it syncs.
        try await withHubClient(base) { http in
            let page = String(decoding: try await http.send(.GET, "/records/\(record.id)").body, as: UTF8.self)
            let csrf = try #require(Self.csrf(page))
            var fields = ["_csrf": csrf]
            for (k, v) in record.values { fields["f." + k] = v.display }
            fields["f.status"] = "verified"
            fields["f.area_m2"] = "120.5"
            let r = try await http.send(
                .POST, "/records/\(record.id)", body: Self.encode(fields), headers: Self.formHeaders)
            #expect(r.status == 200 || r.status == 303)
        }
        let edited = try #require(try store.record(record.id))
        #expect(edited.values["status"] == .string("verified"))
        #expect(edited.fields["owner_name"]?.id == record.fields["owner_name"]?.id, "unchanged fields not rewritten")
        let editAtHub = try await waitUntil(timeout: 30) {
            try hubStore.winners(commune: Self.commune)[record.id]?["status"] == .string("verified")
        }
        #expect(editAtHub)

        // A power cut: `ferry status` must not say IN SYNC for a dead service.
        sb.kill9(agent)
        let after = try await sb.run(["status", "--dir", a, "--json"])
        let down = try decodeJSON(ServiceStatus.self, after.out)
        #expect(down.service == "stopped" && !down.inSync && after.status == 2, "\(down.summary)")
        // "NOT IN SYNC: …" may head the summary (a change set was in flight at the kill); "IN SYNC" alone may not.
        let claimsInSync = down.summary.split(separator: "\n").contains {
            $0.trimmingCharacters(in: .whitespaces).hasPrefix("IN SYNC")
        }
        #expect(down.summary.contains("NOT RUNNING") && !claimsInSync, "\(down.summary)")
    }

    /// Issue 12 item 2: staff reach every record of the commune, a page at a
    /// time, and the page says how many there are and how many more.
    @Test func theRecordListPagesAndSaysHowManyMoreExist() async throws {
        let sb = try Sandbox("entry-pages")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let pageSize = 200  // EntryPage.pageSize
        let csv = try sampleCSV(sb, name: "many.csv", seed: 7, count: pageSize + 5)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        let agent = try sb.start(["agent", "run", "--dir", a, "--interval", "30", "--page-port", "0"], name: "agent")
        defer { sb.kill9(agent) }
        let base = try await entryPageURL(a, agent)
        let port = try #require(URL(string: base)?.port, "page.url: \(base) \(sb.log("agent"))")
        let total = try agentStore(a).0.counts().records
        #expect(total == pageSize + 5)
        let first = try Raw.request(port, "GET", "/").body
        #expect(first.contains(#"<span id="count">\#(total)</span>"#))
        #expect(first.components(separatedBy: "<tr><td><a href=\"/records/").count - 1 == pageSize)
        #expect(first.contains("1–\(pageSize) của / of \(total)") && first.contains("Older (5 nữa / more)"))
        let link = try #require(first.components(separatedBy: #"id="older" href=""#).dropFirst().first)
        let cursor = try #require(link.components(separatedBy: "before").dropFirst().first?.prefix { $0 != "\"" })
        // The id after `before=` (the `=` may come HTML-escaped).
        let id = String(cursor.suffix(36))
        #expect(RecordID(id) != nil, "\(link.prefix(120))")
        let second = try Raw.request(port, "GET", "/?before=\(id)").body
        #expect(second.components(separatedBy: "<tr><td><a href=\"/records/").count - 1 == 5)
        #expect(second.contains("\(pageSize + 1)–\(total) của / of \(total)") && !second.contains("id=\"older\""))
        // Every record appears on exactly one page.
        let ids = try agentStore(a).0.records(limit: 1000, includeDeleted: true).map(\.id.description)
        #expect(ids.allSatisfy { first.contains("/records/\($0)\"") != second.contains("/records/\($0)\"") })
    }

    /// Issue 12 item 2, SPEC §9.13: a conflict on one of the commune's records
    /// shows on that commune's PC with the competing values (status, home
    /// page, the record's page in Chromium), not on another commune's, and
    /// goes away when the hub operator resolves it.
    @Test func theCommunesOpenConflictShowsOnItsPCWithTheValuesUntilTheOperatorResolvesIt() async throws {
        let chromium = try Chromium.find()
        let sb = try Sandbox("entry-conflicts")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let b = try await sb.enrollAgent("b", hub: hub, commune: "23272")
        let rid = try await sb.ok([
            "records", "add", "owner_name=Trần Văn Đức", "owner_id=068123456789", "status=draft", "--dir", a,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        try await sb.ok(["agent", "sync", "--dir", a])
        // The hub operator and the clerk change status without seeing each other.
        try await sb.ok(["records", "edit", rid, "status=needs_fix", "--at-hub", "--hub-dir", hub.dir])
        try await sb.ok(["records", "edit", rid, "status=verified", "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", b])
        try #require(try hubStore(hub.dir).totals()["conflicts"] == 1, "the test needs one open conflict")

        let mine = try decodeJSON(AgentStatus.self, try await sb.run(["status", "--dir", a, "--json"]).out)
        #expect(mine.communeConflictsOpen == 1 && mine.communeConflicts.count == 1, "\(mine.summary)")
        let k = try #require(mine.communeConflicts.first)
        #expect(k.record == rid && k.field == "status" && k.kind == "concurrent_writes")
        #expect(Set(k.sides.map(\.value)) == ["needs_fix", "verified"], "\(k.sides)")
        #expect(Set(k.sides.map(\.origin)).contains("hub"))
        #expect(mine.summary.contains("Open conflicts on this commune's records: 1"), "\(mine.summary)")
        let theirs = try decodeJSON(AgentStatus.self, try await sb.run(["status", "--dir", b, "--json"]).out)
        #expect(theirs.communeConflictsOpen == 0 && theirs.communeConflicts.isEmpty, "\(theirs.summary)")
        #expect(!theirs.summary.contains("Open conflicts on this commune"))

        // The hub refuses an unsigned, unknown or mis-signed request before any work.
        let home = AgentHome(directory: a)
        let agentID = try home.config().agentID
        let t = SystemClock().nowMillis()
        let good = hex(try home.identity().signing.sign(ConflictsAuth.message(agent: agentID, timeMs: t)))
        try await withHubClient(hub.url) { http in
            let cases: [([String: String], Int, String)] = [
                ([:], 400, "bad_request"),
                (["X-Ferry-Agent": agentID, "X-Ferry-Time": "x", "X-Ferry-Signature": good], 400, "bad_request"),
                (
                    ["X-Ferry-Agent": "a-nobody", "X-Ferry-Time": String(t), "X-Ferry-Signature": good], 401,
                    "unknown_agent"
                ),
                (
                    ["X-Ferry-Agent": agentID, "X-Ferry-Time": String(t + 1), "X-Ferry-Signature": good], 401,
                    "bad_signature"
                ),
            ]
            for (headers, status, code) in cases {
                let r = try await http.send(.GET, "/v1/conflicts", headers: headers)
                #expect(r.status == status && r.error?.code == code, "\(headers): \(r.status) \(r.error?.code ?? "")")
            }
            // The signed request gets a sealed answer: no value readable on the wire.
            let r = try await http.send(
                .GET, "/v1/conflicts",
                headers: ["X-Ferry-Agent": agentID, "X-Ferry-Time": String(t), "X-Ferry-Signature": good])
            #expect(r.status == 200)
            let wire = String(decoding: r.body, as: UTF8.self)
            #expect(!wire.contains("needs_fix") && !wire.contains(rid), "the answer is sealed")
        }

        let agent = try sb.start(["agent", "run", "--dir", a, "--interval", "0.5", "--page-port", "0"], name: "agent")
        defer { sb.kill9(agent) }
        var base = try await entryPageURL(a, agent)
        #expect(base.hasPrefix("http://127.0.0.1:"), "page.url: \(base) \(sb.log("agent"))")
        if base.hasSuffix("/") { base.removeLast() }
        let homePage = try await chromium.dom("\(base)/", sandbox: sb)
        #expect(
            homePage.contains("id=\"conflict-list\"") && homePage.contains("/records/\(rid)"),
            "\(homePage.prefix(2000))")
        #expect(
            homePage.contains("“needs_fix” (cán bộ tỉnh / hub operator)")
                && homePage.contains("“verified” (máy này / this PC)"))
        #expect(homePage.contains("<b id=\"conflicts\">1</b>"))
        let recordPage = try await chromium.dom("\(base)/records/\(rid)", sandbox: sb)
        #expect(recordPage.contains("id=\"conflict.status\"") && recordPage.contains("“needs_fix”"))
        #expect(!recordPage.contains("id=\"conflict.owner_name\""), "only the conflicted field is marked")
        let shot =
            (ProcessInfo.processInfo.environment["FERRY_SCREENSHOT_DIR"].map { $0 + "/" } ?? sb.root + "/")
            + "entry-conflicts.png"
        try await chromium.screenshot("\(base)/", to: shot, sandbox: sb)
        #expect(try Data(contentsOf: URL(fileURLWithPath: shot)).starts(with: [0x89, 0x50, 0x4E, 0x47]))

        // The operator resolves it; the resolution reaches the PC as a write and the list empties.
        try await sb.ok(["conflicts", "resolve", rid, "status", "--value", "verified", "--hub-dir", hub.dir])
        let (replica, _) = try agentStore(a)
        let cleared = try await waitUntil(timeout: 30) {
            try replica.meta("commune_conflicts_open") == "0" && replica.hubConflicts().isEmpty
        }
        #expect(cleared, "the PC still shows the conflict: \(sb.log("agent").suffix(800))")
        let after = try await chromium.dom("\(base)/", sandbox: sb)
        #expect(!after.contains("id=\"conflict-list\"") && after.contains("<b id=\"conflicts\">0</b>"))
    }

    static let formHeaders = ["Content-Type": "application/x-www-form-urlencoded"]

    static func csrf(_ html: String) -> String? {
        guard let r = html.range(of: "name=\"_csrf\" value=\"") else { return nil }
        let rest = html[r.upperBound...]
        return rest.firstIndex(of: "\"").map { String(rest[..<$0]) }
    }

    static func encode(_ fields: [String: String]) -> [UInt8] {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return Array(
            fields.map { k, v in
                "\(k.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")=\(v.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")"
            }.joined(separator: "&").utf8)
    }
}

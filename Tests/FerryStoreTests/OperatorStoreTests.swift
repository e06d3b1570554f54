import FerryCore
import FerryCrypto
import FerryHub
import FerryPostgres
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Logging
import Testing

/// The operator features on every hub backend (issues 10/11): accounts and
/// console sessions, keyset pages with cursors, form drafts, retire and
/// migrate, the CSV import ledger, quarantine fix/release and search, run
/// through the hub's real operator endpoints against SQLite and PostgreSQL.
struct OperatorStoreTests {
    /// A second handle on the same store: reopened file, or another "hub process" on the database.
    static func reopen(_ store: any HubServiceStore, _ dir: TempDir, wall: any WallClock) throws -> any HubServiceStore
    {
        if let pg = store as? PostgresHubStore {
            let url = try #require(PostgresStoreTests.url(of: pg))
            return try PostgresHubStore(url: url, wall: wall)
        }
        return try SQLiteHubStore(path: dir.file("hub.sqlite"), wall: wall)
    }

    static func service(_ store: any HubServiceStore) -> HubService {
        HubService(
            store: store, identity: Identity(), operatorToken: "bootstrap", logger: Logger(label: "test"),
            passwordCost: .test)
    }

    static let admin = OperatorIdentity(name: "lan", role: .admin)

    /// GET/POST an operator endpoint as `admin`; the decoded answer.
    static func call<T: Decodable>(
        _ s: HubService, _ method: String, _ path: String, query: [String: String] = [:], body: [UInt8] = [],
        as: T.Type
    ) throws -> T {
        let r = s.operatorRequest(
            method: method, path: path.split(separator: "/").map(String.init), query: query, body: body,
            identity: admin)
        #expect(r.status == 200, "\(method) \(path): \(String(decoding: r.body, as: UTF8.self))")
        return try HubJSON.decoder.decode(T.self, from: Data(r.body))
    }

    @Test(arguments: Backend.allCases)
    func accountsTokensSessionsAndTheOperatorLogPersistAndDisablingEndsThem(_ backend: Backend) throws {
        let dir = try TempDir("op-accounts")
        defer { dir.remove() }
        let clock = ManualClock()
        let store = try backend.hubStore(dir.path, wall: clock)
        let hash = try #require(PasswordHash.hash("lan-password", cost: .test))
        try store.addOperator(
            OperatorAccount(name: "lan", role: .operator, disabled: false, createdMs: 1, passwordHash: hash))
        try store.addOperator(
            OperatorAccount(name: "bình", role: .viewer, disabled: false, createdMs: 2, passwordHash: nil))
        #expect(throws: HubError.self) {
            try store.addOperator(
                OperatorAccount(name: "lan", role: .admin, disabled: false, createdMs: 3, passwordHash: nil))
        }
        let digest = [UInt8](repeating: 7, count: 32)
        try store.addOperatorToken(name: "lan", tokenHash: digest, label: "cli", expiresMs: clock.nowMillis() + 60_000)
        #expect(try store.operatorAccount(tokenHash: digest)?.name == "lan")
        #expect(try store.operatorAccount(tokenHash: [UInt8](repeating: 8, count: 32)) == nil)
        try store.logOperatorAction(
            OperatorAction(atMs: 5, user: "lan", action: "conflicts/resolve", record: "r1", detail: "field=status"))
        try store.logOperatorAction(
            OperatorAction(atMs: 6, user: "lan", action: "records", record: "r2", detail: "fields=a"))
        let session = OperatorSession(
            idHash: [UInt8](repeating: 1, count: 32), name: "lan", role: .operator, csrf: "c1",
            expiresMs: clock.nowMillis() + 1000)
        try store.addOperatorSession(session, keep: 10)

        // Reopened (or a second hub process): everything is there.
        let other = try Self.reopen(store, dir, wall: clock)
        let lan = try #require(try other.operatorAccount(name: "lan"))
        #expect(lan.role == .operator && !lan.disabled && lan.passwordHash == hash)
        #expect(PasswordHash.verify("lan-password", against: try #require(lan.passwordHash)))
        #expect(!PasswordHash.verify("wrong-password", against: try #require(lan.passwordHash)))
        #expect(
            try other.operatorAccounts().map(\.name)
                == ["bình", "lan"].sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        #expect(try other.operatorActions(record: "r1", limit: 10).map(\.detail) == ["field=status"])
        #expect(try other.operatorActions(record: nil, limit: 10).map(\.record) == ["r2", "r1"])
        #expect(try other.operatorSession(idHash: session.idHash) == session)

        try other.setOperatorDisabled(name: "lan", disabled: true)
        #expect(try store.operatorAccount(tokenHash: digest) == nil, "a disabled user's token stops working")
        try other.setOperatorDisabled(name: "lan", disabled: false)
        #expect(try store.operatorAccount(tokenHash: digest)?.name == "lan")
        #expect(throws: HubError.self) { try other.setOperatorDisabled(name: "nobody", disabled: true) }

        // Sessions end: on expiry, when deleted, and past the bound the oldest makes room.
        clock.advance(by: 1001)
        #expect(try store.operatorSession(idHash: session.idHash) == nil, "an expired session is gone")
        for i in 0..<4 {
            var s = session
            s.idHash = [UInt8](repeating: UInt8(10 + i), count: 32)
            s.expiresMs = clock.nowMillis() + 1000 + UInt64(i)
            try store.addOperatorSession(s, keep: 3)
        }
        #expect(try store.operatorSession(idHash: [UInt8](repeating: 10, count: 32)) == nil, "the oldest made room")
        #expect(try other.operatorSession(idHash: [UInt8](repeating: 13, count: 32))?.csrf == "c1")
        try other.deleteOperatorSession(idHash: [UInt8](repeating: 13, count: 32))
        #expect(try store.operatorSession(idHash: [UInt8](repeating: 13, count: 32)) == nil)
        clock.advance(by: 60_000)
        #expect(try store.operatorAccount(tokenHash: digest) == nil, "an expired token stops working")
    }

    /// `n` records of the agent's commune with a conflict on `status` each.
    static func conflicted(_ t: HubAndAgent, _ n: Int) throws -> [RecordID] {
        let ids = try t.agent.createMany(
            form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(n, seed: 3))
        try t.upload()
        try t.download()
        for rid in ids {
            try t.agent.update(rid, values: ["status": .string("verified")])
            try t.hub.operatorWrite(record: rid, values: ["status": .string("needs_fix")], resolve: false)
        }
        let r = try #require(try t.upload())
        #expect(r.conflictsOpen == n)
        return ids
    }

    /// Follows a list's cursors to its end; every page's `remaining` is checked against what follows.
    static func pages<T: Codable & Sendable>(
        _ s: HubService, _ path: String, limit: Int, query: [String: String] = [:], as: T.Type
    ) throws -> [[T]] {
        var out: [[T]] = []
        var cursor: String?
        var remaining: [Int] = []
        for _ in 0..<100 {
            var q = query
            q["limit"] = "\(limit)"
            if let cursor { q["cursor"] = cursor }
            let p = try call(s, "GET", path, query: q, as: PageV1<T>.self)
            out.append(p.items)
            remaining.append(p.remaining)
            guard let next = p.nextCursor else { break }
            cursor = next
        }
        let total = out.map(\.count).reduce(0, +)
        var seen = 0
        for (i, page) in out.enumerated() {
            seen += page.count
            #expect(remaining[i] == total - seen, "\(path) page \(i) says \(remaining[i]) more")
        }
        return out
    }

    @Test(arguments: Backend.allCases)
    func everyListPagesByCursorInKeyOrderAndSaysHowManyMore(_ backend: Backend) throws {
        let dir = try TempDir("op-pages")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let s = Self.service(t.hub)
        let ids = try Self.conflicted(t, 11)
        let other = try t.hub.operatorCreate(
            form: try Fixture.form, commune: Fixture.otherCommune, values: Fixture.rows(1, seed: 9)[0])

        let records = try Self.pages(s, "records", limit: 4, as: HubRecordJSON.self)
        #expect(records.map(\.count) == [4, 4, 4])
        let all = (ids + [other]).map(\.description)
        #expect(records.flatMap { $0.map(\.id) } == all.sorted(by: >), "newest first, each once")
        let mine = try Self.pages(s, "records", limit: 5, query: ["commune": Fixture.commune], as: HubRecordJSON.self)
        #expect(Set(mine.flatMap { $0.map(\.id) }) == Set(ids.map(\.description)))

        let conflicts = try Self.pages(s, "conflicts", limit: 3, as: ConflictReport.self)
        #expect(conflicts.map(\.count) == [3, 3, 3, 2])
        #expect(conflicts.flatMap { $0.map(\.record) } == ids.map(\.description).sorted(), "key order, each once")
        #expect(conflicts.joined().allSatisfy { $0.field == "status" && $0.sides.count == 2 })
        let byField = try Self.call(
            s, "GET", "conflicts", query: ["field": "owner_name"], as: PageV1<ConflictReport>.self)
        #expect(byField.items.isEmpty && byField.remaining == 0)
        let byCommune = try Self.pages(
            s, "conflicts", limit: 20, query: ["commune": Fixture.otherCommune], as: ConflictReport.self)
        #expect(byCommune.joined().isEmpty)

        let agents = try Self.call(s, "GET", "agents", query: ["limit": "1"], as: PageV1<AgentJSON>.self)
        #expect(agents.items.map(\.id) == [t.info.id] && agents.remaining == 0 && agents.nextCursor == nil)
        let audit = try Self.pages(s, "audit/\(ids[0])", limit: 1, as: AuditEntry.self)
        #expect(audit.joined().count == 2 && audit.joined().allSatisfy(\.signatureValid), "create and update")

        // A cursor this hub did not give out is refused, never read as "from the start".
        let bad = s.operatorRequest(
            method: "GET", path: ["conflicts"], query: ["cursor": "zz"], body: [], identity: Self.admin)
        #expect(bad.status == 400)

        // Resolving one shortens the list by one; the open ones per record and commune agree.
        try t.hub.resolve(record: ids[0], field: "status", value: nil)
        #expect(try t.hub.openConflicts(record: ids[0]).isEmpty)
        #expect(try t.hub.openConflicts(record: ids[1]).map(\.field) == ["status"])
        #expect(try t.hub.openItemsByCommune().conflicts == [Fixture.commune: 10])
        let after = try Self.pages(s, "conflicts", limit: 4, as: ConflictReport.self)
        #expect(after.joined().count == 10)
    }

    @Test(arguments: Backend.allCases)
    func draftsStayHiddenUntilPublishedRetireStreamsAgainAndMigrationKeepsEveryValue(_ backend: Backend) throws {
        let dir = try TempDir("op-forms")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let s = Self.service(t.hub)
        let ids = try t.agent.createMany(
            form: try Fixture.form, commune: Fixture.commune, rows: Fixture.rows(5, seed: 4))
        try t.upload()
        var v2 = try Fixture.form
        v2.version = 2
        v2.fields.append(FieldSpec(name: "note", type: .string, label: "Ghi chú"))
        // members ≤ 3 in v2: some records' values are reported, none dropped.
        if let i = v2.fields.firstIndex(where: { $0.name == "members" }) { v2.fields[i].max = 3 }
        let body = Array(try JSONEncoder().encode(v2))
        _ = try Self.call(s, "POST", "forms", query: ["draft": "true"], body: body, as: FormDefinition.self)
        #expect(try t.hub.drafts().map(\.version) == [2])
        #expect(try t.hub.forms().map(\.version) == [1], "agents do not see a draft")
        let bad = s.operatorRequest(
            method: "POST", path: ["forms", "land-record", "3", "publish"], query: [:], body: [], identity: Self.admin)
        #expect(bad.status == 404)
        _ = try Self.call(s, "POST", "forms/land-record/2/publish", as: FormDefinition.self)
        #expect(try t.hub.drafts().isEmpty && Set(t.hub.forms().map(\.version)) == [1, 2])

        let head = try t.hub.streamSeq()
        _ = try Self.call(s, "POST", "forms/land-record/1/retire", as: [String: String].self)
        #expect(try t.hub.forms().first { $0.version == 1 }?.retired == true)
        #expect(try t.hub.streamSeq() == head + 1, "the retired version streams again")

        let tooMany = try t.hub.winners(commune: Fixture.commune).values.filter {
            if case .int(let m)? = $0["members"] { return m > 3 }
            return false
        }.count
        let dry = try Self.call(
            s, "POST", "forms/land-record/migrate",
            body: Array(try JSONEncoder().encode(MigrationRequest(from: 1, to: 2, dryRun: true))),
            as: MigrationReportV1.self)
        #expect(dry.records == 5 && dry.problemCount == tooMany && dry.dryRun)
        #expect(try t.hub.record(ids[0])?.scope.formVersion == 1, "a dry run changes nothing")
        let before = try t.hub.winners(commune: Fixture.commune)
        let leaves = try t.hub.totals()["leaves"] ?? 0
        let real = try Self.call(
            s, "POST", "forms/land-record/migrate",
            body: Array(try JSONEncoder().encode(MigrationRequest(from: 1, to: 2))), as: MigrationReportV1.self)
        #expect(real.records == 5 && real.problemCount == tooMany)
        #expect(try ids.allSatisfy { try t.hub.record($0)?.scope.formVersion == 2 })
        #expect(try t.hub.winners(commune: Fixture.commune) == before, "every value carried, none dropped")
        #expect(try t.hub.streamSeq() == head + 1 + UInt64(leaves), "every leaf streams again under v2")
        let page = try t.hub.changes(
            for: try #require(try t.hub.agent(id: t.info.id)), since: head + 1, maxBytes: 1 << 22)
        #expect(page.body.writes.isEmpty, "the agent's own writes are not sent back to it")
        #expect(
            try t.hub.operatorActions(record: nil, limit: 10).map(\.action).prefix(4) == [
                "form.migrate", "form.retire", "form.publish", "form.draft",
            ])
    }

    @Test(arguments: Backend.allCases)
    func aCSVFileImportsOnceAllOrNoneAndAgainOnlyOnPurpose(_ backend: Backend) throws {
        let dir = try TempDir("op-csv")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let s = Self.service(t.hub)
        let csv = Array(
            """
            owner_name,owner_id,address,status
            "Võ Văn Phúc",079123456789,"Ấp 3, xã Long Phước, Bà Rịa",submitted
            Nguyễn Thị Hoa,079123456790,Tổ 5 phường Phước Trung,draft

            """.utf8)
        let q = ["form": "land-record", "commune": Fixture.commune]
        let first = try Self.call(s, "POST", "records/import", query: q, body: csv, as: CSVImportResultV1.self)
        #expect(first.imported == 2)
        #expect(try t.hub.totals()["records"] == 2)
        let again = s.operatorRequest(
            method: "POST", path: ["records", "import"], query: q, body: csv, identity: Self.admin)
        #expect(again.status == 409 && String(decoding: again.body, as: UTF8.self).contains("already imported"))
        #expect(try t.hub.totals()["records"] == 2, "nothing doubles")
        #expect(try t.hub.csvImport(digest: RecordsCSV.parse(csv).digest)?.by == "lan")
        var onPurpose = q
        onPurpose["again"] = "true"
        _ = try Self.call(s, "POST", "records/import", query: onPurpose, body: csv, as: CSVImportResultV1.self)
        #expect(try t.hub.totals()["records"] == 4)
        // A bad row refuses the whole file.
        let broken = Array("owner_name,owner_id,status\nVõ Văn Phúc Hai,12,submitted\n".utf8)
        let r = s.operatorRequest(
            method: "POST", path: ["records", "import"], query: q, body: broken, identity: Self.admin)
        #expect(r.status == 400)
        #expect(try t.hub.totals()["records"] == 4)
        #expect(try t.hub.csvImport(digest: RecordsCSV.parse(broken).digest) == nil)

        // Search finds the quoted Vietnamese value, ASCII case-insensitively, within a commune.
        let found = try t.hub.searchRecords(text: "Võ Văn", commune: nil, limit: 10)
        #expect(found.count == 2)
        #expect(try t.hub.searchRecords(text: "LONG phước", commune: Fixture.commune, limit: 10) == found)
        #expect(try t.hub.searchRecords(text: "Võ Văn", commune: Fixture.otherCommune, limit: 10).isEmpty)
        #expect(try t.hub.searchRecords(text: "100%_", commune: nil, limit: 10).isEmpty, "% and _ are literal")
        #expect(try t.hub.searchRecords(text: "  ", commune: Fixture.commune, limit: 3).count == 3)
    }

    @Test(arguments: Backend.allCases)
    func aQuarantinedValueIsFixedOrReleasedOnceByAPersonWithAnAuditLine(_ backend: Backend) throws {
        let dir = try TempDir("op-quarantine")
        defer { dir.remove() }
        let t = try HubAndAgent(dir, backend)
        let s = Self.service(t.hub)
        let rid = try t.agent.create(
            form: try Fixture.form, commune: Fixture.commune, values: Fixture.rows(1, seed: 5)[0])
        try t.upload()
        // Two invalid values from the agent (as a buggy or hostile replica would send).
        let now = try t.agent.now()
        let seen = try #require(try t.agent.record(rid)).fields
        let writes = [
            FieldWrite(
                record: rid, field: "owner_id", id: WriteID(hlc: now, origin: t.agent.origin),
                prev: [try #require(seen["owner_id"]).id], value: .string("12")),
            FieldWrite(
                record: rid, field: "status", id: WriteID(hlc: now, origin: t.agent.origin),
                prev: [try #require(seen["status"]).id], value: .string("XYZ")),
        ]
        let applied = try #require(try t.hub.agent(id: t.info.id)).appliedSeq
        let sealed = try t.seal(
            ChangeSetBody(
                writes: writes,
                scopes: [rid: RecordScope(formID: "land-record", formVersion: 1, commune: Fixture.commune)]),
            seqFrom: applied + 1, seqTo: applied + 2, now: now)
        _ = try IngestPipeline.apply(try t.open(sealed.envelope), from: t.info.id, store: t.hub)
        let open = try Self.call(s, "GET", "quarantine", query: ["limit": "1"], as: PageV1<QuarantineEntry>.self)
        #expect(open.items.count == 1 && open.remaining == 1 && open.nextCursor != nil)
        let entries = try Self.pages(s, "quarantine", limit: 1, as: QuarantineEntry.self).joined().map { $0 }
        #expect(entries.map(\.field) == ["owner_id", "status"] && entries[0].id < entries[1].id)
        #expect(try t.hub.openItemsByCommune().quarantined == [Fixture.commune: 2])

        let fixed = try s.quarantineFix(id: entries[0].id, value: "079123456789", note: nil, by: "lan")
        #expect(fixed.entry.status == QuarantineStatus.fixed && fixed.entry.closedBy == "lan")
        #expect(fixed.current == .string("079123456789"))
        #expect(try t.hub.record(rid)?.winners["owner_id"] == .string("079123456789"))
        let released = try s.quarantineRelease(id: entries[1].id, note: "kept as entered", by: "lan")
        #expect(released.entry.status == QuarantineStatus.released && released.entry.note == "kept as entered")
        #expect(throws: HubError.self) { try s.quarantineRelease(id: entries[1].id, note: nil, by: "lan") }
        #expect(throws: HubError.self) {
            try s.quarantineFix(id: entries[0].id, value: "079123456780", note: nil, by: "other")
        }
        #expect(try t.hub.quarantineEntry(id: 999_999) == nil)
        let none = try Self.call(s, "GET", "quarantine", as: PageV1<QuarantineEntry>.self)
        #expect(none.items.isEmpty && none.remaining == 0)
        let all = try Self.call(s, "GET", "quarantine", query: ["status": "all"], as: PageV1<QuarantineEntry>.self)
        #expect(all.items.map(\.status) == [QuarantineStatus.fixed, QuarantineStatus.released])
        #expect(
            try t.hub.operatorActions(record: nil, limit: 5).map(\.action) == [
                "quarantine.released", "quarantine.fixed",
            ])
    }
}

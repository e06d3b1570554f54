import FerryCore
import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

/// The seeded histories of the merge property tests (``MergeScenario``), run
/// through the stores that ship: real ``AgentStore`` replicas and the real
/// ``IngestPipeline`` over a ``SQLiteHubStore``, on SQLite files, with real
/// sealed envelopes and the hub's paged stream.
///
/// Both hub backends run the histories (issue 10). `FERRY_STORE_PROPERTY_CASES`
/// sets the number of cases on SQLite (default 1,000),
/// `FERRY_STORE_PROPERTY_CASES_PG` on PostgreSQL (default 48: each case is a
/// fresh database); `FERRY_PROPERTY_SEED` replays one and prints its trace.
struct ShippedStorePropertyTests {
    static let batches = 8
    static func casesPerBatch(_ backend: Backend) -> Int {
        let (key, standard) =
            backend == .sqlite ? ("FERRY_STORE_PROPERTY_CASES", 1_000) : ("FERRY_STORE_PROPERTY_CASES_PG", 48)
        let n = ProcessInfo.processInfo.environment[key].flatMap { Int($0) }.map { max(1, $0) } ?? standard
        return (n + batches - 1) / batches
    }

    @Test(
        "Real replicas converge on the real hub's winners; re-delivery and re-pulls change nothing",
        arguments: Backend.allCases, 0..<batches)
    func shippedStoresConverge(backend: Backend, batch: Int) throws {
        let n = Self.casesPerBatch(backend)
        var seeds: [UInt64] = []
        if let one = ProcessInfo.processInfo.environment["FERRY_PROPERTY_SEED"].flatMap({ UInt64($0) }) {
            if batch == 0 { seeds = [one] }
        } else {
            seeds = (batch * n..<(batch + 1) * n).map { i in
                var g = SeededGenerator(seed: 7 &* 0x1000_0000 &+ UInt64(i))
                return g.next()
            }
        }
        var failures: [(UInt64, [String])] = []
        var totals = StoreRun.Stats()
        for seed in seeds {
            let run = try StoreRun(scenario: MergeScenario.generate(seed: seed), backend: backend)
            let violations = try run.run()
            totals += run.stats
            if seeds.count == 1 { print(run.trace.joined(separator: "\n")) }
            if !violations.isEmpty { failures.append((seed, violations)) }
            run.close()
        }
        #expect(
            failures.isEmpty,
            "failing seeds (replay with FERRY_PROPERTY_SEED): \(failures.prefix(3).map { "\($0.0): \($0.1.prefix(5))" })"
        )
        guard seeds.count >= 100 else { return }
        // The histories must reach the interesting cases on these stores too.
        #expect(totals.applied > 0 && totals.duplicates > 0 && totals.pages > totals.pulls)
        #expect(totals.conflictsSeen > 0 && totals.resolutions > 0 && totals.staleAnswers > 0)
    }
}

/// One scenario on real stores.
final class StoreRun {
    struct Stats {
        var applied = 0, duplicates = 0, pulls = 0, pages = 0, conflictsSeen = 0, resolutions = 0, staleAnswers = 0
        static func += (a: inout Stats, b: Stats) {
            a.applied += b.applied
            a.duplicates += b.duplicates
            a.pulls += b.pulls
            a.pages += b.pages
            a.conflictsSeen += b.conflictsSeen
            a.resolutions += b.resolutions
            a.staleAnswers += b.staleAnswers
        }
    }

    struct Agent {
        var store: AgentStore
        var identity: Identity
        var id: String
        var commune: String
        /// Envelopes the hub acknowledged, for re-delivery.
        var sent: [[UInt8]] = []
        /// Pull answers held back: (since, body, seqTo).
        var held: [(UInt64, ChangeSetBody, UInt64)] = []
        var records: [RecordID] = []
    }

    static let form = FormDefinition(
        id: "sim", version: 1, title: "Simulated land record",
        fields: [
            FieldSpec(name: "owner", type: .string), FieldSpec(name: "area_m2", type: .double),
            FieldSpec(name: "parcel_no", type: .int), FieldSpec(name: "issued_on", type: .date),
            FieldSpec(name: "village", type: .string),
        ])

    let scenario: MergeScenario
    let dir: String
    let hub: any HubServiceStore
    let hubIdentity = Identity()
    var agents: [Agent] = []
    let walls: [ManualClock]
    var stats = Stats()
    var trace: [String] = []
    var violations: [String] = []

    init(scenario: MergeScenario, backend: Backend) throws {
        self.scenario = scenario
        // tmpfs when there is one: durability is tested elsewhere, and fsync would dominate here.
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        dir = base + "/ferry-prop-\(getpid())-\(scenario.seed)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SeededGenerator(seed: scenario.seed ^ 0xC10C)
        walls = (0...scenario.agents).map { _ in
            ManualClock(millis: 1_764_000_000_000 + UInt64.random(in: 0...60_000, using: &rng))
        }
        hub = try backend.hubStore(dir, wall: walls[scenario.agents], futureBoundMillis: 86_400_000)
        try hub.publish(form: Self.form)
        let item = CatalogItem(kind: .form, key: "sim@1", seq: 1, json: Array(try JSONEncoder().encode(Self.form)))
        for i in 0..<scenario.agents {
            let c = Seed.communes[i]
            try hub.publish(.commune, key: c.code, json: Array(try JSONEncoder().encode(c)))
            let identity = Identity()
            let info = try hub.enroll(
                secret: try hub.issueToken(commune: c.code), commune: c.code, signKey: identity.signing.publicKey,
                kxKey: identity.kx.publicKey, hostname: "sim-\(i)")
            let store = try AgentStore(path: dir + "/agent-\(i).sqlite", origin: OriginID(info.id), wall: walls[i])
            try store.putCatalog([item])
            agents.append(Agent(store: store, identity: identity, id: info.id, commune: c.code))
        }
    }

    func close() { try? FileManager.default.removeItem(atPath: dir) }

    /// A value of the field's type, chosen by `v` (null sometimes).
    static func value(_ field: String, _ v: UInt64) -> Value {
        if v % 8 == 5 { return .null }
        let generic = MergeSimulation.value(v)
        switch field {
        case "area_m2": return .double(Double((v >> 8) % 100_000) / 8)
        case "parcel_no": return .int(Int64((v >> 8) % 10_000))
        case "issued_on": return .date(Int32(18_000 + (v >> 8) % 3_000))
        default:
            if case .text = generic { return generic }
            return .string("Thôn \((v >> 8) % 50)")
        }
    }

    func fail(_ s: String) {
        violations.append(s)
        trace.append("  !! \(s)")
    }

    // MARK: the exchange, as SyncEngine does it

    func seal(_ a: Int, _ body: ChangeSetBody, _ ctx: FreezeContext) throws -> (id: [UInt8], envelope: [UInt8]) {
        let ag = agents[a]
        let keys = try ag.identity.kx.clientSessionKeys(server: hubIdentity.kx.publicKey)
        let header = ChangeSetHeader(
            id: randomBytes(16), origin: OriginID(ag.id), seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, ack: ctx.hubCursor,
            senderKeyID: ag.identity.signing.publicKey.id, recipientKeyID: hubIdentity.kx.publicKey.id,
            createdHLC: ctx.now, commune: ag.commune)
        let s = try Envelope.seal(header: header, body: body, signer: ag.identity.signing, key: keys.transmit)
        return (s.header.id, s.envelope)
    }

    func ingest(_ a: Int, _ envelope: [UInt8]) throws -> IngestResult {
        let ag = agents[a]
        let keys = try hubIdentity.kx.serverSessionKeys(client: ag.identity.kx.publicKey)
        let opened = try Envelope.open(
            envelope, recipientKeyID: hubIdentity.kx.publicKey.id, author: ag.identity.signing.publicKey,
            key: keys.receive)
        let o = try IngestPipeline.apply(opened, from: ag.id, store: hub)
        if !o.notices.isEmpty { fail("\(ag.id): \(o.notices.count) writes quarantined: \(o.notices[0].reason)") }
        return o.result
    }

    /// Freezes (or takes the change set in flight) and sends it; true when one was sent.
    @discardableResult
    func send(_ a: Int) throws -> Bool {
        guard let f = try agents[a].store.freeze(maxWrites: 40, seal: { try self.seal(a, $0, $1) }) else {
            return false
        }
        let r = try ingest(a, f.envelope)
        if r.status == "applied" { stats.applied += 1 } else { stats.duplicates += 1 }
        trace.append("\(agents[a].id) sends \(f.seqFrom)...\(f.seqTo): \(r.status)")
        try agents[a].store.acknowledge(upTo: r.cursor)
        agents[a].sent.append(f.envelope)
        return true
    }

    /// One page of the hub's stream since `since` (small pages, so paging is exercised).
    func page(_ a: Int, since: UInt64) throws -> (ChangeSetBody, UInt64, Bool) {
        guard let info = try hub.agent(id: agents[a].id) else { throw StoreError("agent vanished") }
        let c = try hub.changes(for: info, since: since, maxBytes: 4096)
        stats.pages += 1
        return (c.body, c.seqTo, c.more)
    }

    /// Applies an answer to a pull from `since` the way SyncEngine does: only when
    /// it starts at the agent's cursor; a stale answer is applied without moving the cursor back.
    func apply(_ a: Int, since: UInt64, _ body: ChangeSetBody, _ seqTo: UInt64) throws {
        let cursor = try agents[a].store.counts().hubCursor
        if since == cursor {
            try agents[a].store.applyRemote(body, cursor: seqTo)
        } else {
            stats.staleAnswers += 1
            try agents[a].store.applyRemote(body, cursor: max(cursor, seqTo))
        }
    }

    func pullAll(_ a: Int) throws {
        stats.pulls += 1
        for _ in 0..<500 {
            let since = try agents[a].store.counts().hubCursor
            let (body, seqTo, more) = try page(a, since: since)
            try apply(a, since: since, body, seqTo)
            if !more { return }
        }
        fail("\(agents[a].id): the stream did not end within 500 pages")
    }

    // MARK: running

    func run() throws -> [String] {
        for op in scenario.ops { try step(op) }
        try quiesce()
        try check(resolvedAll: false)
        for _ in 0..<500 {
            guard let c = try hub.conflicts(limit: 1).first, let rid = RecordID(c.record) else { break }
            try hub.resolve(record: rid, field: c.field, value: nil)
            stats.resolutions += 1
        }
        try quiesce()
        try check(resolvedAll: true)
        return violations
    }

    func step(_ op: MergeOp) throws {
        let n = scenario.agents
        func pick<T>(_ xs: [T], _ r: UInt64) -> T? { xs.isEmpty ? nil : xs[Int(r % UInt64(xs.count))] }
        switch op {
        case .create(let a, let bits):
            var rng = SeededGenerator(seed: bits)
            let rid = RecordID.v7(millis: walls[a].nowMillis(), using: &rng)
            var values: [String: Value] = [:]
            for f in MergeSimulation.fields where rng.next() % 2 == 0 { values[f] = Self.value(f, rng.next()) }
            if values.isEmpty { values["owner"] = .string("Nguyễn Văn An") }
            try agents[a].store.create(form: Self.form, commune: agents[a].commune, values: values, id: rid)
            agents[a].records.append(rid)
            trace.append("\(agents[a].id) creates \(rid)")
        case .edit(let a, let r, let f, let v):
            guard let rid = pick(agents[a].records, r) else { return }
            let field = MergeSimulation.fields[Int(f % UInt64(MergeSimulation.fields.count))]
            // Refused on a deleted record (StoreError): the agent's rule, not a failure.
            try? agents[a].store.update(rid, values: [field: Self.value(field, v)])
        case .delete(let a, let r):
            guard let rid = pick(agents[a].records, r) else { return }
            try? agents[a].store.delete([rid])
        case .undelete(let a, let r):
            guard let rid = pick(agents[a].records, r) else { return }
            try? agents[a].store.undelete(rid)
        case .freeze(let a):
            _ = try agents[a].store.freeze(maxWrites: 40, seal: { try self.seal(a, $0, $1) })
        case .send(let a):
            try send(a)
        case .resend(let a, let p):
            guard let env = pick(agents[a].sent, p) else { return }
            let before = try hub.totals()
            let r = try ingest(a, env)
            stats.duplicates += 1
            if r.status != "duplicate" { fail("a re-sent change set of \(agents[a].id) was \(r.status)") }
            if try hub.totals() != before { fail("a re-sent change set changed the hub") }
        case .sendAhead:
            // AgentStore keeps one change set in flight, so it cannot send ahead; gaps are tested elsewhere.
            break
        case .pull(let a, let delay), .pullStale(let a, _, let delay):
            var since = try agents[a].store.counts().hubCursor
            if case .pullStale(_, let back, _) = op { since -= min(since, back) }
            stats.pulls += 1
            let (body, seqTo, _) = try page(a, since: since)
            if delay { agents[a].held.append((since, body, seqTo)) } else { try apply(a, since: since, body, seqTo) }
        case .deliverDelayed(let a, let p):
            guard !agents[a].held.isEmpty else { return }
            let (since, body, seqTo) = agents[a].held.remove(at: Int(p % UInt64(agents[a].held.count)))
            try apply(a, since: since, body, seqTo)
        case .hubCreate(let c, let bits):
            var rng = SeededGenerator(seed: bits)
            let commune = agents[Int(c % UInt64(n))].commune
            _ = try hub.operatorCreate(
                form: Self.form, commune: commune, values: ["owner": Self.value("owner", rng.next())])
        case .hubEdit(let r, let f, let v):
            guard let rid = pick(try hub.recordIDs(commune: nil, limit: 1000), r) else { return }
            let field = MergeSimulation.fields[Int(f % UInt64(MergeSimulation.fields.count))]
            try hub.operatorWrite(record: rid, values: [field: Self.value(field, v)], resolve: false)
        case .hubDelete(let r), .hubUndelete(let r):
            guard let rid = pick(try hub.recordIDs(commune: nil, limit: 1000), r) else { return }
            let del: Bool = if case .hubDelete = op { true } else { false }
            try hub.operatorWrite(record: rid, values: [deletedField: .bool(del)], resolve: false)
        case .hubResolve(let p, let v):
            let open = try hub.conflicts(limit: 50)
            stats.conflictsSeen += open.count
            guard let c = pick(open, p), let rid = RecordID(c.record) else { return }
            let value: Value? = v % 2 == 0 || c.field == deletedField ? nil : Self.value(c.field, v)
            try hub.resolve(record: rid, field: c.field, value: value)
            stats.resolutions += 1
        case .tick(let r, let ms):
            walls[min(r, n)].advance(by: ms)
        }
    }

    func quiesce() throws {
        for a in agents.indices {
            agents[a].held = []
            var sent = 0
            while try send(a) {
                sent += 1
                if sent > 200 { return fail("\(agents[a].id) still had change sets after 200 sends") }
            }
        }
        for _ in 0..<2 { for a in agents.indices { try pullAll(a) } }
    }

    func check(resolvedAll: Bool) throws {
        for a in agents.indices {
            let ag = agents[a]
            let c = try ag.store.counts()
            if c.pendingWrites + c.inFlightWrites > 0 { fail("\(ag.id) still has unsent writes") }
            let mine = try ag.store.fullState()
            let theirs = try hub.winners(commune: ag.commune)
            for rid in Set(mine.keys).union(theirs.keys).sorted() where mine[rid] ?? [:] != theirs[rid] ?? [:] {
                fail("\(ag.id) \(rid): agent \(mine[rid] ?? [:]) hub \(theirs[rid] ?? [:])")
            }
            // Pulling the whole stream again changes nothing.
            let (body, _, _) = try page(a, since: 0)
            try ag.store.applyRemote(body, cursor: nil)
            if try ag.store.fullState() != mine { fail("\(ag.id): re-pulling from 0 changed the replica") }
        }
        // Re-delivering every acknowledged change set is a duplicate and changes nothing.
        let before = try hub.totals()
        for a in agents.indices {
            for env in agents[a].sent where try ingest(a, env).status != "duplicate" {
                fail("a re-delivered change set of \(agents[a].id) was applied again")
            }
        }
        if try hub.totals() != before { fail("re-delivery changed the hub") }
        if resolvedAll, let c = try hub.conflicts(limit: 5).first {
            fail("conflicts remain after resolving every one, e.g. \(c.record)/\(c.field)")
        }
    }
}

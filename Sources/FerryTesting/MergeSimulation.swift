import FerryCore

/// One step of a merge scenario. Choices are raw random numbers resolved
/// against the state when the step runs (a record pick is taken modulo the
/// records the replica knows), so any sub-list of a scenario still runs:
/// that is what lets a failing history be shrunk.
public enum MergeOp: Sendable, Hashable, CustomStringConvertible {
    /// An agent creates a record of its commune with a few fields.
    case create(agent: Int, bits: UInt64)
    /// An agent edits a field of one of its records (refused if the record is deleted).
    case edit(agent: Int, record: UInt64, field: UInt64, value: UInt64)
    /// An agent deletes one of its records (refused if already deleted).
    case delete(agent: Int, record: UInt64)
    /// An agent undeletes one of its records.
    case undelete(agent: Int, record: UInt64)
    /// An agent freezes its outbox into a change set.
    case freeze(agent: Int)
    /// The next change set the hub has not applied reaches it.
    case send(agent: Int)
    /// A change set the hub already applied reaches it again.
    case resend(agent: Int, pick: UInt64)
    /// A change set after the next one reaches the hub first (a gap, refused).
    case sendAhead(agent: Int, pick: UInt64)
    /// The agent pulls from its cursor; the answer may be held back.
    case pull(agent: Int, delay: Bool)
    /// The agent pulls from an older cursor.
    case pullStale(agent: Int, back: UInt64, delay: Bool)
    /// A held-back pull answer arrives.
    case deliverDelayed(agent: Int, pick: UInt64)
    /// The operator creates a record in some commune.
    case hubCreate(commune: UInt64, bits: UInt64)
    /// The operator edits a field (prev = the winner).
    case hubEdit(record: UInt64, field: UInt64, value: UInt64)
    /// The operator deletes a record.
    case hubDelete(record: UInt64)
    /// The operator undeletes a record.
    case hubUndelete(record: UInt64)
    /// The operator resolves one of the current conflicts.
    case hubResolve(pick: UInt64, value: UInt64)
    /// A wall clock moves on (replica = agent index, or the agent count for the hub).
    case tick(replica: Int, millis: UInt64)

    public var description: String {
        switch self {
        case .create(let a, let b): ".create(agent: \(a), bits: \(b))"
        case .edit(let a, let r, let f, let v): ".edit(agent: \(a), record: \(r), field: \(f), value: \(v))"
        case .delete(let a, let r): ".delete(agent: \(a), record: \(r))"
        case .undelete(let a, let r): ".undelete(agent: \(a), record: \(r))"
        case .freeze(let a): ".freeze(agent: \(a))"
        case .send(let a): ".send(agent: \(a))"
        case .resend(let a, let p): ".resend(agent: \(a), pick: \(p))"
        case .sendAhead(let a, let p): ".sendAhead(agent: \(a), pick: \(p))"
        case .pull(let a, let d): ".pull(agent: \(a), delay: \(d))"
        case .pullStale(let a, let b, let d): ".pullStale(agent: \(a), back: \(b), delay: \(d))"
        case .deliverDelayed(let a, let p): ".deliverDelayed(agent: \(a), pick: \(p))"
        case .hubCreate(let c, let b): ".hubCreate(commune: \(c), bits: \(b))"
        case .hubEdit(let r, let f, let v): ".hubEdit(record: \(r), field: \(f), value: \(v))"
        case .hubDelete(let r): ".hubDelete(record: \(r))"
        case .hubUndelete(let r): ".hubUndelete(record: \(r))"
        case .hubResolve(let p, let v): ".hubResolve(pick: \(p), value: \(v))"
        case .tick(let r, let m): ".tick(replica: \(r), millis: \(m))"
        }
    }
}

/// A generated history: how many agents, and the steps.
public struct MergeScenario: Sendable, Hashable {
    /// The seed it was generated from (also seeds the replay order).
    public var seed: UInt64
    /// Number of agents, each owning one commune.
    public var agents: Int
    public var ops: [MergeOp]

    public init(seed: UInt64, agents: Int, ops: [MergeOp]) {
        self.seed = seed
        self.agents = agents
        self.ops = ops
    }

    /// A random scenario of 3–5 agents and 20–120 steps.
    public static func generate(seed: UInt64) -> MergeScenario {
        var rng = SeededGenerator(seed: seed)
        let agents = Int.random(in: 3...5, using: &rng)
        let count = Int.random(in: 20...120, using: &rng)
        var ops: [MergeOp] = []
        ops.reserveCapacity(count)
        for _ in 0..<count {
            let a = Int.random(in: 0..<agents, using: &rng)
            let x = rng.next()
            let y = rng.next()
            let z = rng.next()
            let roll = Int.random(in: 0..<100, using: &rng)
            let op: MergeOp =
                switch roll {
                case 0..<6: .create(agent: a, bits: x)
                case 6..<32: .edit(agent: a, record: x, field: y, value: z)
                case 32..<36: .delete(agent: a, record: x)
                case 36..<39: .undelete(agent: a, record: x)
                case 39..<48: .freeze(agent: a)
                case 48..<58: .send(agent: a)
                case 58..<61: .resend(agent: a, pick: x)
                case 61..<63: .sendAhead(agent: a, pick: x)
                case 63..<71: .pull(agent: a, delay: x % 3 == 0)
                case 71..<74: .pullStale(agent: a, back: x % 20, delay: y % 2 == 0)
                case 74..<77: .deliverDelayed(agent: a, pick: x)
                case 77..<79: .hubCreate(commune: x, bits: y)
                case 79..<85: .hubEdit(record: x, field: y, value: z)
                case 85..<87: .hubDelete(record: x)
                case 87..<88: .hubUndelete(record: x)
                case 88..<95: .hubResolve(pick: x, value: y)
                default: .tick(replica: Int.random(in: 0...agents, using: &rng), millis: x % 3_000)
                }
            ops.append(op)
        }
        return MergeScenario(seed: seed, agents: agents, ops: ops)
    }

    /// The scenario as Swift source, to paste into a regression test.
    public var swiftLiteral: String {
        "MergeScenario(seed: \(seed), agents: \(agents), ops: [\n"
            + ops.map { "    \($0)," }.joined(separator: "\n") + "\n])"
    }
}

/// What one run saw, for checking that the generator reaches the interesting cases.
public struct MergeRunStats: Sendable, Equatable {
    public var writes = 0
    public var changeSetsApplied = 0
    public var duplicatesAcknowledged = 0
    public var gapsRefused = 0
    public var deletedEditsRefused = 0
    public var resolutions = 0
    public var concurrentConflictsAtEnd = 0
    public var editVsDeleteConflictsAtEnd = 0
    public var stalePulls = 0
    public var delayedAnswers = 0
    public init() {}

    public static func += (a: inout MergeRunStats, b: MergeRunStats) {
        a.writes += b.writes
        a.changeSetsApplied += b.changeSetsApplied
        a.duplicatesAcknowledged += b.duplicatesAcknowledged
        a.gapsRefused += b.gapsRefused
        a.deletedEditsRefused += b.deletedEditsRefused
        a.resolutions += b.resolutions
        a.concurrentConflictsAtEnd += b.concurrentConflictsAtEnd
        a.editVsDeleteConflictsAtEnd += b.editVsDeleteConflictsAtEnd
        a.stalePulls += b.stalePulls
        a.delayedAnswers += b.delayedAnswers
    }
}

/// The outcome of running a scenario.
public struct MergeRunResult: Sendable {
    /// Broken properties; empty when the run passed.
    public var violations: [String]
    /// Each step as it resolved ("agent-2 edits 0193…/owner = …").
    public var trace: [String]
    public var stats: MergeRunStats
}

/// Runs merge scenarios: 3–5 ``MemoryAgent``s and a ``MemoryHub``, then
/// quiescence and the convergence checks of DESIGN §4.
public enum MergeSimulation {
    /// Field names of the simulated land-record form (besides `_deleted`).
    public static let fields = ["owner", "area_m2", "parcel_no", "issued_on", "village"]
    static let names = [
        "Nguyễn Văn An", "Trần Thị Bích", "Lê Hoàng Nam", "Phạm Thị Thu Hà", "Đặng Quốc Việt", "Hoàng Thị Lan",
        "Nguye\u{0302}\u{0303}n Thị Mai",  // typed with combining marks; Value.string makes it NFC
    ]
    static let villages = ["Thôn Đông", "Xóm Chùa", "Bản Lác", "Ấp Mỹ Hòa"]
    static let epoch: UInt64 = 1_764_000_000_000

    /// A value of any type, chosen by `v`.
    public static func value(_ v: UInt64) -> Value {
        let k = v >> 8
        switch v % 8 {
        case 0: return .string(names[Int(k % UInt64(names.count))])
        case 1: return .int(Int64(k % 10_000))
        case 2: return .double(Double(k % 100_000) / 8)
        case 3: return .date(Int32(18_000 + k % 3_000))
        case 4: return .bool(k % 2 == 0)
        case 5: return .null
        case 6: return .bytes([UInt8(truncatingIfNeeded: k), UInt8(truncatingIfNeeded: k >> 8)])
        default: return .string(villages[Int(k % UInt64(villages.count))])
        }
    }

    static func commune(_ i: Int) -> String { "2700\(i + 1)" }

    struct World {
        var hub: MemoryHub
        var agents: [MemoryAgent]
        var walls: [ManualClock]  // agents, then the hub
        var applied: [Int]  // per agent: change sets the hub applied
        var delayed: [[HubChanges]]
        var violations: [String] = []
        var trace: [String] = []
        var stats = MergeRunStats()

        init(agents n: Int, seed: UInt64) {
            var rng = SeededGenerator(seed: seed ^ 0xC10C)
            // A bound well above any drift the ticks can make: the future bound is not under test here.
            let bound: UInt64 = 86_400_000
            let walls = (0...n).map { _ in ManualClock(millis: epoch + UInt64.random(in: 0...60_000, using: &rng)) }
            self.walls = walls
            hub = MemoryHub(clock: HybridLogicalClock(wall: walls[n], futureBoundMillis: bound))
            agents = (0..<n).map {
                MemoryAgent(
                    origin: OriginID("agent-\($0 + 1)"), commune: MergeSimulation.commune($0),
                    clock: HybridLogicalClock(wall: walls[$0], futureBoundMillis: bound))
            }
            applied = Array(repeating: 0, count: n)
            delayed = Array(repeating: [], count: n)
        }

        mutating func fail(_ what: String) {
            violations.append(what)
            trace.append("  !! \(what)")
        }
    }

    /// Runs a scenario to quiescence and checks every property.
    public static func run(_ s: MergeScenario) -> MergeRunResult {
        var w = World(agents: s.agents, seed: s.seed)
        for (i, op) in s.ops.enumerated() {
            step(&w, op, index: i, agents: s.agents)
        }
        quiesce(&w)
        check(&w, seed: s.seed, resolvedAll: false)
        // Then the operator works through the whole conflict queue, everyone
        // syncs again, and the same properties hold with no conflict left.
        resolveAll(&w, seed: s.seed)
        quiesce(&w)
        check(&w, seed: s.seed ^ 0xF1A1, resolvedAll: true)
        return MergeRunResult(violations: w.violations, trace: w.trace, stats: w.stats)
    }

    // MARK: Steps

    static func step(_ w: inout World, _ op: MergeOp, index i: Int, agents n: Int) {
        func pick<T>(_ xs: [T], _ r: UInt64) -> T? { xs.isEmpty ? nil : xs[Int(r % UInt64(xs.count))] }
        func note(_ s: String) { w.trace.append("\(tag(i)) \(s)") }
        switch op {
        case .create(let a, let bits):
            var rng = SeededGenerator(seed: bits)
            let record = RecordID.v7(millis: w.walls[a].nowMillis(), using: &rng)
            var values: [String: Value] = [:]
            for f in fields where rng.next() % 2 == 0 { values[f] = value(rng.next()) }
            if values.isEmpty { values["owner"] = value(0) }
            do throws(MemoryReplicaError) {
                let ws = try w.agents[a].create(record: record, values: values)
                w.stats.writes += ws.count
                note(
                    "\(w.agents[a].origin) creates \(record) "
                        + ws.map { "\($0.field)=\($0.value.display)" }.joined(separator: " "))
            } catch { w.fail("\(tag(i)) create refused: \(error)") }

        case .edit(let a, let r, let f, let v):
            guard let record = pick(w.agents[a].records, r) else { return }
            let field = fields[Int(f % UInt64(fields.count))]
            let value = value(v)
            let deleted = w.agents[a].isDeleted(record)
            do throws(MemoryReplicaError) {
                let wr = try w.agents[a].write(record: record, field: field, value: value)
                w.stats.writes += 1
                note("\(w.agents[a].origin) edits \(record)/\(field) = \(value.display) as \(wr.id) prev \(wr.prev)")
                if deleted { w.fail("\(tag(i)) an edit of deleted record \(record) was accepted") }
            } catch {
                if deleted && error.code == .recordDeleted {
                    w.stats.deletedEditsRefused += 1
                    note("\(w.agents[a].origin) may not edit deleted \(record)")
                } else {
                    w.fail("\(tag(i)) edit refused: \(error)")
                }
            }

        case .delete(let a, let r):
            guard let record = pick(w.agents[a].records, r) else { return }
            let deleted = w.agents[a].isDeleted(record)
            do throws(MemoryReplicaError) {
                let wr = try w.agents[a].delete(record: record)
                w.stats.writes += 1
                note("\(w.agents[a].origin) deletes \(record) as \(wr.id) covering \(wr.covers)")
                if deleted { w.fail("\(tag(i)) a second delete of \(record) was accepted") }
            } catch {
                if deleted && error.code == .recordDeleted {
                    w.stats.deletedEditsRefused += 1
                } else {
                    w.fail("\(tag(i)) delete refused: \(error)")
                }
            }

        case .undelete(let a, let r):
            guard let record = pick(w.agents[a].records, r) else { return }
            do throws(MemoryReplicaError) {
                let wr = try w.agents[a].undelete(record: record)
                w.stats.writes += 1
                note("\(w.agents[a].origin) undeletes \(record) as \(wr.id)")
            } catch { w.fail("\(tag(i)) undelete refused: \(error)") }

        case .freeze(let a):
            if let cs = w.agents[a].freeze() {
                note("\(cs.origin) freezes \(cs.seqFrom)...\(cs.seqTo)")
            }

        case .send(let a):
            guard w.applied[a] < w.agents[a].frozen.count else { return }
            let cs = w.agents[a].frozen[w.applied[a]]
            deliver(&w, cs, expect: .apply, index: i)
            w.applied[a] += 1

        case .resend(let a, let p):
            guard w.applied[a] > 0 else { return }
            let cs = w.agents[a].frozen[Int(p % UInt64(w.applied[a]))]
            let before = w.hub.registers
            deliver(&w, cs, expect: .duplicate, index: i)
            if w.hub.registers != before { w.fail("\(tag(i)) a duplicate change set changed the hub") }

        case .sendAhead(let a, let p):
            let waiting = w.agents[a].frozen.count - w.applied[a]
            guard waiting >= 2 else { return }
            let next = w.agents[a].frozen[w.applied[a]]
            let cs = w.agents[a].frozen[w.applied[a] + 1 + Int(p % UInt64(waiting - 1))]
            deliver(&w, cs, expect: .gap(expected: next.seqFrom), index: i)

        case .pull(let a, let delay):
            pull(&w, a, since: w.agents[a].cursor, delay: delay, index: i)

        case .pullStale(let a, let back, let delay):
            let c = w.agents[a].cursor
            w.stats.stalePulls += 1
            pull(&w, a, since: c - min(c, back), delay: delay, index: i)

        case .deliverDelayed(let a, let p):
            guard !w.delayed[a].isEmpty else { return }
            let ch = w.delayed[a].remove(at: Int(p % UInt64(w.delayed[a].count)))
            w.stats.delayedAnswers += 1
            note("\(w.agents[a].origin) gets a late answer since \(ch.since) (head \(ch.head))")
            apply(&w, a, ch, index: i)

        case .hubCreate(let c, let bits):
            var rng = SeededGenerator(seed: bits)
            let record = RecordID.v7(millis: w.walls[n].nowMillis(), using: &rng)
            let commune = commune(Int(c % UInt64(n)))
            let ws = w.hub.operatorCreate(record: record, commune: commune, values: ["owner": value(rng.next())])
            w.stats.writes += ws.count
            note("hub creates \(record) in \(commune)")

        case .hubEdit(let r, let f, let v):
            guard let record = pick(w.hub.recordOrder, r) else { return }
            let field = fields[Int(f % UInt64(fields.count))]
            let wr = w.hub.operatorWrite(record: record, field: field, value: value(v))
            w.stats.writes += 1
            note("hub edits \(record)/\(field) = \(wr.value.display) as \(wr.id) prev \(wr.prev)")

        case .hubDelete(let r):
            guard let record = pick(w.hub.recordOrder, r) else { return }
            let wr = w.hub.operatorWrite(record: record, field: deletedField, value: .bool(true))
            w.stats.writes += 1
            note("hub deletes \(record) as \(wr.id) covering \(wr.covers)")

        case .hubUndelete(let r):
            guard let record = pick(w.hub.recordOrder, r) else { return }
            let wr = w.hub.operatorWrite(record: record, field: deletedField, value: .bool(false))
            w.stats.writes += 1
            note("hub undeletes \(record) as \(wr.id)")

        case .hubResolve(let p, let v):
            guard let c = pick(w.hub.conflicts(), p) else { return }
            w.stats.resolutions += 1
            resolve(&w, c, v, index: i)

        case .tick(let r, let ms):
            w.walls[min(r, n)].advance(by: ms)
        }
    }

    /// How a trace line names the step: its index, or the closing phase.
    static func tag(_ i: Int) -> String {
        i >= 0 ? "#\(i)" : i == -1 ? "sync" : "queue"
    }

    static func deliver(_ w: inout World, _ cs: MemoryChangeSet, expect: SequenceVerdict, index i: Int) {
        do {
            let verdict = try w.hub.receive(cs)
            w.trace.append("\(tag(i)) hub receives \(cs.origin) \(cs.seqFrom)...\(cs.seqTo): \(verdict)")
            if verdict != expect {
                w.fail("\(tag(i)) \(cs.origin) \(cs.seqFrom)...\(cs.seqTo): expected \(expect), got \(verdict)")
            }
            switch verdict {
            case .apply: w.stats.changeSetsApplied += 1
            case .duplicate: w.stats.duplicatesAcknowledged += 1
            case .gap: w.stats.gapsRefused += 1
            default: break
            }
        } catch {
            w.fail("\(tag(i)) hub refused \(cs.origin) \(cs.seqFrom)...\(cs.seqTo): \(error)")
        }
    }

    static func pull(_ w: inout World, _ a: Int, since: UInt64, delay: Bool, index i: Int) {
        let ch = w.hub.changes(since: since, commune: w.agents[a].commune)
        if delay {
            w.delayed[a].append(ch)
            w.trace.append("\(tag(i)) \(w.agents[a].origin) pulls since \(since); the answer is held back")
        } else {
            w.trace.append(
                "\(tag(i)) \(w.agents[a].origin) pulls since \(since): \(ch.writes.count) writes, head \(ch.head)")
            apply(&w, a, ch, index: i)
        }
    }

    static func apply(_ w: inout World, _ a: Int, _ ch: HubChanges, index i: Int) {
        do { try w.agents[a].apply(ch) } catch {
            w.fail("\(tag(i)) \(w.agents[a].origin) refused a pull answer: \(error)")
        }
    }

    static func resolve(_ w: inout World, _ c: Conflict, _ v: UInt64, index i: Int) {
        let key = FieldKey(record: c.record, field: c.field)
        switch c.kind {
        case .concurrentWrites:
            // Keep one of the competing values, or type a new one.
            let value = v % 2 == 0 ? c.writes[Int((v / 2) % UInt64(c.writes.count))].value : value(v / 2)
            let wr = w.hub.operatorWrite(record: c.record, field: c.field, value: value, resolve: true)
            w.trace.append(
                "\(tag(i)) hub resolves \(c.record)/\(c.field) (\(c.writes.count) leaves) with \(value.display) as \(wr.id)"
            )
            if w.hub.registers[key]?.leaves.count != 1 {
                w.fail(
                    "\(tag(i)) resolving \(c.record)/\(c.field) left \(w.hub.registers[key]?.leaves.count ?? 0) leaves")
            }
        case .editVsDelete:
            let how: String
            switch v % 3 {
            case 0:
                w.hub.operatorWrite(record: c.record, field: deletedField, value: .bool(false), resolve: true)
                how = "undeleting"
            case 1:
                w.hub.operatorWrite(
                    record: c.record, field: deletedField, value: .bool(true), resolve: true, coverAllLeaves: true)
                how = "deleting again over every leaf"
            default:
                let kept = c.writes.last?.value ?? .null
                w.hub.operatorWrite(record: c.record, field: c.field, value: kept, resolve: true)
                how = "keeping the edit on the deleted record"
            }
            w.trace.append("\(tag(i)) hub resolves edit-vs-delete on \(c.record)/\(c.field) by \(how)")
            let left = w.hub.conflicts().filter {
                $0.kind == .editVsDelete && $0.record == c.record && $0.field == c.field
            }
            if !left.isEmpty {
                w.fail("\(tag(i)) resolving edit-vs-delete on \(c.record)/\(c.field) by \(how) left \(left.count)")
            }
        }
    }

    // MARK: Quiescence and checks

    static func quiesce(_ w: inout World) {
        w.trace.append("-- quiescence")
        for a in w.agents.indices {
            _ = w.agents[a].freeze()
            while w.applied[a] < w.agents[a].frozen.count {
                deliver(&w, w.agents[a].frozen[w.applied[a]], expect: .apply, index: -1)
                w.applied[a] += 1
            }
            for ch in w.delayed[a] { apply(&w, a, ch, index: -1) }
            w.delayed[a] = []
        }
        for _ in 0..<2 {
            for a in w.agents.indices { pull(&w, a, since: w.agents[a].cursor, delay: false, index: -1) }
        }
    }

    static func resolveAll(_ w: inout World, seed: UInt64) {
        var rng = SeededGenerator(seed: seed ^ 0x2E50_17E5)
        var n = 0
        while let c = w.hub.conflicts().first, n < 500 {
            resolve(&w, c, rng.next(), index: -2)
            n += 1
        }
    }

    static func check(_ w: inout World, seed: UInt64, resolvedAll: Bool) {
        let hub = w.hub
        // Every agent holds exactly the hub's winners for its commune.
        for agent in w.agents {
            if !agent.outbox.isEmpty { w.fail("\(agent.origin) still has \(agent.outbox.count) unsent writes") }
            let mine = agent.winners
            let theirs = hub.winners(commune: agent.commune)
            if mine != theirs {
                let keys = Set(mine.keys).union(theirs.keys).sorted()
                for k in keys where mine[k] != theirs[k] {
                    w.fail(
                        "\(agent.origin) \(k.record)/\(k.field): agent winner \(mine[k].map { "\($0.id)=\($0.value.display)" } ?? "none"), "
                            + "hub winner \(theirs[k].map { "\($0.id)=\($0.value.display)" } ?? "none")")
                }
            }
        }
        // The hub's winner is the highest write it ever applied to the field,
        // which is what lets agents keep only a maximum (WinnerRegister).
        var highest: [FieldKey: WriteID] = [:]
        for wr in hub.log {
            let k = FieldKey(record: wr.record, field: wr.field)
            highest[k] = max(highest[k] ?? wr.id, wr.id)
        }
        for (k, reg) in hub.registers where reg.winner?.id != highest[k] {
            w.fail(
                "hub winner of \(k.record)/\(k.field) is \(reg.winner?.id.description ?? "none"), highest write is \(highest[k]?.description ?? "none")"
            )
        }
        // Re-delivery and re-pulling change nothing.
        var again = hub
        for agent in w.agents {
            for cs in agent.frozen {
                if (try? again.receive(cs)) != .duplicate {
                    w.fail("re-delivered \(cs.origin) \(cs.seqFrom)...\(cs.seqTo) was not a duplicate")
                }
            }
        }
        if again.registers != hub.registers || again.head != hub.head { w.fail("re-delivery changed the hub") }
        for var agent in w.agents {
            let before = agent.winners
            try? agent.apply(hub.changes(since: 0, commune: agent.commune))
            if agent.winners != before { w.fail("\(agent.origin): pulling from cursor 0 changed its winners") }
        }
        // The leaves, so the conflicts, depend only on the set of writes: replay
        // them into fresh hubs in other causal orders.
        let conflicts = hub.conflicts()
        var rng = SeededGenerator(seed: seed ^ 0x5EED_0F0D)
        for round in 0..<2 {
            let order = causalShuffle(hub.log, using: &rng)
            var fresh = MemoryHub(
                clock: HybridLogicalClock(wall: ManualClock(millis: epoch), futureBoundMillis: 86_400_000 * 365))
            for wr in order {
                do { try fresh.apply(wr, commune: hub.communes[wr.record] ?? "") } catch {
                    w.fail("replay \(round): \(error)")
                }
            }
            if fresh.registers != hub.registers {
                let bad = Set(fresh.registers.keys).union(hub.registers.keys).filter {
                    fresh.registers[$0] != hub.registers[$0]
                }
                w.fail(
                    "replay \(round): leaves differ on \(bad.count) fields, e.g. \(bad.sorted().first.map { "\($0.record)/\($0.field)" } ?? "")"
                )
            }
            let replayed = fresh.conflicts()
            if replayed != conflicts {
                w.fail("replay \(round): \(replayed.count) conflicts, the hub has \(conflicts.count)")
            }
        }
        if resolvedAll {
            if !conflicts.isEmpty { w.fail("\(conflicts.count) conflicts remain after resolving every one") }
        } else {
            w.stats.concurrentConflictsAtEnd = conflicts.filter { $0.kind == .concurrentWrites }.count
            w.stats.editVsDeleteConflictsAtEnd = conflicts.filter { $0.kind == .editVsDelete }.count
        }
    }

    /// The writes in a random order in which every write comes after the
    /// writes it references (prev, alive, covers) that are in the list.
    public static func causalShuffle(_ writes: [FieldWrite], using rng: inout some RandomNumberGenerator)
        -> [FieldWrite]
    {
        let index = Dictionary(writes.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        var waitingOn = [Int](repeating: 0, count: writes.count)
        var dependents = [[Int]](repeating: [], count: writes.count)
        for (i, wr) in writes.enumerated() {
            let refs = Set(wr.prev + wr.covers + (wr.alive.map { [$0] } ?? []))
            for r in refs {
                if let j = index[r], j != i {
                    waitingOn[i] += 1
                    dependents[j].append(i)
                }
            }
        }
        var ready = writes.indices.filter { waitingOn[$0] == 0 }
        var out: [FieldWrite] = []
        out.reserveCapacity(writes.count)
        while !ready.isEmpty {
            let i = ready.remove(at: Int.random(in: 0..<ready.count, using: &rng))
            out.append(writes[i])
            for d in dependents[i] {
                waitingOn[d] -= 1
                if waitingOn[d] == 0 { ready.append(d) }
            }
        }
        return out
    }

    // MARK: Shrinking

    /// Drops steps from a failing scenario while it still fails, chunks first
    /// and then one step at a time, until nothing can go or `budget` is spent.
    /// - Parameter fails: true when a candidate still shows the failure.
    public static func shrink(
        _ s: MergeScenario, budget: Duration = .seconds(20), fails: (MergeScenario) -> Bool
    ) -> MergeScenario {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: budget)
        var best = s
        var chunk = max(1, best.ops.count / 2)
        while clock.now < deadline {
            var removed = false
            var i = 0
            while i < best.ops.count, clock.now < deadline {
                var candidate = best
                candidate.ops.removeSubrange(i..<min(i + chunk, best.ops.count))
                if fails(candidate) {
                    best = candidate
                    removed = true
                } else {
                    i += chunk
                }
            }
            if chunk > 1 {
                chunk /= 2
            } else if !removed {
                break
            }
        }
        return best
    }
}

import FerryCore
import FerryTesting
import Foundation
import Testing

/// Seeds for the property tests. `FERRY_PROPERTY_SEED=<n>` replays one case
/// (and prints its trace); `FERRY_PROPERTY_CASES=<n>` runs more or fewer.
enum PropertySeeds {
    static var replay: UInt64? {
        ProcessInfo.processInfo.environment["FERRY_PROPERTY_SEED"].flatMap {
            UInt64($0.trimmingCharacters(in: .whitespaces))
        }
    }

    static func count(default n: Int) -> Int {
        ProcessInfo.processInfo.environment["FERRY_PROPERTY_CASES"].flatMap { Int($0) }.map { max(1, $0) } ?? n
    }

    /// `count` seeds of one stream (a test name), stable from run to run.
    static func seeds(stream: UInt64, range: Range<Int>) -> [UInt64] {
        if let one = replay { return range.lowerBound == 0 ? [one] : [] }
        return range.map { i in
            var g = SeededGenerator(seed: stream &* 0x1000_0000 &+ UInt64(i))
            return g.next()
        }
    }
}

struct MergePropertyTests {
    static let batches = 8
    static var casesPerBatch: Int { (PropertySeeds.count(default: 1_000) + batches - 1) / batches }

    @Test(
        "Agents converge on the hub's winners and the hub's conflicts depend only on the set of writes",
        arguments: 0..<batches)
    func replicasConverge(batch: Int) {
        let n = Self.casesPerBatch
        let seeds = PropertySeeds.seeds(stream: 1, range: (batch * n)..<((batch + 1) * n))
        var stats = MergeRunStats()
        var failures: [UInt64] = []
        for seed in seeds {
            let scenario = MergeScenario.generate(seed: seed)
            let result = MergeSimulation.run(scenario)
            stats += result.stats
            if PropertySeeds.replay != nil {
                print("FERRY_PROPERTY_SEED=\(seed)\n\(scenario.swiftLiteral)\n" + result.trace.joined(separator: "\n"))
            }
            if !result.violations.isEmpty {
                // Shrink only the first failure of a batch: shrinking costs seconds.
                if failures.isEmpty { Self.report(scenario, result) }
                failures.append(seed)
            }
        }
        #expect(failures.isEmpty, "failing seeds (replay with FERRY_PROPERTY_SEED): \(failures)")
        guard PropertySeeds.replay == nil, seeds.count >= 100 else { return }
        // The generator must reach the interesting cases, or the properties say little.
        #expect(stats.changeSetsApplied > 0 && stats.duplicatesAcknowledged > 0 && stats.gapsRefused > 0)
        #expect(stats.resolutions > 0 && stats.deletedEditsRefused > 0)
        #expect(stats.concurrentConflictsAtEnd > 0 && stats.editVsDeleteConflictsAtEnd > 0)
        #expect(stats.stalePulls > 0 && stats.delayedAnswers > 0)
    }

    static func report(_ scenario: MergeScenario, _ result: MergeRunResult) {
        let shrunk = MergeSimulation.shrink(scenario, budget: .seconds(20)) {
            !MergeSimulation.run($0).violations.isEmpty
        }
        let again = MergeSimulation.run(shrunk)
        let text = """
            merge property failed: FERRY_PROPERTY_SEED=\(scenario.seed) \
            (\(scenario.ops.count) steps, shrunk to \(shrunk.ops.count))
            violations:
            \(result.violations.prefix(10).map { "  " + $0 }.joined(separator: "\n"))
            minimal history:
            \(shrunk.swiftLiteral)
            its trace:
            \(again.trace.joined(separator: "\n"))
            """
        print(text)
        Issue.record(Comment(rawValue: text))
    }

    @Test func theShrinkerKeepsOnlyTheStepsAFailureNeeds() {
        let scenario = MergeScenario.generate(seed: 42)
        // A stand-in failure: "some agent deletes, and later the hub resolves".
        func fails(_ s: MergeScenario) -> Bool {
            guard let d = s.ops.firstIndex(where: { if case .delete = $0 { true } else { false } }) else {
                return false
            }
            return s.ops[d...].contains { if case .hubResolve = $0 { true } else { false } }
        }
        var s = scenario
        s.ops += [.delete(agent: 0, record: 0), .hubResolve(pick: 0, value: 0)]
        #expect(fails(s))
        let shrunk = MergeSimulation.shrink(s, budget: .seconds(10), fails: fails)
        #expect(shrunk.ops.count == 2)
        #expect(fails(shrunk))
    }

    @Test func aKnownScenarioReachesAnEditVsDeleteConflictAndItsResolution() {
        // Agent 1 edits a record that agent 0 deleted without seeing the edit;
        // the operator then resolves by keeping the edit.
        let s = MergeScenario(
            seed: 7, agents: 3,
            ops: [
                .create(agent: 0, bits: 1), .freeze(agent: 0), .send(agent: 0),
                .hubEdit(record: 0, field: 0, value: 8),
                .delete(agent: 0, record: 0), .freeze(agent: 0), .send(agent: 0),
                .edit(agent: 0, record: 0, field: 1, value: 1),  // refused: deleted
            ])
        let result = MergeSimulation.run(s)
        #expect(result.violations == [])
        #expect(result.stats.deletedEditsRefused == 1)
        #expect(result.stats.editVsDeleteConflictsAtEnd == 1)
        var resolved = s
        resolved.ops.append(.hubResolve(pick: 0, value: 2))
        let after = MergeSimulation.run(resolved)
        #expect(after.violations == [])
        #expect(after.stats.resolutions == 1 && after.stats.editVsDeleteConflictsAtEnd == 0)
    }

    // MARK: Registers

    /// Writes to one field in hlc order, each naming a random subset of earlier writes.
    static func randomHistory(_ rng: inout SeededGenerator) -> [FieldWrite] {
        let record = RecordID(high: 0x0193_0000_0000_7000, low: 0x8000_0000_0000_0001)
        let origins = [OriginID("agent-1"), OriginID("agent-2"), OriginID.hub]
        var out: [FieldWrite] = []
        var millis: UInt64 = 1_764_000_000_000
        for _ in 0..<Int.random(in: 1...12, using: &rng) {
            // Equal hlcs from different origins happen; the origin breaks the tie.
            if Bool.random(using: &rng) { millis += UInt64.random(in: 1...3, using: &rng) }
            let prev = out.filter { $0.id.hlc.millis < millis && Int.random(in: 0..<3, using: &rng) == 0 }.map(\.id)
            var id = WriteID(hlc: HLC(millis: millis, counter: 0), origin: origins.randomElement(using: &rng) ?? .hub)
            while out.contains(where: { $0.id == id }) { id.origin = OriginID(id.origin.rawValue + "'") }
            out.append(
                FieldWrite(record: record, field: "owner", id: id, prev: prev, value: MergeSimulation.value(rng.next()))
            )
        }
        return out
    }

    @Test func leafRegisterLeavesDependOnlyOnTheSetOfWrites() {
        for seed in PropertySeeds.seeds(stream: 2, range: 0..<300) {
            var rng = SeededGenerator(seed: seed)
            let history = Self.randomHistory(&rng)
            let named = Set(history.flatMap(\.prev))
            let expected = history.filter { !named.contains($0.id) }.sorted { $0.id > $1.id }
            for _ in 0..<3 {
                var reg = LeafRegister()
                for w in MergeSimulation.causalShuffle(history, using: &rng) { _ = reg.apply(w) }
                #expect(reg.leaves == expected, "seed \(seed)")
                #expect(reg.winner?.id == history.map(\.id).max(), "seed \(seed)")
            }
        }
    }

    @Test func leafRegisterApplyIsIdempotent() {
        for seed in PropertySeeds.seeds(stream: 3, range: 0..<300) {
            var rng = SeededGenerator(seed: seed)
            let history = Self.randomHistory(&rng)
            var once = LeafRegister()
            var twice = LeafRegister()
            for w in MergeSimulation.causalShuffle(history, using: &rng) {
                _ = once.apply(w)
                let first = twice.apply(w)
                #expect(twice.apply(w) == .duplicate || first == .superseded, "seed \(seed)")
                #expect(once == twice, "seed \(seed)")
            }
            // Re-applying a leaf, or a write a leaf names, changes nothing.
            for leaf in once.leaves {
                var r = once
                #expect(r.apply(leaf) == .duplicate && r == once, "seed \(seed)")
                for p in leaf.prev {
                    guard let w = history.first(where: { $0.id == p }) else { continue }
                    var r2 = once
                    #expect(r2.apply(w) == .superseded && r2 == once, "seed \(seed)")
                }
            }
        }
    }

    @Test func reapplyingAWriteSupersededTwoStepsAgoIsNotDetectedByTheRegisterAlone() {
        // A → B → C on one field; re-applying A after C. The register keeps only
        // leaves, so it cannot tell A was superseded; the hub relies on the
        // per-origin sequence to never apply a write twice (DESIGN §4, order).
        let r = RecordID(high: 1, low: 1)
        func w(_ ms: UInt64, _ prev: [UInt64]) -> FieldWrite {
            FieldWrite(
                record: r, field: "owner", id: WriteID(hlc: HLC(millis: ms, counter: 0), origin: .hub),
                prev: prev.map { WriteID(hlc: HLC(millis: $0, counter: 0), origin: .hub) }, value: .int(Int64(ms)))
        }
        var reg = LeafRegister()
        for x in [w(1, []), w(2, [1]), w(3, [2])] { _ = reg.apply(x) }
        #expect(reg.leaves.map(\.value) == [.int(3)])
        withKnownIssue(
            "LeafRegister.apply cannot recognise a write superseded transitively; OriginSequence guards the hub"
        ) {
            #expect(reg.apply(w(1, [])) == .superseded)
        }
    }

    @Test func winnerRegisterKeepsTheHighestWriteInAnyOrderAndIgnoresRepeats() {
        for seed in PropertySeeds.seeds(stream: 4, range: 0..<300) {
            var rng = SeededGenerator(seed: seed)
            let history = Self.randomHistory(&rng)
            // Any order at all, with repeats: a winner register needs no causal delivery.
            let arrivals = (history + history.filter { _ in Bool.random(using: &rng) }).shuffled(using: &rng)
            var reg = WinnerRegister()
            for w in arrivals {
                let before = reg
                let changed = reg.apply(w)
                #expect(changed == (before.winner.map { w.id > $0.id } ?? true), "seed \(seed)")
                var again = reg
                #expect(!again.apply(w) && again == reg, "seed \(seed)")
            }
            #expect(reg.winner == history.max { $0.id < $1.id }, "seed \(seed)")
        }
    }

    // MARK: Sequence

    @Test func originSequenceVerdictsFollowTheRangeRules() {
        for applied in UInt64(0)...6 {
            let seq = OriginSequence(applied: applied)
            #expect(seq.expected == applied + 1)
            for from in UInt64(0)...9 {
                for to in UInt64(0)...9 {
                    let v = seq.classify(from: from, to: to)
                    let range = from...max(from, to)
                    if from == 0 || to < from {
                        #expect(v == .malformed, "applied \(applied) range \(from)...\(to)")
                    } else if range.allSatisfy({ $0 <= applied }) {
                        #expect(v == .duplicate, "applied \(applied) range \(from)...\(to)")
                    } else if from == applied + 1 {
                        #expect(v == .apply, "applied \(applied) range \(from)...\(to)")
                    } else if from > applied + 1 {
                        #expect(v == .gap(expected: applied + 1), "applied \(applied) range \(from)...\(to)")
                    } else {
                        // Starts inside what was applied and runs past it.
                        #expect(range.contains(applied) && range.contains(applied + 1))
                        #expect(v == .overlap(expected: applied + 1), "applied \(applied) range \(from)...\(to)")
                    }
                }
            }
        }
    }

    @Test func originSequenceExamples() {
        var seq = OriginSequence()
        #expect(seq.classify(from: 1, to: 3) == .apply)
        seq.advance(to: 3)
        #expect(seq.classify(from: 1, to: 3) == .duplicate)
        #expect(seq.classify(from: 2, to: 2) == .duplicate)
        #expect(seq.classify(from: 5, to: 6) == .gap(expected: 4))
        #expect(seq.classify(from: 3, to: 5) == .overlap(expected: 4))
        #expect(seq.classify(from: 0, to: 4) == .malformed)
        #expect(seq.classify(from: 5, to: 4) == .malformed)
        #expect(seq.classify(from: 4, to: 4) == .apply)
        seq.advance(to: 4)
        #expect(seq.applied == 4 && seq.expected == 5)
    }

    @Test func aReceiverFollowingTheVerdictsAppliesEveryNumberExactlyOnce() {
        for seed in PropertySeeds.seeds(stream: 5, range: 0..<200) {
            var rng = SeededGenerator(seed: seed)
            // Change sets covering 1...n in random sizes, delivered with repeats and out of order.
            var ranges: [ClosedRange<UInt64>] = []
            var next: UInt64 = 1
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let size = UInt64.random(in: 1...4, using: &rng)
                ranges.append(next...(next + size - 1))
                next += size
            }
            var seq = OriginSequence()
            var appliedNumbers: [UInt64] = []
            var sent = 0
            while seq.applied < next - 1 {
                // Usually the next change set; sometimes an old one or one further on.
                let i = min(ranges.count - 1, max(0, sent + Int.random(in: -2...2, using: &rng)))
                let r = ranges[i]
                switch seq.classify(from: r.lowerBound, to: r.upperBound) {
                case .apply:
                    appliedNumbers += Array(r)
                    seq.advance(to: r.upperBound)
                    sent = i + 1
                case .duplicate: #expect(r.upperBound <= seq.applied)
                case .gap(let e), .overlap(let e): #expect(e == seq.expected && i != sent)
                case .malformed: Issue.record("seed \(seed): \(r) judged malformed")
                }
            }
            #expect(appliedNumbers == Array(1..<next), "seed \(seed)")
        }
    }
}

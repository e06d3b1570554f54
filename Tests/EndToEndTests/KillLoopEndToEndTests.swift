import FerryAgent
import FerryCore
import FerryStore
import FerryTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Power cuts in a loop: the agent and the hub are SIGKILLed at random
/// (seeded) moments while they sync, and restarted. Every write a command
/// reported as saved must reach the hub exactly once, and the replicas must
/// end equal field by field.
///
/// FERRY_KILL_LOOP=N sets the number of kills (default 50); FERRY_KILL_SEED
/// replays a run (the seed is printed at the start).
@Suite(.serialized, .timeLimit(.minutes(10)))
struct KillLoopEndToEndTests {
    static let commune = "24781"

    @Test func randomKillsOfAgentAndHubLoseAndDuplicateNothing() async throws {
        let env = ProcessInfo.processInfo.environment
        let kills = max(1, env["FERRY_KILL_LOOP"].flatMap { Int($0) } ?? 50)
        let seed = env["FERRY_KILL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("kill loop: \(kills) kills, FERRY_KILL_SEED=\(seed)")
        var rng = SeededGenerator(seed: seed)
        // Bounded in time as well as in count: about 2 s per kill, at most.
        let deadline = Date().addingTimeInterval(Double(kills) * 6 + 60)

        let sb = try Sandbox("killloop")
        defer { sb.close() }
        let port = try freePort()
        let hubDir = try await sb.initHub()
        var hub: Sandbox.Hub? = try await sb.serveHub(dir: hubDir, port: port)
        let a = try await sb.enrollAgent("a", hub: try #require(hub), commune: Self.commune)
        let config = try AgentHome(directory: a).config()
        let hubStore = try hubStore(hubDir)

        // What the commands reported as saved: record id → field values.
        var expected: [RecordID: [String: Value]] = [:]
        var rows = SampleLandRecords(seed: seed)
        var agent: Process? = nil
        var agentKills = 0
        var hubKills = 0
        var hubAppliedSeen: UInt64 = 0
        var starts = 0
        // Kills that left a frozen change set behind: they hit an upload.
        var killsInFlight = 0

        func startAgent() throws -> Process {
            starts += 1
            return try sb.start(["agent", "run", "--dir", a, "--interval", "0.2"], name: "agent\(starts)")
        }
        func addRecord() async throws {
            let values = rows.next()
            let args = values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.display)" }
            let out = try await sb.ok(["records", "add"] + args + ["--dir", a])
            let id = try #require(RecordID(out.trimmingCharacters(in: .whitespacesAndNewlines)), "printed \(out)")
            expected[id] = values
        }
        func editRecord() async throws {
            guard let id = expected.keys.sorted()[safe: Int(rng.next() % UInt64(max(expected.count, 1)))] else {
                return
            }
            let status = ["draft", "submitted", "verified", "needs_fix"][Int(rng.next() % 4)]
            let members = Int64(1 + rng.next() % 12)
            try await sb.ok(["records", "edit", id.description, "status=\(status)", "members=\(members)", "--dir", a])
            expected[id]?["status"] = .string(status)
            expected[id]?["members"] = .int(members)
        }
        /// The agent's writes the hub acknowledged: numbered, and no longer in flight.
        func agentAcknowledged() throws -> UInt64 {
            let (store, _) = try agentStore(a)
            let last = try store.counts().lastSeq
            return try store.inFlight().map { $0.seqFrom - 1 } ?? last
        }

        var round = 0
        while agentKills + hubKills < kills && Date() < deadline {
            round += 1
            // Work for the agent: a few new records, or a burst that takes several uploads.
            if rng.next() % 5 == 0 {
                let csv = try sampleCSV(sb, name: "burst\(round).csv", seed: seed &+ UInt64(round), count: 150)
                try await sb.ok(["records", "import", csv.path, "--dir", a])
                let (store, _) = try agentStore(a)
                let state = try store.fullState()
                let imported = Set(csv.rows.map(canonical))
                for (id, values) in state where expected[id] == nil && imported.contains(canonical(values)) {
                    expected[id] = values.filter { $0.key != deletedField }
                }
            } else {
                for _ in 0..<(1 + rng.next() % 2) { try await addRecord() }
            }
            if rng.next() % 2 == 0 { try await editRecord() }
            if hub == nil { hub = try await sb.serveHub(dir: hubDir, port: port, name: "hub\(round)") }
            if agent == nil { agent = try startAgent() }

            // A random moment in the next 0–800 ms, while the agent syncs what was just written.
            try await Task.sleep(nanoseconds: (rng.next() % 800 + 20) * 1_000_000)
            switch rng.next() % 3 {
            case 0:
                if let p = agent { sb.kill9(p) }
                agent = nil
                agentKills += 1
            case 1:
                if let h = hub { sb.kill9(h.process) }
                hub = nil
                hubKills += 1
            default:
                if let p = agent { sb.kill9(p) }
                if let h = hub { sb.kill9(h.process) }
                agent = nil
                hub = nil
                agentKills += 1
                hubKills += 1
            }
            if try agentStore(a).0.inFlight() != nil { killsInFlight += 1 }
            if hub == nil {
                // The hub is dead, so nothing moves at it: what the agent has
                // dropped as acknowledged must be durable there, and the hub's
                // applied sequence never goes back.
                let applied = try hubStore.agent(id: config.agentID)?.appliedSeq ?? 0
                #expect(applied >= hubAppliedSeen, "the hub's applied sequence went back after a kill (seed \(seed))")
                hubAppliedSeen = max(hubAppliedSeen, applied)
                let acked = try agentAcknowledged()
                #expect(
                    acked <= applied,
                    "the agent dropped writes up to \(acked) but the hub holds only \(applied) (seed \(seed))")
            }
        }
        print(
            "kill loop: \(agentKills) agent kills, \(hubKills) hub kills in \(round) rounds (\(killsInFlight) with a change set in flight), \(expected.count) records, seed \(seed)"
        )
        #expect(killsInFlight > 0, "no kill landed during an upload (seed \(seed))")
        #expect(
            agentKills + hubKills >= kills, "only \(agentKills + hubKills) kills before the deadline (seed \(seed))")

        // Restart both and let them converge.
        if hub == nil { hub = try await sb.serveHub(dir: hubDir, port: port, name: "hub-final") }
        if agent == nil { agent = try startAgent() }
        let done = try await waitUntil(timeout: 120, interval: 0.5) { try converged(agentDir: a, hub: hubStore) }
        let state = try compare(agentDir: a, hub: hubStore)
        #expect(
            done,
            "no convergence after the kill loop (seed \(seed)): \(state); \(sb.log("agent\(starts)").suffix(2000))")
        if let p = agent { sb.stop(p) }

        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        let winners = try hubStore.winners(commune: Self.commune)
        #expect(winners.count == expected.count, "hub has \(winners.count) records, commands saved \(expected.count)")
        let wrong = expected.filter { id, values in
            values.contains { winners[id]?[$0.key] != $0.value }
        }
        #expect(
            wrong.isEmpty, "\(wrong.count) records differ from what was saved (seed \(seed)): \(wrong.keys.prefix(3))")
        #expect(try hubStore.totals()["quarantined"] == 0)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}

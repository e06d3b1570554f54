import ArgumentParser
import FerryAgent
import FerryCore
import FerryHub
import FerryStore
import Foundation

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a real hub and three real agents on this machine: offline work, concurrent edits, convergence.")
    @Option(help: "Records each commune creates before the outage.") var records = 20
    @Flag(help: "Keep the temporary directory (its path is printed).") var keep = false

    func run() async throws {
        let started = Date()
        let dir = NSTemporaryDirectory() + "ferry-demo-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let sp = Spawn(directory: dir)
        var procs: [String: Process] = [:]
        defer {
            for p in procs.values { Spawn.stop(p) }
            if !keep { try? FileManager.default.removeItem(atPath: dir) }
        }
        func step(_ s: String) { print("\n== \(s)") }
        let communes = ["24781", "24848", "23272"].map { code in
            (code, Seed.communes.first { $0.code == code }?.name ?? code)
        }

        step("1. Provincial hub: a real `ferry hub serve` process on 127.0.0.1 (embedded SQLite store)")
        try sp.run(["hub", "init", "--dir", "hub"])
        procs["hub"] = try sp.start(["hub", "serve", "--dir", "hub", "--port", "0"], log: dir + "/hub.log")
        let hubHome = HubHome(directory: dir + "/hub")
        guard waitUntil(timeout: 20, { (try? hubHome.url()) != nil }) else {
            throw UserError("the hub did not start: see \(dir)/hub.log")
        }
        let url = try hubHome.url()
        print("hub at \(url); \(Seed.communes.count) communes, form land-record v1")

        step("2. Three commune agents enroll with one-time tokens (each pins the hub's keys)")
        for (i, (code, name)) in communes.enumerated() {
            let token = try sp.run(["hub", "token", "--commune", code, "--hub-dir", "hub"]).out.trimmingCharacters(
                in: .whitespacesAndNewlines)
            try sp.run(["agent", "enroll", url, token, "--dir", "a\(i + 1)"])
            try sp.run(["agent", "sync", "--dir", "a\(i + 1)"])
            print("agent a\(i + 1): \(name) [\(code)]")
        }

        step("3. Each commune enters \(records) land records; the agents sync in the background")
        for i in 1...3 {
            var gen = SampleLandRecords(seed: UInt64(i))
            try gen.csv(count: records).write(toFile: "\(dir)/a\(i).csv", atomically: true, encoding: .utf8)
            try sp.run(["records", "import", "a\(i).csv", "--dir", "a\(i)"])
            procs["a\(i)"] = try sp.start(
                ["agent", "run", "--dir", "a\(i)", "--interval", "1", "--page-port", "0"], log: "\(dir)/a\(i).log")
        }
        let hubStore = try hubHome.store()
        guard try waitUntil(timeout: 30, { (try hubStore.totals()["records"] ?? 0) >= 3 * records }) else {
            throw UserError("the records did not reach the hub in 30 s: see \(dir)/a*.log")
        }
        print("hub holds \(try hubStore.totals()["records"] ?? 0) records")

        step("4. \(communes[2].1) loses its link (agent stopped) and keeps working offline")
        if let p = procs["a3"] { Spawn.stop(p) }
        // The same file a second time, on purpose: a re-import is refused without --again.
        try sp.run(["records", "import", "a3.csv", "--again", "--dir", "a3"])
        let a3Store = try AgentHome(directory: dir + "/a3").store()
        let offlineRecord = try a3Store.records(limit: 100).last.map(\.id.description) ?? ""
        try sp.run(["records", "edit", offlineRecord, "status=needs_fix", "members=4", "--dir", "a3"])
        print("a3 wrote \(records) more records and edited \(offlineRecord) while offline")
        // Exit 1 here is the point: a3 is not in sync while offline.
        print(
            try sp.run(["status", "--dir", "a3"], check: false).out.split(separator: "\n").prefix(2).joined(
                separator: "\n"))

        step("5. Concurrent edits: the hub operator and the agents change the same fields")
        if let p = procs["a1"] { Spawn.stop(p) }
        let a1Store = try AgentHome(directory: dir + "/a1").store()
        let shared = try a1Store.records(limit: 100).last.map(\.id.description) ?? ""
        try sp.run(["records", "edit", shared, "status=verified", "--dir", "a1"])
        try sp.run(["records", "edit", shared, "status=needs_fix", "--at-hub", "--hub-dir", "hub"])
        print("a1 set \(shared).status = verified; the hub set it to needs_fix at the same time")
        try sp.run(["records", "delete", offlineRecord, "--at-hub", "--hub-dir", "hub"])
        print("the hub deleted \(offlineRecord), which a3 edited offline")

        step("6. Links come back: agents sync, every replica converges")
        procs["a1"] = try sp.start(
            ["agent", "run", "--dir", "a1", "--interval", "1", "--page-port", "0"], log: "\(dir)/a1.log")
        procs["a3"] = try sp.start(
            ["agent", "run", "--dir", "a3", "--interval", "1", "--page-port", "0"], log: "\(dir)/a3.log")
        let homes = (1...3).map { AgentHome(directory: "\(dir)/a\($0)") }
        var report: [String] = []
        let converged = try waitUntil(timeout: 40, interval: 0.5) {
            let ok = try Self.compare(homes: homes, hub: hubStore, report: &report)
            return try ok && (hubStore.totals()["conflicts"] ?? 0) >= 2
        }

        step("7. Per-commune counts (hub vs agent)")
        print("commune                                   hub  agent")
        for h in homes {
            let c = try h.config()
            let name = Seed.communes.first { $0.code == c.commune }?.name ?? c.commune
            let hubCount = try hubStore.winners(commune: c.commune).filter { $0.value[deletedField] != .bool(true) }
                .count
            let agentCount = try h.store().fullState().filter { $0.value[deletedField] != .bool(true) }.count
            print(
                "\(name.padding(toLength: 40, withPad: " ", startingAt: 0)) \(String(hubCount).leftPad(4)) \(String(agentCount).leftPad(6))"
            )
        }
        print("\nconvergence check (every field of every record, agent replica vs hub):")
        for line in report { print("  " + line) }
        print(converged ? "CONVERGED: all three replicas hold exactly the hub's values." : "NOT CONVERGED (see above)")

        step("8. Open conflicts at the hub (kept for an operator; nothing was dropped)")
        print(try sp.run(["conflicts", "list", "--hub-dir", "hub"]).out)
        print("Resolve with: ferry conflicts resolve RECORD FIELD [--value V] --hub-dir HUB")

        step("9. What each commune's PC shows of its own conflicts (ferry status, the entry page)")
        // The agents ask the hub for their commune's list after a round that moved writes (SPEC §9.13).
        let perCommune = try hubStore.openItemsByCommune().conflicts
        _ = try waitUntil(timeout: 20, interval: 0.5) {
            try homes.allSatisfy { h in
                try h.store().meta("commune_conflicts_open") == String(perCommune[try h.config().commune] ?? 0)
            }
        }
        for h in homes {
            let c = try h.config()
            let shown = try h.store().meta("commune_conflicts_open") ?? "not asked yet"
            let fields = try h.store().hubConflicts().map { "\($0.record.prefix(13))….\($0.field)" }
            print(
                "\(c.agentID): \(shown) open conflict(s) on commune \(c.commune)'s records (hub: \(perCommune[c.commune] ?? 0))"
                    + (fields.isEmpty ? "" : ": " + fields.joined(separator: ", ")))
        }
        print(
            String(
                format: "\nDemo finished in %.1f s.%@", Date().timeIntervalSince(started),
                keep ? " Files kept in \(dir)" : ""))
        if !converged { throw ExitCode(1) }
    }

    /// Compares every agent's replica with the hub's winners for its commune.
    static func compare(homes: [AgentHome], hub: any HubServiceStore, report: inout [String]) throws -> Bool {
        report = []
        var all = true
        for h in homes {
            let c = try h.config()
            let hubState = try hub.winners(commune: c.commune)
            let mine = try h.store().fullState()
            var diffs = 0
            for id in Set(hubState.keys).union(mine.keys) where hubState[id] ?? [:] != mine[id] ?? [:] { diffs += 1 }
            let fields = hubState.values.reduce(0) { $0 + $1.count }
            report.append(
                "\(c.agentID): \(mine.count) records, \(fields) fields, \(diffs == 0 ? "identical to the hub" : "\(diffs) records differ")"
            )
            if diffs > 0 { all = false }
        }
        return all
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}

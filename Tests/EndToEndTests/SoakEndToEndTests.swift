import FerryAgent
import FerryCore
import FerryStore
import Foundation
import Testing

/// A month unattended, in minutes (issue 12): one real agent through a
/// simulated month — thousands of writes a day, the hub away for days, about
/// 100 SIGKILLs as power cuts, the PC's clock jumping — checked for bounded
/// memory, database, WAL and log size, and for losing nothing. Defaults fit
/// `make test` (a couple of minutes); `FERRY_SOAK_DAYS`, `FERRY_SOAK_ROWS` and
/// `FERRY_SOAK_KILLS` make it longer.
@Suite(.serialized) struct SoakEndToEndTests {
    static let commune = "24848"

    static func env(_ name: String, _ d: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) }.map { min(max($0, 1), 100_000) } ?? d
    }

    /// Peak resident set (VmHWM, kB) of a live process, or 0.
    static func peakKB(_ pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// Runs `exe args` to completion (bounded), for commands under `faketime`.
    static func runTool(_ exe: String, _ args: [String], in dir: String, timeout: Double = 120) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw HarnessError("\(exe) \(args.joined(separator: " ")) did not finish in \(timeout) s")
        }
        p.waitUntilExit()
        return p.terminationStatus
    }

    @Test func aMonthOfPowerCutsOutagesAndClockJumpsStaysBoundedAndLosesNothing() async throws {
        let days = Self.env("FERRY_SOAK_DAYS", 30)
        let rowsPerDay = Self.env("FERRY_SOAK_ROWS", 300)
        let kills = Self.env("FERRY_SOAK_KILLS", 100)
        let awayDays = Set((days / 3)..<(days / 3 + max(1, days / 7)))
        // PC clock jumps for the writes of some days (faketime, PLATFORM.md):
        // ahead past the hub's 10-minute bound, and back by a day.
        let jumps = Dictionary([(days / 2, "+3h"), (days / 2 + 1, "-1d"), (days - 3, "+40m")]) { a, _ in a }
        let faketime = "/usr/bin/faketime"
        let haveFaketime = FileManager.default.isExecutableFile(atPath: faketime)

        let sb = try Sandbox("soak")
        defer { sb.close() }
        let hubDir = try await sb.initHub()
        let port = try freePort()
        var hub: Sandbox.Hub? = try await sb.serveHub(dir: hubDir, port: port)
        let a = try await sb.enrollAgent("a", hub: try #require(hub), commune: Self.commune)
        let replica = a + "/replica.sqlite"

        var rng = SystemRandomNumberGenerator()
        var killed = 0
        var runs = 0
        var peak = 0
        var maxWAL = 0
        var maxDB = 0
        var logBytes = 0
        var written = 0
        let start = Date()
        let killsPerDay = Double(kills) / Double(days)
        var owed = 0.0
        for day in 0..<days {
            // The hub away for days, then back on the same port.
            if awayDays.contains(day), let h = hub {
                sb.stop(h.process)
                hub = nil
            } else if !awayDays.contains(day) && hub == nil {
                hub = try await sb.serveHub(dir: hubDir, port: port, name: "hub-\(day)")
            }
            // The day's writes: a CSV import (all rows or none), maybe on a jumped clock.
            let csv = try sampleCSV(sb, name: "day\(day).csv", seed: UInt64(1000 + day), count: rowsPerDay)
            let args = ["records", "import", csv.path, "--dir", a]
            if let jump = jumps[day], haveFaketime {
                let code = try Self.runTool(faketime, ["-f", jump, sb.ferry] + args, in: sb.root)
                #expect(code == 0, "import on day \(day) under faketime \(jump)")
            } else {
                try await sb.ok(args, timeout: 120)
            }
            written += rowsPerDay
            // The agent runs and the power is cut, a few times a day.
            owed += killsPerDay
            let today = Int(owed.rounded(.down))
            owed -= Double(today)
            for i in 0..<max(1, today) {
                let name = "agent-\(day)-\(i)"
                let p = try sb.start(["agent", "run", "--dir", a, "--interval", "0.3", "--no-page"], name: name)
                runs += 1
                try await Task.sleep(nanoseconds: UInt64.random(in: 200_000_000...800_000_000, using: &rng))
                peak = max(peak, Self.peakKB(p.processIdentifier))
                if i < today {
                    sb.kill9(p)
                    killed += 1
                } else {
                    sb.stop(p)
                }
                logBytes += Self.size(sb.path("logs/\(name).log"))
            }
            maxWAL = max(maxWAL, Self.size(replica + "-wal"))
            maxDB = max(maxDB, Self.size(replica))
        }
        if hub == nil { hub = try await sb.serveHub(dir: hubDir, port: port, name: "hub-end") }
        let h = try #require(hub)

        // The last run: the agent catches up and `ferry status` says so.
        let last = try sb.start(["agent", "run", "--dir", a, "--interval", "0.3", "--no-page"], name: "agent-end")
        var status: (code: Int32, out: String) = (-1, "")
        var inSync = false
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline {
            let r = try await sb.run(["status", "--dir", a, "--json"])
            status = (r.status, r.out)
            if r.status == 0 {
                inSync = true
                break
            }
            try await Task.sleep(nanoseconds: 1_000_000_000)
        }
        peak = max(peak, Self.peakKB(last.processIdentifier))
        #expect(inSync, "not in sync at the end: \(status.out.prefix(1500)) \(sb.log("agent-end").suffix(1500))")
        let final = try decodeJSON(EntryPageEndToEndTests.ServiceStatus.self, status.out)
        #expect(final.inSync && final.service == "running" && final.pendingWrites == 0, "\(final.summary)")
        #expect(final.summary.contains("IN SYNC:"))

        // Nothing lost, nothing twice.
        let hubStore = try hubStore(h.dir)
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        let (store, _) = try agentStore(a)
        #expect(try store.counts().records == written, "every record written is in the replica")
        #expect(try hubStore.winners(commune: Self.commune).count == written, "and at the hub")
        sb.stop(last)
        logBytes += Self.size(sb.path("logs/agent-end.log"))
        let stopped = try await sb.run(["status", "--dir", a])
        #expect(stopped.status == 2 && stopped.out.contains("NOT RUNNING"), "\(stopped.out)")

        let seconds = Date().timeIntervalSince(start)
        let dbBytes = Self.size(replica)
        print(
            """
            soak: \(days) days, \(written) records (\(rowsPerDay)/day), \(killed) SIGKILLs in \(runs) agent runs, \
            hub away days \(awayDays.sorted().first ?? 0)…\(awayDays.sorted().last ?? 0), clock jumps \(haveFaketime ? "\(jumps.sorted { $0.key < $1.key })" : "none (no faketime)"), \
            \(Int(seconds)) s
            soak: agent peak RSS \(peak / 1024) MB; replica \(dbBytes / 1024) KiB (max \(maxDB / 1024) KiB, \
            \(dbBytes / max(1, written)) B/record), WAL max \(maxWAL / 1024) KiB; agent log \(logBytes / 1024) KiB \
            (\(logBytes / max(1, days)) B/day)
            """)
        // Bounds: memory does not grow with the backlog, the WAL is checkpointed,
        // the replica grows with records only, and the log says little per day.
        #expect(peak > 0 && peak < 200 * 1024, "agent peak RSS \(peak) kB")
        #expect(maxWAL < 64 << 20, "WAL reached \(maxWAL) bytes")
        #expect(dbBytes / max(1, written) < 2048, "replica \(dbBytes) bytes for \(written) records")
        #expect(logBytes / max(1, days) < 256 * 1024, "agent log \(logBytes) bytes over \(days) days")
        #expect(killed >= min(kills, days) - 1)
    }
}

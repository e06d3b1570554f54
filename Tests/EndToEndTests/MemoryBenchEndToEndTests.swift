import FerryAgent
import Foundation
import Testing

/// Peak memory of an agent sending a large backlog (issue 9, item 8): the
/// agent freezes, seals and sends 100,000 and then 200,000 pending writes, and
/// its peak RSS must not grow with the backlog. Long (~4 min in a debug
/// build): runs only with FERRY_MEMORY_BENCH=1.
@Suite(.serialized, .timeLimit(.minutes(30)))
struct MemoryBenchEndToEndTests {
    static let enabled = ProcessInfo.processInfo.environment["FERRY_MEMORY_BENCH"] == "1"

    /// Peak RSS (VmHWM, kB) of `ferry agent sync` over `records` records × 12 fields.
    static func peakRSS(records: Int) async throws -> (kb: Int, writes: Int, seconds: Double) {
        let sb = try Sandbox("memory-\(records)")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: "24781")
        let csv = try sampleCSV(sb, name: "a.csv", seed: 3, count: records)
        try await sb.ok(["records", "import", csv.path, "--dir", a], timeout: 600)
        let (store, _) = try agentStore(a)
        let writes = try store.counts().pendingWrites
        let began = Date()
        let p = try sb.start(["agent", "sync", "--dir", a, "--max-requests", "100000"], name: "sync")
        var peak = 0
        let deadline = Date().addingTimeInterval(900)
        while p.isRunning && Date() < deadline {
            if let s = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/status", encoding: .utf8),
                let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            {
                peak = max(peak, kb)
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        #expect(!p.isRunning, "the sync did not finish in 900 s")
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(sb.log("sync").suffix(2000))")
        let took = Date().timeIntervalSince(began)
        #expect(try converged(agentDir: a, hub: try hubStore(hub.dir)))
        return (peak, writes, took)
    }

    @Test(.enabled(if: enabled))
    func peakMemoryDoesNotGrowWithTheBacklog() async throws {
        let small = try await Self.peakRSS(records: 8334)
        let large = try await Self.peakRSS(records: 16668)
        print(
            "memory bench: \(small.writes) writes peak \(small.kb) kB in \(String(format: "%.1f", small.seconds)) s; \(large.writes) writes peak \(large.kb) kB in \(String(format: "%.1f", large.seconds)) s"
        )
        #expect(small.writes >= 100_000)
        // Change sets are capped in writes and bytes, so twice the backlog costs
        // no more memory (measured: 77.4 MB for both, debug build).
        #expect(Double(large.kb) < Double(small.kb) * 1.1, "peak \(small.kb) kB -> \(large.kb) kB")
    }
}

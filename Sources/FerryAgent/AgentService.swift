import FerryCore
import Foundation
import Logging
import ServiceLifecycle

/// The agent's long-running sync loop as a swift-service-lifecycle `Service`:
/// sync every interval, back off exponentially with jitter after failures,
/// never busy-loop, stop cleanly on SIGTERM.
public struct AgentService: Service {
    let engine: SyncEngine
    let interval: Double
    let logger: Logger
    /// Stop after this many rounds (tests); nil = forever.
    let maxRounds: Int?

    public init(engine: SyncEngine, interval: Double, logger: Logger, maxRounds: Int? = nil) {
        self.engine = engine
        self.interval = interval
        self.logger = logger
        self.maxRounds = maxRounds
    }

    public func run() async throws {
        var failures = 0
        var rounds = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            rounds += 1
            do {
                let r = try await engine.syncOnce()
                if r.uploadedWrites > 0 || r.downloadedWrites > 0 {
                    logger.info(
                        "synced",
                        metadata: [
                            "ferry.uploaded": "\(r.uploadedWrites)", "ferry.downloaded": "\(r.downloadedWrites)",
                            "ferry.cursor": "\(r.hubCursor)", "ferry.pending": "\(r.pendingWrites)",
                        ])
                }
                failures = 0
            } catch {
                failures += 1
                logger.warning("sync failed", metadata: ["ferry.error": "\(error)", "ferry.failures": "\(failures)"])
            }
            if let maxRounds, rounds >= maxRounds { break }
            let delay = Self.delay(interval: interval, failures: failures)
            try? await gracefulShutdown(sleeping: delay)
        }
        await engine.shutdown()
    }

    /// Seconds to wait: the interval when healthy; after n failures
    /// min(300, 2^n) s with ±50 % jitter, never less than 1 s.
    public static func delay(interval: Double, failures: Int) -> Double {
        if failures == 0 { return max(0.2, interval) }
        let base = min(300, pow(2, Double(min(failures, 9))))
        return max(1, base * Double.random(in: 0.5...1.5))
    }

    func gracefulShutdown(sleeping seconds: Double) async throws {
        // The wait ends early on SIGTERM, so the service stops within a moment.
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        }
    }
}

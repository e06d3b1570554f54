import FerryCore
import FerryProtocol
import Foundation
import Logging
import ServiceLifecycle

/// The agent's long-running sync loop as a swift-service-lifecycle `Service`.
/// It runs rounds and sleeps what ``SyncScheduleStateMachine`` says (SPEC
/// §9.9): the interval when in sync, about a second after a round that moved
/// data before it failed, and a jittered backoff of 2 s doubling to 60 s only
/// while nothing moves. It never busy-loops and stops cleanly on SIGTERM.
public struct AgentService: Service {
    let engine: SyncEngine
    let policy: SyncScheduleStateMachine.Policy
    let logger: Logger
    /// Stop after this many rounds (tests); nil = forever.
    let maxRounds: Int?

    public init(engine: SyncEngine, interval: Double, logger: Logger, maxRounds: Int? = nil) {
        self.engine = engine
        self.policy = engine.schedulePolicy(interval: interval)
        self.logger = logger
        self.maxRounds = maxRounds
    }

    public func run() async throws {
        var schedule = SyncScheduleStateMachine(policy: policy)
        var rounds = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            rounds += 1
            let r = await engine.syncRound()
            let outcome: SyncScheduleStateMachine.Outcome
            if let error = r.error {
                outcome = .failed(progress: r.report.progress, needsPerson: error.kind.needsPerson)
                logger.warning(
                    "sync failed",
                    metadata: [
                        "ferry.error": "\(error)", "ferry.error.kind": "\(error.kind)",
                        "ferry.progress": "\(r.report.progress)",
                        "ferry.failures": "\(schedule.failuresWithoutProgress + (r.report.progress ? 0 : 1))",
                    ])
            } else if r.stoppedAtBound {
                outcome = r.report.progress ? .moreToDo : .failed(progress: false, needsPerson: false)
            } else {
                outcome = .inSync
            }
            if r.report.uploadedWrites > 0 || r.report.downloadedWrites > 0 {
                logger.info(
                    "synced",
                    metadata: [
                        "ferry.uploaded": "\(r.report.uploadedWrites)",
                        "ferry.downloaded": "\(r.report.downloadedWrites)",
                        "ferry.cursor": "\(r.report.hubCursor)", "ferry.pending": "\(r.report.pendingWrites)",
                    ])
            }
            if let maxRounds, rounds >= maxRounds { break }
            let action = schedule.roundEnded(outcome, nowMs: engine.wall.nowMillis())
            switch action {
            case .wait(let ms, let untilMs, _):
                engine.noteNextAttempt(ms: untilMs)
                try? await gracefulShutdown(sleeping: ms)
            }
        }
        engine.noteNextAttempt(ms: nil)
        await engine.shutdown()
    }

    func gracefulShutdown(sleeping ms: UInt64) async throws {
        // The wait ends early on SIGTERM, so the service stops within a moment.
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(nanoseconds: ms.multipliedReportingOverflow(by: 1_000_000).partialValue)
        }
    }
}

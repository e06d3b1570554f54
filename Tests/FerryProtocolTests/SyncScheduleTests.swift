import FerryProtocol
import FerryTesting
import Testing

/// The sync loop's timing and the transfer sizes, driven by a manual clock:
/// no test sleeps.
struct SyncScheduleTests {
    static func seconds(_ a: SyncScheduleStateMachine.Action) -> Double {
        switch a {
        case .wait(let ms, _, _): Double(ms) / 1000
        }
    }

    static func reason(_ a: SyncScheduleStateMachine.Action) -> SyncScheduleStateMachine.Reason {
        switch a {
        case .wait(_, _, let r): r
        }
    }

    @Test func roundsInWhichNothingMovesBackOffDoublingFromTwoSecondsToACapOfSixty() {
        let clock = ManualClock()
        var s = SyncScheduleStateMachine(policy: .init(), seed: 7)
        var waits: [Double] = []
        for _ in 0..<12 {
            let a = s.roundEnded(.failed(progress: false, needsPerson: false), nowMs: clock.nowMillis())
            waits.append(Self.seconds(a))
            clock.advance(by: UInt64(Self.seconds(a) * 1000))
        }
        // Equal jitter: wait n lies in [base/2, base], base = min(60, 2 * 2^(n-1)).
        for (i, w) in waits.enumerated() {
            let base = min(60, 2 * Double(1 << i))
            #expect(w >= base / 2 - 0.001 && w <= base + 0.001, "wait \(i + 1) was \(w) s, base \(base)")
        }
        #expect(waits.max() ?? 0 <= 60)
        #expect(s.failuresWithoutProgress == 12)
        #expect(s.nextAttemptMs == clock.nowMillis(), "the next attempt is where the clock was moved to")
    }

    @Test func aRoundThatMovedDataBeforeItFailedRetriesWithinSecondsAndResetsTheBackoff() {
        let clock = ManualClock()
        var s = SyncScheduleStateMachine(policy: .init(), seed: 11)
        for _ in 0..<8 { _ = s.roundEnded(.failed(progress: false, needsPerson: false), nowMs: clock.nowMillis()) }
        #expect(s.failuresWithoutProgress == 8)
        let a = s.roundEnded(.failed(progress: true, needsPerson: false), nowMs: clock.nowMillis())
        #expect(Self.seconds(a) >= 0.5 && Self.seconds(a) <= 1.5, "after progress: \(Self.seconds(a)) s")
        #expect(Self.reason(a) == .retryAfterProgress)
        #expect(s.failuresWithoutProgress == 0)
        // The next round in which nothing moves starts the backoff over at 2 s.
        let b = s.roundEnded(.failed(progress: false, needsPerson: false), nowMs: clock.nowMillis())
        #expect(Self.seconds(b) >= 1 && Self.seconds(b) <= 2, "first backoff after progress: \(Self.seconds(b)) s")
    }

    @Test func inSyncWaitsTheIntervalAndMoreToDoContinuesWithoutSpinning() {
        var s = SyncScheduleStateMachine(policy: .init(interval: 30), seed: 3)
        for _ in 0..<50 {
            let a = s.roundEnded(.inSync, nowMs: 0)
            #expect(Self.seconds(a) >= 27 && Self.seconds(a) <= 33)
        }
        let c = s.roundEnded(.moreToDo, nowMs: 0)
        #expect(Self.seconds(c) == 0.1 && Self.reason(c) == .continuing)
    }

    @Test func noOutcomeEverGivesAWaitUnderATenthOfASecond() {
        var g = SeededGenerator(seed: 42)
        var s = SyncScheduleStateMachine(
            policy: .init(interval: 0, retryAfterProgress: -1, backoffMin: .nan, backoffMax: 0), seed: 5)
        let outcomes: [SyncScheduleStateMachine.Outcome] = [
            .inSync, .moreToDo, .failed(progress: true, needsPerson: false),
            .failed(progress: false, needsPerson: false), .failed(progress: false, needsPerson: true),
        ]
        for i in 0..<2000 {
            let o = outcomes[Int(g.next() % UInt64(outcomes.count))]
            let a = s.roundEnded(o, nowMs: UInt64(i) * 1000)
            #expect(Self.seconds(a) >= 0.1, "outcome \(o) gave \(Self.seconds(a)) s (seed 42, step \(i))")
            #expect(Self.seconds(a) <= 300)
        }
    }

    @Test func aProblemThatNeedsAPersonStillRetriesButAtMostEveryFiveMinutes() {
        var s = SyncScheduleStateMachine(policy: .init(), seed: 9)
        var last = 0.0
        for _ in 0..<20 {
            last = Self.seconds(s.roundEnded(.failed(progress: false, needsPerson: true), nowMs: 0))
        }
        #expect(last >= 150 && last <= 300)
    }

    /// A dead-zone link (up 15 s of every 45 s) and a transfer of 2 s pages:
    /// the loop must use most of the up time. A loop that backs off until a
    /// round completes (the old rule) uses far less, so this fails for it.
    @Test func onADeadZoneTimelineTheLoopUsesMostOfTheUpTime() {
        let clock = ManualClock(millis: 0)
        var s = SyncScheduleStateMachine(policy: .init(), seed: 1)
        func up(_ ms: UInt64) -> Bool { ms % 45_000 < 15_000 }
        let pageMs: UInt64 = 2000
        var pages = 0
        let total = 120
        var rounds = 0
        while pages < total && clock.nowMillis() < 3_600_000 && rounds < 10_000 {
            rounds += 1
            var moved = 0
            var outcome = SyncScheduleStateMachine.Outcome.inSync
            if !up(clock.nowMillis()) {
                // connect() hangs during an outage: it succeeds when the link is
                // back within the 12 s connect timeout (SYN retransmits), else fails.
                let back = 45_000 - clock.nowMillis() % 45_000
                if back <= 12_000 {
                    clock.advance(by: back + 1000)
                } else {
                    clock.advance(by: 12_000)
                    outcome = .failed(progress: false, needsPerson: false)
                }
            }
            if outcome == .inSync {
                while pages < total {
                    let start = clock.nowMillis()
                    if up(start) && up(start + pageMs) {
                        clock.advance(by: pageMs)
                        pages += 1
                        moved += 1
                    } else {
                        // Cut mid-page: the request ends 30 s (the idle timeout) after the cut.
                        let cut = start - start % 45_000 + 15_000
                        clock.advance(by: cut + 30_000 - start)
                        outcome = .failed(progress: moved > 0, needsPerson: false)
                        break
                    }
                }
            }
            if pages >= total { break }
            clock.advance(by: UInt64(Self.seconds(s.roundEnded(outcome, nowMs: clock.nowMillis())) * 1000))
        }
        #expect(pages == total, "finished \(pages) of \(total) pages")
        // The up-time ceiling: 15 s of 45 s hold 7 whole pages.
        let ceilingMs = Double(total) / 7 * 45_000
        let share = ceilingMs / Double(clock.nowMillis())
        #expect(share >= 0.85, "used \(share) of the up-time ceiling in \(clock.nowMillis() / 1000) s")
    }
}

struct TransferSizeTests {
    @Test func transfersTargetTenSecondsOfTheMeasuredThroughput() throws {
        var t = TransferSizeStateMachine(policy: .init())
        // 48 KiB: W1 (6,583 writes, ~40 KB sealed) goes in one change set, ~6 s on 2g.
        #expect(t.bytes(.upload) == 48 * 1024, "starts at 48 KiB")
        // A 2g link: ~7 KB/s measured on 40 KB transfers.
        for _ in 0..<10 { t.succeeded(.upload, bytes: 40_000, millis: 5_700) }
        let rate = try #require(t.throughput)
        #expect(abs(rate - 40_000 / 5.7) < 1)
        #expect(t.bytes(.upload) <= Int(rate * 10) && t.bytes(.upload) >= Int(rate * 10) - 1)
        // A fast link: capped at 96 KiB, the size that survives bad links.
        var fast = TransferSizeStateMachine(policy: .init())
        for _ in 0..<10 { fast.succeeded(.download, bytes: 90_000, millis: 10) }
        #expect(fast.bytes(.download) == 96 * 1024)
    }

    @Test func eachDirectionGrowsAfterItsOwnSuccessAndShrinksAfterFailureNeverBelowTheFloor() {
        var t = TransferSizeStateMachine(policy: .init())
        t.succeeded(.download, bytes: 100, millis: 300)
        #expect(t.bytes(.download) == 72 * 1024)
        #expect(t.bytes(.upload) == 48 * 1024, "a download success does not grow the upload")
        #expect(t.throughput == nil, "a 100-byte transfer says nothing about the rate")
        for _ in 0..<20 { t.failed(.upload) }
        #expect(t.bytes(.upload) == 8 * 1024)
        t.halveUpload()
        #expect(t.bytes(.upload) == 8 * 1024)
        t.succeeded(.upload, bytes: 100, millis: 300)
        #expect(t.bytes(.upload) == 12 * 1024)
    }

    @Test func bytesPerWriteFollowsWhatSealingMeasured() {
        var t = TransferSizeStateMachine(policy: .init())
        #expect(t.writesPerChangeSet == 48 * 1024 / 7)
        // W1: 6,583 writes sealed to ~40 KB, ~6.1 bytes per write.
        for _ in 0..<10 { t.sealed(bytes: 40_160, writes: 6583) }
        #expect(abs(t.bytesPerWrite - 6.1) < 0.05, "\(t.bytesPerWrite)")
        #expect(abs(t.writesPerChangeSet - Int(Double(48 * 1024) / t.bytesPerWrite)) <= 1)
        // A tiny change set barely moves the estimate.
        t.sealed(bytes: 300, writes: 1)
        #expect(t.bytesPerWrite < 6.3)
        // Writes that compress to almost nothing are still capped per change set (memory).
        var dense = TransferSizeStateMachine(policy: .init(maxBytes: 96 * 1024, maxWrites: 16_384))
        for _ in 0..<20 { dense.sealed(bytes: 20_000, writes: 20_000) }
        #expect(dense.bytesPerWrite < 1.1)
        #expect(dense.writesPerChangeSet == 16_384)
    }

    @Test func nonsenseKnobsAreClampedToSaneValues() {
        let p = TransferSizeStateMachine.Policy(
            targetSeconds: .nan, maxBytes: -5, minBytes: 1 << 40, initialBytes: 0, initialBytesPerWrite: -1)
        #expect(p.minBytes <= p.initialBytes && p.initialBytes <= p.maxBytes)
        #expect(p.targetSeconds == 10 && p.initialBytesPerWrite == 7)
        var t = TransferSizeStateMachine(policy: p, throughput: -3, bytesPerWrite: .infinity)
        #expect(t.throughput == nil && t.bytesPerWrite == 7)
        t.succeeded(.upload, bytes: Int.max, millis: 0)
        #expect(t.bytes(.upload) <= p.maxBytes)
    }
}

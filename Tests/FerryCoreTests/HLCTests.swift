import FerryCore
import FerryTesting
import Testing

struct HLCTests {
    @Test func readingsNeverGoBackwardsWhenTheWallClockDoes() {
        let wall = ManualClock(millis: 10_000)
        var clock = HybridLogicalClock(wall: wall)
        let a = clock.now()
        wall.set(5_000)
        let b = clock.now()
        #expect(b > a)
        #expect(b.millis == 10_000 && b.counter == 1)
    }

    @Test func aReadingTooFarInTheFutureIsRefusedAndNotObserved() {
        let wall = ManualClock(millis: 1_000_000)
        var clock = HybridLogicalClock(wall: wall, futureBoundMillis: 600_000)
        let far = HLC(millis: 1_000_000 + 600_001, counter: 0)
        #expect(throws: ClockError.self) { try clock.observe(far) }
        #expect(clock.last == .zero)
        let near = HLC(millis: 1_000_000 + 599_999, counter: 7)
        #expect(throws: Never.self) { try clock.observe(near) }
        #expect(clock.now() > near)
    }

    @Test func theHubOffsetCorrectsAClockSetTo2099() {
        let wall = ManualClock(millis: 4_070_908_800_000)  // 2099-01-01
        let hubNow: UInt64 = 1_764_000_000_000
        var clock = HybridLogicalClock(wall: wall, offsetMillis: Int64(hubNow) - 4_070_908_800_000)
        #expect(clock.now().millis == hubNow)
    }
}

import FerryCore
import Synchronization

/// A wall clock that moves only when a test says so.
public final class ManualClock: WallClock {
    private let millis: Mutex<UInt64>

    public init(millis: UInt64 = 1_764_000_000_000) { self.millis = Mutex(millis) }

    public func nowMillis() -> UInt64 { millis.withLock { $0 } }

    /// Moves the clock forward by `ms` milliseconds.
    public func advance(by ms: UInt64) { millis.withLock { $0 += ms } }

    /// Sets the clock (backwards too: a PC whose clock was reset).
    public func set(_ ms: UInt64) { millis.withLock { $0 = ms } }
}

/// A deterministic, seedable generator (SplitMix64) for property tests.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

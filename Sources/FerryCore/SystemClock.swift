import Foundation

/// The machine's real-time clock.
public struct SystemClock: WallClock {
    public init() {}
    public func nowMillis() -> UInt64 {
        let t = Date().timeIntervalSince1970
        return t > 0 ? UInt64(t * 1000) : 0
    }
}

/// A hybrid logical clock reading (DESIGN §4): 48-bit milliseconds since the
/// Unix epoch in the high bits, a 16-bit counter in the low bits.
public struct HLC: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The packed 64-bit form that goes on the wire.
    public var raw: UInt64

    public init(raw: UInt64) { self.raw = raw }

    public init(millis: UInt64, counter: UInt16) {
        raw = (millis & 0xFFFF_FFFF_FFFF) << 16 | UInt64(counter)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var millis: UInt64 { raw >> 16 }
    /// Logical counter within one millisecond.
    public var counter: UInt16 { UInt16(truncatingIfNeeded: raw) }

    public static let zero = HLC(raw: 0)

    public static func < (a: HLC, b: HLC) -> Bool { a.raw < b.raw }

    public var description: String { "\(millis).\(counter)" }
}

/// A source of physical time in milliseconds; tests pass a manual one.
public protocol WallClock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMillis() -> UInt64
}

/// Refusal of a remote clock reading.
public struct ClockError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The remote reading that was refused.
    public let remote: HLC
    /// The local physical time the reading was compared with.
    public let localMillis: UInt64
    /// The allowed lead, in milliseconds.
    public let boundMillis: UInt64

    public var description: String {
        let ahead = (remote.millis &- localMillis) / 1000
        return "timestamp \(remote) is \(ahead) s ahead of this clock (the limit is \(boundMillis / 1000) s): "
            + "set the sending PC's date and time correctly, then sync again"
    }
}

/// The hybrid logical clock of one replica.
///
/// Readings never go backwards and always exceed every reading observed from a
/// peer, so a write's timestamp exceeds the timestamps of the writes its author
/// saw (the causality the merge rules rely on). Agents keep an `offset` learnt
/// from the hub at each sync, so a PC whose clock says 2099 cannot stamp
/// writes far in the future.
public struct HybridLogicalClock: Sendable {
    /// The latest reading issued or observed.
    public private(set) var last: HLC
    /// Milliseconds added to the wall clock (hub time minus local time).
    public var offsetMillis: Int64
    /// How far ahead of local time a remote reading may be before it is refused.
    public var futureBoundMillis: UInt64
    private let wall: any WallClock

    /// - Parameters:
    ///   - wall: physical time source.
    ///   - last: the last reading persisted by this replica (restart safety).
    ///   - offsetMillis: correction learnt from the hub.
    ///   - futureBoundMillis: default 10 minutes (DESIGN §4).
    public init(wall: any WallClock, last: HLC = .zero, offsetMillis: Int64 = 0, futureBoundMillis: UInt64 = 600_000) {
        self.wall = wall
        self.last = last
        self.offsetMillis = offsetMillis
        self.futureBoundMillis = futureBoundMillis
    }

    /// Corrected physical time in milliseconds.
    public func physicalMillis() -> UInt64 {
        let w = Int64(clamping: wall.nowMillis())
        let (sum, overflow) = w.addingReportingOverflow(offsetMillis)
        return overflow || sum < 0 ? 0 : UInt64(sum)
    }

    /// A new reading for a local event.
    public mutating func now() -> HLC {
        let pt = physicalMillis()
        if pt > last.millis {
            last = HLC(millis: pt, counter: 0)
        } else {
            last = Self.successor(of: last)
        }
        return last
    }

    /// Takes a remote reading into account, so later local readings exceed it.
    /// - Throws: ``ClockError`` when `remote` is further ahead of local physical
    ///   time than ``futureBoundMillis``; the clock is then unchanged.
    public mutating func observe(_ remote: HLC) throws(ClockError) {
        try check(remote)
        if remote > last { last = remote }
    }

    /// Checks a remote reading against the future bound without observing it.
    public func check(_ remote: HLC) throws(ClockError) {
        let pt = physicalMillis()
        if remote.millis > pt &+ futureBoundMillis {
            throw ClockError(remote: remote, localMillis: pt, boundMillis: futureBoundMillis)
        }
    }

    static func successor(of h: HLC) -> HLC {
        h.counter == UInt16.max ? HLC(millis: h.millis + 1, counter: 0) : HLC(raw: h.raw + 1)
    }
}

extension HybridLogicalClock {
    /// The largest clock correction kept: ±2^47 ms (about 4,460 years) — far past any real skew,
    /// and small enough that adding it to a 48-bit millisecond time never overflows.
    public static let maxOffsetMillis: Int64 = 1 << 47

    /// The offset `hub − local` in milliseconds, clamped to ±``maxOffsetMillis``.
    /// Both times may be any 64-bit value (an enrollment answer's time is not signed).
    public static func offset(hubMillis: UInt64, localMillis: UInt64) -> Int64 {
        let d =
            hubMillis >= localMillis
            ? Int64(clamping: hubMillis - localMillis) : -Int64(clamping: localMillis - hubMillis)
        return Swift.min(Swift.max(d, -maxOffsetMillis), maxOffsetMillis)
    }

    /// `local + offset` in milliseconds, saturating at 0 and at UInt64.max.
    public static func corrected(localMillis: UInt64, offset: Int64) -> UInt64 {
        offset >= 0
            ? localMillis.addingReportingOverflow(offset.magnitude).overflow
                ? UInt64.max : localMillis + offset.magnitude
            : localMillis >= offset.magnitude ? localMillis - offset.magnitude : 0
    }
}

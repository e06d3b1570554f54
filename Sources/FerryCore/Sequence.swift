/// What a receiver does with a change set that covers sequence numbers
/// `from...to` of one origin (DESIGN §4, order).
public enum SequenceVerdict: Sendable, Equatable {
    /// Exactly the next range: apply it.
    case apply
    /// Already applied (re-delivery): acknowledge, apply nothing.
    case duplicate
    /// Starts after the next expected number: refuse, and say which is expected.
    case gap(expected: UInt64)
    /// Overlaps what was applied without matching it: refuse.
    case overlap(expected: UInt64)
    /// `to < from`, or starts at 0: refuse.
    case malformed
}

/// Per-origin sequence tracking: strictly in order, idempotent on re-delivery.
public struct OriginSequence: Sendable, Hashable {
    /// The last sequence number applied (0 = none yet).
    public private(set) var applied: UInt64

    public init(applied: UInt64 = 0) { self.applied = applied }

    /// The next sequence number the receiver expects.
    public var expected: UInt64 { applied + 1 }

    /// Classifies the range `from...to` without changing state.
    public func classify(from: UInt64, to: UInt64) -> SequenceVerdict {
        guard from >= 1, to >= from else { return .malformed }
        if to <= applied { return .duplicate }
        if from == expected { return .apply }
        if from > expected { return .gap(expected: expected) }
        return .overlap(expected: expected)
    }

    /// Records that `from...to` was applied.
    /// - Precondition: `classify(from:to:) == .apply`.
    public mutating func advance(to: UInt64) {
        applied = max(applied, to)
    }
}

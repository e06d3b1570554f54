/// What applying a write to a register did.
public enum ApplyOutcome: Sendable, Equatable {
    /// The write was already there (re-delivery): nothing changed.
    case duplicate
    /// The write was already superseded by a write that names it in `prev`.
    case superseded
    /// The write is now a leaf; the winner may or may not have changed.
    case applied(winnerChanged: Bool)
}

/// A multi-value register: the hub's view of one field (DESIGN §4).
///
/// Leaves are the writes not named in any other write's `prev`; the winner is
/// the leaf with the highest (hlc, origin). More than one leaf is a conflict.
/// Given causal delivery (every `prev` applied first), the leaves depend only
/// on the set of writes applied, not on their order.
public struct LeafRegister: Sendable, Hashable {
    /// Current leaves, highest id first.
    public private(set) var leaves: [FieldWrite]

    public init(leaves: [FieldWrite] = []) {
        self.leaves = leaves.sorted { $0.id > $1.id }
    }

    /// The leaf with the highest (hlc, origin), if any.
    public var winner: FieldWrite? { leaves.first }

    /// More than one leaf: concurrent writes an operator should see.
    public var isConflict: Bool { leaves.count > 1 }

    /// Applies one write.
    public mutating func apply(_ write: FieldWrite) -> ApplyOutcome {
        if leaves.contains(where: { $0.id == write.id }) { return .duplicate }
        if leaves.contains(where: { $0.prev.contains(write.id) }) { return .superseded }
        let before = winner?.id
        leaves.removeAll { write.prev.contains($0.id) }
        let at = leaves.firstIndex { $0.id < write.id } ?? leaves.endIndex
        leaves.insert(write, at: at)
        return .applied(winnerChanged: before != winner?.id)
    }
}

/// A replica's compacted view of one field: only the winner (DESIGN §4,
/// compaction). Because a write's hlc exceeds that of every write its author
/// saw, the highest write ever applied is always a leaf, so keeping the
/// maximum gives the same winner as the hub's full leaf set.
public struct WinnerRegister: Sendable, Hashable {
    public private(set) var winner: FieldWrite?

    public init(winner: FieldWrite? = nil) { self.winner = winner }

    /// Applies one write; returns `true` when the winner changed.
    @discardableResult
    public mutating func apply(_ write: FieldWrite) -> Bool {
        guard let current = winner else {
            winner = write
            return true
        }
        if write.id > current.id {
            winner = write
            return true
        }
        return false
    }
}

import FerryCore

/// The checks a receiver makes after opening a change set and before applying
/// it (SPEC §7): replay, sequence, timestamps, causality and authorship.
public enum ReceiveChecks {
    /// - Parameters:
    ///   - sequence: the receiver's position in the author's sequence.
    ///   - alreadySeen: the change-set id was received before.
    ///   - clock: the receiver's clock, for the future bound.
    ///   - authorWritesOnly: every write must carry the header's origin and the
    ///     range must count the writes (agent → hub).
    /// - Returns: `.apply` or `.duplicate` (acknowledge, apply nothing).
    /// - Throws: ``ChangeSetError`` (replayed, out of sequence, future timestamp, causality, malformed).
    public static func check(
        _ cs: OpenedChangeSet, sequence: OriginSequence, alreadySeen: Bool, clock: HybridLogicalClock,
        authorWritesOnly: Bool
    ) throws(ChangeSetError) -> SequenceVerdict {
        let h = cs.header
        do {
            if alreadySeen { throw ChangeSetError.replayed(h.idHex) }
            switch sequence.classify(from: h.seqFrom, to: h.seqTo) {
            case .apply: break
            case .duplicate: return .duplicate
            case .gap(let e), .overlap(let e):
                throw ChangeSetError.outOfSequence(expected: e, from: h.seqFrom, to: h.seqTo)
            case .malformed:
                throw ChangeSetError.malformed("sequence range \(h.seqFrom)...\(h.seqTo) is empty or starts at 0")
            }
            do {
                try clock.check(h.createdHLC)
                for w in cs.body.writes { try clock.check(w.id.hlc) }
            } catch {
                throw ChangeSetError.futureTimestamp(error)
            }
            for w in cs.body.writes {
                if w.violatesCausality { throw ChangeSetError.causality("\(w.id) on \(w.record).\(w.field)") }
                if let a = w.alive, a.hlc >= w.id.hlc { throw ChangeSetError.causality("\(w.id) alive \(a)") }
                if w.covers.contains(where: { $0.hlc >= w.id.hlc }) { throw ChangeSetError.causality("\(w.id) covers") }
                // SPEC §5.1: a record encoded with the empty scope is refused with `scope`.
                guard cs.body.scopes[w.record] != nil else {
                    throw ChangeSetError.scope("record \(w.record) has no scope (form, version, commune)")
                }
            }
            if authorWritesOnly {
                if let w = cs.body.writes.first(where: { $0.id.origin != h.origin }) {
                    throw ChangeSetError.malformed("write \(w.id) is not by the change set's author \(h.origin)")
                }
                let span = h.seqTo - h.seqFrom + 1
                guard span == UInt64(cs.body.writes.count) else {
                    throw ChangeSetError.malformed(
                        "the range \(h.seqFrom)...\(h.seqTo) covers \(span) writes but the body has \(cs.body.writes.count)"
                    )
                }
            }
            return .apply
        } catch {
            throw error.about(h)
        }
    }
}

import FerryCore
import FerryProtocol
import Foundation
import GRDB

/// What offline bundles (SPEC §12) need from the replica.
extension AgentStore {
    /// Every change set in flight (frozen, sealed, not yet acknowledged), in sequence order.
    /// - Parameter limit: at most this many (bounds memory; a bundle holds at most 10,000).
    public func inFlightAll(limit: Int) throws -> [InFlight] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM inflight ORDER BY seq_from LIMIT ?", arguments: [max(0, limit)]
            ).map(Self.inflight)
        }
    }

    /// Acknowledges, on a count signed by the hub (SPEC §9.3, §12.4), every change
    /// set in flight that ends at or before `applied`; returns the last number
    /// acknowledged, or nil when none was. A change set the hub holds only part
    /// of stays queued (the hub applies whole change sets, so that means another
    /// replica wrote under this origin; the next upload is then refused loudly).
    @discardableResult
    public func acknowledgeConfirmed(upTo applied: UInt64) throws -> UInt64? {
        let covered = try pool.read { db in
            try Int64.fetchOne(
                db, sql: "SELECT max(seq_to) FROM inflight WHERE seq_to <= ?", arguments: [Int64(clamping: applied)])
        }
        guard let covered, covered > 0 else { return nil }
        let upTo = UInt64(covered)
        try acknowledge(upTo: upTo)
        return upTo
    }
}

import FerryCore
import FerryProtocol
import FerryStore
import Foundation

extension HubService {
    /// Refuses `conflicts resolve` on a field with no open conflict, saying
    /// what the field holds and how to change it instead.
    func requireConflict(record: RecordID, field: String) throws {
        let open = try store.openConflicts(record: record)
        // An edit-vs-delete conflict is resolved through `_deleted` or the edited field.
        let matches = open.contains { $0.field == field || (field == deletedField && $0.kind == "edit_vs_delete") }
        guard !matches else { return }
        guard let view = try store.record(record) else {
            throw HubError(.notFound, "record \(record) is not at this hub")
        }
        guard view.leaves[field] != nil || field == deletedField else {
            throw HubError(
                .notFound,
                "record \(record) has no field '\(field)'; its fields are \(view.leaves.keys.filter { $0 != deletedField }.sorted().joined(separator: ", "))"
            )
        }
        let shown = view.leaves[field]?.winner?.value.display ?? "∅"
        let others = open.map(\.field)
        throw HubError(
            .noConflict,
            "record \(record) field '\(field)' has no open conflict (it holds \(shown)): nothing was changed."
                + (others.isEmpty
                    ? " To change the value: ferry records edit \(record) \(field)=VALUE --at-hub"
                    : " Its open conflicts are on: \(others.joined(separator: ", ")).")
        )
    }

    /// Communes that need a person first: revoked or cloned agents, agents
    /// silent for over a day, agents reporting an error, open conflicts and
    /// quarantined values; most urgent first.
    func attention(agents: [AgentJSON], now: UInt64) throws -> [CommuneAttentionJSON] {
        let names = Dictionary(try store.communes().map { ($0.code, $0.name) }, uniquingKeysWith: { a, _ in a })
        let open = try store.openItemsByCommune()
        var reasons: [String: [(Int, String)]] = [:]
        for a in agents {
            if a.status != "active" {
                reasons[a.commune, default: []].append((1, "agent \(a.id) is \(a.status): enroll a new one"))
                continue
            }
            if a.clonedMs != nil {
                reasons[a.commune, default: []].append(
                    (100, "agent \(a.id) runs on two PCs (cloned replica): enroll the copy with a new token"))
            }
            if let e = a.lastError { reasons[a.commune, default: []].append((50, "agent \(a.id) reports: \(e)")) }
            if let seen = a.lastSeenMs, now > seen, now - seen > 86_400_000 {
                let days = (now - seen) / 86_400_000
                reasons[a.commune, default: []].append(
                    (Int(clamping: min(days, 30)) * 3, "agent \(a.id) not seen for \(days) day(s)"))
            } else if a.lastSeenMs == nil {
                reasons[a.commune, default: []].append((20, "agent \(a.id) enrolled but never synced"))
            }
        }
        for (c, n) in open.conflicts {
            reasons[c, default: []].append(
                (min(n, 40) + 10, "\(n) open conflict(s): ferry conflicts list --commune \(c)"))
        }
        for (c, n) in open.quarantined {
            reasons[c, default: []].append((min(n, 40) + 10, "\(n) quarantined value(s): ferry quarantine list"))
        }
        return reasons.map { c, rs in
            CommuneAttentionJSON(
                commune: c, name: names[c] ?? c, score: rs.reduce(0) { $0 + $1.0 },
                reasons: rs.sorted { $0.0 > $1.0 }.map(\.1))
        }.sorted { ($0.score, $1.commune) > ($1.score, $0.commune) }
    }
}

import FerryCore
import FerryProtocol
import FerryStore
import Foundation

/// What each console page shows, computed from the store (the templates only lay it out).
enum ConsoleViews {
    // MARK: formatting

    static func utc(_ ms: UInt64) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm 'UTC'"
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// "3 min ago", "2 h ago", "5 days ago".
    static func ago(_ ms: UInt64?, now: UInt64) -> String {
        guard let ms else { return "never" }
        guard now >= ms else { return "in the future" }
        let s = (now - ms) / 1000
        switch s {
        case ..<60: return "\(s) s ago"
        case ..<3600: return "\(s / 60) min ago"
        case ..<172_800: return "\(s / 3600) h ago"
        default: return "\(s / 86_400) days ago"
        }
    }

    static func skew(_ ms: Int64?) -> String {
        guard let ms else { return "—" }
        let sign = ms >= 0 ? "+" : "−"
        let a = ms.magnitude
        return a < 1000 ? "\(sign)\(a) ms" : String(format: "%@%.1f s", sign, Double(a) / 1000)
    }

    static func short(_ id: String) -> String { id.count > 13 ? String(id.prefix(8)) + "…" + String(id.suffix(4)) : id }

    static func communeNames(_ service: HubService) throws -> [String: String] {
        Dictionary(try service.store.communes().map { ($0.code, $0.name) }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: progress

    struct Tile {
        var commune: String
        var name: String
        var records: Int
        var target: Int
        var percent: String
        var shade: Int
    }
    struct CampaignView {
        var id, title, form, starts, ends, status: String
        var done, target, records, communesDone, communeCount: Int
        var percent: String
        var percentWidth: Int
        var rows: [Tile]
    }
    struct ProgressView { var campaigns: [CampaignView] }

    /// Share done in [0, 1]: records count up to the target (more than the target is not "more done").
    static func share(_ records: Int, _ target: Int) -> Double {
        target > 0 ? Double(min(max(records, 0), target)) / Double(target) : (records > 0 ? 1 : 0)
    }

    static func shade(_ s: Double) -> Int {
        switch s {
        case ..<0.000_001: 0
        case ..<0.25: 1
        case ..<0.5: 2
        case ..<0.75: 3
        case ..<1: 4
        default: 5
        }
    }

    /// Rounded down, so "100" means done; one decimal under 10 %, so a started commune never reads "0".
    static func percent(_ s: Double) -> String {
        let p = s * 100
        return p > 0 && p < 10
            ? String(format: "%.1f", max((p * 10).rounded(.down) / 10, 0.1)) : String(format: "%.0f", p.rounded(.down))
    }

    static func progress(_ service: HubService) throws -> ProgressView {
        ProgressView(
            campaigns: try service.store.campaigns().map { c in
                let rows = try service.store.progress(campaign: c)
                // Saturating sums: targets come from an operator's file and are only bounded below.
                func add(_ a: Int, _ b: Int) -> Int { a.addingReportingOverflow(b).overflow ? .max : a + b }
                let done = rows.reduce(0) { add($0, min(max($1.records, 0), max($1.target, 0))) }
                let target = rows.reduce(0) { add($0, max($1.target, 0)) }
                let s = target > 0 ? Double(done) / Double(target) : 0
                return CampaignView(
                    id: c.id, title: c.title, form: c.formID, starts: c.starts, ends: c.ends, status: c.status,
                    done: done, target: target, records: rows.reduce(0) { $0 + $1.records },
                    communesDone: rows.filter { $0.target > 0 && $0.records >= $0.target }.count,
                    communeCount: rows.count, percent: percent(s), percentWidth: Int(s * 100),
                    rows: rows.map {
                        let sh = share($0.records, $0.target)
                        return Tile(
                            commune: $0.commune, name: $0.name, records: $0.records, target: $0.target,
                            percent: percent(sh), shade: shade(sh))
                    })
            })
    }

    // MARK: fleet

    struct AgentRow {
        var id, shortID, commune, communeName, hostname, status, statusClass: String
        var lastContact, lastContactAt, skew, version: String
        var lag: UInt64
        var lastError: String
        var cloned: Int?
    }
    struct FleetView {
        var count, active, revoked, stale: Int
        var now: String
        var agents: [AgentRow]
    }

    static func fleet(_ service: HubService) throws -> FleetView {
        let st = try service.status()
        let now = st.timeMs
        let agents = st.agents.sorted { ($0.communeName, $0.id) < ($1.communeName, $1.id) }
        return FleetView(
            count: agents.count, active: agents.filter { $0.status == "active" }.count,
            revoked: agents.filter { $0.status == "revoked" }.count,
            stale: agents.filter { a in a.lastSeenMs.map { now > $0 && now - $0 > 86_400_000 } ?? true }.count,
            now: utc(now),
            agents: agents.map { a in
                AgentRow(
                    id: a.id, shortID: short(a.id), commune: a.commune, communeName: a.communeName,
                    hostname: a.hostname, status: a.status, statusClass: a.status == "active" ? "ok" : "warn",
                    lastContact: ago(a.lastSeenMs, now: now), lastContactAt: a.lastSeenMs.map(utc) ?? "",
                    skew: skew(a.lastSkewMs),
                    // The agents do not report their software version to the hub yet.
                    version: "not reported", lag: a.lag, lastError: a.lastError ?? "",
                    cloned: (a.clonedRefusals ?? 0) > 0 ? a.clonedRefusals : nil)
            })
    }

    // MARK: conflicts

    struct SideView {
        var value, who, time, keep, button: String
    }
    struct ConflictView {
        var record, shortRecord, communeName, field, kind: String
        var sides: [SideView]
    }
    struct ConflictsView {
        var count, shown: Int
        var more, canResolve: Bool
        var role, csrf: String
        var conflicts: [ConflictView]
    }

    static let conflictPage = 200

    static func conflicts(_ service: HubService, _ who: OperatorIdentity) throws -> ConflictsView {
        let names = try communeNames(service)
        let list = try service.store.conflicts(limit: conflictPage)
        let total = try service.store.totals()["conflicts"] ?? list.count
        return ConflictsView(
            count: total, shown: list.count, more: total > list.count, canResolve: who.may(.operator),
            role: who.role.rawValue, csrf: who.session.flatMap(service.access.csrf(session:)) ?? "",
            conflicts: list.map { c in
                let deleteKind = c.field == deletedField || c.sides.contains { $0.field == deletedField }
                var sides = c.sides.map { s in
                    let isDelete = s.field == deletedField && c.field != deletedField
                    return SideView(
                        value: isDelete ? "\(deletedField)=\(s.value.text)" : s.value.text,
                        who: s.commune.map { "\(names[$0] ?? $0) (\(short(s.origin)))" } ?? s.origin,
                        time: utc(s.timeMs), keep: isDelete ? "" : s.value.text,
                        button: isDelete ? "Confirm the delete" : "Keep this value")
                }
                if deleteKind {
                    // SPEC §8.7: an edit-vs-delete conflict is resolved on the record's `_deleted` field.
                    sides = sides.map { s in
                        var s = s
                        if s.button != "Confirm the delete" {
                            s.keep = "false"
                            s.button = "Keep the record"
                        }
                        return s
                    }
                }
                return ConflictView(
                    record: c.record, shortRecord: short(c.record), communeName: names[c.commune] ?? c.commune,
                    field: deleteKind ? deletedField : c.field, kind: c.kind, sides: sides)
            })
    }

    // MARK: records

    struct CommuneOption {
        var code, name: String
        var selected: Bool
    }
    struct RecordRow {
        var id, shortID, communeName, form: String
        var version: Int
        var summary: String
        var deleted, conflict: Bool
    }
    struct RecordsView {
        var q: String
        var count: Int
        var more: Bool
        var communes: [CommuneOption]
        var results: [RecordRow]
    }

    static let searchLimit = 100

    static func records(_ service: HubService, q: String, commune: String?) throws -> RecordsView {
        let names = try communeNames(service)
        let ids: [RecordID]
        if let rid = RecordID(q.trimmingCharacters(in: .whitespaces)) {
            ids = try service.store.record(rid) == nil ? [] : [rid]
        } else {
            ids = try service.store.searchRecords(text: q, commune: commune, limit: searchLimit + 1)
        }
        let forms = try service.store.forms()
        let rows = try ids.prefix(searchLimit).compactMap { id -> RecordRow? in
            guard let v = try service.store.record(id) else { return nil }
            let form = forms.first { $0.id == v.scope.formID && $0.version == v.scope.formVersion }
            let w = v.winners
            let order = form?.fields.map(\.name) ?? w.keys.sorted()
            let summary = order.compactMap { f in w[f].flatMap { $0.isNull ? nil : $0.display } }.prefix(3)
            return RecordRow(
                id: id.description, shortID: short(id.description),
                communeName: names[v.scope.commune] ?? v.scope.commune, form: v.scope.formID,
                version: v.scope.formVersion, summary: summary.joined(separator: " · "), deleted: v.isDeleted,
                conflict: v.leaves.values.contains { $0.isConflict })
        }
        return RecordsView(
            q: q, count: rows.count, more: ids.count > searchLimit,
            communes: try service.store.communes().map {
                CommuneOption(code: $0.code, name: $0.name, selected: $0.code == commune)
            }, results: rows)
    }

    struct FieldRow {
        var name, value, origin, leaves: String
        var conflict: Bool
    }
    struct ActionRow { var time, user, action, detail: String }
    struct AuditRow { var changeSet, origin, seq, time, valid: String }
    struct RecordView {
        var id, commune, communeName, form: String
        var version: Int
        var deleted: Bool
        var fields: [FieldRow]
        var actions: [ActionRow]
        var audit: [AuditRow]
    }

    static func record(_ service: HubService, _ id: RecordID) throws -> RecordView {
        let j = try service.recordJSON(id)
        let names = try communeNames(service)
        return RecordView(
            id: j.id, commune: j.commune, communeName: names[j.commune] ?? j.commune, form: j.form,
            version: j.formVersion, deleted: j.deleted,
            fields: j.fields.sorted { $0.key < $1.key }.map { k, f in
                FieldRow(
                    name: k, value: f.value.text,
                    origin: f.write.split(separator: "@").last.map(String.init) ?? f.write,
                    leaves: f.leaves.joined(separator: " vs "), conflict: f.conflict)
            },
            actions: try service.store.operatorActions(record: j.id, limit: 100).map {
                ActionRow(time: utc($0.atMs), user: $0.user, action: $0.action, detail: $0.detail)
            },
            audit: try service.store.audit(record: id).map {
                AuditRow(
                    changeSet: short($0.changeSet), origin: short($0.origin), seq: "\($0.seqFrom)–\($0.seqTo)",
                    time: utc($0.receivedMs), valid: $0.signatureValid ? "valid" : "INVALID")
            })
    }
}

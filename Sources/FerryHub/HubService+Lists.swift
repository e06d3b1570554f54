import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

// SPEC §9.6: every operator list answers one page (PageV1) with a cursor and
// the count after it; `limit` is clamped to 1…1000 and a malformed cursor or
// filter is refused as `bad_request`, never read as "from the start".
extension HubService {
    func pageLimit(_ q: [String: String]) throws -> Int {
        guard let n = PageLimit.parse(q["limit"]) else {
            throw HubError(
                .badRequest, "limit must be a whole number (1…\(PageLimit.maximum)), got '\(q["limit"] ?? "")'")
        }
        return n
    }

    static func cursorText(_ parts: [String]) -> String { hex(Array(parts.joined(separator: "\u{1F}").utf8)) }

    static func cursorParts(_ text: String, count: Int) throws -> [String] {
        guard text.utf8.count <= 4096, let bytes = unhex(text), let s = String(validating: bytes, as: UTF8.self) else {
            throw HubError(
                .badRequest, "cursor '\(text.prefix(80))' is not one this hub gave out: start without --cursor")
        }
        let parts = s.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == count else {
            throw HubError(
                .badRequest, "cursor '\(text.prefix(80))' is not one this hub gave out: start without --cursor")
        }
        return parts
    }

    static func flag(_ q: [String: String], _ name: String) throws -> Bool {
        switch q[name] {
        case nil, "false", "0": return false
        case "true", "1": return true
        case let v?: throw HubError(.badRequest, "\(name) must be true or false, got '\(v)'")
        }
    }

    func recordsPage(_ q: [String: String]) throws -> PageV1<HubRecordJSON> {
        let limit = try pageLimit(q)
        var after: RecordID?
        if let c = q["cursor"] {
            guard let p = try Self.cursorParts(c, count: 1).first, let rid = RecordID(p) else {
                throw HubError(
                    .badRequest, "cursor '\(c.prefix(80))' is not one this hub gave out: start without --cursor")
            }
            after = rid
        }
        var form = q["form"]
        var period: (start: UInt64, end: UInt64)?
        if let k = q["campaign"] {
            guard let c = try store.campaigns().first(where: { $0.id == k }) else {
                throw HubError(.notFound, "there is no campaign '\(k.prefix(80))' (ferry campaigns list)")
            }
            if let f = form, f != c.formID {
                throw HubError(.badRequest, "campaign \(k) collects form \(c.formID), not \(f)")
            }
            form = c.formID
            period = c.periodMillis
        }
        let page = try store.recordPage(
            commune: q["commune"], form: form, includeDeleted: try Self.flag(q, "include_deleted"), after: after,
            limit: limit, createdIn: period)
        let items = try page.items.map(recordJSON)
        return PageV1(
            items: items,
            nextCursor: page.remaining > 0 ? page.items.last.map { Self.cursorText([$0.description]) } : nil,
            remaining: page.remaining)
    }

    func conflictsPage(_ q: [String: String]) throws -> PageV1<ConflictReport> {
        let limit = try pageLimit(q)
        var after: ConflictKey?
        if let c = q["cursor"] {
            let p = try Self.cursorParts(c, count: 3)
            guard let rid = RecordID(p[0]) else {
                throw HubError(
                    .badRequest, "cursor '\(c.prefix(80))' is not one this hub gave out: start without --cursor")
            }
            after = ConflictKey(record: rid, field: p[1], kind: p[2])
        }
        var age: UInt64?
        if let h = q["older_than_hours"] {
            guard let n = UInt64(h), n <= 24 * 3650 else {
                throw HubError(.badRequest, "older_than_hours must be a whole number of hours (0…87600), got '\(h)'")
            }
            age = n * 3_600_000
        }
        let filter = ConflictFilter(
            commune: q["commune"], form: q["form"], field: q["field"]?.nfc, olderThanMillis: age)
        let page = try store.conflictPage(filter, after: after, limit: limit)
        let next = page.items.last.map { Self.cursorText([$0.record, $0.field, $0.kind]) }
        return PageV1(items: page.items, nextCursor: page.remaining > 0 ? next : nil, remaining: page.remaining)
    }

    func quarantinePage(_ q: [String: String]) throws -> PageV1<QuarantineEntry> {
        let limit = try pageLimit(q)
        var after: Int64?
        if let c = q["cursor"] {
            guard let p = try Self.cursorParts(c, count: 1).first, let n = Int64(p) else {
                throw HubError(
                    .badRequest, "cursor '\(c.prefix(80))' is not one this hub gave out: start without --cursor")
            }
            after = n
        }
        let status: String?
        switch q["status"] ?? "open" {
        case "all": status = nil
        case let s where QuarantineStatus.all.contains(s): status = s
        case let s:
            throw HubError(
                .badRequest, "status must be one of all, \(QuarantineStatus.all.joined(separator: ", ")); got '\(s)'")
        }
        let page = try store.quarantinePage(status: status, after: after, limit: limit)
        let next = page.items.last.map { Self.cursorText(["\($0.id)"]) }
        return PageV1(items: page.items, nextCursor: page.remaining > 0 ? next : nil, remaining: page.remaining)
    }

    func agentsPage(_ q: [String: String]) throws -> PageV1<AgentJSON> {
        let limit = try pageLimit(q)
        let after = try q["cursor"].map { try Self.cursorParts($0, count: 1)[0] }
        let page = try store.agentPage(after: after, limit: limit)
        let names = Dictionary(try store.communes().map { ($0.code, $0.name) }, uniquingKeysWith: { a, _ in a })
        let items = page.items.map { agentJSON($0, names: names) }
        let next = page.items.last.map { Self.cursorText([$0.id]) }
        return PageV1(items: items, nextCursor: page.remaining > 0 ? next : nil, remaining: page.remaining)
    }

    func auditPage(_ id: String, _ q: [String: String]) throws -> PageV1<AuditEntry> {
        guard let rid = RecordID(id) else { throw HubError(.badRequest, "'\(id)' is not a record id") }
        guard try store.record(rid) != nil else { throw HubError(.notFound, "record \(rid) is not at this hub") }
        let limit = try pageLimit(q)
        let after = try q["cursor"].map { try Self.cursorParts($0, count: 1)[0] }
        let page = try store.auditPage(record: rid, after: after, limit: limit)
        let next = page.items.last.map { Self.cursorText([$0.changeSet]) }
        return PageV1(items: page.items, nextCursor: page.remaining > 0 ? next : nil, remaining: page.remaining)
    }

    func agentJSON(_ a: AgentInfo, names: [String: String]) -> AgentJSON {
        AgentJSON(
            id: a.id, commune: a.commune, communeName: names[a.commune] ?? a.commune, status: a.status,
            hostname: a.hostname, lastSeenMs: a.lastSeenMs, lastSkewMs: a.lastSkewMs, appliedSeq: a.appliedSeq,
            ackedCursor: a.ackedCursor, lag: UInt64(clamping: (try? store.lag(of: a)) ?? 0), lastError: a.lastError,
            clonedMs: a.clonedMs, clonedRefusals: a.clonedRefusals)
    }
}

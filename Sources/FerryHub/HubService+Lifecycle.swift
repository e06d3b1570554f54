import FerryCore
import FerryProtocol
import FerryStore
import Foundation

// Form lifecycle, campaigns and quarantine closed by a person (SPEC §9.6).
// Every write takes the acting operator's name (`by`) for the audit trail;
// the console's pages call these same functions.
extension HubService {
    /// Routes the lifecycle endpoints; nil when the request is not one of them.
    func lifecycleRoute(method: String, path: [String], query: [String: String], body: [UInt8], by: String) throws
        -> HubReply?
    {
        switch (method, path.count) {
        case ("GET", 2) where path == ["forms", "drafts"]:
            return .json(200, try store.drafts())
        case ("POST", 1) where path == ["forms"]:
            let form = try decodeForm(body)
            if try Self.flag(query, "draft") {
                try store.saveDraft(form: form, by: by)
            } else {
                try store.publish(form: form, by: by)
            }
            return .json(200, form)
        case ("POST", 4) where path[0] == "forms" && (path[3] == "publish" || path[3] == "retire"):
            guard let v = Int(path[2]) else { throw HubError(.badRequest, "'\(path[2])' is not a form version") }
            if path[3] == "publish" {
                return .json(200, try store.publishDraft(id: path[1], version: v, by: by))
            }
            try store.retire(form: path[1], version: v, by: by)
            logger.notice("form retired", metadata: ["ferry.form": "\(path[1])@\(v)", "ferry.operator": "\(by)"])
            return .json(200, ["retired": "\(path[1])@\(v)"])
        case ("POST", 3) where path[0] == "forms" && path[2] == "migrate":
            let req = try decode(MigrationRequest.self, body)
            let report = try store.migrate(
                form: path[1], from: req.from, to: req.to, dryRun: req.dryRun ?? false, by: by)
            return .json(200, report)
        case ("POST", 1) where path == ["campaigns"]:
            return .json(200, try publishCampaign(body, by: by))
        case ("GET", 1) where path == ["campaigns"]:
            return .json(200, try campaignsJSON())
        case ("GET", 2) where path[0] == "quarantine":
            return .json(200, try quarantineShow(id: try Self.quarantineID(path[1])))
        case ("POST", 3) where path[0] == "quarantine" && path[2] == "fix":
            let req = try decode(QuarantineCloseRequest.self, body)
            guard let value = req.value else {
                throw HubError(.badRequest, "a fix needs the corrected value: ferry quarantine fix ID VALUE")
            }
            return .json(
                200, try quarantineFix(id: try Self.quarantineID(path[1]), value: value, note: req.note, by: by))
        case ("POST", 3) where path[0] == "quarantine" && path[2] == "release":
            let req = try decode(QuarantineCloseRequest.self, body)
            return .json(200, try quarantineRelease(id: try Self.quarantineID(path[1]), note: req.note, by: by))
        case ("GET", 1) where path == ["actions"]:
            // The one operator log (also served, for users, by accountRequest).
            let limit = try pageLimit(query)
            return .json(200, try store.operatorActions(record: query["record"], limit: limit))
        case ("POST", 2) where path == ["records", "import"]:
            return .json(200, try importCSV(body, query: query, by: by))
        default:
            return nil
        }
    }

    func decodeForm(_ body: [UInt8]) throws -> FormDefinition {
        // Forms are camelCase files (minLength, maxDate): decode them as written.
        do {
            return try JSONDecoder().decode(FormDefinition.self, from: Data(body))
        } catch {
            throw HubError(.invalidForm, "the form is not valid JSON for a form definition: \(error)")
        }
    }

    static func quarantineID(_ s: String) throws -> Int64 {
        guard let n = Int64(s.hasPrefix("#") ? String(s.dropFirst()) : s), n > 0 else {
            throw HubError(
                .badRequest, "'\(s.prefix(40))' is not a quarantine entry number (ferry quarantine list shows them)")
        }
        return n
    }

    // MARK: CSV

    /// Imports a CSV file as new records of one commune at the hub: all rows
    /// or none, and the same file only once (unless `again=true`).
    public func importCSV(_ body: [UInt8], query: [String: String], by: String) throws -> CSVImportResultV1 {
        guard let formID = query["form"], let commune = query["commune"] else {
            throw HubError(.badRequest, "an import needs ?form=FORM&commune=CODE")
        }
        guard try store.communes().contains(where: { $0.code == commune }) else {
            throw HubError(
                .badRequest, "commune '\(commune.prefix(40))' is not one of the province's (ferry hub communes)")
        }
        guard
            let form = try store.forms().filter({ $0.id == formID && $0.retired != true }).max(by: {
                $0.version < $1.version
            })
        else { throw HubError(.notFound, "form \(formID.prefix(80)) is not published (or every version is retired)") }
        do {
            let table = try RecordsCSV.parse(body)
            let again = try Self.flag(query, "again")
            // A cheap answer before the rows are checked; the store checks again in its transaction.
            if !again, let seen = try store.csvImport(digest: table.digest) {
                throw CSVImportError.alreadyImported(by: seen.by, records: seen.records, atMs: seen.atMs)
            }
            let rows = try RecordsCSV.values(table, form: form)
            let ids = try store.importRecords(
                form: form, commune: commune, rows: rows, digest: table.digest, by: by, again: again)
            return CSVImportResultV1(imported: ids.count, form: form.id, version: form.version, commune: commune)
        } catch let e as CSVImportError {
            throw HubError(e.code == .alreadyImported ? .conflict : .badRequest, e.message)
        }
    }

    // MARK: campaigns

    /// Validates and publishes a campaign (SPEC §9.6): a typed problem for each
    /// unknown form, bad or reversed date, unknown commune, negative target or status.
    public func publishCampaign(_ body: [UInt8], by: String) throws -> CampaignDefinition {
        let c: CampaignDefinition
        do {
            c = try JSONDecoder().decode(CampaignDefinition.self, from: Data(body))
        } catch {
            throw HubError(.invalidCampaign, "the campaign is not valid JSON for a campaign: \(error)")
        }
        let problems = c.validate(
            formIDs: Set(try store.forms().map(\.id)), communes: Set(try store.communes().map(\.code)))
        guard problems.isEmpty else {
            throw HubError(
                .invalidCampaign, "campaign \(c.id) is not valid (\(problems.count) problem(s)); nothing was published",
                problems: problems.map { ProblemV1(code: $0.code.rawValue, at: $0.at, message: $0.message) })
        }
        try store.publish(.campaign, key: c.id, json: try JSONEncoder().encode(c).map { $0 })
        try store.noteAction(by: by, action: "campaign.publish", target: c.id, detail: "", record: nil)
        return c
    }

    /// Every campaign with its progress, counting records created in its period.
    func campaignsJSON() throws -> [CampaignJSON] {
        try store.campaigns().map { c in
            let rows = try store.progress(campaign: c)
            return CampaignJSON(
                campaign: c, progress: rows, done: rows.reduce(0) { $0 + min($1.records, $1.target) },
                target: rows.reduce(0) { $0 + $1.target })
        }
    }

    // MARK: quarantine

    /// One quarantine entry with the record's current value of the field.
    public func quarantineShow(id: Int64) throws -> QuarantineDetailV1 {
        guard let e = try store.quarantineEntry(id: id) else {
            throw HubError(.notFound, "there is no quarantine entry #\(id)")
        }
        let current = try RecordID(e.record).flatMap { try store.record($0) }?.leaves[e.field]?.winner?.value
        return QuarantineDetailV1(entry: e, current: current.map(JSONValue.init), recordExists: current != nil)
    }

    /// Closes an entry by writing the corrected `value` to the record's field
    /// (an operator write naming every leaf) and marking it fixed by `by`.
    public func quarantineFix(id: Int64, value text: String, note: String?, by: String) throws -> QuarantineDetailV1 {
        guard let e = try store.quarantineEntry(id: id) else {
            throw HubError(.notFound, "there is no quarantine entry #\(id)")
        }
        guard e.status == QuarantineStatus.open else {
            throw HubError(.wrongState, "quarantine entry #\(id) is already \(e.status) by \(e.closedBy ?? "?")")
        }
        guard let rid = RecordID(e.record), try store.record(rid) != nil else {
            throw HubError(
                .notFound,
                "record \(e.record) of entry #\(id) is not at the hub (every value of the new record was refused): ask the commune to enter it again, then release this entry"
            )
        }
        let value = try parse(record: rid, field: e.field, text: text)
        try store.operatorWrite(record: rid, values: [e.field: value], resolve: true)
        try store.closeQuarantine(
            id: id, status: QuarantineStatus.fixed, by: by, note: note ?? "set to \(value.display)")
        logger.notice(
            "quarantine fixed",
            metadata: ["ferry.quarantine": "\(id)", "ferry.operator": "\(by)", "ferry.agent": "\(e.origin)"])
        return try quarantineShow(id: id)
    }

    /// Closes an entry without a write: the refusal stands and the value stays recorded here.
    public func quarantineRelease(id: Int64, note: String?, by: String) throws -> QuarantineDetailV1 {
        guard let e = try store.quarantineEntry(id: id) else {
            throw HubError(.notFound, "there is no quarantine entry #\(id)")
        }
        guard e.status == QuarantineStatus.open else {
            throw HubError(.wrongState, "quarantine entry #\(id) is already \(e.status) by \(e.closedBy ?? "?")")
        }
        // A release writes nothing, so the note is all the audit trail will say about it.
        guard let why = note?.trimmingCharacters(in: .whitespacesAndNewlines), !why.isEmpty else {
            throw HubError(
                .badRequest,
                "say why you release entry #\(id) (for example: the commune enters it again): ferry quarantine release \(id) --note WHY"
            )
        }
        try store.closeQuarantine(id: id, status: QuarantineStatus.released, by: by, note: why)
        logger.notice(
            "quarantine released",
            metadata: ["ferry.quarantine": "\(id)", "ferry.operator": "\(by)", "ferry.agent": "\(e.origin)"])
        return try quarantineShow(id: id)
    }
}

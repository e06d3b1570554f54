import ArgumentParser
import FerryAgent
import FerryCore
import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import Foundation

struct RecordsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "records", abstract: "Create, edit and read records (at this agent, or at the hub with --at-hub).",
        subcommands: [
            RecordsAdd.self, RecordsEdit.self, RecordsDelete.self, RecordsUndelete.self, RecordsList.self,
            RecordsShow.self,
            RecordsImport.self, RecordsExport.self,
        ])
}

/// Parses typed text for a form field; a bad value becomes a ``UserError``.
func parseText(_ f: FormDefinition, _ k: String, _ v: String, context: String = "") throws -> Value {
    switch Result(catching: { () throws(FormError) -> Value in try f.parse(field: k, text: v) }) {
    case .success(let value): return value
    case .failure(let e): throw UserError(context + e.message)
    }
}

/// Parses `field=value` pairs.
func pairs(_ args: [String]) throws -> [(String, String)] {
    try args.map { a in
        guard let i = a.firstIndex(of: "=") else { throw UserError("'\(a)' is not field=value") }
        return (String(a[..<i]).nfc, String(a[a.index(after: i)...]))
    }
}

struct Target: ParsableArguments {
    @OptionGroup var agent: AgentDir
    @Flag(name: .customLong("at-hub"), help: "Act at the hub as an operator instead of at this agent.") var atHub =
        false
    @OptionGroup var hub: HubOptions
}

struct RecordsAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Create a record: ferry records add owner_name='Nguyễn Văn An' ...")
    @Option(help: "Form id.") var form = "land-record"
    @Option(help: "Commune code (with --at-hub; an agent always uses its own).") var commune: String?
    @Argument(help: "field=value pairs.") var values: [String]
    @OptionGroup var target: Target
    @Flag var json = false

    func run() async throws {
        let p = try pairs(values)
        if target.atHub {
            guard let commune else { throw UserError("--commune CODE is needed with --at-hub") }
            let r = try await target.hub.client().call(
                "POST", "records",
                body: RecordWriteRequest(form: form, commune: commune, values: Dictionary(p, uniquingKeysWith: { $1 })),
                as: HubRecordJSON.self)
            if json { try printJSON(r) } else { print(r.id) }
            return
        }
        let home = target.agent.home
        let store = try home.store()
        guard let f = try store.form(form) else {
            throw UserError("form \(form) is not known here yet: run `ferry agent sync` to receive forms from the hub")
        }
        var vals: [String: Value] = [:]
        for (k, v) in p { vals[k] = try parseText(f, k, v, context: "not saved: ") }
        do {
            let id = try store.create(form: f, commune: try home.config().commune, values: vals)
            print(id)
        } catch let e as FormError {
            throw UserError("not saved: \(e.message)")
        }
    }
}

struct RecordsEdit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit", abstract: "Change fields of a record: ferry records edit ID status=verified")
    @Argument var id: String
    @Argument(help: "field=value pairs.") var values: [String]
    @Flag(
        help:
            "At the hub: keep open conflicts on these fields (by default an operator's edit names every value it replaces, which closes them)."
    ) var keepConflict = false
    @OptionGroup var target: Target

    func run() async throws {
        guard let rid = RecordID(id) else { throw UserError("'\(id)' is not a record id") }
        let p = try pairs(values)
        if target.atHub {
            _ = try await target.hub.client().call(
                "POST", "records/\(rid)",
                body: RecordWriteRequest(
                    values: Dictionary(p, uniquingKeysWith: { $1 }), resolve: keepConflict ? false : nil),
                as: HubRecordJSON.self)
            print("updated at the hub")
            return
        }
        let store = try target.agent.home.store()
        guard let view = try store.record(rid) else { throw UserError("record \(rid) is not in this replica") }
        guard let f = try store.form(view.scope.formID, version: view.scope.formVersion) else {
            throw UserError("form \(view.scope.formID) v\(view.scope.formVersion) is not known here")
        }
        var vals: [String: Value] = [:]
        for (k, v) in p { vals[k] = try parseText(f, k, v, context: "not saved: ") }
        do {
            try store.update(rid, values: vals)
        } catch let e as FormError {
            throw UserError("not saved: \(e.message)")
        } catch let e as StoreError {
            throw UserError(e.message)
        }
        print("updated")
    }
}

/// Writes `_deleted` at the agent or (with --at-hub) at the hub: delete and
/// undelete are the same write with opposite values.
func setDeleted(_ id: String, _ deleted: Bool, target: Target) async throws {
    guard let rid = RecordID(id) else { throw UserError("'\(id)' is not a record id") }
    if target.atHub {
        _ = try await target.hub.client().call(
            "POST", "records/\(rid)", body: RecordWriteRequest(values: [deletedField: deleted ? "true" : "false"]),
            as: HubRecordJSON.self)
        return
    }
    do {
        let store = try target.agent.home.store()
        if deleted { try store.delete([rid]) } else { try store.undelete(rid) }
    } catch let e as StoreError {
        throw UserError(e.message)
    }
}

struct RecordsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a record (it can be undeleted).")
    @Argument var id: String
    @OptionGroup var target: Target

    func run() async throws {
        try await setDeleted(id, true, target: target)
        print("deleted")
    }
}

struct RecordsUndelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "undelete", abstract: "Undelete a record.")
    @Argument var id: String
    @OptionGroup var target: Target

    func run() async throws {
        try await setDeleted(id, false, target: target)
        print("undeleted")
    }
}

/// A record for JSON output at the agent.
struct RecordOut: Codable {
    var id: String
    var form: String
    var formVersion: Int
    var commune: String
    var deleted: Bool
    /// Field values with their JSON type kept.
    var values: [String: JSONValue]
}

func recordOut(_ v: RecordView) -> RecordOut {
    RecordOut(
        id: v.id.description, form: v.scope.formID, formVersion: v.scope.formVersion, commune: v.scope.commune,
        deleted: v.isDeleted,
        values: v.values.mapValues(JSONValue.init))
}

struct RecordsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List records, newest first, a page at a time (the last line says how many more).")
    @Flag(help: "Include deleted records.") var all = false
    @Option(help: "With --at-hub: only this commune.") var commune: String?
    @Option(help: "With --at-hub: only this form.") var form: String?
    @OptionGroup var page: PageOptions
    @OptionGroup var target: Target
    @Flag var json = false

    func run() async throws {
        if target.atHub {
            let p = try await target.hub.client().list(
                "records",
                [("commune", commune), ("form", form), ("include_deleted", all ? "true" : nil)], page,
                as: HubRecordJSON.self)
            if json { return try printJSON(p) }
            for r in p.items {
                print(
                    "\(r.id)  \(r.commune)  \(r.fields["owner_name"]?.value.text ?? "")  \(r.fields["status"]?.value.text ?? "")\(r.deleted ? "  [deleted]" : "")"
                )
            }
            print(
                pageFooter(
                    p.items.count, remaining: p.remaining, next: p.nextCursor, command: "ferry records list --at-hub"))
            return
        }
        let store = try target.agent.home.store()
        let rs = try store.records(limit: page.limit, includeDeleted: all)
        let c = try store.counts()
        let total = all ? c.records : c.records - c.deleted
        if json {
            return try printJSON(PageV1(items: rs.map(recordOut), nextCursor: nil, remaining: max(0, total - rs.count)))
        }
        for r in rs {
            let v = r.values
            print(
                "\(r.id)  \(v["owner_name"]?.display ?? "")  \(v["status"]?.display ?? "")\(r.isDeleted ? "  [deleted]" : "")"
            )
        }
        print(
            total > rs.count
                ? "(\(rs.count) of \(total) shown, newest first; more with --limit up to \(PageLimit.maximum))"
                : "(\(rs.count) shown, end of the list)")
    }
}

struct RecordsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one record's fields.")
    @Argument var id: String
    @OptionGroup var target: Target
    @Flag var json = false

    func run() async throws {
        guard let rid = RecordID(id) else { throw UserError("'\(id)' is not a record id") }
        if target.atHub {
            let r = try await target.hub.client().call("GET", "records/\(rid)", as: HubRecordJSON.self)
            if json { return try printJSON(r) }
            print("\(r.id)  form \(r.form) v\(r.formVersion)  commune \(r.commune)\(r.deleted ? "  [deleted]" : "")")
            for (k, f) in r.fields.sorted(by: { $0.key < $1.key }) {
                print("  \(k) = \(f.value)\(f.conflict ? "   CONFLICT: \(f.leaves.joined(separator: " | "))" : "")")
            }
            return
        }
        let store = try target.agent.home.store()
        guard let r = try store.record(rid) else {
            throw UserError("record \(rid) is not in this replica")
        }
        if json { return try printJSON(recordOut(r)) }
        print(
            "\(r.id)  form \(r.scope.formID) v\(r.scope.formVersion)  commune \(r.scope.commune)\(r.isDeleted ? "  [deleted]" : "")"
        )
        // SPEC §8.9: a value the hub refused shows its reason next to it, so
        // the clerk sees why the value is not what they typed.
        var refused: [String: LocalQuarantine] = [:]
        for q in try store.quarantined(record: rid) where refused[q.field] == nil { refused[q.field] = q }
        for (k, w) in r.fields.sorted(by: { $0.key < $1.key }) where k != deletedField {
            print("  \(k) = \(w.value.display)   (\(w.id))")
            if let q = refused.removeValue(forKey: k) {
                print(
                    "      REFUSED BY THE HUB: '\(q.value)' (\(ago(q.timeMs))): \(q.reason). Correct it with ferry records edit \(rid) \(k)=VALUE"
                )
            }
        }
        for (k, q) in refused.sorted(by: { $0.key < $1.key }) {
            print(
                "  \(k) = ∅   REFUSED BY THE HUB: '\(q.value)' (\(ago(q.timeMs))): \(q.reason). Correct it with ferry records edit \(rid) \(k)=VALUE"
            )
        }
    }
}

struct RecordsImport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract:
            "Import records from a CSV file (RFC 4180, UTF-8, first row names the fields): all rows or none, each file once."
    )
    @Argument var file: String
    @Option var form = "land-record"
    @Option(help: "With --at-hub: the commune the records belong to.") var commune: String?
    @Flag(help: "Import a file that was imported before (otherwise refused).") var again = false
    @OptionGroup var target: Target

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
        let bytes = [UInt8](data)
        if target.atHub {
            guard let commune else { throw UserError("--commune CODE is needed with --at-hub") }
            let r = try await target.hub.client().raw(
                "records/import"
                    + queryString([("form", form), ("commune", commune), ("again", again ? "true" : nil)]),
                body: bytes)
            let result = try HubJSON.decoder.decode(CSVImportResultV1.self, from: Data(r))
            print(
                "imported \(result.imported) records of \(result.form) v\(result.version) for commune \(result.commune) at the hub"
            )
            return
        }
        let home = target.agent.home
        let store = try home.store()
        guard let f = try store.form(form) else {
            throw UserError("form \(form) is not known here yet: run `ferry agent sync`")
        }
        do {
            let table = try RecordsCSV.parse(bytes)
            let key = "csv_import." + hex(table.digest.prefix(16))
            if !again, let seen = try store.meta(key) {
                throw UserError(
                    "\(file) was already imported here (\(seen)): nothing was imported again. To import it anyway: add --again"
                )
            }
            let rows = try RecordsCSV.values(table, form: f)
            let ids = try store.createMany(form: f, commune: try home.config().commune, rows: rows)
            try store.setMeta([key: "\(ids.count) records, \(Date())"])
            print("imported \(ids.count) records from \(file)")
        } catch let e as CSVImportError {
            throw UserError("\(file): \(e.message)\(e.code == .badValue ? "" : "; nothing was imported")")
        } catch let e as FormError {
            throw UserError("\(e.message); nothing was imported")
        }
    }
}

struct RecordsExport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export the hub's records of a form as CSV (UTF-8 with BOM, so Excel shows Vietnamese correctly).")
    @Option(help: "Form id.") var form: String
    @Option(help: "Only this commune.") var commune: String?
    @Option(help: "Only records made in this campaign's period (and of its form).") var campaign: String?
    @Option(help: "Write to this file (default: standard output).") var out: String?
    @OptionGroup var hub: HubOptions

    func run() async throws {
        let client = try hub.client()
        let forms = try await client.call("GET", "forms", as: [FormDefinition].self).filter { $0.id == form }
        guard let newest = forms.max(by: { $0.version < $1.version }) else {
            throw UserError("form \(form) is not published at the hub (ferry forms list)")
        }
        let p = try await client.list(
            "records", [("form", form), ("commune", commune), ("campaign", campaign)], limit: PageLimit.maximum,
            cursor: nil, allPages: true, as: HubRecordJSON.self)
        // Columns: the newest version's fields, then any other field a record holds.
        var fields = newest.fields.map(\.name)
        let extra = Set(p.items.flatMap(\.fields.keys)).subtracting(fields).subtracting([deletedField]).sorted()
        fields += extra
        let rows = p.items.map { r in
            [r.id, r.commune, String(r.formVersion)] + fields.map { r.fields[$0]?.value.text ?? "" }
        }
        let bytes = RecordsCSV.export(header: ["id", "commune", "form_version"] + fields, rows: rows)
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: Data(bytes)) else {
                throw UserError("cannot write \(out)")
            }
            FileHandle.standardError.write(Data("exported \(rows.count) records to \(out)\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data(bytes))
        }
    }
}

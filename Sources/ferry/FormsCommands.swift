import ArgumentParser
import FerryCore
import FerryProtocol
import FerryStore
import Foundation

struct FormsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forms", abstract: "Form versions: drafts, publish, retire, migrate records, diff (hub operator).",
        subcommands: [
            FormsPublish.self, FormsList.self, FormsRelease.self, FormsRetire.self, FormsMigrate.self, FormsDiff.self,
        ])
}

/// Reads a form definition file, or says what is wrong with it.
func readForm(_ file: String) throws -> (FormDefinition, Data) {
    guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
    do {
        return (try JSONDecoder().decode(FormDefinition.self, from: data), data)
    } catch {
        throw UserError(describeDecoding(error, file: file, what: "a form definition"))
    }
}

struct FormsPublish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a form version from a JSON file (validated first); --draft keeps it from agents.")
    @Argument var file: String
    @Flag(help: "Keep it as a draft: agents do not see it until `ferry forms release ID VERSION`.") var draft = false
    @OptionGroup var hub: HubOptions

    func run() async throws {
        let (form, data) = try readForm(file)
        let problems = form.validate()
        if !problems.isEmpty {
            throw UserError(
                "\(file) is not a valid form (\(problems.count) problem(s)); nothing was published:"
                    + problems.map { "\n  - \($0.message) [\($0.code.rawValue)]" }.joined())
        }
        _ = try await hub.client().raw("forms" + (draft ? "?draft=true" : ""), body: [UInt8](data))
        if draft {
            print(
                "saved draft \(form.id) v\(form.version) (\(form.fields.count) fields); agents do not see it. Publish with: ferry forms release \(form.id) \(form.version)"
            )
        } else {
            print(
                "published form \(form.id) v\(form.version) (\(form.fields.count) fields); agents receive it at their next sync"
            )
        }
    }
}

struct FormsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List form versions and drafts.")
    @Flag(help: "List drafts instead.") var drafts = false
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let forms = try await hub.client().call("GET", drafts ? "forms/drafts" : "forms", as: [FormDefinition].self)
        if json { return try printJSON(forms) }
        if forms.isEmpty { print(drafts ? "No drafts." : "No forms published.") }
        for f in forms.sorted(by: { ($0.id, $0.version) < ($1.id, $1.version) }) {
            let state = drafts ? "  DRAFT" : f.retired == true ? "  RETIRED" : ""
            print("\(f.id) v\(f.version)  \(f.title)  (\(f.fields.count) fields)\(state)")
        }
    }
}

struct FormsRelease: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Publish a draft: agents receive it at their next sync.")
    @Argument var id: String
    @Argument var version: Int
    @OptionGroup var hub: HubOptions
    func run() async throws {
        let f = try await hub.client().call(
            "POST", "forms/\(id)/\(version)/publish", body: [String: String](), as: FormDefinition.self)
        print("published form \(f.id) v\(f.version); agents receive it at their next sync")
    }
}

struct FormsRetire: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retire",
        abstract: "Retire a form version: its records are kept, agents are told, new records take a newer version.")
    @Argument var id: String
    @Argument var version: Int
    @OptionGroup var hub: HubOptions
    func run() async throws {
        _ = try await hub.client().call(
            "POST", "forms/\(id)/\(version)/retire", body: [String: String](), as: [String: String].self)
        print(
            "retired form \(id) v\(version): its records are kept; agents are told at their next sync. Move its records with: ferry forms migrate \(id) --from \(version) --to NEW"
        )
    }
}

struct FormsMigrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract:
            "Move records to a newer form version: values carried, new fields empty, rejected values reported and kept."
    )
    @Argument var id: String
    @Option var from: Int
    @Option var to: Int
    @Flag(help: "Report only; change nothing.") var dryRun = false
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let r = try await hub.client().call(
            "POST", "forms/\(id)/migrate", body: MigrationRequest(from: from, to: to, dryRun: dryRun),
            as: MigrationReportV1.self)
        if json { return try printJSON(r) }
        print(
            "\(r.dryRun ? "Would move" : "Moved") \(r.records) record(s) of \(r.form) from v\(r.from) to v\(r.to); every value is kept."
        )
        if r.problemCount > 0 {
            print(
                "\(r.problemCount) value(s) do not fit v\(r.to) (kept as they are; fix them with ferry records edit):")
            for p in r.problems.prefix(50) { print("  \(p.record).\(p.field) = \(p.value): \(p.reason)") }
            if r.problemCount > 50 { print("  … \(r.problemCount - 50) more: --json lists up to 1,000") }
        }
    }
}

struct FormsDiff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "What changed between two form versions: ID@VERSION (at the hub) or a JSON file."
    )
    @Argument(help: "The older version: ID@VERSION or FILE.json.") var a: String
    @Argument(help: "The newer version: ID@VERSION or FILE.json.") var b: String
    @OptionGroup var hub: HubOptions

    func resolve(_ spec: String, _ known: () async throws -> [FormDefinition]) async throws -> FormDefinition {
        if FileManager.default.fileExists(atPath: spec) { return try readForm(spec).0 }
        guard let at = spec.lastIndex(of: "@"), let v = Int(spec[spec.index(after: at)...]) else {
            throw UserError("'\(spec)' is neither a file nor ID@VERSION (e.g. land-record@2)")
        }
        let id = String(spec[..<at])
        guard let f = try await known().first(where: { $0.id == id && $0.version == v }) else {
            throw UserError("form \(id) v\(v) is neither published nor a draft at the hub (ferry forms list)")
        }
        return f
    }

    func run() async throws {
        var cache: [FormDefinition]?
        let known: () async throws -> [FormDefinition] = {
            if let cache { return cache }
            let c = try hub.client()
            let all =
                try await c.call("GET", "forms", as: [FormDefinition].self)
                + c.call("GET", "forms/drafts", as: [FormDefinition].self)
            cache = all
            return all
        }
        let fa = try await resolve(a, known)
        let fb = try await resolve(b, known)
        let d = FormDiff(from: fa, to: fb)
        print("\(fa.id) v\(fa.version) → \(fb.id) v\(fb.version):")
        if d.lines.isEmpty { print("  no differences") }
        for l in d.lines { print(l) }
    }
}

struct CampaignsPublish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish", abstract: "Publish or update a campaign from a JSON file (validated at the hub).")
    @Argument var file: String
    @OptionGroup var hub: HubOptions
    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
        let c: CampaignDefinition
        do { c = try JSONDecoder().decode(CampaignDefinition.self, from: data) } catch {
            throw UserError(
                describeDecoding(
                    error, file: file, what: "a campaign (keys: id, title, form, starts, ends, status, targets)"))
        }
        _ = try await hub.client().raw("campaigns", body: [UInt8](data))
        print("published campaign \(c.id) (\(c.targets.count) commune targets); agents receive it at their next sync")
    }
}

struct CampaignsTargets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "targets",
        abstract: "Set a campaign's per-commune targets from a CSV file with the columns commune,target.")
    @Argument var campaign: String
    @Argument var file: String
    @OptionGroup var hub: HubOptions
    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
        let table: RecordsCSV.Table
        do { table = try RecordsCSV.parse([UInt8](data)) } catch let e as CSVImportError {
            throw UserError("\(file): \(e.message)")
        }
        guard let ci = table.header.firstIndex(of: "commune"), let ti = table.header.firstIndex(of: "target") else {
            throw UserError(
                "\(file): row 1 must name the columns commune and target (it has \(table.header.joined(separator: ", ")))"
            )
        }
        var targets: [String: Int] = [:]
        for (row, cells) in table.rows {
            let code = cells[ci].trimmingCharacters(in: .whitespaces)
            guard let n = Int(cells[ti].trimmingCharacters(in: .whitespaces)) else {
                throw UserError("\(file): row \(row): target '\(cells[ti])' is not a whole number; nothing was changed")
            }
            guard targets.updateValue(n, forKey: code) == nil else {
                throw UserError("\(file): row \(row): commune \(code) appears twice; nothing was changed")
            }
        }
        let client = try hub.client()
        let all = try await client.call("GET", "campaigns", as: [CampaignJSON].self)
        guard var c = all.first(where: { $0.campaign.id == campaign })?.campaign else {
            throw UserError("there is no campaign \(campaign) at the hub (ferry campaigns list)")
        }
        c.targets = targets
        _ = try await client.raw("campaigns", body: [UInt8](try JSONEncoder().encode(c)))
        print("set \(targets.count) commune targets of \(campaign) (total \(targets.values.reduce(0, +)))")
    }
}

import ArgumentParser
import FerryAgent
import FerryCore
import FerryHub
import FerryStore
import Foundation

/// `ferry status` as data (for --json); computed in FerryAgent so the entry page says the same.
typealias AgentStatusJSON = AgentStatus

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Is this commune in sync? What is pending, when was the hub last reached, what is wrong?",
        discussion: """
            Exit code: 0 in sync; 1 not in sync yet, the agent is working on it (changes waiting, still \
            downloading, the hub unreachable for now); 2 a problem that needs a person (the agent service is \
            not running, was revoked, the hub refuses, the clock is wrong, the software must be updated). \
            IN SYNC needs the agent service running, or a `ferry agent sync` that finished in the last 2 minutes.
            """)
    @OptionGroup var agent: AgentDir
    @Flag(name: .customLong("at-hub"), help: "Show the hub's status instead (operator).") var atHub = false
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        if atHub { return try await hubStatus() }
        let s = try Self.agentStatus(agent.home)
        if json {
            try printJSON(s)
        } else {
            print(s.summary)
        }
        if s.exitCode != 0 { throw ExitCode(s.exitCode) }
    }

    static func agentStatus(_ home: AgentHome) throws -> AgentStatusJSON { try AgentStatus.read(home) }

    func hubStatus() async throws {
        let s = try await hub.client().call("GET", "status", as: HubStatusJSON.self)
        if json { return try printJSON(s) }
        let t = s.totals
        print(
            "Hub \(s.version): \(t["records"] ?? 0) records (\(t["records_deleted"] ?? 0) deleted), \(t["conflicts"] ?? 0) open conflicts, \(t["quarantined"] ?? 0) quarantined values, \(t["changesets"] ?? 0) change sets received."
        )
        print(
            "Agents: \(t["agents"] ?? 0) active, \(t["agents_revoked"] ?? 0) revoked. Stream at #\(t["stream_seq"] ?? 0)."
        )
        for a in s.agents {
            let state = a.status != "active" ? a.status.uppercased() : (a.lag == 0 ? "in sync" : "behind by \(a.lag)")
            print(
                "  \(a.communeName) [\(a.commune)]  \(state), last seen \(ago(a.lastSeenMs))\(a.lastError.map { "  error: \($0)" } ?? "")"
            )
        }
    }
}

struct FormsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forms", abstract: "Publish and list forms (hub operator).",
        subcommands: [FormsPublish.self, FormsList.self])
}

struct FormsPublish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish", abstract: "Publish a form version from a JSON file; versions are immutable.")
    @Argument var file: String
    @OptionGroup var hub: HubOptions

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
        let form: FormDefinition
        do { form = try JSONDecoder().decode(FormDefinition.self, from: data) } catch {
            throw UserError("\(file) is not a form: \(error)")
        }
        let problems = form.problems()
        if !problems.isEmpty { throw UserError("the form is not valid: \(problems.joined(separator: "; "))") }
        _ = try await hub.client().raw("forms", body: [UInt8](data))
        print(
            "published form \(form.id) v\(form.version) (\(form.fields.count) fields); agents receive it at their next sync"
        )
    }
}

struct FormsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List published forms.")
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let forms = try await hub.client().call("GET", "forms", as: [FormDefinition].self)
        if json { return try printJSON(forms) }
        for f in forms { print("\(f.id) v\(f.version)  \(f.title)  (\(f.fields.count) fields)") }
    }
}

struct CampaignsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaigns", abstract: "Campaign progress per commune (hub operator).",
        subcommands: [CampaignsList.self, CampaignsPublish.self])
}

struct CampaignsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show campaigns and their progress.")
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    @Flag(help: "Show every commune, not only those with records.") var all = false
    func run() async throws {
        let cs = try await hub.client().call("GET", "campaigns", as: [CampaignJSON].self)
        if json { return try printJSON(cs) }
        for c in cs {
            let pct = c.target > 0 ? Double(c.done) * 100 / Double(c.target) : 0
            print(
                "\(c.campaign.title) [\(c.campaign.id)]  \(c.done)/\(c.target) records (\(String(format: "%.2f", pct)) %)"
            )
            for p in c.progress where all || p.records > 0 {
                let share = p.target > 0 ? min(1, Double(p.records) / Double(p.target)) : 0
                let bar =
                    String(repeating: "█", count: Int(share * 20)) + String(repeating: "·", count: 20 - Int(share * 20))
                print("  \(bar) \(p.records)/\(p.target)  \(p.name) [\(p.commune)]")
            }
        }
    }
}

struct CampaignsPublish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish", abstract: "Publish or update a campaign from a JSON file.")
    @Argument var file: String
    @OptionGroup var hub: HubOptions
    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw UserError("cannot read \(file)") }
        _ = try await hub.client().raw("campaigns", body: [UInt8](data))
        print("published campaign from \(file)")
    }
}

struct ConflictsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts", abstract: "Open conflicts and their resolution (hub operator).",
        subcommands: [ConflictsList.self, ConflictsResolve.self])
}

struct ConflictsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List open conflicts with who wrote what, where and when.")
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let cs = try await hub.client().call("GET", "conflicts", as: [ConflictReport].self)
        if json { return try printJSON(cs) }
        if cs.isEmpty { print("No open conflicts.") }
        for c in cs {
            print(
                "\(c.kind == "edit_vs_delete" ? "EDIT vs DELETE" : "CONCURRENT EDITS")  record \(c.record)  field \(c.field)  commune \(c.commune)"
            )
            for (i, s) in c.sides.enumerated() {
                let when = Date(timeIntervalSince1970: Double(s.timeMs) / 1000)
                print(
                    "   \(i == 0 ? "shown " : "kept  ") \(s.value)   by \(s.origin)\(s.commune.map { " (\($0))" } ?? "") at \(when)"
                )
            }
        }
    }
}

struct ConflictsResolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve", abstract: "Resolve a conflict: keep the shown value, or set --value.")
    @Argument var record: String
    @Argument var field: String
    @Option(help: "The value to keep (default: the value shown).") var value: String?
    @OptionGroup var hub: HubOptions
    func run() async throws {
        _ = try await hub.client().call(
            "POST", "conflicts/resolve", body: ResolveRequest(record: record, field: field, value: value),
            as: HubRecordJSON.self)
        print("resolved \(record).\(field)")
    }
}

struct QuarantineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine", abstract: "Values the hub refused to merge, with the reason.")
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let q = try await hub.client().call("GET", "quarantine", as: [QuarantineEntry].self)
        if json { return try printJSON(q) }
        if q.isEmpty { print("Nothing in quarantine.") }
        for e in q { print("#\(e.id) \(e.record).\(e.field) = \(e.value) from \(e.origin): \(e.reason)") }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Trace a record's values to the signed change sets that wrote them.")
    @Argument var record: String
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let a = try await hub.client().call("GET", "audit/\(record)", as: [AuditEntry].self)
        if json { return try printJSON(a) }
        if a.isEmpty { print("No agent change set wrote the current values (they are hub operator writes).") }
        for e in a {
            print(
                "change set \(e.changeSet) by \(e.origin), seq \(e.seqFrom)...\(e.seqTo), \(e.writes) writes, signature \(e.signatureValid ? "VALID" : "INVALID")"
            )
        }
    }
}

import ArgumentParser
import FerryAgent
import FerryCore
import FerryHub
import FerryProtocol
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
        if s.attention.isEmpty {
            print("No commune needs attention.")
        } else {
            print("Needs attention first (\(s.attention.count) commune(s)):")
            for c in s.attention.prefix(10) {
                print("  \(c.name) [\(c.commune)]: \(c.reasons.joined(separator: "; "))")
            }
            if s.attention.count > 10 {
                print("  … and \(s.attention.count - 10) more: ferry status --at-hub --json")
            }
        }
        if !s.agents.isEmpty { print("Agents:") }
        for a in s.agents {
            let state =
                a.status != "active" ? a.status.uppercased() : (a.lag == 0 ? "up to date" : "behind by \(a.lag)")
            print(
                "  \(a.communeName) [\(a.commune)]  \(state), last seen \(ago(a.lastSeenMs))\(a.lastError.map { "  error: \($0)" } ?? "")"
            )
        }
    }
}

struct CampaignsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaigns", abstract: "Campaign progress per commune (hub operator).",
        subcommands: [CampaignsList.self, CampaignsPublish.self, CampaignsTargets.self])
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

struct ConflictsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflicts", abstract: "Open conflicts and their resolution (hub operator).",
        subcommands: [ConflictsList.self, ConflictsResolve.self])
}

struct ConflictsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List open conflicts with who wrote what, where and when, a page at a time.")
    @Option(help: "Only conflicts in this commune (code).") var commune: String?
    @Option(help: "Only records of this form.") var form: String?
    @Option(help: "Only conflicts on this field.") var field: String?
    @Option(help: "Only conflicts open for at least this many hours.") var olderThanHours: Int?
    @OptionGroup var page: PageOptions
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let p = try await hub.client().list(
            "conflicts",
            [
                ("commune", commune), ("form", form), ("field", field?.nfc),
                ("older_than_hours", olderThanHours.map(String.init)),
            ], page, as: ConflictReport.self)
        if json { return try printJSON(p) }
        if p.items.isEmpty && page.cursor == nil {
            print(
                "No open conflicts\(commune == nil && form == nil && field == nil && olderThanHours == nil ? "" : " matching these filters")."
            )
        }
        for c in p.items {
            print(
                "\(c.kind == "edit_vs_delete" ? "EDIT vs DELETE" : "CONCURRENT EDITS")  record \(c.record)  field \(c.field)  commune \(c.commune)  open \(ago(c.detectedMs).replacingOccurrences(of: " ago", with: ""))"
            )
            for (i, s) in c.sides.enumerated() {
                let when = Date(timeIntervalSince1970: Double(s.timeMs) / 1000)
                let shown = (s.field == c.field ? "" : "\(s.field)=") + s.value.description
                print(
                    "   \(i == 0 ? "shown " : "kept  ") \(shown)   by \(s.origin)\(s.commune.map { " (\($0))" } ?? "") at \(when)"
                )
            }
        }
        print(pageFooter(p.items.count, remaining: p.remaining, next: p.nextCursor, command: "ferry conflicts list"))
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
        commandName: "quarantine", abstract: "Values the hub refused to merge, with the reason.",
        subcommands: [QuarantineList.self, QuarantineShow.self, QuarantineFix.self, QuarantineRelease.self],
        defaultSubcommand: QuarantineList.self)
}

struct QuarantineList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List quarantined values, oldest first, a page at a time.")
    @Option(help: "open (default), fixed, released or all.") var status = "open"
    @OptionGroup var page: PageOptions
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let p = try await hub.client().list("quarantine", [("status", status)], page, as: QuarantineEntry.self)
        if json { return try printJSON(p) }
        if p.items.isEmpty && page.cursor == nil {
            print("Nothing in quarantine\(status == "open" ? "" : " (\(status))").")
        }
        for e in p.items {
            print(
                "#\(e.id) \(e.record).\(e.field) = \(e.value) from \(e.origin): \(e.reason)\(e.status == QuarantineStatus.open ? "" : "  [\(e.status) by \(e.closedBy ?? "?")]")"
            )
        }
        print(pageFooter(p.items.count, remaining: p.remaining, next: p.nextCursor, command: "ferry quarantine list"))
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Trace a record's values to the signed change sets that wrote them.")
    @Argument var record: String
    @OptionGroup var page: PageOptions
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        guard let rid = RecordID(record) else { throw UserError("'\(record)' is not a record id") }
        let p = try await hub.client().list("audit/\(rid)", [], page, as: AuditEntry.self)
        if json { return try printJSON(p) }
        let a = p.items
        defer { print(pageFooter(a.count, remaining: p.remaining, next: p.nextCursor, command: "ferry audit \(rid)")) }
        if a.isEmpty { print("No agent change set wrote the current values (they are hub operator writes).") }
        for e in a {
            print(
                "change set \(e.changeSet) by \(e.origin), seq \(e.seqFrom)...\(e.seqTo), \(e.writes) writes, signature \(e.signatureValid ? "VALID" : "INVALID")"
            )
        }  // Operator writes carry no agent signature; the operator log names who made them.
        let actions = try await hub.client().call("GET", "actions?record=\(record)", as: [OperatorAction].self)
        for o in actions.reversed() {
            // Lifecycle actions (`quarantine.fixed`) keep the note as detail: name the action and its target too.
            let what = o.action.contains(".") ? "\(o.action) \(o.target): \(o.detail)" : o.detail
            print("operator \(o.user): \(what), \(ago(o.atMs))")
        }
    }
}

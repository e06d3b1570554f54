import ArgumentParser
import FerryAgent
import FerryCore
import FerryHub
import FerryStore
import Foundation

/// `ferry status` as data (for --json).
struct AgentStatusJSON: Codable {
    var agentId: String
    var commune: String
    var communeName: String
    var hubUrl: String
    var inSync: Bool
    var pendingWrites: Int
    var inFlightWrites: Int
    var records: Int
    var deletedRecords: Int
    var hubCursor: UInt64
    var lastContactMs: UInt64?
    var lastSyncOkMs: UInt64?
    var lastAttemptMs: UInt64?
    var clockOffsetMs: Int64
    var problem: String?
    var advice: String?
    var summary: String
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Is this commune in sync? What is pending, when was the hub last reached, what is wrong?")
    @OptionGroup var agent: AgentDir
    @Flag(name: .customLong("at-hub"), help: "Show the hub's status instead (operator).") var atHub = false
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        if atHub { return try await hubStatus() }
        let s = try Self.agentStatus(agent.home)
        if json { return try printJSON(s) }
        print(s.summary)
    }

    static func agentStatus(_ home: AgentHome) throws -> AgentStatusJSON {
        let config = try home.config()
        let store = try home.store()
        let c = try store.counts()
        let meta = { (k: String) in try store.meta(k) }
        let lastContact = try meta("last_contact_ms").flatMap(UInt64.init)
        let lastOK = try meta("last_sync_ok_ms").flatMap(UInt64.init)
        let lastAttempt = try meta("last_attempt_ms").flatMap(UInt64.init)
        let offset = try meta("clock_offset_ms").flatMap(Int64.init) ?? 0
        let error = try meta("last_error")
        let cloned = try meta("cloned_replica")
        let name =
            (try? store.catalog(.commune, as: Commune.self))?.first { $0.code == config.commune }?.name
            ?? config.commune
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let pending = c.pendingWrites + c.inFlightWrites
        var problem: String? = error
        var advice: String? = nil
        if let e = error {
            if e.contains("cannot reach") {
                advice =
                    "The hub cannot be reached. Check the network (modem, cable, mobile signal). The agent retries by itself; nothing written here is lost."
            } else if e.contains("revoked") {
                advice =
                    "This agent was revoked by the hub operator. Ask the operator for a new token and enroll again."
            } else if e.contains("clock") || e.contains("ahead") {
                advice = "This PC's date and time are wrong. Set them correctly; the agent then re-sends by itself."
            } else {
                advice = "Tell the hub operator this message; the agent keeps your data and retries."
            }
        }
        let staleAfter = UInt64(max(3 * config.syncIntervalSeconds, 120) * 1000)
        if let t = lastAttempt, now > t + staleAfter, problem == nil {
            problem =
                "the agent has not tried to sync for \(ago(t, now: now).replacingOccurrences(of: " ago", with: ""))"
            advice =
                "The agent service does not seem to be running: start it (systemctl start ferry-agent, or ferry agent run)."
        } else if lastAttempt == nil {
            problem = "the agent has never synced"
            advice = "Start the agent: ferry agent run --dir \(home.directory)"
        }
        if abs(offset) > 600_000 && problem == nil {
            problem =
                "this PC's clock is \(offset / 1000) s off the hub's; Ferry corrects its timestamps, but other programs may be wrong"
            advice = "Set the PC's date and time."
        }
        if cloned != nil {
            // SPEC §7.2: the hub refused this replica as a copy of another PC's.
            problem =
                "this agent directory is a copy of another PC's (or another PC runs a copy of it): both wrote as agent \(config.agentID), so the hub refuses this PC's changes and nothing is sent"
            advice =
                "Keep using this PC: every change made here is kept. Ask the hub operator for a new enrollment token for commune \(config.commune), then run: ferry agent enroll \(config.hubURL) NEW_TOKEN --dir \(home.directory)  (this copy becomes its own agent and sends its changes)."
        }
        let inSync = pending == 0 && error == nil && lastOK != nil && cloned == nil
        var lines: [String] = []
        lines.append("Commune \(name) [\(config.commune)], agent \(config.agentID)")
        if cloned != nil {
            lines.append(
                "NOT IN SYNC: this directory is a copy of another PC's agent directory; the hub refuses its \(pending) change(s), which are kept here."
            )
        } else if inSync {
            lines.append("IN SYNC: every change made here has reached the hub.")
        } else if pending > 0 {
            lines.append(
                "NOT IN SYNC: \(pending) change(s) waiting to be sent to the hub"
                    + (c.inFlightWrites > 0 ? " (\(c.inFlightWrites) being sent)." : "."))
        } else {
            lines.append("NOT CONFIRMED: nothing is waiting here, but the last sync did not finish.")
        }
        lines.append("Hub last reached: \(ago(lastContact, now: now))   (\(config.hubURL))")
        lines.append(
            "Records here: \(c.records - c.deleted) (\(c.deleted) deleted); hub changes received up to #\(c.hubCursor)."
        )
        if let problem { lines.append("Problem: \(problem)") }
        if let advice { lines.append("What to do: \(advice)") }
        return AgentStatusJSON(
            agentId: config.agentID, commune: config.commune, communeName: name, hubUrl: config.hubURL, inSync: inSync,
            pendingWrites: c.pendingWrites, inFlightWrites: c.inFlightWrites, records: c.records - c.deleted,
            deletedRecords: c.deleted,
            hubCursor: c.hubCursor, lastContactMs: lastContact, lastSyncOkMs: lastOK, lastAttemptMs: lastAttempt,
            clockOffsetMs: offset,
            problem: problem, advice: advice, summary: lines.joined(separator: "\n"))
    }

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

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
    /// `in_sync`, `not_in_sync` (the agent is on it) or `needs_attention` (a person must act).
    var state: String
    /// The exit code `ferry status` returns: 0 in sync, 1 not in sync, 2 needs a person.
    var exitCode: Int32
    var lastUploadAckMs: UInt64?
    var lastDownloadMs: UInt64?
    /// False while the hub's last signed download answer said more changes wait.
    var localCopyComplete: Bool
    /// The hub's stream head as last learned, and how many changes this copy still lacks.
    var hubHead: UInt64?
    var changesBehind: UInt64?
    var requestInProgress: String?
    var requestStartedMs: UInt64?
    var lastError: String?
    var lastErrorKind: String?
    var lastErrorMs: UInt64?
    var nextAttemptMs: UInt64?
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Is this commune in sync? What is pending, when was the hub last reached, what is wrong?",
        discussion: """
            Exit code: 0 in sync; 1 not in sync yet, the agent is working on it (changes waiting, still \
            downloading, the hub unreachable for now); 2 a problem that needs a person (the agent is not \
            running, was revoked, the hub refuses, the clock is wrong).
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
        let errorKind = try meta("last_error_kind").flatMap(AgentError.Kind.init(name:))
        let errorMs = try meta("last_error_ms").flatMap(UInt64.init)
        let lastUpload = try meta("last_upload_ack_ms").flatMap(UInt64.init)
        let lastDownload = try meta("last_download_ms").flatMap(UInt64.init)
        let moreAtHub = try meta("hub_more") == "1"
        let head = try meta("hub_head").flatMap(UInt64.init)
        let remaining = try meta("hub_remaining").flatMap(UInt64.init)
        let nextAttempt = try meta("next_attempt_ms").flatMap(UInt64.init)
        let requestWhat = try meta("request_what")
        let requestStarted = try meta("request_started_ms").flatMap(UInt64.init)
        let name =
            (try? store.catalog(.commune, as: Commune.self))?.first { $0.code == config.commune }?.name
            ?? config.commune
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        let pending = c.pendingWrites + c.inFlightWrites
        // Behind the hub's stream: the signed `more` says so; the count is the
        // hub's informational one, else the distance to the head it reported.
        let behindHead = head.map { $0 > c.hubCursor ? $0 - c.hubCursor : 0 } ?? 0
        let downloading = moreAtHub || behindHead > 0
        let behind: UInt64? = downloading ? (remaining.flatMap { $0 > 0 ? $0 : nil } ?? behindHead) : 0
        var problem: String? = error
        var advice: String? = nil
        var needsPerson = false
        if let e = error {
            let kind = errorKind ?? Self.guessKind(e)
            needsPerson = kind.needsPerson
            switch kind {
            case .network:
                advice =
                    "The hub cannot be reached. Check the network (modem, cable, mobile signal). The agent retries by itself; nothing written here is lost."
            case .hubUnavailable:
                advice = "The hub is busy or failing; the agent retries by itself. If it lasts, tell the hub operator."
            case .notFerry:
                advice =
                    "Something other than the hub answered (a login page of the network?). Open a web page to log in to the network; the agent retries by itself."
            case .revoked:
                advice =
                    "This agent was revoked by the hub operator. Ask the operator for a new token and enroll again."
            case .clock:
                advice = "This PC's date and time are wrong. Set them correctly; the agent then re-sends by itself."
            default:
                advice = "Tell the hub operator this message; the agent keeps your data and retries."
            }
        }
        let staleAfter = UInt64(max(3 * config.syncIntervalSeconds, 120) * 1000)
        if let t = lastAttempt, now > t + staleAfter, problem == nil || !needsPerson,
            requestStarted.map({ now < $0 + staleAfter }) != true
        {
            problem =
                "the agent has not tried to sync for \(ago(t, now: now).replacingOccurrences(of: " ago", with: ""))"
            advice =
                "The agent service does not seem to be running: start it (systemctl start ferry-agent, or ferry agent run)."
            needsPerson = true
        } else if lastAttempt == nil {
            problem = "the agent has never synced"
            advice = "Start the agent: ferry agent run --dir \(home.directory)"
            needsPerson = true
        }
        if abs(offset) > 600_000 && problem == nil {
            problem =
                "this PC's clock is \(offset / 1000) s off the hub's; Ferry corrects its timestamps, but other programs may be wrong"
            advice = "Set the PC's date and time."
            needsPerson = true
        }
        if cloned != nil {
            // SPEC §7.2: the hub refused this replica as a copy of another PC's.
            problem =
                "this agent directory is a copy of another PC's (or another PC runs a copy of it): both wrote as agent \(config.agentID), so the hub refuses this PC's changes and nothing is sent"
            advice =
                "Keep using this PC: every change made here is kept. Ask the hub operator for a new enrollment token for commune \(config.commune), then run: ferry agent enroll \(config.hubURL) NEW_TOKEN --dir \(home.directory)  (this copy becomes its own agent and sends its changes)."
        }
        let inSync = pending == 0 && error == nil && lastOK != nil && !downloading && cloned == nil
        var lines: [String] = []
        lines.append("Commune \(name) [\(config.commune)], agent \(config.agentID)")
        if cloned != nil {
            lines.append(
                "NOT IN SYNC: this directory is a copy of another PC's agent directory; the hub refuses its \(pending) change(s), which are kept here."
            )
        } else if inSync {
            lines.append(
                "IN SYNC: every change made here has reached the hub, and this copy has all the hub's changes.")
        } else if pending > 0 {
            lines.append(
                "NOT IN SYNC: \(pending) change(s) waiting to be sent to the hub"
                    + (c.inFlightWrites > 0 ? " (\(c.inFlightWrites) being sent)." : "."))
        } else if downloading {
            lines.append(
                "NOT IN SYNC: still downloading: \(behind ?? behindHead) change(s) behind the hub"
                    + (head.map { " (hub stream at #\($0), this copy at #\(c.hubCursor))." } ?? "."))
        } else {
            lines.append("NOT CONFIRMED: nothing is waiting here, but the last sync did not finish.")
        }
        if pending > 0 && downloading {
            lines.append("Also still downloading: \(behind ?? behindHead) change(s) behind the hub.")
        }
        lines.append("Last upload acknowledged: \(ago(lastUpload, now: now))")
        lines.append("Last download applied: \(ago(lastDownload, now: now))")
        let urls = SyncEngine.hubURLs(config)
        let using = (try? meta("hub_active_url")).flatMap { $0 }.flatMap { urls.contains($0) ? $0 : nil }
        lines.append("Hub last reached: \(ago(lastContact, now: now))   (\(using ?? urls.first ?? config.hubURL))")
        if urls.count > 1 {
            lines.append(
                "Hub addresses: \(urls.joined(separator: ", "))"
                    + (using.map { "; using \($0) because the first did not answer" } ?? ""))
        }
        lines.append(
            "Records here: \(c.records - c.deleted) (\(c.deleted) deleted); hub changes received up to #\(c.hubCursor)."
        )
        if let what = requestWhat, let started = requestStarted {
            if now < started + staleAfter {
                lines.append(
                    "Request in progress: \(what), for \(ago(started, now: now).replacingOccurrences(of: " ago", with: ""))."
                )
            } else {
                lines.append(
                    "Interrupted: a \(what) started \(ago(started, now: now)) did not finish (the agent stopped).")
            }
        }
        if let problem { lines.append("Problem: \(problem)" + (errorMs.map { " (\(ago($0, now: now)))" } ?? "")) }
        if let advice { lines.append("What to do: \(advice)") }
        if let t = nextAttempt, !inSync {
            lines.append(t > now ? "Next try: in \(max(1, (t - now + 999) / 1000)) s." : "Next try: due now.")
        }
        let exitCode: Int32 = inSync ? 0 : needsPerson ? 2 : 1
        return AgentStatusJSON(
            agentId: config.agentID, commune: config.commune, communeName: name, hubUrl: SyncEngine.hubURL(config),
            inSync: inSync,
            pendingWrites: c.pendingWrites, inFlightWrites: c.inFlightWrites, records: c.records - c.deleted,
            deletedRecords: c.deleted,
            hubCursor: c.hubCursor, lastContactMs: lastContact, lastSyncOkMs: lastOK, lastAttemptMs: lastAttempt,
            clockOffsetMs: offset,
            problem: problem, advice: advice, summary: lines.joined(separator: "\n"),
            state: inSync ? "in_sync" : needsPerson ? "needs_attention" : "not_in_sync", exitCode: exitCode,
            lastUploadAckMs: lastUpload, lastDownloadMs: lastDownload, localCopyComplete: !downloading,
            hubHead: head, changesBehind: behind, requestInProgress: requestWhat, requestStartedMs: requestStarted,
            lastError: error, lastErrorKind: errorKind?.description, lastErrorMs: errorMs, nextAttemptMs: nextAttempt)
    }

    /// The kind of an error recorded by an agent that did not store one.
    static func guessKind(_ e: String) -> AgentError.Kind {
        if e.contains("cannot reach") { return .network }
        if e.contains("revoked") { return .revoked }
        if e.contains("clock") || e.contains("ahead") { return .clock }
        return .other
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

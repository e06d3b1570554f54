import FerryCore
import FerryStore
import Foundation

/// What `ferry status` (and the local entry page) say about an agent: in
/// sync or not, what is pending, when the hub was last reached, whether the
/// agent service runs, and what is wrong. Read from the replica's meta table
/// and the directory's lock, never from the network.
public struct AgentStatus: Codable, Sendable {
    public var agentId: String
    public var commune: String
    public var communeName: String
    public var hubUrl: String
    public var inSync: Bool
    public var pendingWrites: Int
    public var inFlightWrites: Int
    public var records: Int
    public var deletedRecords: Int
    public var hubCursor: UInt64
    public var lastContactMs: UInt64?
    public var lastSyncOkMs: UInt64?
    public var lastAttemptMs: UInt64?
    public var clockOffsetMs: Int64
    public var problem: String?
    public var advice: String?
    public var summary: String
    /// `in_sync`, `not_in_sync` (the agent is on it) or `needs_attention` (a person must act).
    public var state: String
    /// The exit code `ferry status` returns: 0 in sync, 1 not in sync, 2 needs a person.
    public var exitCode: Int32
    public var lastUploadAckMs: UInt64?
    public var lastDownloadMs: UInt64?
    /// False while the hub's last signed download answer said more changes wait.
    public var localCopyComplete: Bool
    /// The hub's stream head as last learned, and how many changes this copy still lacks.
    public var hubHead: UInt64?
    public var changesBehind: UInt64?
    public var requestInProgress: String?
    public var requestStartedMs: UInt64?
    public var lastError: String?
    public var lastErrorKind: String?
    public var lastErrorMs: UInt64?
    public var nextAttemptMs: UInt64?
    /// `running` (`ferry agent run` holds the directory), `syncing_once`
    /// (`ferry agent sync` holds it), `stopped`, or `unknown`.
    public var service: String
    public var servicePid: Int32?
    public var serviceSinceMs: UInt64?
    /// Open conflicts in the whole province as the hub's last acknowledgement
    /// counted them (the hub operator resolves them), when known.
    public var hubConflictsOpen: Int?
    /// Values the hub refused from this PC, with the reason (newest first).
    public var quarantined: [LocalQuarantine]
    /// Open conflicts on this commune's records as the hub last listed them
    /// (SPEC §9.13), when it has: the count, the first of them, and when.
    public var communeConflictsOpen: Int?
    public var communeConflicts: [LocalConflict]
    public var communeConflictsCheckedMs: UInt64?

    /// A sync that ended longer ago than this no longer vouches for "in sync"
    /// when no agent service runs (3 intervals, at least 2 minutes).
    public static func staleAfterMs(_ config: AgentConfig) -> UInt64 {
        let s = config.syncIntervalSeconds.isFinite ? max(3 * config.syncIntervalSeconds, 120) : 120
        return UInt64(min(s, 86_400 * 365) * 1000)
    }

    /// Reads the status of the agent in `home`.
    /// - Parameter now: the local wall clock in ms (tests pass their own).
    /// - Throws: when the directory holds no agent or the replica cannot be opened.
    public static func read(_ home: AgentHome, now: UInt64 = SystemClock().nowMillis()) throws -> AgentStatus {
        let config = try home.config()
        let store = try home.store()
        return try read(home, config: config, store: store, now: now)
    }

    /// As ``read(_:now:)``, with the config and store already open (the entry page).
    public static func read(_ home: AgentHome, config: AgentConfig, store: AgentStore, now: UInt64) throws
        -> AgentStatus
    {
        let c = try store.counts()
        let meta = { (k: String) in try store.meta(k) }
        let num = { (k: String) in try meta(k).flatMap { UInt64($0) } }
        let lastContact = try num("last_contact_ms")
        let lastOK = try num("last_sync_ok_ms")
        let lastAttempt = try num("last_attempt_ms")
        let offset = try meta("clock_offset_ms").flatMap { Int64($0) } ?? 0
        let error = try meta("last_error")
        let cloned = try meta("cloned_replica")
        let errorKind = try meta("last_error_kind").flatMap(AgentError.Kind.init(name:))
        let errorMs = try num("last_error_ms")
        let lastUpload = try num("last_upload_ack_ms")
        let lastDownload = try num("last_download_ms")
        let moreAtHub = try meta("hub_more") == "1"
        let head = try num("hub_head")
        let remaining = try num("hub_remaining")
        let nextAttempt = try num("next_attempt_ms")
        let requestWhat = try meta("request_what")
        let requestStarted = try num("request_started_ms")
        let conflictsOpen = try meta("hub_conflicts_open").flatMap { Int($0) }
        let quarantined = (try? store.quarantined(limit: 50)) ?? []
        let communeConflictsOpen = try meta("commune_conflicts_open").flatMap { Int($0) }
        let communeConflicts = (try? store.hubConflicts(limit: 50)) ?? []
        let communeConflictsChecked = try num("commune_conflicts_ms")
        let name =
            (try? store.catalog(.commune, as: Commune.self))?.first { $0.code == config.commune }?.name
            ?? config.commune
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
            let kind = errorKind ?? guessKind(e)
            needsPerson = kind.needsPerson
            advice = Self.advice(kind)
        }
        let staleAfter = staleAfterMs(config)
        let holder = home.lockHolder()
        var service = "unknown"
        var servicePid: Int32? = nil
        var serviceSince: UInt64? = nil
        switch holder {
        case .service(let pid, let since):
            service = "running"
            servicePid = pid
            serviceSince = since
        case .other(let pid, let since):
            service = "syncing_once"
            servicePid = pid
            serviceSince = since
        case .none: service = "stopped"
        case .unknown: service = "unknown"
        }
        let running = service == "running"
        // Down: no service loop, and no one-off `ferry agent sync` that just
        // ended (whose result then stands, for a short while, and says so). A
        // service killed a moment ago vouches for nothing.
        let oneOff = try num("oneoff_sync_ms")
        let recentOneOff = oneOff.map { now <= $0 || now - $0 <= staleAfter } ?? false
        // An offline bundle from the hub that left nothing pending and nothing to
        // download vouches like a one-off sync, for as long (SPEC §12.4).
        let bundleSync = try num("bundle_sync_ms")
        let recentBundle = bundleSync.map { now <= $0 || now - $0 <= staleAfter } ?? false
        let bundleHubMs = try num("bundle_hub_ms")
        let down = !running && service != "syncing_once" && !recentOneOff && !recentBundle
        var stuck = false
        if lastAttempt == nil && !running {
            problem = "the agent has never synced"
            advice = "Start the agent: systemctl start ferry-agent (or: ferry agent run --dir \(home.directory))"
            needsPerson = true
        } else if down && (problem == nil || !needsPerson) {
            let since = lastAttempt.map { " for " + ago($0, now: now).replacingOccurrences(of: " ago", with: "") }
            problem =
                service == "stopped"
                ? "the agent service is not running; it has not tried to sync\(since ?? "")"
                : "the agent has not tried to sync\(since ?? "")"
            advice =
                "Start the agent service: systemctl start ferry-agent (or: ferry agent run --dir \(home.directory)). Nothing written here is lost."
            needsPerson = true
        } else if running, let t = lastAttempt, now > t, now - t > staleAfter,
            requestStarted.map({ now < $0 || now - $0 < staleAfter }) != true, error == nil
        {
            stuck = true
            problem = "the agent service runs but has not tried to sync for \(ago(t, now: now).dropLast(4))"
            advice = "Restart it: systemctl restart ferry-agent. If it happens again, tell the hub operator."
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
        // Never IN SYNC while the service is down (issue 12) or the copy is behind.
        let inSync = pending == 0 && error == nil && lastOK != nil && !downloading && cloned == nil && !down && !stuck
        var lines: [String] = []
        lines.append("Commune \(name) [\(config.commune)], agent \(config.agentID)")
        if cloned != nil {
            lines.append(
                "NOT IN SYNC: this directory is a copy of another PC's agent directory; the hub refuses its \(pending) change(s), which are kept here."
            )
        } else if inSync && !running && recentBundle && (oneOff ?? 0) < (bundleSync ?? 0) {
            lines.append(
                "IN SYNC as of the offline bundle from the hub imported \(ago(bundleSync, now: now)) (the hub made it \(ago(bundleHubMs, now: now))): every change made here had reached the hub, and this copy had all the hub's changes then. Changes made from now on wait for the next bundle or sync."
            )
        } else if inSync && !running {
            lines.append(
                "IN SYNC as of the `ferry agent sync` \(ago(oneOff, now: now)): every change made here had reached the hub, and this copy had all the hub's changes. The agent service is not running, so new changes wait until it runs."
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
        } else if down {
            lines.append(
                "NOT CONFIRMED: the agent service is not running, so nobody checks whether the hub has new changes.")
        } else {
            lines.append("NOT CONFIRMED: nothing is waiting here, but the last sync did not finish.")
        }
        if pending > 0 && downloading {
            lines.append("Also still downloading: \(behind ?? behindHead) change(s) behind the hub.")
        }
        switch holder {
        case .service(let pid, let since):
            lines.append(
                "Agent service: running" + (pid.map { " (PID \($0)" } ?? " (")
                    + (since.map { ", since \(ago($0, now: now).replacingOccurrences(of: " ago", with: "")))" } ?? ")"))
        case .other(let pid, _):
            lines.append("Agent service: not running; a one-off sync is running (PID \(pid.map(String.init) ?? "?")).")
        case .none:
            lines.append("Agent service: NOT RUNNING (start it: systemctl start ferry-agent).")
        case .unknown:
            lines.append("Agent service: unknown (cannot read \(home.directory)/agent.lock as this user).")
        }
        let bundleExported = try num("last_bundle_export_ms")
        let bundleImported = try num("last_bundle_import_ms")
        let bundleSerial = try meta("bundle_serial") ?? "?"
        let bundleLastSeq = try meta("bundle_last_seq") ?? "?"
        if let exported = bundleExported {
            let back = bundleImported.map { "; last bundle from the hub imported \(ago($0, now: now))" } ?? ""
            lines.append(
                "Offline bundle: #\(bundleSerial) exported \(ago(exported, now: now)) (changes up to #\(bundleLastSeq))\(back)"
            )
        } else if let imported = bundleImported {
            lines.append("Offline bundle: last bundle from the hub imported \(ago(imported, now: now))")
        }
        lines.append("Last upload acknowledged: \(ago(lastUpload, now: now))")
        lines.append("Last download applied: \(ago(lastDownload, now: now))")
        // SPEC §9.11: with several hub addresses, say which one the last round used.
        let urls = SyncEngine.hubURLs(config)
        let using = (try? store.meta("hub_active_url")).flatMap { $0 }.flatMap { urls.contains($0) ? $0 : nil }
        lines.append("Hub last reached: \(ago(lastContact, now: now))   (\(using ?? urls.first ?? config.hubURL))")
        if urls.count > 1 {
            lines.append(
                "Hub addresses: \(urls.joined(separator: ", "))"
                    + (using.map { "; using \($0) because the first did not answer" } ?? ""))
        }
        lines.append(
            "Records here: \(c.records - c.deleted) (\(c.deleted) deleted); hub changes received up to #\(c.hubCursor)."
        )
        if !quarantined.isEmpty {
            lines.append("Values the hub refused (quarantined): \(quarantined.count); see the entry page or the log.")
        }
        if let n = communeConflictsOpen, n > 0 {
            let first = communeConflicts.first.map { "; first: record \($0.record), field \($0.field)" } ?? ""
            lines.append(
                "Open conflicts on this commune's records: \(n) (the hub operator chooses the value; nothing to do here\(first)). As of \(ago(communeConflictsChecked, now: now))."
            )
        }
        if let what = requestWhat, let started = requestStarted {
            if now < started || now - started < staleAfter {
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
        if let t = nextAttempt, !inSync, running {
            lines.append(t > now ? "Next try: in \(max(1, (t - now + 999) / 1000)) s." : "Next try: due now.")
        }
        let exitCode: Int32 = inSync ? 0 : needsPerson ? 2 : 1
        return AgentStatus(
            agentId: config.agentID, commune: config.commune, communeName: name, hubUrl: SyncEngine.hubURL(config),
            inSync: inSync, pendingWrites: c.pendingWrites, inFlightWrites: c.inFlightWrites,
            records: c.records - c.deleted, deletedRecords: c.deleted, hubCursor: c.hubCursor,
            lastContactMs: lastContact, lastSyncOkMs: lastOK, lastAttemptMs: lastAttempt, clockOffsetMs: offset,
            problem: problem, advice: advice, summary: lines.joined(separator: "\n"),
            state: inSync ? "in_sync" : needsPerson ? "needs_attention" : "not_in_sync", exitCode: exitCode,
            lastUploadAckMs: lastUpload, lastDownloadMs: lastDownload, localCopyComplete: !downloading,
            hubHead: head, changesBehind: behind, requestInProgress: requestWhat, requestStartedMs: requestStarted,
            lastError: error, lastErrorKind: errorKind?.description, lastErrorMs: errorMs, nextAttemptMs: nextAttempt,
            service: service, servicePid: servicePid, serviceSinceMs: serviceSince, hubConflictsOpen: conflictsOpen,
            quarantined: quarantined, communeConflictsOpen: communeConflictsOpen, communeConflicts: communeConflicts,
            communeConflictsCheckedMs: communeConflictsChecked)
    }

    /// What a person should do about an error of `kind`.
    public static func advice(_ kind: AgentError.Kind) -> String {
        switch kind {
        case .network:
            "The hub cannot be reached. Check the network (modem, cable, mobile signal). The agent retries by itself; nothing written here is lost."
        case .hubUnavailable:
            "The hub is busy or failing; the agent retries by itself. If it lasts, tell the hub operator."
        case .notFerry:
            "Something other than the hub answered (a login page of the network?). Open a web page to log in to the network; the agent retries by itself."
        case .revoked:
            "This agent was revoked by the hub operator. Ask the operator for a new token and enroll again."
        case .clock:
            "This PC's date and time are wrong. Set them correctly; the agent then re-sends by itself."
        case .update:
            "Install the newer Ferry package on this PC (ask the hub operator for it), then start the agent again. Everything written here is kept and sent after the update."
        default:
            "Tell the hub operator this message; the agent keeps your data and retries."
        }
    }

    /// The kind of an error recorded by an agent that did not store one.
    public static func guessKind(_ e: String) -> AgentError.Kind {
        if e.contains("cannot reach") { return .network }
        if e.contains("revoked") { return .revoked }
        if e.contains("clock") || e.contains("ahead") { return .clock }
        return .other
    }

    /// "3 min ago", "2 h ago", "4 days ago"; "never" for nil.
    public static func ago(_ ms: UInt64?, now: UInt64) -> String {
        guard let ms, ms > 0 else { return "never" }
        if ms > now { return "just now" }
        let sec = (now - ms) / 1000
        if sec < 90 { return "\(sec) s ago" }
        if sec < 5400 { return "\(sec / 60) min ago" }
        if sec < 172_800 { return "\(sec / 3600) h ago" }
        return "\(sec / 86400) days ago"
    }
}

import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// What `ferry agent export-bundle` wrote.
public struct AgentBundleExport: Sendable, Codable {
    public var file: String
    public var serial: UInt64
    public var changeSets: Int
    public var writes: UInt64
    public var seqFrom: UInt64
    public var seqTo: UInt64
    public var bytes: Int
    /// The fingerprint of the hub the change sets are sealed for (hex).
    public var hubFingerprint: String
    /// Writes still queued because the bundle reached its bounds (export again after this one).
    public var leftOver: Int
}

/// What `ferry agent import-bundle` applied.
public struct AgentBundleImport: Sendable, Codable {
    public var serial: UInt64
    public var pages: Int
    /// Pages that brought hub changes this copy did not have.
    public var pagesApplied: Int
    /// Fields whose winner changed.
    public var writesChanged: Int
    /// The last of this agent's numbers the hub confirmed (signed), and how far that acknowledged here.
    public var hubApplied: UInt64
    public var acknowledgedUpTo: UInt64?
    public var hubCursor: UInt64
    public var pendingWrites: Int
    /// The hub's signed `more` on the last page: its stream has more for this agent than the bundle held.
    public var moreAtHub: Bool
    /// When the hub made the bundle (from its signed page header, Unix ms).
    public var hubMadeMs: UInt64
    /// Values written here that the hub holds in quarantine (its signed notices,
    /// SPEC §12.4), and how many fields took the hub's accepted value back.
    public var quarantined: Int
    public var corrected: Int
}

/// Offline bundles, agent side (SPEC §12): the same frozen, signed, sealed
/// change sets the sync loop sends, written to a file; and the hub's sealed
/// pages read from one, opened and applied as the sync loop applies a download.
extension SyncEngine {
    /// Freezes every pending write into change sets (as the sync loop would,
    /// within the same byte budget, SPEC §9.7) and writes every change set in
    /// flight to `path`. Nothing is acknowledged: the change sets stay in
    /// flight until the hub confirms them (a bundle back, or a later sync, which
    /// re-sends the same bytes and is answered `duplicate` for those the hub has).
    /// - Parameter newOnly: only change sets not in an earlier bundle.
    /// - Throws: ``BundleError`` (`nothing_pending`, `unreadable`), ``AgentError``.
    public func exportBundle(to path: String, newOnly: Bool = false, limits: OfflineBundleLimits = .standard)
        throws -> AgentBundleExport
    {
        try refuseIfCloned()
        // Freeze what is pending, bounded in change sets (the bundle's entry bound).
        var held = try store.inFlightAll(limit: limits.maxEntries).count
        while held < limits.maxEntries, try freezeNext(alongside: true) != nil { held += 1 }
        let all = try store.inFlightAll(limit: limits.maxEntries)
        let lastInBundle = try store.meta("bundle_last_seq").flatMap(UInt64.init) ?? 0
        var chosen = newOnly ? all.filter { $0.seqFrom > lastInBundle } : all
        // The byte bound: keep a prefix (the sequence must stay contiguous).
        var total = 200
        var fit = 0
        for f in chosen {
            total += 4 + f.envelope.count
            if total > limits.maxBytes { break }
            fit += 1
        }
        chosen = Array(chosen.prefix(fit))
        guard let first = chosen.first, let last = chosen.last else {
            if newOnly, !all.isEmpty {
                throw BundleError(
                    .nothingPending,
                    "nothing new since bundle #\(try store.meta("bundle_serial") ?? "?"): every change made here is already in a bundle. Without --new-only the bundle carries again every change the hub has not confirmed"
                )
            }
            throw BundleError(
                .nothingPending, "nothing to export: the hub has confirmed every change made here")
        }
        let hub = try home.hubKeys()
        let fingerprint = Identity.fingerprint(sign: hub.sign.bytes, kx: hub.kx.bytes)
        let serial = (try store.meta("bundle_serial").flatMap(UInt64.init) ?? 0) &+ 1
        let header = OfflineBundleHeader(
            kind: .changes, hubFingerprint: fingerprint, recipientKeyID: hub.kx.id, agentID: config.agentID,
            serial: serial, seqFrom: first.seqFrom, seqTo: last.seqTo, ack: (all.first?.seqFrom ?? 1) - 1,
            createdMs: wall.nowMillis(), count: chosen.count)
        let bytes = OfflineBundle.encode(header, entries: chosen.map(\.envelope))
        try BundleFile.write(bytes, to: path)
        let counts = try store.counts()
        try store.setMeta([
            "bundle_serial": String(serial), "bundle_last_seq": String(last.seqTo),
            "last_bundle_export_ms": String(wall.nowMillis()),
        ])
        logger.notice(
            "offline bundle written",
            metadata: [
                "ferry.bundle": "\(serial)", "ferry.seq": "\(first.seqFrom)...\(last.seqTo)",
                "ferry.changesets": "\(chosen.count)", "ferry.bytes": "\(bytes.count)",
            ])
        return AgentBundleExport(
            file: path, serial: serial, changeSets: chosen.count, writes: last.seqTo - first.seqFrom + 1,
            seqFrom: first.seqFrom, seqTo: last.seqTo, bytes: bytes.count, hubFingerprint: hex(fingerprint),
            leftOver: counts.pendingWrites)
    }

    /// Reads a bundle the hub made for this agent (`ferry hub export-bundle`),
    /// checks that it is for this agent from the pinned hub, opens every page
    /// with the pinned keys (SPEC §7.4) before applying any, then applies them
    /// in stream order and acknowledges the change sets the hub's signed `ack`
    /// covers (SPEC §9.3). Pages this copy already has are skipped; a bundle
    /// that starts after this copy's cursor is refused (one is missing).
    /// - Throws: ``BundleError`` with what to do; nothing is applied then.
    public func importBundle(from path: String, limits: OfflineBundleLimits = .standard) throws -> AgentBundleImport {
        let bytes = try BundleFile.read(path, maxBytes: limits.maxBytes)
        let (h, entries, extraBytes) = try OfflineBundle.parseWithExtras(bytes, limits: limits)
        guard h.kind == .hubPages else {
            throw BundleError(
                .wrongKind,
                "this bundle holds change sets written by agent \(h.agentID) for the hub: take it to the hub and import it there (ferry hub import-bundle FILE)"
            )
        }
        let hub = try home.hubKeys()
        let pinned = Identity.fingerprint(sign: hub.sign.bytes, kx: hub.kx.bytes)
        guard h.hubFingerprint == pinned else {
            throw BundleError(
                .wrongHub,
                "this bundle comes from the hub with key fingerprint \(hex(h.hubFingerprint)), but this PC is enrolled with the hub whose fingerprint is \(hex(pinned)): nothing was imported; ask the operator of your hub for this agent's bundle"
            )
        }
        guard h.agentID == config.agentID, h.recipientKeyID == identity.kx.publicKey.id else {
            throw BundleError(
                .wrongAgent,
                "this bundle was made for agent \(h.agentID), but this PC is agent \(config.agentID) (commune \(config.commune)): nothing was imported; ask the hub operator for: ferry hub export-bundle --agent \(config.agentID) FILE"
            )
        }
        // Every page, and the extras, are authenticated before anything is applied.
        var extras: BundleExtrasV1?
        if let extraBytes {
            let context = OfflineBundle.noticesContext(serial: h.serial)
            guard let x = BundleExtrasV1.open(extraBytes, agent: config.agentID, serial: h.serial, key: keys.receive),
                x.notices.map({ verifiedNotices($0, context: context) != nil }) ?? true,
                x.conflicts.map({ (try? $0.check(commune: config.commune)) != nil }) ?? true
            else {
                throw BundleError(
                    .corrupted,
                    "the bundle's conflict list and quarantine notices failed verification: the file was altered or damaged, or made for another PC; nothing was imported, ask the hub operator for a new bundle"
                )
            }
            extras = x
        }
        let notices = extras?.notices
        var pages: [OpenedChangeSet] = []
        for (i, e) in entries.enumerated() {
            let opened: OpenedChangeSet
            do {
                opened = try openHubPage(e)
            } catch {
                throw BundleError(
                    .corrupted,
                    "page \(i + 1) of the bundle failed verification (\(error)): the file was altered or damaged; nothing was imported, ask the hub operator for a new bundle"
                )
            }
            guard opened.header.origin == .hub else {
                throw BundleError(.malformed, "page \(i + 1) of the bundle is not from the hub")
            }
            pages.append(opened)
        }
        guard let first = pages.first, let last = pages.last else {
            throw BundleError(.malformed, "the bundle holds no page")
        }
        let before = try store.counts()
        var cursor = before.hubCursor
        guard first.header.seqFrom <= cursor &+ 1 else {
            throw BundleError(
                .outOfOrder,
                "this bundle from the hub starts at hub change #\(first.header.seqFrom), but this PC has the hub's changes only up to #\(cursor): the hub's changes #\(cursor &+ 1)…#\(first.header.seqFrom - 1) are in an earlier bundle that was not imported here. Import that one first, or ask the hub operator for a new bundle (ferry hub export-bundle --agent \(config.agentID) FILE starts where the hub knows this PC is)"
            )
        }
        var applied = 0
        var changed = 0
        for p in pages where p.header.seqTo > cursor {
            // SPEC §12.4: a page overlapping what this copy has (the hub knew an
            // older cursor) is applied whole: winners only move up, and catalog
            // entries this copy already has at a newer position are left alone.
            var body = p.body
            let have = cursor
            body.catalog = body.catalog.filter { $0.seq > have }
            changed += try store.applyRemote(body, cursor: p.header.seqTo)
            cursor = p.header.seqTo
            applied += 1
        }
        let hubApplied = pages.map(\.header.ack).max() ?? 0
        let acked = try store.acknowledgeConfirmed(upTo: hubApplied)
        // After the pages: a notice corrects a field only while it still shows the refused write.
        let corrected =
            try notices.map { try applyNotices($0, context: OfflineBundle.noticesContext(serial: h.serial)) } ?? 0
        // The commune's conflicts as of the hub's bundle (SPEC §12.4), unless a sync already brought a newer list.
        if let list = extras?.conflicts,
            (try store.meta("commune_conflicts_ms")).flatMap({ UInt64($0) }).map({ $0 <= list.hubTimeMs }) ?? true
        {
            try store.replaceHubConflicts(list, atMillis: list.hubTimeMs)
        }
        let hubMs = last.header.createdHLC.millis
        let after = try store.counts()
        let pending = after.pendingWrites + after.inFlightWrites
        let more = last.header.more
        guard applied > 0 || acked != nil || corrected > 0 else {
            throw BundleError(
                .alreadyImported,
                "already imported, nothing new: this copy has every hub change in this bundle (up to #\(last.header.seqTo)) and every acknowledgement in it"
            )
        }
        let now = wall.nowMillis()
        var meta: [String: String?] = [
            "last_bundle_import_ms": String(now), "bundle_hub_ms": String(hubMs), "hub_more": more ? "1" : "0",
            "hub_head": more ? nil : String(cursor), "hub_remaining": more ? nil : "0",
        ]
        if acked != nil { meta["last_upload_ack_ms"] = String(hubMs) }
        if applied > 0 { meta["last_download_ms"] = String(hubMs) }
        if pending == 0 && !more {
            // Complete as of the hub's bundle: what the sync loop's last
            // error said (no link) is superseded by this round.
            meta["bundle_sync_ms"] = String(now)
            meta["last_sync_ok_ms"] = String(now)
            meta["last_error"] = .some(nil)
            meta["last_error_ms"] = .some(nil)
            meta["last_error_kind"] = .some(nil)
        }
        try store.setMeta(meta)
        logger.notice(
            "offline bundle from the hub imported",
            metadata: [
                "ferry.bundle": "\(h.serial)", "ferry.pages": "\(pages.count)", "ferry.applied": "\(applied)",
                "ferry.cursor": "\(cursor)", "ferry.acked": "\(acked.map(String.init) ?? "-")",
            ])
        return AgentBundleImport(
            serial: h.serial, pages: pages.count, pagesApplied: applied, writesChanged: changed, hubApplied: hubApplied,
            acknowledgedUpTo: acked, hubCursor: cursor, pendingWrites: pending, moreAtHub: more, hubMadeMs: hubMs,
            quarantined: notices?.refused.count ?? 0, corrected: corrected)
    }
}

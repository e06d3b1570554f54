import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// What `ferry hub import-bundle` did with each change set of a bundle.
public struct HubBundleImport: Sendable, Codable {
    public struct Entry: Sendable, Codable {
        public var seqFrom: UInt64
        public var seqTo: UInt64
        public var changeSet: String
        /// "accepted", "duplicate", "refused", or "not_tried" (after a refusal).
        public var status: String
        public var code: String?
        public var message: String?
        public var merged: Int
        public var quarantined: Int
    }

    public var agent: String
    public var serial: UInt64
    public var seqFrom: UInt64
    public var seqTo: UInt64
    public var entries: [Entry]
    public var accepted: Int { entries.filter { $0.status == "accepted" }.count }
    public var duplicates: Int { entries.filter { $0.status == "duplicate" }.count }
    public var refused: Int { entries.filter { $0.status == "refused" }.count }
    /// Every change set was already applied here: the bundle was imported before.
    public var nothingNew: Bool { !entries.isEmpty && entries.allSatisfy { $0.status == "duplicate" } }

    enum CodingKeys: String, CodingKey { case agent, serial, seqFrom, seqTo, entries }
}

/// What `ferry hub export-bundle` wrote.
public struct HubBundleExport: Sendable, Codable {
    public var agent: String
    public var serial: UInt64
    public var pages: Int
    public var seqFrom: UInt64
    public var seqTo: UInt64
    /// The agent's last number the hub has applied (the signed acknowledgement the pages carry).
    public var acknowledged: UInt64
    public var writes: Int
    public var bytes: Int
    /// The stream had more for the agent than the bundle's bounds allowed.
    public var more: Bool
    /// Open quarantine entries of the agent's writes the bundle carries notices of (SPEC §12.4).
    public var quarantined: Int
    /// Open conflicts on the agent's commune the bundle lists (SPEC §12.4).
    public var conflicts: Int
}

/// Offline bundles, hub side (SPEC §12).
extension HubService {
    /// Quarantine notices one bundle carries at most (the newest).
    static let maxBundleNotices = 5_000

    /// Ingests each change set of an agent's bundle through the upload path
    /// (``upload(_:)``: the ingest pipeline with every check of SPEC §7 and
    /// §7.3, in its own store transaction), in order, stopping at the first
    /// refusal (the later ones would leave a gap).
    /// - Throws: ``BundleError`` when the file is not a bundle for this hub;
    ///   per-change-set refusals are in the result.
    public func importBundle(_ bytes: [UInt8], limits: OfflineBundleLimits = .standard) throws(BundleError)
        -> HubBundleImport
    {
        let (h, entries) = try OfflineBundle.parse(bytes, limits: limits)
        guard h.kind == .changes else {
            throw BundleError(
                .wrongKind,
                "this bundle holds the hub's changes for agent \(h.agentID): take it to the commune and import it there (ferry agent import-bundle FILE)"
            )
        }
        guard h.hubFingerprint == identity.fingerprint, h.recipientKeyID == identity.kx.publicKey.id else {
            throw BundleError(
                .wrongHub,
                "this bundle was sealed for the hub with key fingerprint \(hex(h.hubFingerprint)), but this hub's fingerprint is \(hex(identity.fingerprint)): nothing was imported; take it to the hub agent \(h.agentID) is enrolled with"
            )
        }
        let agent: AgentInfo?
        do { agent = try store.agent(id: h.agentID) } catch {
            throw BundleError(.unreadable, "cannot read the hub's store: \(error)")
        }
        guard agent != nil else {
            throw BundleError(
                .wrongAgent,
                "agent \(h.agentID) is not enrolled at this hub: nothing was imported; check that this is the commune's hub"
            )
        }
        var out = HubBundleImport(agent: h.agentID, serial: h.serial, seqFrom: h.seqFrom, seqTo: h.seqTo, entries: [])
        var stopped = false
        for e in entries {
            // The clear header was checked for tiling by the parser; it names the entry.
            let eh = try? Envelope.peek(e)
            var entry = HubBundleImport.Entry(
                seqFrom: eh?.seqFrom ?? 0, seqTo: eh?.seqTo ?? 0, changeSet: eh?.idHex ?? "", status: "not_tried",
                code: nil, message: nil, merged: 0, quarantined: 0)
            if stopped {
                out.entries.append(entry)
                continue
            }
            let reply = upload(e)
            if reply.status == 200, let ack = try? HubJSON.decoder.decode(AckV1.self, from: Data(reply.body)) {
                entry.status = ack.status == "applied" ? "accepted" : "duplicate"
                entry.merged = ack.merged
                entry.quarantined = ack.quarantined
            } else {
                let detail = (try? HubJSON.decoder.decode(ErrorBody.self, from: Data(reply.body)))?.error
                entry.status = "refused"
                entry.code = detail?.code ?? "http_\(reply.status)"
                var message = detail?.message ?? "HTTP \(reply.status)"
                if detail?.code == "cloned_replica" {
                    // SPEC §12.5: from a file, the likelier cause is a stale bundle.
                    message =
                        "the hub already holds changes #\(entry.seqFrom)…#\(entry.seqTo) of agent \(h.agentID) with other content. Most often this bundle is stale: the PC sent those changes online after the bundle was made, re-sealed in another form (after a clock or size refusal), so nothing is lost; throw this file away and, if the PC still shows changes waiting, make a new bundle there (ferry agent export-bundle FILE). If the PC did not sync online since it made this bundle, two PCs run copies of this agent's directory: enroll the copy as its own agent with a new token. The hub has noted a possible copy on agent \(h.agentID)"
                } else if detail?.code == "out_of_sequence", let expected = detail?.expectedSeq,
                    expected < entry.seqFrom
                {
                    message =
                        "changes #\(expected)…#\(entry.seqFrom - 1) of agent \(h.agentID) are missing here: they are in an earlier bundle from that PC (before bundle #\(h.serial)) that was not imported at this hub. Import that bundle first, or make a new one at the commune (ferry agent export-bundle FILE carries every change the hub has not confirmed). Nothing from this bundle was lost: import it again afterwards"
                }
                entry.message = message
                stopped = true
            }
            out.entries.append(entry)
        }
        logger.notice(
            "offline bundle imported",
            metadata: [
                "ferry.agent": "\(h.agentID)", "ferry.bundle": "\(h.serial)", "ferry.accepted": "\(out.accepted)",
                "ferry.duplicates": "\(out.duplicates)", "ferry.refused": "\(out.refused)",
            ])
        return out
    }

    /// The bundle an agent would download: the hub's stream for it after the
    /// cursor the hub last heard from it (SPEC §8.8), as the sealed pages a
    /// download answers (SPEC §9.4), whose signed `ack` carries the agent's
    /// last number applied here. At least one page, even when nothing changed.
    /// - Throws: ``BundleError`` `wrong_agent` for an unknown or revoked agent.
    /// The bundle's serial is the stream position it reaches (SPEC §12.1).
    public func exportBundle(agentID: String, limits: OfflineBundleLimits = .standard) throws
        -> (bytes: [UInt8], report: HubBundleExport)
    {
        guard let agent = try store.agent(id: agentID) else {
            throw BundleError(
                .wrongAgent, "agent \(agentID) is not enrolled at this hub: see the list with ferry hub agents")
        }
        guard agent.isActive else {
            throw BundleError(.wrongAgent, "agent \(agentID) was revoked: a revoked agent gets nothing")
        }
        let since = agent.ackedCursor
        var cursor = since
        var pages: [[UInt8]] = []
        var total = 200
        var writes = 0
        var more = true
        // Bounded in pages and bytes; a page is at most half an envelope's limit.
        let pageBytes = min(2 << 20, limits.maxEnvelopeBytes / 2)
        while more && pages.count < limits.maxEntries && total + pageBytes + 4 <= limits.maxBytes {
            let (sealed, page) = try sealedPage(for: agent, since: cursor, maxBytes: pageBytes)
            pages.append(sealed.envelope)
            total += 4 + sealed.envelope.count
            writes += page.body.writes.count
            more = page.more
            // An empty range (nothing new) ends the stream at the cursor.
            cursor = max(cursor, page.seqTo)
        }
        let header = OfflineBundleHeader(
            kind: .hubPages, hubFingerprint: identity.fingerprint, recipientKeyID: keyID(of: agent.kxPublicKey),
            agentID: agent.id, serial: cursor, seqFrom: since + 1, seqTo: cursor, ack: agent.appliedSeq,
            createdMs: store.nowMillis(), count: pages.count)
        // SPEC §12.4: what the hub quarantined from this agent and still holds open,
        // with the values it accepted instead, as an upload's ack would say it;
        // and the commune's open conflicts, as §9.13 lists them; sealed for the agent.
        let open = try store.openQuarantine(origin: agent.id, limit: Self.maxBundleNotices)
        var notices: QuarantineNoticesV1?
        if !open.isEmpty {
            let registers = try store.transaction { tx in try tx.registers(of: Array(Set(open.map(\.write.record)))) }
            let items = open.map {
                QuarantineNotice(
                    refused: $0.write, reason: $0.reason, accepted: registers[$0.write.record]?[$0.write.field]?.winner)
            }
            notices = signedNotices(items, for: agent, context: OfflineBundle.noticesContext(serial: cursor))
        }
        let conflicts = try conflictList(for: agent)
        let keys = try identity.kx.serverSessionKeys(client: try KXPublicKey(bytes: agent.kxPublicKey))
        let extras = try BundleExtrasV1(conflicts: conflicts, notices: notices).sealed(
            agent: agent.id, serial: cursor, key: keys.transmit)
        let bytes = OfflineBundle.encode(header, entries: pages, extras: extras)
        logger.notice(
            "offline bundle for an agent written",
            metadata: [
                "ferry.agent": "\(agent.id)", "ferry.stream": "\(since + 1)...\(cursor)",
                "ferry.pages": "\(pages.count)",
                "ferry.more": "\(more)",
            ])
        return (
            bytes,
            HubBundleExport(
                agent: agent.id, serial: cursor, pages: pages.count, seqFrom: since + 1, seqTo: cursor,
                acknowledged: agent.appliedSeq, writes: writes, bytes: bytes.count, more: more,
                quarantined: open.count, conflicts: conflicts.open)
        )
    }

    /// One page of the hub's stream for `agent` after `since`, signed and sealed
    /// for it, as a download answers it (SPEC §9.4; `maxBytes` in sealed bytes):
    /// the pull and the offline bundle both seal their pages here.
    func sealedPage(for agent: AgentInfo, since: UInt64, maxBytes: Int) throws -> (SealedChangeSet, StreamPage) {
        let page = try store.changes(for: agent, since: since, maxBytes: pageRatio.estimateBudget(sealed: maxBytes))
        let keys = try identity.kx.serverSessionKeys(client: try KXPublicKey(bytes: agent.kxPublicKey))
        let header = ChangeSetHeader(
            id: randomBytes(16), origin: .hub, seqFrom: since + 1, seqTo: page.seqTo, ack: agent.appliedSeq,
            senderKeyID: identity.signing.publicKey.id, recipientKeyID: keyID(of: agent.kxPublicKey),
            createdHLC: HLC(millis: store.nowMillis(), counter: 0), commune: agent.commune, more: page.more)
        let sealed = try Envelope.seal(
            header: header, body: page.body, signer: identity.signing, key: keys.transmit,
            zstdLevel: Compressor.wireLevel)
        pageRatio.observe(estimated: SQLiteHubStore.estimatedSize(page.body), sealed: sealed.envelope.count)
        return (sealed, page)
    }
}

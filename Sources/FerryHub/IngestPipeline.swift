import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// What the hub does with one change set from an agent, as the steps of
/// protocol/SPEC.md §7 and §8 (DESIGN §8). The crypto steps run before the
/// store's writer is taken; everything from the agent's status on runs in one
/// store transaction, so a change set is applied whole or not at all, by any
/// ``HubStore`` backend.
public struct IngestPipeline: Sendable {
    public let store: any HubStore
    public let identity: Identity
    public let limits: EnvelopeLimits

    /// The most writes one change set may carry: the store's writer is held
    /// for the whole change set, so this bounds what one agent can make every
    /// other agent wait for (an honest agent sends far fewer; SPEC §3.2).
    public static let maxWrites = 50_000

    public init(store: any HubStore, identity: Identity, limits: EnvelopeLimits = .standard) {
        self.store = store
        self.identity = identity
        self.limits = limits
    }

    /// The outcome of an applied (or duplicate) change set.
    public struct Outcome: Sendable {
        public var result: IngestResult
        public var agent: AgentInfo
        public var header: ChangeSetHeader
        /// What the author is told about its quarantined writes (SPEC §8.9).
        public var notices: [QuarantineNotice]
    }

    /// Opens, checks and applies a sealed change set (SPEC §7.1 steps 1–25, §7.3).
    /// - Throws: ``ChangeSetError`` or ``HubError``; nothing is applied then.
    ///   `authenticated` is set once the signature was verified, so a caller
    ///   records refusals only against a proven author.
    public func ingest(envelope bytes: [UInt8], authenticated: inout Bool) throws -> Outcome {
        // Steps 1–9: framing, before any key is looked up.
        let header = try Envelope.peek(bytes, limits: limits)
        // Step 10, 10a: the origin is an enrolled, active agent.
        guard let agent = try store.agent(id: header.origin.rawValue) else {
            throw ChangeSetError.unknownKey(hex(header.senderKeyID)).about(header)
        }
        guard agent.isActive else { throw Self.revoked(agent, header) }
        // Steps 11–17: keys, AEAD, signature, decompression, body decoding.
        let signKey = try SigningPublicKey(bytes: agent.signPublicKey)
        let keys = try identity.kx.serverSessionKeys(client: try KXPublicKey(bytes: agent.kxPublicKey))
        let opened = try Envelope.open(
            bytes, recipientKeyID: identity.kx.publicKey.id, author: signKey, key: keys.receive, limits: limits,
            normalize: true)
        authenticated = true
        return try ingest(opened, from: agent.id)
    }

    /// Steps 18–25 and the hub-level checks on an opened change set, in one transaction.
    public func ingest(_ cs: OpenedChangeSet, from agentID: String) throws -> Outcome {
        try Self.apply(cs, from: agentID, store: store)
    }

    /// ``ingest(_:from:)`` for callers that hold an opened change set and no hub keys
    /// (offline bundles, store tests).
    public static func apply(_ cs: OpenedChangeSet, from agentID: String, store: any HubStore) throws -> Outcome {
        do {
            return try applyChecked(cs, from: agentID, store: store)
        } catch let e as ChangeSetError where e.code == .clonedReplica {
            // The refusal rolled the change set back; note it on the agent on its own.
            try? store.noteClonedReplica(agent: agentID)
            throw e
        }
    }

    /// A digest of a change set's writes and scopes in canonical order: equal for
    /// two change sets that carry the same content, whatever their ids (SPEC §7.2).
    public static func bodyDigest(_ body: ChangeSetBody) -> [UInt8] {
        digest(BodyCodec.encode(ChangeSetBody(writes: body.canonicalWrites, scopes: body.scopes)))
    }

    /// SPEC §7.2: a change set claiming numbers this hub already applied for the
    /// origin is a harmless re-delivery only when it carries the same content as
    /// the change set applied for that range; otherwise two replicas share one
    /// origin (an agent directory copied to another PC) and the newcomer is
    /// refused, so neither PC's writes are silently dropped.
    static func isRedelivery(
        _ cs: OpenedChangeSet, digest mine: [UInt8], agent: AgentInfo, _ tx: any HubTransaction
    ) throws -> Bool {
        let h = cs.header
        if let stored = try tx.storedChangeSet(id: h.id) ?? tx.storedChangeSet(origin: agent.id, seqFrom: h.seqFrom) {
            let sameRange = stored.seqFrom == h.seqFrom && stored.seqTo == h.seqTo
            // A change set stored before digests were kept compares by range alone.
            guard let d = stored.digest else {
                if sameRange { return true } else { throw ChangeSetError.clonedReplica(h) }
            }
            if sameRange && d == mine { return true }
        }
        throw ChangeSetError.clonedReplica(h)
    }

    static func applyChecked(_ cs: OpenedChangeSet, from agentID: String, store: any HubStore) throws -> Outcome {
        let h = cs.header
        // Bounded work per request: refuse before taking the writer.
        guard cs.body.writes.count <= Self.maxWrites else {
            throw ChangeSetError.oversized(cs.body.writes.count, limit: Self.maxWrites, unit: "writes").about(h)
        }
        return try store.transaction { tx in
            let now = store.nowMillis()
            // The agent's status again, inside the transaction (it may have been revoked meanwhile).
            guard let agent = try tx.agent(id: agentID) else {
                throw HubError(.unknownAgent, "agent \(agentID) is not enrolled here")
            }
            guard agent.isActive else { throw Self.revoked(agent, h) }

            // SPEC §3.3: `ack` is a position in the hub's stream and cannot pass its head.
            let head = try tx.streamHead()
            guard h.ack <= head else {
                throw ChangeSetError.outOfRange("the header's ack", h.ack, limit: head).about(h)
            }

            // Replay and sequence (§7.2, steps 18–25).
            var clock = try tx.clock()
            let digest = Self.bodyDigest(cs.body)
            let seen = try tx.storedChangeSet(id: h.id) != nil
            if seen || (h.seqFrom >= 1 && h.seqFrom <= agent.appliedSeq),
                try Self.isRedelivery(cs, digest: digest, agent: agent, tx)
            {
                return try Self.duplicate(agent, h, tx)
            }
            let verdict = try ReceiveChecks.check(
                cs, sequence: OriginSequence(applied: agent.appliedSeq), alreadySeen: false, clock: clock,
                authorWritesOnly: true)
            if verdict == .duplicate { return try Self.duplicate(agent, h, tx) }

            // Scope (§7.3.1): the agent's own commune, and the scope the hub already holds.
            let records = Array(cs.body.scopes.keys).sorted()
            let known = try tx.scopes(of: records)
            for rid in records {
                guard let scope = cs.body.scopes[rid] else { continue }
                guard scope.commune == agent.commune else {
                    throw HubError(
                        .scope,
                        "agent \(agent.id) of commune \(agent.commune) wrote record \(rid) of commune \(scope.commune): refused"
                    )
                }
                if let old = known[rid], old != scope {
                    throw HubError(
                        .scope, "record \(rid) already belongs to \(old.formID) v\(old.formVersion) in \(old.commune)")
                }
            }

            // Validate (§8.9): a write that fails its form is quarantined, never merged.
            let forms = try tx.forms()
            var valid: [RecordID: [FieldWrite]] = [:]
            var refused: [RefusedWrite] = []
            for w in cs.body.writes {
                try? clock.observe(w.id.hlc)
                guard let scope = cs.body.scopes[w.record] else { continue }
                if let reason = Self.violation(w, scope: scope, forms: forms) {
                    refused.append(RefusedWrite(w, reason: reason))
                } else {
                    valid[w.record, default: []].append(w)
                }
            }

            // Merge (§8.3), conflicts (§8.6) and progress (the deleted flag), per record.
            let batches = valid.keys.sorted().compactMap { rid in
                cs.body.scopes[rid].map {
                    RecordBatch(record: rid, scope: $0, isNew: known[rid] == nil, writes: valid[rid] ?? [])
                }
            }
            let merges = try tx.merge(batches, changeSet: h.id, atMillis: now)
            var merged = 0
            for m in merges {
                merged += m.added.count
                refused += m.refused.map { RefusedWrite($0.write, reason: $0.reason) }
            }

            // Quarantine: kept with the reason; the author learns the accepted value.
            try tx.quarantine(refused, changeSet: h.id, atMillis: now)
            let held = Array(Set(refused.map(\.write.record).filter { known[$0] != nil })).sorted()
            let accepted = held.isEmpty ? [:] : try tx.registers(of: held)
            let notices = refused.map {
                QuarantineNotice(
                    refused: $0.write, reason: $0.reason, accepted: accepted[$0.write.record]?[$0.write.field]?.winner)
            }

            // Audit (§11) and acknowledgement: the signed record, the agent's new position.
            try tx.recordChangeSet(cs, agent: agent.id, digest: digest, atMillis: now)
            try tx.advance(
                agent: agent.id, appliedSeq: h.seqTo, ack: h.ack, skewMs: HubService.skew(h.createdHLC.millis, now),
                atMillis: now)
            try tx.save(clock: clock)
            let result = IngestResult(
                status: "applied", cursor: h.seqTo, merged: merged, quarantined: refused.count,
                conflictsOpen: try tx.openConflictCount())
            return Outcome(result: result, agent: agent, header: h, notices: notices)
        }
    }

    /// Why `w` may not be merged, or nil (SPEC §8.9).
    static func violation(_ w: FieldWrite, scope: RecordScope, forms: [String: FormDefinition]) -> String? {
        guard let form = forms["\(scope.formID)@\(scope.formVersion)"] else {
            return "form \(scope.formID) v\(scope.formVersion) is not published at this hub"
        }
        return form.violation(field: w.field, value: w.value)
    }

    static func duplicate(_ agent: AgentInfo, _ h: ChangeSetHeader, _ tx: any HubTransaction) throws -> Outcome {
        Outcome(
            result: IngestResult(
                status: "duplicate", cursor: agent.appliedSeq, merged: 0, quarantined: 0,
                conflictsOpen: try tx.openConflictCount()),
            agent: agent, header: h, notices: [])
    }

    static func revoked(_ agent: AgentInfo, _ h: ChangeSetHeader) -> HubError {
        HubError(.revoked, "agent \(agent.id) was revoked: its change sets are refused; re-enroll with a new token")
    }
}

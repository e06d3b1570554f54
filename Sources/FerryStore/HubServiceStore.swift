import FerryCore
import FerryCrypto
import FerryProtocol
import Foundation

/// What the hub's service needs of its store beyond ingest (DESIGN §8): the
/// stream pages agents download, enrollment, the catalog and the operator's
/// reads and writes. ``SQLiteHubStore`` and the PostgreSQL store implement
/// it, so `HubService` runs unchanged on either.
public protocol HubServiceStore: HubStore, HubOperatorStore {
    /// Where the store lives, for messages and logs: a file path, or a
    /// database URL without its password.
    var location: String { get }
    /// The hub-stream position: the seq of the latest change.
    func streamSeq() throws -> UInt64
    /// Nil when the store can take writes; otherwise why not (SPEC §9.5, `/v1/health`).
    func writeProblem() -> StoreFault?
    /// A storage failure behind `error`, typed (SPEC §9.5), or nil.
    func fault(_ error: any Error) -> StoreFault?

    /// Publishes (or re-publishes) a catalog entry; it streams to every agent.
    /// - Throws: ``HubError`` `formImmutable` when a form version exists with other content.
    func publish(_ kind: CatalogItem.Kind, key: String, json: [UInt8]) throws
    /// The JSON of every catalog entry of `kind`, by key.
    func catalogJSON(_ kind: CatalogItem.Kind) throws -> [[UInt8]]

    /// Issues a one-time enrollment token for `commune`; only its hash is kept.
    func issueToken(commune: String, ttlMillis: UInt64) throws -> [UInt8]
    /// Redeems a token and registers the agent's keys.
    /// - Throws: ``HubError`` `badToken` when unknown, used, expired or for another commune.
    func enroll(secret: [UInt8], commune: String, signKey: SigningPublicKey, kxKey: KXPublicKey, hostname: String)
        throws -> AgentInfo
    /// Revokes an agent: its key is refused from now on.
    func revoke(agent id: String) throws
    func agents() throws -> [AgentInfo]
    /// Records a contact from an agent (pull or upload), its clock skew and its cursor.
    func noteContact(agent id: String, skewMs: Int64?, ackedCursor: UInt64?, error: String?) throws

    /// Runs `body` in a write transaction that may stamp writes with the hub's
    /// own clock (operator writes): the store makes sure two hub processes
    /// never hand out the same hub timestamp.
    func stampingTransaction<T>(_ body: (any HubTransaction) throws -> T) throws -> T

    func record(_ id: RecordID) throws -> HubRecordView?
    /// Record ids, newest first, optionally of one commune.
    func recordIDs(commune: String?, limit: Int) throws -> [RecordID]
    /// Winners of every record of `commune` (convergence checks).
    func winners(commune: String) throws -> [RecordID: [String: Value]]
    /// Open conflicts with provenance.
    func conflicts(limit: Int) throws -> [ConflictReport]
    func quarantine(limit: Int) throws -> [QuarantineEntry]
    /// The open quarantine entries of `origin`'s writes, newest first, as the
    /// refused writes with their reasons (for the notices of SPEC §12.4).
    func openQuarantine(origin: String, limit: Int) throws -> [RefusedWrite]
    /// Campaign progress per commune: live records of the campaign's form.
    func progress(campaign: CampaignDefinition) throws -> [ProgressRow]
    /// The signed change sets that wrote the current leaves of a record.
    func audit(record: RecordID) throws -> [AuditEntry]
    /// Changes waiting for an agent.
    func lag(of agent: AgentInfo) throws -> Int
    /// Totals for `ferry status` at the hub and for metrics.
    func totals() throws -> [String: Int]
    /// A page of the hub stream for one agent (SPEC §9.4): see ``SQLiteHubStore/changes(for:since:maxBytes:)``.
    func changes(for agent: AgentInfo, since: UInt64, maxBytes: Int) throws -> StreamPage
}

/// One download page of the hub stream.
public struct StreamPage: Sendable {
    public var body: ChangeSetBody
    /// The cursor the page reaches.
    public var seqTo: UInt64
    /// More changes wait after `seqTo`.
    public var more: Bool
    /// The stream head.
    public var head: UInt64
    /// When more wait, how many of this agent's changes lie after `seqTo`.
    public var remaining: Int
    public init(body: ChangeSetBody, seqTo: UInt64, more: Bool, head: UInt64, remaining: Int) {
        self.body = body
        self.seqTo = seqTo
        self.more = more
        self.head = head
        self.remaining = remaining
    }
}

extension HubServiceStore {
    public func stampingTransaction<T>(_ body: (any HubTransaction) throws -> T) throws -> T {
        try transaction(body)
    }

    /// Publishes a form version.
    public func publish(form: FormDefinition) throws {
        let problems = form.problems()
        if !problems.isEmpty {
            throw HubError(.badRequest, "the form is not valid: " + problems.joined(separator: "; "))
        }
        try publish(.form, key: "\(form.id)@\(form.version)", json: SQLiteHubStore.json(form))
    }

    public func catalog<T: Decodable>(_ kind: CatalogItem.Kind, as: T.Type) throws -> [T] {
        try catalogJSON(kind).compactMap { try? JSONDecoder().decode(T.self, from: Data($0)) }
    }

    public func forms() throws -> [FormDefinition] { try catalog(.form, as: FormDefinition.self) }
    public func communes() throws -> [Commune] { try catalog(.commune, as: Commune.self) }
    public func campaigns() throws -> [CampaignDefinition] { try catalog(.campaign, as: CampaignDefinition.self) }

    /// A token valid for seven days.
    public func issueToken(commune: String) throws -> [UInt8] {
        try issueToken(commune: commune, ttlMillis: 7 * 86_400_000)
    }
    public func recordIDs(commune: String? = nil) throws -> [RecordID] { try recordIDs(commune: commune, limit: 100) }
    public func conflicts() throws -> [ConflictReport] { try conflicts(limit: 200) }
    public func quarantine() throws -> [QuarantineEntry] { try quarantine(limit: 200) }

    // MARK: operator writes, the same rules on every backend

    /// Creates a record at the hub (an operator's write) after validating it.
    public func operatorCreate(form: FormDefinition, commune: String, values: [String: Value]) throws -> RecordID {
        let values = values.mapValues(AgentStore.normalized)
        let missing = form.missingRequired(in: values)
        if !missing.isEmpty { throw FormError("required field(s) missing: \(missing.joined(separator: ", "))") }
        for (f, v) in values.sorted(by: { $0.key < $1.key }) {
            if let why = form.violation(field: f, value: v) { throw FormError(why) }
        }
        return try stampingTransaction { tx in
            var c = try tx.clock()
            let h = c.now()
            var rng = SystemRandomNumberGenerator()
            let rid = RecordID.v7(millis: h.millis, using: &rng)
            let scope = RecordScope(formID: form.id, formVersion: form.version, commune: commune)
            let writes = values.sorted { $0.key < $1.key }.filter { !$0.value.isNull }.map {
                FieldWrite(record: rid, field: $0.key, id: WriteID(hlc: h, origin: .hub), value: $0.value)
            }
            _ = try tx.merge(
                [RecordBatch(record: rid, scope: scope, isNew: true, writes: writes)], changeSet: nil,
                atMillis: nowMillis())
            try tx.save(clock: c)
            return rid
        }
    }

    /// An operator's edit of a record's fields. With `resolve`, each write's
    /// `prev` names every leaf, which resolves a conflict on that field; a
    /// `_deleted` write then also covers every field leaf, which resolves an
    /// edit-vs-delete conflict.
    public func operatorWrite(record: RecordID, values: [String: Value], resolve: Bool) throws {
        let values = values.mapValues(AgentStore.normalized)
        try stampingTransaction { tx in
            guard let scope = try tx.scopes(of: [record])[record] else {
                throw HubError(.notFound, "record \(record) is not at this hub")
            }
            let leaves = try tx.registers(of: record)
            if let form = try tx.forms()["\(scope.formID)@\(scope.formVersion)"] {
                for (f, v) in values.sorted(by: { $0.key < $1.key }) {
                    if let why = form.violation(field: f, value: v) { throw FormError(why) }
                }
            }
            var c = try tx.clock()
            let h = c.now()
            let seen = leaves.mapValues { $0.leaves.map(\.id) }
            let writes = values.sorted { $0.key < $1.key }.map { f, v in
                WriteRules.hub(
                    record: record, field: f, value: v, id: WriteID(hlc: h, origin: .hub),
                    leaves: leaves[f] ?? LeafRegister(), deleted: leaves[deletedField], resolve: resolve,
                    covers: WriteRules.covers(field: f, value: v, seen: seen))
            }
            _ = try tx.merge(
                [RecordBatch(record: record, scope: scope, isNew: false, writes: writes)], changeSet: nil,
                atMillis: nowMillis())
            try tx.save(clock: c)
        }
    }

    /// Resolves every open conflict on `record.field` by keeping the current
    /// winner (or `value` when given): the new write names every leaf.
    public func resolve(record: RecordID, field: String, value: Value?) throws {
        let view = try self.record(record)
        guard let view else { throw HubError(.notFound, "record \(record) is not at this hub") }
        if field == deletedField || (view.isDeleted && value == nil && view.leaves[field]?.isConflict != true) {
            // An edit-vs-delete conflict: confirm the delete (or undelete with value false).
            try operatorWrite(record: record, values: [deletedField: value ?? .bool(true)], resolve: true)
            return
        }
        guard let keep = value ?? view.leaves[field]?.winner?.value else {
            throw HubError(.notFound, "record \(record) has no field \(field)")
        }
        try operatorWrite(record: record, values: [field: keep], resolve: true)
    }

    /// The open conflicts of `views`' records as operators read them (the same
    /// rules on every backend): `rows` are (record, field, kind, commune,
    /// detected_ms) of the conflicts table, `communeOf` maps agent ids to their communes.
    public static func conflictReports(
        rows: [(RecordID, String, String, String, UInt64)], views: [RecordID: HubRecordView],
        communeOf: [String: String]
    ) -> [ConflictReport] {
        var out: [ConflictReport] = []
        for (rid, field, kind, commune, detected) in rows {
            guard let view = views[rid] else { continue }
            let all = ConflictRules.conflicts(record: rid, registers: view.leaves).filter {
                $0.field == field && $0.kind.rawValue == kind
            }
            var writes: [FieldWrite] = []
            for c in all { for w in c.writes where !writes.contains(w) { writes.append(w) } }
            let sides = writes.map { w in
                ConflictReport.Side(
                    write: w.id.description, origin: w.id.origin.rawValue,
                    commune: w.id.origin == .hub ? nil : communeOf[w.id.origin.rawValue], timeMs: w.id.hlc.millis,
                    field: w.field, value: JSONValue(w.value), valueType: w.value.typeName)
            }
            out.append(
                ConflictReport(
                    record: rid.description, field: field, kind: kind, commune: commune, detectedMs: detected,
                    sides: sides))
        }
        return out
    }
}

/// How write-id lists are packed into one column on every backend (see `Columns`).
public enum StoredRefs {
    public static func encode(_ refs: [WriteID]) -> [UInt8] { [UInt8](Columns.encodeRefs(refs)) }
    public static func decode(_ bytes: [UInt8]?) -> [WriteID] { Columns.decodeRefs(bytes.map { Data($0) }) }
}

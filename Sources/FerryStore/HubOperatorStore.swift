import FerryCore
import FerryProtocol
import Foundation

/// The operator features of a hub store beyond ingest and the stream (issue
/// 11): keyset pages of every list, form drafts, retire and migrate, the CSV
/// import ledger, quarantine closed by a person, record search and the
/// operator action trail. ``SQLiteHubStore`` and the PostgreSQL store both
/// implement it, so every operator endpoint works on either backend.
///
/// Paging (SPEC §9.6, "Lists page") is the same on every backend: each list
/// is ordered by its key compared bytewise (record ids are UUIDv7 blobs, text
/// keys compare as UTF-8 bytes), the cursor is the last key shown, and
/// `remaining` counts what matches the same filter after the page.
public protocol HubOperatorStore: OperatorAccountStore {
    // MARK: pages

    /// Record ids newest first (ids are UUIDv7, so by creation time).
    /// - Parameter createdIn: only records whose id (UUIDv7) time lies in [start, end) ms.
    func recordPage(
        commune: String?, form: String?, includeDeleted: Bool, after: RecordID?, limit: Int,
        createdIn: (start: UInt64, end: UInt64)?
    ) throws -> StorePage<RecordID>
    /// Open conflicts in key order (record, field, kind), filtered.
    func conflictPage(_ f: ConflictFilter, after: ConflictKey?, limit: Int) throws -> StorePage<ConflictReport>
    /// Quarantined values oldest first (by entry number); `status` nil means every entry.
    func quarantinePage(status: String?, after: Int64?, limit: Int) throws -> StorePage<QuarantineEntry>
    /// The open conflicts of one record: (field, kind) pairs, by field then kind.
    func openConflicts(record: RecordID) throws -> [(field: String, kind: String)]
    /// Open conflicts and open quarantine entries per commune (for `ferry status --at-hub`).
    func openItemsByCommune() throws -> (conflicts: [String: Int], quarantined: [String: Int])
    /// Records (newest first) with a current or past text value containing
    /// `text`, optionally of one commune; every record of the commune when
    /// `text` is empty. For the console's search.
    func searchRecords(text: String, commune: String?, limit: Int) throws -> [RecordID]

    // MARK: the operator trail

    /// Notes an operator action in the one operator log (``OperatorAccountStore/logOperatorAction(_:)``
    /// writes the same table), in a transaction of its own.
    func noteAction(by: String, action: String, target: String, detail: String, record: String?) throws

    // MARK: form lifecycle

    /// Validates and publishes a form version, drops its draft, notes who did it.
    /// - Throws: ``HubError`` `invalidForm` listing every problem, `formImmutable`.
    func publish(form: FormDefinition, by: String) throws
    /// Keeps a validated form version as a draft: agents do not see it until it is published.
    func saveDraft(form: FormDefinition, by: String) throws
    /// Form drafts, by id and version.
    func drafts() throws -> [FormDefinition]
    /// Retires a published version: it streams again marked retired; its records stay.
    func retire(form id: String, version: Int, by: String) throws
    /// Moves the records of `form` v`from` to v`to` (SPEC §7.3.1): values
    /// carried, new fields empty, values `to` rejects reported and kept.
    func migrate(form id: String, from: Int, to: Int, dryRun: Bool, by: String) throws -> MigrationReportV1

    // MARK: quarantine closed by a person

    /// One quarantine entry, whatever its status.
    func quarantineEntry(id: Int64) throws -> QuarantineEntry?
    /// Marks an open entry fixed or released, by whom and why, with an audit line.
    /// - Throws: ``HubError`` `wrongState` when it is no longer open.
    func closeQuarantine(id: Int64, status: String, by: String, note: String) throws

    // MARK: CSV import ledger

    /// When and by whom a file with this digest was imported, if it was.
    func csvImport(digest: [UInt8]) throws -> (atMs: UInt64, by: String, records: Int)?
    /// Creates every row as a record of `commune` in one transaction (all or
    /// none), and notes the file's digest so a second import is refused. The
    /// ledger is checked inside that transaction, so two hub processes given the
    /// same file at once import it once.
    /// - Parameter again: import even when the ledger holds the digest (`--again`).
    /// - Throws: ``CSVImportError`` `alreadyImported` (nothing written) when the digest is there and not `again`.
    func importRecords(
        form: FormDefinition, commune: String, rows: [[String: Value]], digest: [UInt8], by: String, again: Bool
    )
        throws -> [RecordID]
}

extension HubServiceStore {
    /// Agents by id.
    public func agentPage(after: String?, limit: Int) throws -> StorePage<AgentInfo> {
        let all = try agents().sorted { $0.id < $1.id }
        let rest = all.filter { after == nil || $0.id > after ?? "" }
        return StorePage(items: Array(rest.prefix(limit)), remaining: max(0, rest.count - limit))
    }

    /// The signed change sets behind a record's current leaves, by change-set id.
    public func auditPage(record: RecordID, after: String?, limit: Int) throws -> StorePage<AuditEntry> {
        let all = try audit(record: record).sorted { $0.changeSet < $1.changeSet }
        let rest = all.filter { after == nil || $0.changeSet > after ?? "" }
        return StorePage(items: Array(rest.prefix(limit)), remaining: max(0, rest.count - limit))
    }

    /// Publishes a draft as it was saved.
    public func publishDraft(id: String, version: Int, by: String) throws -> FormDefinition {
        guard let d = try drafts().first(where: { $0.id == id && $0.version == version }) else {
            throw HubError(.notFound, "there is no draft of form \(id) v\(version): see `ferry forms list --drafts`")
        }
        try publish(form: d, by: by)
        return d
    }

    /// The SQL `LIKE` pattern of a search text (`\` escapes `%`, `_` and itself), NFC, trimmed; nil when empty.
    public static func likePattern(_ text: String) -> String? {
        let text = text.trimmingCharacters(in: .whitespaces).nfc
        if text.isEmpty { return nil }
        let escaped =
            text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_")
        return "%\(escaped)%"
    }
}

/// A console session as the store keeps it: only a digest of its id (the
/// cookie's secret), who it is for, its CSRF token and when it ends. Kept in
/// the store so a hub restart, or another hub process on the same database,
/// keeps the operator signed in.
public struct OperatorSession: Sendable, Equatable {
    public var idHash: [UInt8]
    public var name: String
    public var role: OperatorRole
    public var csrf: String
    public var expiresMs: UInt64
    public init(idHash: [UInt8], name: String, role: OperatorRole, csrf: String, expiresMs: UInt64) {
        self.idHash = idHash
        self.name = name
        self.role = role
        self.csrf = csrf
        self.expiresMs = expiresMs
    }
}

/// What migrating records to a new form version would leave invalid, the same
/// on every backend: each value the target version refuses and each required
/// field left empty is counted and kept (the first 1,000 listed), never dropped.
public struct FormMigrationProblems: Sendable {
    public private(set) var problems: [MigrationProblemV1] = []
    public private(set) var count = 0
    let target: FormDefinition
    static let listed = 1000

    public init(target: FormDefinition) { self.target = target }

    /// Checks one record's current values (deleted marker excluded by the caller).
    public mutating func check(_ record: RecordID, values: [String: Value]) {
        for (field, v) in values.sorted(by: { $0.key < $1.key }) {
            guard let why = target.violation(field: field, value: v) else { continue }
            note(MigrationProblemV1(record: record.description, field: field, value: JSONValue(v), reason: why))
        }
        for f in target.missingRequired(in: values) {
            note(
                MigrationProblemV1(
                    record: record.description, field: f, value: .null,
                    reason: "'\(f)' is required in v\(target.version) and empty: fill it in (ferry records edit)"))
        }
    }

    mutating func note(_ p: MigrationProblemV1) {
        count += 1
        if problems.count < Self.listed { problems.append(p) }
    }
}

extension RecordBatch {
    /// New records the hub itself writes from rows (a CSV import at the hub):
    /// one tick of the hub's clock per record, every field stamped with it,
    /// values normalised as an agent would, nulls left out. The same on every backend.
    public static func hubCreated(
        _ rows: [[String: Value]], form: FormDefinition, commune: String, clock: inout HybridLogicalClock
    ) -> [RecordBatch] {
        var rng = SystemRandomNumberGenerator()
        return rows.map { values in
            let h = clock.now()
            let rid = RecordID.v7(millis: h.millis, using: &rng)
            let writes = values.mapValues(AgentStore.normalized).sorted { $0.key < $1.key }.filter {
                !$0.value.isNull
            }.map { FieldWrite(record: rid, field: $0.key, id: WriteID(hlc: h, origin: .hub), value: $0.value) }
            return RecordBatch(
                record: rid, scope: RecordScope(formID: form.id, formVersion: form.version, commune: commune),
                isNew: true, writes: writes)
        }
    }
}

import FerryCore
import FerryCrypto
import FerryHub
import FerryPostgres
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

/// A temporary directory for one test, removed by `remove()` (call it from a `defer`).
struct TempDir {
    let path: String

    init(_ name: String) throws {
        path = NSTemporaryDirectory() + "ferry-store-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

enum Fixture {
    static let commune = "24781"
    static let otherCommune = "24848"

    static var form: FormDefinition { get throws { try Seed.form } }

    /// A file-backed agent replica that knows the land-record form.
    static func agentStore(_ path: String, origin: String = "a-24781-0000test") throws -> AgentStore {
        let store = try AgentStore(path: path, origin: OriginID(origin))
        try store.putCatalog([
            CatalogItem(kind: .form, key: "land-record@1", seq: 1, json: Array(Seed.landRecordForm.utf8))
        ])
        return store
    }

    /// A record's values as one canonical text, for comparing multisets of records.
    static func canonical(_ values: [String: Value]) -> String {
        values.filter { $0.key != deletedField }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(
            separator: "|")
    }

    /// Sample rows valid for the land-record form.
    static func rows(_ n: Int, seed: UInt64) -> [[String: Value]] {
        var gen = SampleLandRecords(seed: seed)
        return (0..<n).map { _ in gen.next() }
    }
}

/// The hub store backends every store and pipeline test runs against (issue 10):
/// a SQLite file, and a fresh database on the test process's own PostgreSQL
/// server (``PostgresTestServer``).
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres
    var testDescription: String { rawValue }

    func hubStore(_ dir: String, wall: any WallClock = SystemClock(), futureBoundMillis: UInt64 = 600_000) throws
        -> any HubServiceStore
    {
        switch self {
        case .sqlite:
            return try SQLiteHubStore(path: dir + "/hub.sqlite", wall: wall, futureBoundMillis: futureBoundMillis)
        case .postgres:
            let url = try PostgresTestServer.shared().makeDatabase("hub")
            return try PostgresHubStore(url: url, wall: wall, futureBoundMillis: futureBoundMillis)
        }
    }
}

/// A hub store with one enrolled agent whose replica seals real change sets.
struct HubAndAgent {
    let hub: any HubServiceStore
    let agent: AgentStore
    let info: AgentInfo
    let hubIdentity = Identity()
    let agentIdentity = Identity()

    init(_ dir: TempDir, _ backend: Backend = .sqlite) throws {
        hub = try backend.hubStore(dir.path)
        try hub.publish(form: try Fixture.form)
        for c in Seed.communes where [Fixture.commune, Fixture.otherCommune].contains(c.code) {
            try hub.publish(.commune, key: c.code, json: Array(try JSONEncoder().encode(c)))
        }
        let secret = try hub.issueToken(commune: Fixture.commune)
        info = try hub.enroll(
            secret: secret, commune: Fixture.commune, signKey: agentIdentity.signing.publicKey,
            kxKey: agentIdentity.kx.publicKey,
            hostname: "test-pc")
        agent = try Fixture.agentStore(dir.file("agent.sqlite"), origin: info.id)
    }

    /// Seals a body as the agent (header fields as the sync engine fills them).
    func seal(_ body: ChangeSetBody, seqFrom: UInt64, seqTo: UInt64, ack: UInt64 = 0, now: HLC) throws
        -> SealedChangeSet
    {
        let keys = try agentIdentity.kx.clientSessionKeys(server: hubIdentity.kx.publicKey)
        let header = ChangeSetHeader(
            id: randomBytes(16), origin: OriginID(info.id), seqFrom: seqFrom, seqTo: seqTo, ack: ack,
            senderKeyID: agentIdentity.signing.publicKey.id, recipientKeyID: hubIdentity.kx.publicKey.id,
            createdHLC: now,
            commune: Fixture.commune)
        return try Envelope.seal(header: header, body: body, signer: agentIdentity.signing, key: keys.transmit)
    }

    /// Opens envelope bytes as the hub does.
    func open(_ envelope: [UInt8]) throws -> OpenedChangeSet {
        let keys = try hubIdentity.kx.serverSessionKeys(client: agentIdentity.kx.publicKey)
        return try Envelope.open(
            envelope, recipientKeyID: hubIdentity.kx.publicKey.id, author: agentIdentity.signing.publicKey,
            key: keys.receive)
    }

    /// Freezes the agent's pending writes into the next change set (or returns the one in flight).
    func freeze(maxWrites: Int = 100_000) throws -> InFlight? {
        try agent.freeze(maxWrites: maxWrites) { body, ctx in
            let s = try seal(body, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo, ack: ctx.hubCursor, now: ctx.now)
            return (s.header.id, s.envelope)
        }
    }

    /// Freezes, ingests at the hub and acknowledges at the agent: one upload.
    @discardableResult
    func upload() throws -> IngestResult? {
        guard let f = try freeze() else { return nil }
        let r = try hub.ingest(try open(f.envelope), from: info.id)
        try agent.acknowledge(upTo: r.cursor)
        return r
    }

    /// Brings the hub's changes for this agent's commune down to the agent.
    func download() throws {
        let since = try agent.counts().hubCursor
        let c = try hub.changes(for: try #require(try hub.agent(id: info.id)), since: since, maxBytes: 1 << 20)
        try agent.applyRemote(c.body, cursor: c.seqTo)
    }
}

extension HubServiceStore {
    /// Ingests through the hub's real pipeline (FerryHub's `IngestPipeline`).
    func ingest(_ cs: OpenedChangeSet, from agent: String) throws -> IngestResult {
        try IngestPipeline.apply(cs, from: agent, store: self).result
    }
}

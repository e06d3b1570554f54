import FerryCore

/// The protocol version this code speaks (SPEC §1).
public let protocolVersion: UInt32 = 1

/// A record's immutable attributes: its form version and its commune.
public struct RecordScope: Sendable, Hashable {
    public var formID: String
    public var formVersion: Int
    public var commune: String
    public init(formID: String, formVersion: Int, commune: String) {
        self.formID = formID
        self.formVersion = formVersion
        self.commune = commune
    }
}

/// A replicated catalog entry (communes, forms, campaigns), as JSON.
public struct CatalogItem: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case commune, form, campaign
    }
    public var kind: Kind
    public var key: String
    public var seq: UInt64
    public var json: [UInt8]
    public init(kind: Kind, key: String, seq: UInt64, json: [UInt8]) {
        self.kind = kind
        self.key = key
        self.seq = seq
        self.json = json
    }
}

/// Body compression (SPEC §4).
public enum Compression: Int, Sendable, CaseIterable {
    case none = 0
    case zstd = 1
    case zlib = 2
}

/// What a change set carries: field writes, the scope of every record they
/// touch, and (hub → agent) catalog entries.
public struct ChangeSetBody: Sendable, Equatable {
    public var writes: [FieldWrite]
    /// The scope of every record named by `writes`.
    public var scopes: [RecordID: RecordScope]
    public var catalog: [CatalogItem]

    public init(writes: [FieldWrite] = [], scopes: [RecordID: RecordScope] = [:], catalog: [CatalogItem] = []) {
        self.writes = writes
        self.scopes = scopes
        self.catalog = catalog
    }

    /// The same writes in canonical order, for comparisons.
    public var canonicalWrites: [FieldWrite] {
        func before(_ a: FieldWrite, _ b: FieldWrite) -> Bool { (a.record, a.field, a.id) < (b.record, b.field, b.id) }
        // Agents freeze writes in this order already: check before paying for a sort.
        var sorted = true
        var i = writes.startIndex
        while sorted, i + 1 < writes.endIndex {
            if before(writes[i + 1], writes[i]) { sorted = false }
            i += 1
        }
        return sorted ? writes : writes.sorted(by: before)
    }

    public static func == (a: ChangeSetBody, b: ChangeSetBody) -> Bool {
        a.canonicalWrites == b.canonicalWrites && a.scopes == b.scopes && a.catalog == b.catalog
    }
}

/// The clear-text header of a change set (SPEC §3).
public struct ChangeSetHeader: Sendable, Equatable {
    public var protocolVersion: UInt32
    /// 16 bytes, unique per change set.
    public var id: [UInt8]
    public var origin: OriginID
    public var seqFrom: UInt64
    public var seqTo: UInt64
    public var ack: UInt64
    public var senderKeyID: [UInt8]
    public var recipientKeyID: [UInt8]
    public var createdHLC: HLC
    public var compression: Compression
    public var bodySize: UInt32
    public var commune: String
    public var more: Bool

    public init(
        id: [UInt8], origin: OriginID, seqFrom: UInt64, seqTo: UInt64, ack: UInt64 = 0, senderKeyID: [UInt8] = [],
        recipientKeyID: [UInt8] = [], createdHLC: HLC, compression: Compression = .zstd, commune: String = "",
        more: Bool = false, protocolVersion: UInt32 = FerryProtocol.protocolVersion, bodySize: UInt32 = 0
    ) {
        self.protocolVersion = protocolVersion
        self.id = id
        self.origin = origin
        self.seqFrom = seqFrom
        self.seqTo = seqTo
        self.ack = ack
        self.senderKeyID = senderKeyID
        self.recipientKeyID = recipientKeyID
        self.createdHLC = createdHLC
        self.compression = compression
        self.bodySize = bodySize
        self.commune = commune
        self.more = more
    }

    /// The change-set id as lower-case hex.
    public var idHex: String {
        id.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

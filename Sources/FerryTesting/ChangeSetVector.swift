import FerryCore
import FerryCrypto
import FerryProtocol
import Foundation

/// A change-set test vector (protocol/vectors/changeset-v1*.json): fixed
/// inputs and the exact bytes of every sealing stage, so another
/// implementation can check itself stage by stage.
///
/// 64-bit numbers that can exceed 2^53 (hlc, int values) are decimal strings;
/// bytes are lower-case hex.
public struct ChangeSetVector: Codable, Sendable, Equatable {
    public var description: String
    public var keys: Keys
    public var session: Session
    public var header: Header
    public var body: Body
    public var nonce: String
    /// The receiver's position in the author's sequence before this change set.
    public var receiverApplied: UInt64
    public var stages: Stages

    public init(
        description: String, keys: Keys, session: Session, header: Header, body: Body, nonce: String,
        receiverApplied: UInt64, stages: Stages
    ) {
        self.description = description
        self.keys = keys
        self.session = session
        self.header = header
        self.body = body
        self.nonce = nonce
        self.receiverApplied = receiverApplied
        self.stages = stages
    }

    enum CodingKeys: String, CodingKey {
        case description, keys, session, header, body, nonce, stages
        case receiverApplied = "receiver_applied"
    }

    /// One party's keys.
    public struct Party: Codable, Sendable, Equatable {
        public var ed25519Seed: String
        public var ed25519Public: String
        /// BLAKE2b-64 of the Ed25519 public key: the header's sender key id.
        public var signingKeyID: String
        public var x25519Seed: String
        public var x25519Public: String
        /// BLAKE2b-64 of the X25519 public key: the header's recipient key id.
        public var kxKeyID: String

        public init(
            ed25519Seed: String, ed25519Public: String, signingKeyID: String, x25519Seed: String, x25519Public: String,
            kxKeyID: String
        ) {
            self.ed25519Seed = ed25519Seed
            self.ed25519Public = ed25519Public
            self.signingKeyID = signingKeyID
            self.x25519Seed = x25519Seed
            self.x25519Public = x25519Public
            self.kxKeyID = kxKeyID
        }

        enum CodingKeys: String, CodingKey {
            case ed25519Seed = "ed25519_seed"
            case ed25519Public = "ed25519_public"
            case signingKeyID = "signing_key_id"
            case x25519Seed = "x25519_seed"
            case x25519Public = "x25519_public"
            case kxKeyID = "kx_key_id"
        }
    }

    public struct Keys: Codable, Sendable, Equatable {
        public var agent: Party
        public var hub: Party
        public init(agent: Party, hub: Party) {
            self.agent = agent
            self.hub = hub
        }
    }

    /// crypto_kx session keys: the agent is the client, the hub the server.
    public struct Session: Codable, Sendable, Equatable {
        public var agentTx: String
        public var agentRx: String
        public var hubTx: String
        public var hubRx: String
        public init(agentTx: String, agentRx: String, hubTx: String, hubRx: String) {
            self.agentTx = agentTx
            self.agentRx = agentRx
            self.hubTx = hubTx
            self.hubRx = hubRx
        }
        enum CodingKeys: String, CodingKey {
            case agentTx = "agent_tx"
            case agentRx = "agent_rx"
            case hubTx = "hub_tx"
            case hubRx = "hub_rx"
        }
    }

    public struct Header: Codable, Sendable, Equatable {
        public var protocolVersion: UInt32
        public var changeSetID: String
        public var origin: String
        public var seqFrom: UInt64
        public var seqTo: UInt64
        public var ack: UInt64
        public var senderKeyID: String
        public var recipientKeyID: String
        public var createdHLC: String
        public var compression: String
        public var bodySize: UInt32
        public var commune: String
        public var more: Bool

        enum CodingKeys: String, CodingKey {
            case protocolVersion = "protocol_version"
            case changeSetID = "change_set_id"
            case origin
            case seqFrom = "seq_from"
            case seqTo = "seq_to"
            case ack
            case senderKeyID = "sender_key_id"
            case recipientKeyID = "recipient_key_id"
            case createdHLC = "created_hlc"
            case compression
            case bodySize = "body_size"
            case commune, more
        }

        public init(_ h: ChangeSetHeader) {
            protocolVersion = h.protocolVersion
            changeSetID = hex(h.id)
            origin = h.origin.rawValue
            seqFrom = h.seqFrom
            seqTo = h.seqTo
            ack = h.ack
            senderKeyID = hex(h.senderKeyID)
            recipientKeyID = hex(h.recipientKeyID)
            createdHLC = String(h.createdHLC.raw)
            compression = ChangeSetVector.name(of: h.compression)
            bodySize = h.bodySize
            commune = h.commune
            more = h.more
        }

        /// The header these fields describe.
        public func decoded() throws -> ChangeSetHeader {
            guard let id = unhex(changeSetID), let sk = unhex(senderKeyID), let rk = unhex(recipientKeyID),
                let hlc = UInt64(createdHLC), let c = ChangeSetVector.compression(named: compression)
            else { throw VectorError("bad header in vector") }
            return ChangeSetHeader(
                id: id, origin: OriginID(origin), seqFrom: seqFrom, seqTo: seqTo, ack: ack, senderKeyID: sk,
                recipientKeyID: rk, createdHLC: HLC(raw: hlc), compression: c, commune: commune, more: more,
                protocolVersion: protocolVersion, bodySize: bodySize)
        }
    }

    public struct Ref: Codable, Sendable, Equatable {
        public var hlc: String
        public var origin: String
        public init(_ id: WriteID) {
            hlc = String(id.hlc.raw)
            origin = id.origin.rawValue
        }
        public func decoded() throws -> WriteID {
            guard let raw = UInt64(hlc) else { throw VectorError("bad hlc \(hlc)") }
            return WriteID(hlc: HLC(raw: raw), origin: OriginID(origin))
        }
    }

    /// A typed value: `type` is the form type name; `value` is JSON true/false
    /// for bool, a JSON number for double, and a string otherwise (int in
    /// decimal, date as YYYY-MM-DD, bytes in hex); absent for null.
    public struct TypedValue: Codable, Sendable, Equatable {
        public var type: String
        public var bool: Bool?
        public var double: Double?
        public var text: String?

        enum CodingKeys: String, CodingKey { case type, value }

        public init(_ v: Value) {
            type = v.typeName
            switch v {
            case .null: break
            case .bool(let b): bool = b
            case .double(let d): double = d
            case .int(let i): text = String(i)
            case .text(let s): text = s
            case .date(let d): text = CivilDate(daysSinceEpoch: d).description
            case .bytes(let b): text = hex(b)
            }
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decode(String.self, forKey: .type)
            switch type {
            case "null": break
            case "bool": bool = try c.decode(Bool.self, forKey: .value)
            case "double": double = try c.decode(Double.self, forKey: .value)
            default: text = try c.decode(String.self, forKey: .value)
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(type, forKey: .type)
            if let b = bool { try c.encode(b, forKey: .value) }
            if let d = double { try c.encode(d, forKey: .value) }
            if let t = text { try c.encode(t, forKey: .value) }
        }

        public func decoded() throws -> Value {
            switch type {
            case "null": return .null
            case "bool": if let b = bool { return .bool(b) }
            case "double": if let d = double { return .double(d) }
            case "int": if let i = text.flatMap({ Int64($0) }) { return .int(i) }
            case "string": if let s = text { return .string(s) }
            case "date": if let d = text.flatMap(CivilDate.init(iso:)) { return .date(d.daysSinceEpoch) }
            case "bytes": if let b = text.flatMap(unhex) { return .bytes(b) }
            default: break
            }
            throw VectorError("bad \(type) value in vector")
        }
    }

    public struct Write: Codable, Sendable, Equatable {
        public var record: String
        public var field: String
        public var hlc: String
        public var origin: String
        public var value: TypedValue
        public var prev: [Ref]
        public var alive: Ref?
        public var covers: [Ref]

        public init(_ w: FieldWrite) {
            record = w.record.description
            field = w.field
            hlc = String(w.id.hlc.raw)
            origin = w.id.origin.rawValue
            value = TypedValue(w.value)
            prev = w.prev.map(Ref.init)
            alive = w.alive.map(Ref.init)
            covers = w.covers.map(Ref.init)
        }

        public func decoded() throws -> FieldWrite {
            guard let r = RecordID(record), let raw = UInt64(hlc) else {
                throw VectorError("bad write \(record) \(hlc)")
            }
            let id = WriteID(hlc: HLC(raw: raw), origin: OriginID(origin))
            return FieldWrite(
                record: r, field: field, id: id, prev: try prev.map { try $0.decoded() }, value: try value.decoded(),
                alive: try alive?.decoded(), covers: try covers.map { try $0.decoded() })
        }
    }

    public struct Scope: Codable, Sendable, Equatable {
        public var record: String
        public var formID: String
        public var formVersion: Int
        public var commune: String
        enum CodingKeys: String, CodingKey {
            case record
            case formID = "form_id"
            case formVersion = "form_version"
            case commune
        }
    }

    public struct Body: Codable, Sendable, Equatable {
        public var writes: [Write]
        public var scopes: [Scope]

        public init(_ b: ChangeSetBody) {
            writes = b.writes.map(Write.init)
            scopes = b.scopes.sorted { $0.key < $1.key }.map {
                Scope(
                    record: $0.key.description, formID: $0.value.formID, formVersion: $0.value.formVersion,
                    commune: $0.value.commune)
            }
        }

        public func decoded() throws -> ChangeSetBody {
            var scopes: [RecordID: RecordScope] = [:]
            for s in self.scopes {
                guard let r = RecordID(s.record) else { throw VectorError("bad record id \(s.record)") }
                scopes[r] = RecordScope(formID: s.formID, formVersion: s.formVersion, commune: s.commune)
            }
            return ChangeSetBody(writes: try writes.map { try $0.decoded() }, scopes: scopes)
        }
    }

    /// The bytes at each stage, hex.
    public struct Stages: Codable, Sendable, Equatable {
        /// Protobuf ChangeSetBodyV1 (BodyCodec).
        public var body: String
        /// The body after compression (what is signed and sealed).
        public var compressedBody: String
        /// Protobuf ChangeSetHeaderV1, body_size filled in.
        public var header: String
        /// "ferry/changeset/v1" ‖ 0x00 ‖ u32be(header length) ‖ header ‖ compressed body.
        public var signedMessage: String
        /// Ed25519 signature of the signed message by the agent.
        public var signature: String
        /// "FRY1" ‖ 0x01 ‖ u32be(header length) ‖ header.
        public var associatedData: String
        /// signature ‖ compressed body: what is encrypted.
        public var plaintext: String
        /// XChaCha20-Poly1305 of the plaintext under agent_tx, with the associated data.
        public var ciphertext: String
        /// associated data ‖ nonce ‖ ciphertext.
        public var envelope: String

        public init(
            body: String, compressedBody: String, header: String, signedMessage: String, signature: String,
            associatedData: String, plaintext: String, ciphertext: String, envelope: String
        ) {
            self.body = body
            self.compressedBody = compressedBody
            self.header = header
            self.signedMessage = signedMessage
            self.signature = signature
            self.associatedData = associatedData
            self.plaintext = plaintext
            self.ciphertext = ciphertext
            self.envelope = envelope
        }

        enum CodingKeys: String, CodingKey {
            case body
            case compressedBody = "compressed_body"
            case header
            case signedMessage = "signed_message"
            case signature
            case associatedData = "associated_data"
            case plaintext, ciphertext, envelope
        }
    }

    static func name(of c: Compression) -> String {
        switch c {
        case .none: "none"
        case .zstd: "zstd"
        case .zlib: "zlib"
        }
    }

    static func compression(named s: String) -> Compression? {
        Compression.allCases.first { name(of: $0) == s }
    }

    // MARK: Files

    /// Reads a vector file.
    public static func load(_ url: URL) throws -> ChangeSetVector {
        try JSONDecoder().decode(ChangeSetVector.self, from: Data(contentsOf: url))
    }

    /// The file's bytes: pretty, keys sorted, UTF-8 unescaped, newline-terminated.
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self) + Data("\n".utf8)
    }
}

/// A vector file that does not describe a valid input.
public struct VectorError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Test-vector hex helpers that refuse malformed input with an error.
public func unhexOrThrow(_ s: String) throws -> [UInt8] {
    guard let b = unhex(s) else { throw VectorError("bad hex: \(s.prefix(40))") }
    return b
}

import FerryCore
import FerryProtocol

/// Random change-set bodies for codec property tests: every value type, many
/// origins, fields and scopes, references (prev, alive, covers) and catalog entries.
public enum RandomBody {
    static let alphabet: [String] = [
        "a", "z", "0", " ", "-", "_", "/", "ă", "â", "đ", "ê", "ô", "ơ", "ư", "ễ", "Ậ", "Ỹ", "ñ", "ß", "漢", "字", "🙂",
        "\u{0}",
        "\"", "\\",
    ]

    /// A random NFC string of up to `max` characters.
    public static func string(_ rng: inout SeededGenerator, max: Int = 24) -> String {
        let n = Int.random(in: 0...max, using: &rng)
        var s = ""
        for _ in 0..<n { s += alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
        return s.nfc
    }

    /// A random value of a random type; doubles are never NaN (NaN ≠ NaN).
    public static func value(_ rng: inout SeededGenerator) -> Value {
        switch Int.random(in: 0..<9, using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .int(Int64(bitPattern: rng.next()))
        case 3: return .int(Int64.random(in: -1000...1000, using: &rng))
        case 4:
            let d = Double(bitPattern: rng.next())
            return .double(d.isNaN ? -0.0 : d)
        case 5:
            return .double(
                [0, -0.0, 1.5, -356.25, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude][
                    Int.random(in: 0..<8, using: &rng)])
        case 6: return .date(Int32(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
        case 7:
            let n =
                Bool.random(using: &rng)
                ? Int.random(in: 0...32, using: &rng) : [0, Value.maxBytes][Int.random(in: 0...1, using: &rng)]
            return .bytes((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
        default: return .string(string(&rng))
        }
    }

    /// A random body.
    /// - Parameter maxWrites: upper bound on the number of writes.
    public static func body(_ rng: inout SeededGenerator, maxWrites: Int = 40) -> ChangeSetBody {
        let origins = (0..<Int.random(in: 1...6, using: &rng)).map { i in
            OriginID(i == 0 ? "hub" : "agent-\(i)-" + string(&rng, max: 3))
        }
        let fields = [deletedField] + (0..<Int.random(in: 1...8, using: &rng)).map { _ in string(&rng, max: 10) }
        let records = (0..<Int.random(in: 1...10, using: &rng)).map { _ in RecordID(high: rng.next(), low: rng.next()) }
        let scopes = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
            RecordScope(
                formID: string(&rng, max: 12), formVersion: Int.random(in: 0...1000, using: &rng),
                commune: string(&rng, max: 6))
        }
        func ref() -> WriteID {
            WriteID(hlc: HLC(raw: rng.next()), origin: origins[Int.random(in: 0..<origins.count, using: &rng)])
        }
        var writes: [FieldWrite] = []
        for _ in 0..<Int.random(in: 0...maxWrites, using: &rng) {
            let field = fields[Int.random(in: 0..<fields.count, using: &rng)]
            let prev = (0..<Int.random(in: 0...3, using: &rng)).map { _ in ref() }
            let alive = Bool.random(using: &rng) ? ref() : nil
            let covers = (0..<(Int.random(in: 0...4, using: &rng) == 0 ? Int.random(in: 1...5, using: &rng) : 0)).map {
                _ in ref()
            }
            writes.append(
                FieldWrite(
                    record: records[Int.random(in: 0..<records.count, using: &rng)], field: field, id: ref(),
                    prev: prev,
                    value: value(&rng), alive: alive, covers: covers))
        }
        var scopeOf: [RecordID: RecordScope] = [:]
        // Most records have a scope; some have only a scope, some written ones none
        // (which a receiver must refuse, so the codec must keep it absent).
        for r in records where Int.random(in: 0..<6, using: &rng) != 0 {
            scopeOf[r] = scopes[Int.random(in: 0..<scopes.count, using: &rng)]
        }
        var catalog: [CatalogItem] = []
        for _ in 0..<(Bool.random(using: &rng) ? Int.random(in: 1...3, using: &rng) : 0) {
            let kind = CatalogItem.Kind.allCases[Int.random(in: 0..<CatalogItem.Kind.allCases.count, using: &rng)]
            catalog.append(
                CatalogItem(
                    kind: kind, key: string(&rng, max: 8), seq: rng.next(),
                    json: Array("{\"title\":\"\(string(&rng, max: 8))\"}".utf8)))
        }
        return ChangeSetBody(writes: writes, scopes: scopeOf, catalog: catalog)
    }
}

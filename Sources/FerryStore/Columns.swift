import FerryCore
import Foundation
import GRDB

/// How values, write ids and ref lists are stored in SQLite columns.
///
/// A value is two columns: `t` (its ``ValueTag``, the wire's numbering) and
/// `v` (the SQLite value; null for null and bools). A list
/// of write ids is one BLOB: per id, 8 bytes big-endian hlc, 1 byte origin
/// length, origin bytes.
enum Columns {
    /// The value's ``ValueTag`` (the wire's numbering, SPEC §5.3).
    static func tag(_ v: Value) -> Int64 { Int64(ValueTag(of: v).rawValue) }

    static func sqlValue(_ v: Value) -> DatabaseValue {
        switch v {
        case .null, .bool: .null
        case .int(let i): i.databaseValue
        case .double(let d): d.databaseValue
        case .text(let s): s.databaseValue
        case .date(let d): Int64(d).databaseValue
        case .bytes(let b): Data(b).databaseValue
        }
    }

    /// Reads a value back; a row that does not match its tag reads as null
    /// (the store wrote it, so this only happens on disk corruption).
    static func value(tag: Int64, _ dbv: DatabaseValue) -> Value {
        switch (UInt8(exactly: tag).flatMap(ValueTag.init(rawValue:)), dbv.storage) {
        case (.falseValue, _): .bool(false)
        case (.trueValue, _): .bool(true)
        case (.int, .int64(let i)): .int(i)
        case (.double, .double(let d)): .double(d)
        case (.double, .int64(let i)): .double(Double(i))
        case (.string, .string(let s)): .text(s)
        case (.date, .int64(let i)): .date(Int32(truncatingIfNeeded: i))
        case (.bytes, .blob(let b)): .bytes([UInt8](b))
        default: .null
        }
    }

    static func encodeRefs(_ refs: [WriteID]) -> Data {
        var out = Data()
        out.reserveCapacity(refs.count * 16)
        for r in refs {
            var be = r.hlc.raw.bigEndian
            withUnsafeBytes(of: &be) { out.append(contentsOf: $0) }
            let o = Array(r.origin.rawValue.utf8.prefix(255))
            out.append(UInt8(o.count))
            out.append(contentsOf: o)
        }
        return out
    }

    static func decodeRefs(_ data: Data?) -> [WriteID] {
        guard let data, !data.isEmpty else { return [] }
        let b = [UInt8](data)
        var out: [WriteID] = []
        var i = 0
        while i + 9 <= b.count {
            var h: UInt64 = 0
            for k in 0..<8 { h = h << 8 | UInt64(b[i + k]) }
            let n = Int(b[i + 8])
            guard i + 9 + n <= b.count else { break }
            out.append(
                WriteID(hlc: HLC(raw: h), origin: OriginID(String(decoding: b[(i + 9)..<(i + 9 + n)], as: UTF8.self))))
            i += 9 + n
        }
        return out
    }

    static func blob(_ r: RecordID) -> Data { Data(r.bytes) }

    static func record(_ d: Data?) -> RecordID? { d.flatMap { RecordID(bytes: $0) } }

    static func int64(_ h: HLC) -> Int64 { Int64(bitPattern: h.raw) }
    static func hlc(_ i: Int64) -> HLC { HLC(raw: UInt64(bitPattern: i)) }

    /// The columns of a leaf that ``FieldWrite/init(row:)`` reads, in its order.
    static let leaf = "record, field, t, v, hlc, origin, prev, alive, covers"
}

/// Reads a field write from a row whose first nine columns are ``Columns/leaf``
/// (record, field, t, v, hlc, origin, prev, alive, covers), by position: a
/// lookup by name lower-cases the name for every column of every row, which
/// was 8 % of the hub's CPU while it served download pages.
extension FieldWrite {
    init?(row: Row) {
        guard let record = Columns.record(row[0]) else { return nil }
        let field: String = row[1]
        let alive = Columns.decodeRefs(row[7]).first
        self.init(
            record: record, field: field,
            id: WriteID(hlc: Columns.hlc(row[4]), origin: OriginID(row[5])),
            prev: Columns.decodeRefs(row[6]),
            value: Columns.value(tag: row[2], row[3] as DatabaseValue),
            alive: alive, covers: Columns.decodeRefs(row[8]))
    }

    /// Arguments in the order record, field, t, v, hlc, origin, prev, alive, covers.
    var columnArguments: StatementArguments {
        [
            Columns.blob(record), field, Columns.tag(value), Columns.sqlValue(value), Columns.int64(id.hlc),
            id.origin.rawValue, Columns.encodeRefs(prev), Columns.encodeRefs(alive.map { [$0] } ?? []),
            Columns.encodeRefs(covers),
        ]
    }
}

/// Why the store refused an operation. The message says what to do.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Opens a SQLite database the way every Ferry store does: WAL, full
/// synchronous commits (an acknowledged write survives a power cut), a busy
/// timeout so the CLI and a running agent can share the file. A new file is
/// created private (0600). A storage failure is thrown as ``StoreFault``.
func openPool(path: String) throws -> DatabasePool {
    createPrivately(path)
    var config = Configuration()
    config.busyMode = .timeout(10)
    config.prepareDatabase { db in
        try db.execute(sql: "PRAGMA synchronous = FULL")
    }
    do {
        return try DatabasePool(path: path, configuration: config)
    } catch {
        throw StoreFault.from(error, path: path) ?? error
    }
}

import FerryCore
import Foundation

/// The on-disk form of one record's field writes (the agent keeps one row per
/// record: its winners, and one row per record of pending writes). Compact
/// and fast: an origin table, then per write the field name, varint hlc,
/// origin index, tagged value and refs.
///
/// Layout: u8 version (1) ‖ varint n_origins ‖ origins (varint len ‖ UTF-8) ‖
/// varint n_writes ‖ per write: field (varint len ‖ UTF-8), varint hlc, varint
/// origin, u8 tag, payload, varint n_prev ‖ refs, u8 has_alive ‖ ref?,
/// varint n_covers ‖ refs; a ref is varint hlc ‖ varint origin.
enum RecordCodec {
    static func encode(_ writes: some Collection<FieldWrite>) -> Data {
        var origins: [OriginID] = []
        var index: [OriginID: Int] = [:]
        func idx(_ o: OriginID) -> Int {
            if let i = index[o] { return i }
            index[o] = origins.count
            origins.append(o)
            return origins.count - 1
        }
        var body: [UInt8] = []
        body.reserveCapacity(writes.count * 24)
        for w in writes {
            putUTF8(&body, w.field)
            putVarint(&body, w.id.hlc.raw)
            putVarint(&body, UInt64(idx(w.id.origin)))
            body.append(ValueTag(of: w.value).rawValue)
            switch w.value {
            case .null, .bool: break
            case .int(let i): putVarint(&body, zigzag(i))
            case .double(let d):
                var bits = d.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { body.append(contentsOf: $0) }
            case .text(let s): putUTF8(&body, s)
            case .date(let d): putVarint(&body, zigzag(Int64(d)))
            case .bytes(let b): putBytes(&body, b)
            }
            putVarint(&body, UInt64(w.prev.count))
            for r in w.prev { putRef(&body, r, idx(r.origin)) }
            if let a = w.alive {
                body.append(1)
                putRef(&body, a, idx(a.origin))
            } else {
                body.append(0)
            }
            putVarint(&body, UInt64(w.covers.count))
            for r in w.covers { putRef(&body, r, idx(r.origin)) }
        }
        var out: [UInt8] = [1]
        out.reserveCapacity(body.count + 16)
        putVarint(&out, UInt64(origins.count))
        for o in origins { putUTF8(&out, o.rawValue) }
        putVarint(&out, UInt64(writes.count))
        out += body
        return Data(out)
    }

    /// Decodes; throws ``StoreError`` when the bytes are damaged.
    static func decode(_ data: Data, record: RecordID) throws -> [FieldWrite] {
        try data.withUnsafeBytes { raw -> [FieldWrite] in
            var r = Reader(p: raw.bindMemory(to: UInt8.self))
            guard try r.byte() == 1 else { throw StoreError("record \(record) is stored in an unknown format") }
            let no = try r.count()
            var origins: [OriginID] = []
            origins.reserveCapacity(no)
            for _ in 0..<no { origins.append(OriginID(try r.string())) }
            func origin(_ i: Int) throws -> OriginID {
                guard i < origins.count else { throw StoreError("record \(record) is damaged (origin index)") }
                return origins[i]
            }
            func ref() throws -> WriteID {
                let h = try r.varint()
                return WriteID(hlc: HLC(raw: h), origin: try origin(try r.count()))
            }
            let n = try r.count()
            var out: [FieldWrite] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                let field = try r.string()
                let hlc = try r.varint()
                let o = try origin(try r.count())
                let value: Value
                guard let tag = ValueTag(rawValue: try r.byte()) else {
                    throw StoreError("record \(record) is damaged (value tag)")
                }
                switch tag {
                case .null: value = .null
                case .falseValue: value = .bool(false)
                case .trueValue: value = .bool(true)
                case .int: value = .int(unzigzag(try r.varint()))
                case .double: value = .double(Double(bitPattern: try r.u64le()))
                case .string: value = .text(try r.string())
                case .date: value = .date(Int32(truncatingIfNeeded: unzigzag(try r.varint())))
                case .bytes: value = .bytes(try r.bytes())
                }
                var prev: [WriteID] = []
                for _ in 0..<(try r.count()) { prev.append(try ref()) }
                let alive = try r.byte() == 1 ? try ref() : nil
                var covers: [WriteID] = []
                for _ in 0..<(try r.count()) { covers.append(try ref()) }
                var w = FieldWrite(
                    record: record, field: field, id: WriteID(hlc: HLC(raw: hlc), origin: o), value: value)
                // Stored sorted already: skip FieldWrite.init's sort.
                w.prev = prev
                w.alive = alive
                w.covers = covers
                out.append(w)
            }
            return out
        }
    }

    struct Reader {
        let p: UnsafeBufferPointer<UInt8>
        var i = 0
        init(p: UnsafeBufferPointer<UInt8>) { self.p = p }

        mutating func byte() throws -> UInt8 {
            guard i < p.count else { throw StoreError("a stored record is truncated") }
            defer { i += 1 }
            return p[i]
        }
        mutating func varint() throws -> UInt64 {
            var x: UInt64 = 0
            var shift: UInt64 = 0
            while shift < 64 {
                let b = try byte()
                x |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return x }
                shift += 7
            }
            throw StoreError("a stored record has a bad varint")
        }
        mutating func count() throws -> Int {
            let v = try varint()
            guard v <= UInt64(p.count) else { throw StoreError("a stored record has a bad length") }
            return Int(v)
        }
        mutating func u64le() throws -> UInt64 {
            guard i + 8 <= p.count else { throw StoreError("a stored record is truncated") }
            var x: UInt64 = 0
            for k in 0..<8 { x |= UInt64(p[i + k]) << (8 * UInt64(k)) }
            i += 8
            return x
        }
        mutating func bytes() throws -> [UInt8] {
            let n = try count()
            guard i + n <= p.count else { throw StoreError("a stored record is truncated") }
            defer { i += n }
            return Array(p[i..<(i + n)])
        }
        mutating func string() throws -> String {
            let n = try count()
            guard i + n <= p.count else { throw StoreError("a stored record is truncated") }
            defer { i += n }
            return String(decoding: UnsafeBufferPointer(rebasing: p[i..<(i + n)]), as: UTF8.self)
        }
    }

    static func putVarint(_ out: inout [UInt8], _ v: UInt64) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
    static func putUTF8(_ out: inout [UInt8], _ s: String) {
        putVarint(&out, UInt64(s.utf8.count))
        out.append(contentsOf: s.utf8)
    }
    static func putBytes(_ out: inout [UInt8], _ b: [UInt8]) {
        putVarint(&out, UInt64(b.count))
        out += b
    }
    static func putRef(_ out: inout [UInt8], _ r: WriteID, _ origin: Int) {
        putVarint(&out, r.hlc.raw)
        putVarint(&out, UInt64(origin))
    }
    static func zigzag(_ i: Int64) -> UInt64 { UInt64(bitPattern: (i << 1) ^ (i >> 63)) }
    static func unzigzag(_ u: UInt64) -> Int64 { Int64(bitPattern: u >> 1) ^ -Int64(bitPattern: u & 1) }
}

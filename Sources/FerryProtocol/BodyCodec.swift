import FerryCore
import Foundation
import SwiftProtobuf

/// Encodes and decodes ``ChangeSetBody`` in the columnar layout of SPEC §5.
public enum BodyCodec {
    /// What encode() writes for a record without a scope.
    static let noScope = RecordScope(formID: "", formVersion: 0, commune: "")

    /// Encodes deterministically: origins and fields sorted bytewise, records
    /// sorted by id, writes sorted by (field, record, write id).
    public static func encode(_ body: ChangeSetBody) -> [UInt8] {
        var m = Ferry_V1_ChangeSetBodyV1()
        var originSet = Set<OriginID>()
        var fieldSet = Set<String>()
        for w in body.writes {
            originSet.insert(w.id.origin)
            fieldSet.insert(w.field)
            for r in w.prev { originSet.insert(r.origin) }
            if let a = w.alive { originSet.insert(a.origin) }
            for r in w.covers { originSet.insert(r.origin) }
        }
        let origins = originSet.sorted()
        let fields = fieldSet.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let originIndex = Dictionary(uniqueKeysWithValues: origins.enumerated().map { ($1, UInt32($0)) })
        let fieldIndex = Dictionary(uniqueKeysWithValues: fields.enumerated().map { ($1, UInt32($0)) })
        m.origins = origins.map(\.rawValue)
        m.fields = fields

        let records = Set(body.writes.map(\.record)).union(body.scopes.keys).sorted()
        let recordIndex = Dictionary(uniqueKeysWithValues: records.enumerated().map { ($1, Int32($0)) })
        var scopeIndex: [RecordScope: UInt32] = [:]
        var ids: [UInt8] = []
        ids.reserveCapacity(records.count * 16)
        var recordScope: [UInt32] = []
        recordScope.reserveCapacity(records.count)
        var scopeTable: [Ferry_V1_RecordScopeV1] = []
        for r in records {
            ids += r.bytes
            let scope = body.scopes[r] ?? noScope
            if let i = scopeIndex[scope] {
                recordScope.append(i)
            } else {
                let i = UInt32(scopeIndex.count)
                scopeIndex[scope] = i
                var s = Ferry_V1_RecordScopeV1()
                s.formID = scope.formID
                s.formVersion = UInt32(clamping: scope.formVersion)
                s.commune = scope.commune
                scopeTable.append(s)
                recordScope.append(i)
            }
        }
        m.scopes = scopeTable
        m.recordScope = recordScope
        m.recordIds = Data(ids)

        // Sort once by precomputed integer keys (hashing strings inside the
        // comparator dominated encoding).
        let all = body.writes
        let fieldKey = all.map { fieldIndex[$0.field] ?? 0 }
        let recordKey = all.map { recordIndex[$0.record] ?? 0 }
        let order = all.indices.sorted { a, b in
            if fieldKey[a] != fieldKey[b] { return fieldKey[a] < fieldKey[b] }
            if recordKey[a] != recordKey[b] { return recordKey[a] < recordKey[b] }
            return all[a].id < all[b].id
        }
        // Columns are built in locals and assigned once: appending through the
        // message's accessors copies its storage array on every append.
        var recordDelta: [Int32] = []
        var fieldCol: [UInt32] = []
        var hlcDelta: [Int64] = []
        var originCol: [UInt32] = []
        var typeCol: [UInt32] = []
        var ints: [Int64] = []
        var doubles: [Double] = []
        var strings: [String] = []
        var blobs: [Data] = []
        var prevCount: [UInt32] = []
        var refFlags: [UInt32] = []
        var refHlc: [Int64] = []
        var refOrigin: [UInt32] = []
        recordDelta.reserveCapacity(all.count)
        fieldCol.reserveCapacity(all.count)
        hlcDelta.reserveCapacity(all.count)
        originCol.reserveCapacity(all.count)
        typeCol.reserveCapacity(all.count)
        prevCount.reserveCapacity(all.count)
        refFlags.reserveCapacity(all.count)
        var lastRecord: Int32 = 0
        var lastHLC: UInt64 = 0
        for k in order {
            let w = all[k]
            let ri = recordKey[k]
            recordDelta.append(ri &- lastRecord)
            lastRecord = ri
            fieldCol.append(fieldKey[k])
            hlcDelta.append(Int64(bitPattern: w.id.hlc.raw &- lastHLC))
            lastHLC = w.id.hlc.raw
            originCol.append(originIndex[w.id.origin] ?? 0)
            typeCol.append(UInt32(ValueTag(of: w.value).rawValue))
            switch w.value {
            case .null, .bool: break
            case .int(let i): ints.append(i)
            case .double(let d): doubles.append(d)
            case .text(let s): strings.append(s)
            case .date(let d): ints.append(Int64(d))
            case .bytes(let b): blobs.append(Data(b))
            }
            prevCount.append(UInt32(w.prev.count))
            refFlags.append((w.alive == nil ? 0 : 1) | UInt32(w.covers.count) << 1)
            for r in w.prev + (w.alive.map { [$0] } ?? []) + w.covers {
                refHlc.append(Int64(bitPattern: w.id.hlc.raw &- r.hlc.raw))
                refOrigin.append(originIndex[r.origin] ?? 0)
            }
        }
        m.writeRecordDelta = recordDelta
        m.writeField = fieldCol
        m.writeHlcDelta = hlcDelta
        m.writeOrigin = originCol
        m.writeType = typeCol
        m.intValues = ints
        m.doubleValues = doubles
        m.stringValues = strings
        m.bytesValues = blobs
        m.writePrevCount = prevCount
        m.writeRefFlags = refFlags
        m.refHlcDelta = refHlc
        m.refOrigin = refOrigin
        m.catalog = body.catalog.map { item in
            var c = Ferry_V1_CatalogItemV1()
            c.kind = item.kind.rawValue
            c.key = item.key
            c.seq = item.seq
            c.json = Data(item.json)
            return c
        }
        // Serialising a fully built message with only known fields cannot fail.
        return ((try? m.serializedBytes() as [UInt8]) ?? [])
    }

    /// Decodes untrusted bytes; every index and count is checked.
    /// - Parameter normalize: normalise strings to NFC (do this for bytes from agents).
    public static func decode(_ bytes: [UInt8], normalize: Bool = true) throws(ChangeSetError) -> ChangeSetBody {
        let m: Ferry_V1_ChangeSetBodyV1
        do {
            m = try Ferry_V1_ChangeSetBodyV1(serializedBytes: bytes)
        } catch {
            throw .malformed("the body is not valid protobuf (\(error))")
        }
        let origins = m.origins.map { OriginID($0) }
        var fields: [String] = []
        fields.reserveCapacity(m.fields.count)
        for f in m.fields {
            // SPEC §5.3: a field name is at most 64 bytes after NFC.
            guard !normalize else {
                switch f.checkedNFC(maxBytes: FieldSpec.maxNameBytes) {
                case .success(let n): fields.append(n)
                case .failure(let why): throw .malformed("a field name cannot be used: \(why)")
                }
                continue
            }
            guard f.utf8.count <= FieldSpec.maxNameBytes else {
                throw .malformed("a field name is over \(FieldSpec.maxNameBytes) bytes")
            }
            fields.append(f)
        }
        guard m.recordIds.count % 16 == 0 else { throw .malformed("record_ids is not a multiple of 16 bytes") }
        let idBytes = [UInt8](m.recordIds)
        let recordCount = idBytes.count / 16
        guard m.recordScope.count == recordCount else {
            throw .malformed("record_scope has \(m.recordScope.count) entries for \(recordCount) records")
        }
        var records: [RecordID] = []
        records.reserveCapacity(recordCount)
        var scopes: [RecordID: RecordScope] = [:]
        scopes.reserveCapacity(recordCount)
        let scopeTable = m.scopes.map {
            RecordScope(formID: $0.formID, formVersion: Int($0.formVersion), commune: $0.commune)
        }
        for i in 0..<recordCount {
            guard let r = RecordID(bytes: idBytes[i * 16..<(i + 1) * 16]) else { throw .malformed("bad record id") }
            let si = Int(m.recordScope[i])
            guard si < scopeTable.count else {
                throw .malformed("record \(r) names scope \(si) of \(scopeTable.count)")
            }
            records.append(r)
            // encode() writes an empty scope for a record that has none; read it back as
            // none, so ReceiveChecks can refuse a write to a record without a scope.
            if scopeTable[si] != Self.noScope { scopes[r] = scopeTable[si] }
        }
        // Read each column once (the message's accessors go through its storage).
        let recordDelta = m.writeRecordDelta, fieldCol = m.writeField, hlcDelta = m.writeHlcDelta
        let originCol = m.writeOrigin, typeCol = m.writeType, intCol = m.intValues, doubleCol = m.doubleValues
        let stringCol = m.stringValues, bytesCol = m.bytesValues, prevCol = m.writePrevCount, flagCol = m.writeRefFlags
        let refHlcCol = m.refHlcDelta, refOriginCol = m.refOrigin
        let n = recordDelta.count
        guard fieldCol.count == n, hlcDelta.count == n, originCol.count == n, typeCol.count == n,
            prevCol.count == n, flagCol.count == n
        else { throw .malformed("the write columns have different lengths") }
        guard refHlcCol.count == refOriginCol.count else {
            throw .malformed("the ref columns have different lengths")
        }

        var writes: [FieldWrite] = []
        writes.reserveCapacity(n)
        var rec: Int64 = 0
        var hlc: UInt64 = 0
        var ints = 0, doubles = 0, strings = 0, blobs = 0, refs = 0
        func origin(_ i: UInt32) throws(ChangeSetError) -> OriginID {
            guard Int(i) < origins.count else { throw .malformed("origin index \(i) of \(origins.count)") }
            return origins[Int(i)]
        }
        for i in 0..<n {
            rec += Int64(recordDelta[i])
            guard rec >= 0, rec < Int64(records.count) else {
                throw .malformed("write \(i) names record \(rec) of \(records.count)")
            }
            let fi = Int(fieldCol[i])
            guard fi < fields.count else { throw .malformed("write \(i) names field \(fi) of \(fields.count)") }
            hlc = hlc &+ UInt64(bitPattern: hlcDelta[i])
            let id = WriteID(hlc: HLC(raw: hlc), origin: try origin(originCol[i]))
            let value: Value
            guard let tag = UInt8(exactly: typeCol[i]).flatMap(ValueTag.init(rawValue:)) else {
                throw .malformed("write \(i) has unknown value type \(typeCol[i])")
            }
            switch tag {
            case .null: value = .null
            case .falseValue: value = .bool(false)
            case .trueValue: value = .bool(true)
            case .int, .date:
                guard ints < intCol.count else { throw .malformed("int_values is too short") }
                let x = intCol[ints]
                ints += 1
                if tag == .int {
                    value = .int(x)
                } else {
                    guard let d = Int32(exactly: x) else { throw .malformed("date out of range") }
                    value = .date(d)
                }
            case .double:
                guard doubles < doubleCol.count else { throw .malformed("double_values is too short") }
                value = .double(doubleCol[doubles])
                doubles += 1
            case .string:
                guard strings < stringCol.count else { throw .malformed("string_values is too short") }
                let s = stringCol[strings]
                strings += 1
                guard s.utf8.count <= Value.maxStringBytes else {
                    throw .malformed("a string is over \(Value.maxStringBytes) bytes")
                }
                if normalize {
                    // SPEC §5.3: what is stored is exactly the NFC of what was signed, or refused.
                    switch s.checkedNFC() {
                    case .success(let n): value = .text(n)
                    case .failure(let why): throw .malformed("string value \(strings) cannot be stored: \(why)")
                    }
                } else {
                    value = .text(s)
                }
            case .bytes:
                guard blobs < bytesCol.count else { throw .malformed("bytes_values is too short") }
                let b = bytesCol[blobs]
                blobs += 1
                guard b.count <= Value.maxBytes else {
                    throw .malformed("a bytes value is over \(Value.maxBytes) bytes")
                }
                value = .bytes([UInt8](b))
            }
            let prevCount = Int(prevCol[i])
            let flags = flagCol[i]
            let coversCount = Int(flags >> 1)
            let total = prevCount + Int(flags & 1) + coversCount
            guard total <= refOriginCol.count - refs else { throw .malformed("write \(i) names more refs than remain") }
            var list: [WriteID] = []
            list.reserveCapacity(total)
            for k in refs..<(refs + total) {
                list.append(
                    WriteID(
                        hlc: HLC(raw: hlc &- UInt64(bitPattern: refHlcCol[k])), origin: try origin(refOriginCol[k])))
            }
            refs += total
            let alive = flags & 1 == 1 ? list[prevCount] : nil
            writes.append(
                FieldWrite(
                    record: records[Int(rec)], field: fields[fi], id: id, prev: Array(list[0..<prevCount]),
                    value: value,
                    alive: alive, covers: Array(list[(prevCount + Int(flags & 1))...])))
        }
        guard ints == intCol.count, doubles == doubleCol.count, strings == stringCol.count,
            blobs == bytesCol.count, refs == refOriginCol.count
        else { throw .malformed("value or ref columns have entries no write uses") }
        var catalog: [CatalogItem] = []
        for c in m.catalog {
            guard let kind = CatalogItem.Kind(rawValue: c.kind) else {
                throw .malformed("unknown catalog kind '\(c.kind)'")
            }
            catalog.append(CatalogItem(kind: kind, key: c.key, seq: c.seq, json: [UInt8](c.json)))
        }
        return ChangeSetBody(writes: writes, scopes: scopes, catalog: catalog)
    }
}

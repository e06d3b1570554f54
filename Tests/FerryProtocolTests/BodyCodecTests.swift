import FerryCore
import FerryProtocol
import FerryTesting
import Foundation
import Testing

/// Seeds for codec property tests (FERRY_PROPERTY_SEED replays one).
enum CodecSeeds {
    static func seeds(stream: UInt64, count: Int) -> [UInt64] {
        if let s = ProcessInfo.processInfo.environment["FERRY_PROPERTY_SEED"].flatMap({ UInt64($0) }) { return [s] }
        return (0..<count).map { i in
            var g = SeededGenerator(seed: stream &* 0x1_0000_0000 &+ UInt64(i))
            return g.next()
        }
    }
}

struct BodyCodecTests {
    @Test func randomBodiesRoundTrip() throws {
        var writes = 0
        var types = Set<String>()
        for seed in CodecSeeds.seeds(stream: 11, count: 300) {
            var rng = SeededGenerator(seed: seed)
            let body = RandomBody.body(&rng)
            let bytes = BodyCodec.encode(body)
            let decoded = try BodyCodec.decode(bytes)
            // A Bool, so that a failure prints the seed rather than two whole bodies.
            let same = decoded == body
            #expect(
                same,
                "seed \(seed): \(decoded.writes.count)/\(body.writes.count) writes, \(decoded.scopes.count)/\(body.scopes.count) scopes"
            )
            #expect(decoded.writes.count == body.writes.count, "seed \(seed)")
            // Deterministic: the same body in another order encodes to the same bytes.
            var shuffled = body
            shuffled.writes.shuffle(using: &rng)
            #expect(BodyCodec.encode(shuffled) == bytes, "seed \(seed)")
            #expect(BodyCodec.encode(decoded) == bytes, "seed \(seed)")
            writes += body.writes.count
            types.formUnion(body.writes.map(\.value.typeName))
        }
        #expect(writes > 3_000)
        #expect(types == ["null", "bool", "int", "double", "string", "date", "bytes"])
    }

    @Test func theEmptyBodyRoundTripsAsZeroBytes() throws {
        #expect(BodyCodec.encode(ChangeSetBody()) == [])
        #expect(try BodyCodec.decode([]) == ChangeSetBody())
    }

    @Test func aRecordWrittenWithoutAScopeDecodesWithoutOne() throws {
        // So that ReceiveChecks can refuse it; encode() puts an empty placeholder on the wire.
        let r = RecordID(high: 1, low: 2)
        let w = FieldWrite(
            record: r, field: "owner", id: WriteID(hlc: HLC(raw: 5), origin: OriginID("a")), value: .int(1))
        let decoded = try BodyCodec.decode(BodyCodec.encode(ChangeSetBody(writes: [w])))
        #expect(decoded.writes == [w])
        #expect(decoded.scopes.isEmpty)
    }

    @Test func stringsFromAgentsAreNormalisedToNFCUnlessAskedNotTo() throws {
        let r = RecordID(high: 1, low: 2)
        let raw = "Nguye\u{0302}\u{0303}n"
        let w = FieldWrite(
            record: r, field: "owner", id: WriteID(hlc: HLC(raw: 5), origin: OriginID("a")), value: .text(raw))
        let bytes = BodyCodec.encode(
            ChangeSetBody(writes: [w], scopes: [r: RecordScope(formID: "f", formVersion: 1, commune: "c")]))
        let normalised = try BodyCodec.decode(bytes)
        #expect(
            normalised.writes.first.map { if case .text(let s) = $0.value { Array(s.utf8) } else { [] } }
                == Array(raw.nfc.utf8))
        let kept = try BodyCodec.decode(bytes, normalize: false)
        #expect(
            kept.writes.first.map { if case .text(let s) = $0.value { Array(s.utf8) } else { [] } } == Array(raw.utf8))
    }

    @Test func everyTruncationOfAValidBodyIsDecodedOrRefusedWithoutTrapping() {
        var refused = 0
        for seed in CodecSeeds.seeds(stream: 12, count: 12) {
            var rng = SeededGenerator(seed: seed)
            let bytes = BodyCodec.encode(RandomBody.body(&rng, maxWrites: 12))
            for n in 0..<bytes.count {
                do { _ = try BodyCodec.decode(Array(bytes.prefix(n))) } catch {
                    #expect(error.code == .malformed)
                    refused += 1
                }
            }
        }
        #expect(refused > 0)
    }

    @Test func randomByteFlipsAreDecodedOrRefusedWithoutTrapping() {
        var refused = 0
        var tried = 0
        for seed in CodecSeeds.seeds(stream: 13, count: 40) {
            var rng = SeededGenerator(seed: seed)
            let bytes = BodyCodec.encode(RandomBody.body(&rng, maxWrites: 20))
            guard !bytes.isEmpty else { continue }
            for _ in 0..<100 {
                var bad = bytes
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    bad[Int.random(in: 0..<bad.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                }
                tried += 1
                do { _ = try BodyCodec.decode(bad) } catch {
                    #expect(error.code == .malformed)
                    refused += 1
                }
            }
        }
        #expect(tried >= 3_000 && refused > 0)
    }

    @Test func randomGarbageIsRefusedWithoutTrapping() {
        var refused = 0
        for seed in CodecSeeds.seeds(stream: 14, count: 2_000) {
            var rng = SeededGenerator(seed: seed)
            let bytes = (0..<Int.random(in: 1...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            do { _ = try BodyCodec.decode(bytes) } catch { refused += 1 }
        }
        #expect(refused > 1_000)
    }

    @Test func inconsistentColumnsAreMalformed() throws {
        // Hand-made bodies that are valid protobuf but break the columnar rules of SPEC §5.
        let r = RecordID(high: 1, low: 2)
        let w = FieldWrite(
            record: r, field: "owner", id: WriteID(hlc: HLC(raw: 100), origin: OriginID("a")),
            prev: [WriteID(hlc: HLC(raw: 50), origin: OriginID("a"))], value: .int(7))
        let good = BodyCodec.encode(
            ChangeSetBody(writes: [w], scopes: [r: RecordScope(formID: "f", formVersion: 1, commune: "c")]))
        #expect(try BodyCodec.decode(good).writes == [w])
        func refused(_ why: String, _ change: (inout Ferry_V1_ChangeSetBodyV1) -> Void) throws {
            var m = try Ferry_V1_ChangeSetBodyV1(serializedBytes: good)
            change(&m)
            let bytes: [UInt8] = try m.serializedBytes()
            #expect(throws: ChangeSetError.self, "\(why)") { try BodyCodec.decode(bytes) }
            do { _ = try BodyCodec.decode(bytes) } catch { #expect(error.code == .malformed, "\(why)") }
        }
        try refused("record_ids not a multiple of 16") { $0.recordIds = Data(repeating: 1, count: 15) }
        try refused("a record without a scope entry") { $0.recordScope = [] }
        try refused("a scope index out of range") { $0.recordScope = [5] }
        try refused("an unknown value type") { $0.writeType = [9] }
        try refused("write columns of different lengths") { $0.writeField.append(0) }
        try refused("a record index below zero") { $0.writeRecordDelta = [-1] }
        try refused("a record index past the end") { $0.writeRecordDelta = [1] }
        try refused("a field index past the end") { $0.writeField = [3] }
        try refused("an origin index past the end") { $0.writeOrigin = [2] }
        try refused("a ref origin index past the end") { $0.refOrigin = [7] }
        try refused("more refs named than present") { $0.writePrevCount = [2] }
        try refused("covers named but absent") { $0.writeRefFlags = [4] }
        try refused("an int value missing") { $0.intValues = [] }
        try refused("an int value no write uses") { $0.intValues.append(2) }
        try refused("a ref no write names") {
            $0.refHlcDelta.append(1)
            $0.refOrigin.append(0)
        }
        try refused("ref columns of different lengths") { $0.refOrigin.append(0) }
        try refused("a date out of range") {
            $0.writeType = [6]
            $0.intValues = [Int64(Int32.max) + 1]
        }
        try refused("a string over the limit") {
            $0.writeType = [5]
            $0.intValues = []
            $0.stringValues = [String(repeating: "a", count: Value.maxStringBytes + 1)]
        }
        try refused("a bytes value over the limit") {
            $0.writeType = [7]
            $0.intValues = []
            $0.bytesValues = [Data(count: Value.maxBytes + 1)]
        }
        try refused("a double missing") { $0.writeType = [4] }
        try refused("a catalog entry of an unknown kind") {
            var c = Ferry_V1_CatalogItemV1()
            c.kind = "parcel"
            $0.catalog = [c]
        }
        #expect(throws: ChangeSetError.self) { try BodyCodec.decode([0x0a, 0x05, 0x61]) }  // a string cut short
    }
}

struct CompressorTests {
    @Test(arguments: Compression.allCases)
    func aBodyLongerThanItsDeclaredSizeIsMalformedEvenWhenDeclaredEmpty(_ c: Compression) {
        // zlib's uncompress() with a 0-byte buffer inflates into a private byte and
        // reports success; the declared size must still be enforced.
        for bytes in [[0x41] as [UInt8], Array("Thửa đất".utf8)] {
            let z = Compressor.compress(bytes, c)
            #expect(throws: ChangeSetError.self) { try Compressor.decompress(z, c, size: 0) }
        }
    }

    @Test(arguments: Compression.allCases)
    func compressedBytesDecompressToTheOriginal(_ c: Compression) throws {
        var rng = SeededGenerator(seed: 99)
        for n in [0, 1, 100, 10_000] {
            let bytes = (0..<n).map { i in i % 7 == 0 ? UInt8.random(in: 0...255, using: &rng) : UInt8(i % 13) }
            let z = Compressor.compress(bytes, c)
            #expect(try Compressor.decompress(z, c, size: n) == bytes)
            if n > 0 {
                #expect(throws: ChangeSetError.self) { try Compressor.decompress(z, c, size: n - 1) }
            }
            #expect(throws: ChangeSetError.self) { try Compressor.decompress(z, c, size: n + 1) }
        }
    }

    @Test(arguments: [Compression.zstd, .zlib])
    func corruptCompressedBytesAreMalformed(_ c: Compression) {
        var rng = SeededGenerator(seed: 5)
        let bytes = Array(String(repeating: "Thửa đất số 412 ", count: 50).utf8)
        let z = Compressor.compress(bytes, c)
        for n in 0..<z.count {
            #expect(throws: ChangeSetError.self) { try Compressor.decompress(Array(z.prefix(n)), c, size: bytes.count) }
        }
        for _ in 0..<200 {
            var bad = z
            bad[Int.random(in: 0..<bad.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            do {
                // A flip may survive (zstd frames carry no checksum by default) but never traps.
                _ = try Compressor.decompress(bad, c, size: bytes.count)
            } catch {
                #expect(error.code == .malformed)
            }
        }
    }
}

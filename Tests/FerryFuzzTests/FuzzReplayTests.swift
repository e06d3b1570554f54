import FerryCore
import FerryCrypto
import FerryFuzz
import FerryProtocol
import FerryStore
import FerryTesting
import Foundation
import Testing

/// fuzz/seeds and protocol/vectors/crashers, found from this file's path.
enum FuzzFiles {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let seeds = root.appendingPathComponent("fuzz/seeds")
    static let crashers = root.appendingPathComponent("protocol/vectors/crashers")
    static let vectors = root.appendingPathComponent("protocol/vectors")

    static func files(_ dir: URL) throws -> [(name: String, bytes: [UInt8])] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
            .filter { $0 != "README.md" && !$0.hasPrefix(".") }
            .map { ($0, try [UInt8](Data(contentsOf: dir.appendingPathComponent($0)))) }
    }
}

/// Seeds of the libFuzzer corpora (scripts/fuzz.sh), made from the vectors and fixtures.
enum FuzzSeeds {
    static func all() throws -> [String: [(String, [UInt8])]] {
        var out: [String: [(String, [UInt8])]] = [:]
        let p = try VectorFixtures.Parties()

        // Envelope: the vector envelopes, the malformed vectors, and the vector header for mode 1.
        var envelope: [(String, [UInt8])] = []
        for c in [Compression.zstd, .none] {
            let s = try Envelope.seal(
                header: VectorFixtures.header(p, compression: c), body: VectorFixtures.body, signer: p.agentSigning,
                key: p.agentSession.transmit, nonce: VectorFixtures.nonce)
            envelope.append(("vector-\(c).bin", [0] + s.envelope))
            envelope.append(("header-\(c).bin", [1] + s.headerBytes))
        }
        for bad in try VectorFixtures.badEnvelopes() { envelope.append(("malformed-\(bad.file)", [0] + bad.bytes)) }
        out["FuzzEnvelope"] = envelope

        // Body: the vector body, random bodies, and the vector's compressed body.
        let bodyBytes = BodyCodec.encode(VectorFixtures.body)
        var body: [(String, [UInt8])] = [("vector.bin", [0] + bodyBytes)]
        var rng = SeededGenerator(seed: 8)
        for i in 0..<4 {
            body.append(("random-\(i).bin", [0] + BodyCodec.encode(RandomBody.body(&rng, maxWrites: 6))))
        }
        body.append(("vector-zstd.bin", [1] + Compressor.compress(bodyBytes, .zstd)))
        out["FuzzBody"] = body

        // Form: the land-record form, then one value per field as text (tag 7) and typed.
        let form = try Seed.form
        var program: [UInt8] = []
        var sample = SampleLandRecords(seed: 3)
        let row = sample.next()
        for (i, f) in form.fields.enumerated() {
            let text = Array((row[f.name]?.display ?? "").utf8.prefix(255))
            program += [UInt8(i), 7, UInt8(text.count)] + text
        }
        program += [6, 2] + withUnsafeBytes(of: Int64(2000).littleEndian, Array.init)
        program += [4, 3] + withUnsafeBytes(of: (356.5).bitPattern.littleEndian, Array.init)
        program += [10, 5] + withUnsafeBytes(of: UInt64(18_000).littleEndian, Array.init)
        program += [0, 4, 12, 0] + Array("Nguyễn Văn".utf8)
        // A form with every field type and bound, each value given as text a person would type.
        let allTypes = """
            {"id": "all-types", "version": 1, "title": "Mọi kiểu", "fields": [
              {"name": "s", "type": "string", "required": true, "minLength": 2, "maxLength": 8, "choices": ["ab", "xyz"]},
              {"name": "code", "type": "string", "digits": 4},
              {"name": "i", "type": "int", "min": -5, "max": 5},
              {"name": "d", "type": "double", "min": 0.5, "max": 1.5},
              {"name": "b", "type": "bool"},
              {"name": "t", "type": "date", "minDate": "2000-01-01", "maxDate": "2030-12-31"},
              {"name": "x", "type": "bytes"}]}
            """
        var typed: [UInt8] = []
        for (i, text) in ["xyz", "0123", "-5", "1.25", "true", "2024-02-29", "00ff"].enumerated() {
            typed += [UInt8(i), 7, UInt8(text.utf8.count)] + Array(text.utf8)
        }
        out["FuzzForm"] = [
            ("land-record.bin", Array(Seed.landRecordForm.utf8) + [0] + program),
            ("all-types.bin", Array(allTypes.utf8) + [0] + typed),
        ]

        // Request: an enrollment body and a signed pull.
        let agent = Identity()
        let token = EnrollmentToken(commune: "24781", secret: randomBytes(16), hubFingerprint: randomBytes(8))
        let enroll = try HubJSON.encoder.encode(
            EnrollRequest(
                token: token.description, signPublicKey: hex(agent.signing.publicKey.bytes),
                kxPublicKey: hex(agent.kx.publicKey.bytes), hostname: "xa-lac-duong-pc1"))
        let sig = agent.signing.sign(
            PullAuth.message(agent: "a-24781-0011aabb", since: 41, maxBytes: 262_144, timeMs: 1_764_000_000_000))
        let pull =
            "since=41&max_bytes=262144\nX-Ferry-Agent: a-24781-0011aabb\nX-Ferry-Time: 1764000000000\n"
            + "X-Ferry-Signature: \(hex(sig))"
        out["FuzzRequest"] = [("enroll.bin", [0] + [UInt8](enroll)), ("pull.bin", [1] + Array(pull.utf8))]

        // Ingest: bodies the agent's replica freezes: new records, edits, a delete.
        out["FuzzIngest"] = try ingestBodies().enumerated().map { ("agent-\($0.offset).bin", [0] + $0.element) }
        return out
    }

    /// Bodies an agent replica (origin = the harness's agent) freezes, in order.
    static func ingestBodies() throws -> [[UInt8]] {
        let dir = NSTemporaryDirectory() + "ferry-fuzz-seeds-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try AgentStore(
            path: dir + "/a.sqlite", origin: OriginID(IngestHarness.agentID),
            wall: ManualClock(millis: IngestHarness.hubMillis - 60_000))
        try store.putCatalog([
            CatalogItem(kind: .form, key: "land-record@1", seq: 1, json: Array(Seed.landRecordForm.utf8))
        ])
        let form = try Seed.form
        var rows = SampleLandRecords(seed: 5)
        var bodies: [[UInt8]] = []
        func freeze() throws {
            var captured: [UInt8] = []
            let f = try store.freeze(maxWrites: 1000) { body, _ in
                captured = BodyCodec.encode(body)
                return (randomBytes(16), [])
            }
            if let f { try store.acknowledge(upTo: f.seqTo) }
            bodies.append(captured)
        }
        let a = try store.create(form: form, commune: IngestHarness.commune, values: rows.next())
        let b = try store.create(form: form, commune: IngestHarness.commune, values: rows.next())
        try freeze()
        try store.update(a, values: ["status": .string("verified"), "members": .int(5)])
        try freeze()
        try store.delete([b])
        try freeze()
        // A value the replica would refuse, as a modified agent could send it: quarantined.
        var edit = try BodyCodec.decode(bodies[1])
        edit.writes = edit.writes.filter { $0.field == "members" }.map { w in
            var w = w
            w.prev = [w.id]
            w.id = WriteID(hlc: HLC(raw: w.id.hlc.raw + 1), origin: w.id.origin)
            w.value = .int(99)
            return w
        }
        bodies.append(BodyCodec.encode(edit))
        return bodies
    }
}

struct FuzzSeedGeneratorTests {
    /// Run with FERRY_WRITE_FUZZ_SEEDS=1 to (re)write fuzz/seeds.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FERRY_WRITE_FUZZ_SEEDS"] != nil))
    func writeTheFuzzSeeds() throws {
        let fm = FileManager.default
        for (target, seeds) in try FuzzSeeds.all() {
            let dir = FuzzFiles.seeds.appendingPathComponent(target)
            try? fm.removeItem(at: dir)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            for (name, bytes) in seeds { try Data(bytes).write(to: dir.appendingPathComponent(name)) }
        }
        #expect(try fm.contentsOfDirectory(atPath: FuzzFiles.seeds.path).count == FuzzHarness.targets.count)
    }
}

@Suite(.serialized)
struct FuzzReplayTests {
    @Test(arguments: FuzzHarness.targets)
    func theCommittedSeedsReachPastParsing(_ target: String) throws {
        let seeds = try FuzzFiles.files(FuzzFiles.seeds.appendingPathComponent(target))
        #expect(
            !seeds.isEmpty,
            "fuzz/seeds/\(target) is empty: FERRY_WRITE_FUZZ_SEEDS=1 swift test --filter writeTheFuzzSeeds")
        defer { IngestHarness.shared.reset() }
        let outcomes = seeds.map { FuzzHarness.run(target, $0.bytes) }
        #expect(outcomes.contains { $0.isAccepted }, "\(target): no seed was accepted: \(outcomes)")
    }

    @Test func ingestSeedsAreSignedAppliedAndValidated() throws {
        let h = IngestHarness()
        defer { h.reset() }
        let seeds = try FuzzFiles.files(FuzzFiles.seeds.appendingPathComponent("FuzzIngest"))
        let outcomes = seeds.map { h.run($0.bytes) }.map(\.description)
        // In order: new records merged, an edit, a delete, then an out-of-bounds value.
        #expect(outcomes.count == 4)
        #expect(outcomes.first?.hasPrefix("accepted(applied merged ") == true, "\(outcomes)")
        #expect(outcomes.first?.hasPrefix("accepted(applied merged 0 ") == false, "\(outcomes)")
        #expect(outcomes.contains { $0.contains("quarantined 1") }, "\(outcomes)")
        // The first seed again, after the hub moved on: its numbers are already applied,
        // so it is never applied twice — a duplicate if the hub holds the same content
        // for them, else refused as a cloned replica (SPEC §7.2).
        let again = h.run(seeds[0].bytes).description
        #expect(again.hasPrefix("accepted(duplicate") || again == "refused(cloned_replica)", "\(again)")
    }

    @Test func aForgedHeaderBehindAValidSignatureIsRefusedWithACode() throws {
        let h = IngestHarness()
        defer { h.reset() }
        let seed = try #require(try FuzzFiles.files(FuzzFiles.seeds.appendingPathComponent("FuzzIngest")).first)
        // Control 3: the range leaves a gap; 0x40: created 11 minutes ahead.
        #expect(h.run([3] + seed.bytes.dropFirst()) == .refused("out_of_sequence"))
        #expect(h.run([0x40] + seed.bytes.dropFirst()) == .refused("future_timestamp"))
        #expect(h.run([0] + Array("not protobuf".utf8)).description.hasPrefix("refused(malformed"))
    }

    /// Every input that once crashed a harness stays here, replayed by every harness.
    @Test func everyKeptCrasherReturnsFromEveryHarness() throws {
        let crashers = try FuzzFiles.files(FuzzFiles.crashers)
        #expect(!crashers.isEmpty, "crashers are kept forever; protocol/vectors/crashers lost its files")
        defer { IngestHarness.shared.reset() }
        for (name, bytes) in crashers {
            for target in FuzzHarness.targets {
                let outcome = FuzzHarness.run(target, bytes)
                #expect(!outcome.description.isEmpty, "\(name) in \(target)")
            }
        }
    }
}

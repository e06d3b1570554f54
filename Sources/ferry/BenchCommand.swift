import ArgumentParser
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import GRDB

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that print their figures (build with -c release).",
        subcommands: [BenchMerge.self, BenchHub.self])
}

/// W4 of WORKLOAD.md: two replicas on real SQLite files (WAL), the script's
/// exact operations, one JSON object on stdout. Extra figures go to stderr.
struct BenchMerge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "W4 merge-core benchmark (WORKLOAD.md).")
    @Option(help: "Records (used to generate the workload when --workload is absent).") var n = 10_000
    @Option(help: "Seed for the workload generator.") var seed = 42
    @Option(help: "A TSV made by w4_merge.py --dump (default: generate one).") var workload: String?
    @Option(help: "The W4 generator script.") var script: String?
    @Option(help: "Scratch directory for the SQLite files.") var workdir: String?
    @Option(help: "Write the raw change-set bodies (init, delta_ab, delta_ba) to this directory.") var dumpBodies:
        String?

    func run() async throws {
        let rssBase = Self.rssKB()
        let dir = workdir ?? NSTemporaryDirectory() + "ferry-w4-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let tsv = try workload ?? generate(dir: dir)
        let w = try W4(path: tsv)
        var out: [String: Any] = [:]

        let a = try AgentStore(path: dir + "/A.sqlite", origin: OriginID("A"))
        let b = try AgentStore(path: dir + "/B.sqlite", origin: OriginID("B"))
        let formItem = CatalogItem(kind: .form, key: "w4@1", seq: 1, json: [UInt8](try JSONEncoder().encode(W4.form)))
        try a.putCatalog([formItem])
        try b.putCatalog([formItem])

        // Baseline: a plain prepared-statement insert loop of the same rows, same batching.
        let baseline = try Self.baselineInsert(dir: dir, rows: w.records)

        // 1. A creates the n records (local writes, persisted, 1,000 per transaction).
        var ids: [String: RecordID] = [:]
        var t = Date()
        for chunk in stride(from: 0, to: w.records.count, by: 1000) {
            let part = Array(w.records[chunk..<min(chunk + 1000, w.records.count)])
            let made = try a.createMany(form: W4.form, commune: "w4", rows: part.map(\.values))
            for (r, id) in zip(part, made) { ids[r.id] = id }
        }
        out["create_s"] = Date().timeIntervalSince(t)

        // 2. A's initial state as it goes on the wire.
        let keys = try BenchKeys()
        t = Date()
        let initExport = try Self.export(a, keys: keys, from: "A")
        out["export_init_s"] = Date().timeIntervalSince(t)
        let initSizes = try Self.sizes(initExport, dump: dumpBodies.map { $0 + "/init.bin" })
        out["init"] = initSizes.filter { $0.key != "wire" }

        // 3. Apply into the empty replica B.
        t = Date()
        try Self.apply(initExport.envelope, into: b, keys: keys)
        out["init_apply_s"] = Date().timeIntervalSince(t)

        // 4. Concurrent edits: B first, then A, so A's timestamps are later and
        //    A's value wins every field both edited (WORKLOAD.md).
        t = Date()
        try b.updateMany(w.edits(by: "B", ids: ids))
        out["edit_B_s"] = Date().timeIntervalSince(t)
        t = Date()
        try a.updateMany(w.edits(by: "A", ids: ids))
        try a.delete(w.deletes.compactMap { ids[$0] })
        out["edit_A_s"] = Date().timeIntervalSince(t)

        // 5. Deltas both ways.
        let abExport = try Self.export(a, keys: keys, from: "A")
        let baExport = try Self.export(b, keys: keys, from: "B")
        let ab = abExport.envelope
        let ba = baExport.envelope
        let abSizes = try Self.sizes(abExport, dump: dumpBodies.map { $0 + "/delta_ab.bin" })
        let baSizes = try Self.sizes(baExport, dump: dumpBodies.map { $0 + "/delta_ba.bin" })
        out["delta_ab"] = abSizes.filter { $0.key != "wire" }
        out["delta_ba"] = baSizes.filter { $0.key != "wire" }

        // 6. Merge both ways.
        t = Date()
        try Self.apply(ab, into: b, keys: keys)
        let mab = Date().timeIntervalSince(t)
        t = Date()
        try Self.apply(ba, into: a, keys: keys)
        let mba = Date().timeIntervalSince(t)
        out["merge_ab_s"] = mab
        out["merge_ba_s"] = mba
        out["merge_s"] = mab + mba

        // 7. Compare full states, and check them against the workload's expectations.
        let sa = try a.fullState()
        let sb = try b.fullState()
        out["converged"] = sa == sb
        let problems = w.check(sa, ids: ids)
        out["valid_merge"] = problems.isEmpty
        out["rss_base_kb"] = rssBase
        out["rss_peak_kb"] = Self.peakRSSKB()

        let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        let create = out["create_s"] as? Double ?? 0
        FileHandle.standardError.write(
            Data(
                String(
                    format:
                        "baseline_insert_s %.4f (plain prepared INSERT of %d rows x 12 columns); create/baseline %.2fx\n",
                    baseline, w.records.count, create / max(baseline, 1e-9)
                ).utf8))
        FileHandle.standardError.write(
            Data(
                ("on the wire (zstd level \(Compressor.wireLevel)): init \(initSizes["wire"] ?? 0), "
                    + "delta_ab \(abSizes["wire"] ?? 0), delta_ba \(baSizes["wire"] ?? 0) bytes\n").utf8))
        if !problems.isEmpty { FileHandle.standardError.write(Data("merge problems: \(problems)\n".utf8)) }
    }

    func generate(dir: String) throws -> String {
        // The repository's copy, found from the working directory or above the
        // executable (.build/<triple>/<config>/ferry sits inside the repository).
        let exe = Bundle.main.executablePath ?? CommandLine.arguments[0]
        var up = URL(fileURLWithPath: exe).deletingLastPathComponent()
        var upward: [String] = []
        for _ in 0..<5 {
            upward.append(up.appendingPathComponent("Benchmarks/w4_merge.py").path)
            up = up.deletingLastPathComponent()
        }
        let local = ["../shared/workloads/w4_merge.py", "Benchmarks/w4_merge.py"]
        let candidates = [script].compactMap { $0 } + local + upward
        guard let s = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw UserError("cannot find w4_merge.py: pass --script PATH or --workload TSV")
        }
        let path = dir + "/w4.tsv"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", s, "--n", String(n), "--seed", String(seed), "--dump", path]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw UserError("\(s) failed (\(p.terminationStatus))") }
        return path
    }

    /// Freezes everything pending into one change set; returns the envelope and sizes before encryption.
    /// Freezes everything pending into one change set (timed by the caller);
    /// returns the envelope and the body before compression.
    static func export(_ s: AgentStore, keys: BenchKeys, from: String) throws -> (
        envelope: [UInt8], body: [UInt8], zstd: Int
    ) {
        var body: [UInt8] = []
        var zstd = 0
        let signer = from == "A" ? keys.a : keys.b
        let tx = from == "A" ? keys.abTX : keys.baTX
        guard
            let f = try s.freeze(
                maxWrites: Int.max,
                seal: { changes, ctx in
                    let h = ChangeSetHeader(
                        id: randomBytes(16), origin: s.origin, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo,
                        senderKeyID: signer.publicKey.id, recipientKeyID: [], createdHLC: ctx.now, compression: .zstd)
                    let sealed = try Envelope.seal(header: h, body: changes, signer: signer, key: tx)
                    body = sealed.bodyBytes
                    zstd = sealed.compressedBody.count
                    return (sealed.header.id, sealed.envelope)
                })
        else { return ([], [], 0) }
        try s.acknowledge(upTo: f.seqTo)
        return (f.envelope, body, zstd)
    }

    /// WORKLOAD.md's sizes (raw, zstd-3, zlib-6) plus the wire level's, computed outside the timings.
    static func sizes(_ e: (envelope: [UInt8], body: [UInt8], zstd: Int), dump: String?) throws -> [String: Int] {
        if let dump { try Data(e.body).write(to: URL(fileURLWithPath: dump)) }
        return [
            "raw": e.body.count, "zstd": e.zstd, "zlib": Compressor.compress(e.body, .zlib).count,
            "wire": Compressor.compress(e.body, .zstd, level: Compressor.wireLevel).count,
        ]
    }

    static func apply(_ env: [UInt8], into s: AgentStore, keys: BenchKeys) throws {
        let fromA = s.origin.rawValue == "B"
        let t0 = Date()
        let opened = try Envelope.open(
            env, recipientKeyID: [], author: (fromA ? keys.a : keys.b).publicKey, key: fromA ? keys.abTX : keys.baTX,
            normalize: true)
        let t1 = Date()
        try s.applyRemote(opened.body)
        if ProcessInfo.processInfo.environment["FERRY_BENCH_STAGES"] != nil {
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "apply into %@: open+decode %.4f s, store %.4f s\n", s.origin.rawValue,
                        t1.timeIntervalSince(t0), Date().timeIntervalSince(t1)
                    ).utf8))
        }
    }

    static func baselineInsert(dir: String, rows: [W4.Row]) throws -> Double {
        let q = try DatabaseQueue(path: dir + "/baseline.sqlite")
        try q.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
            try db.execute(
                sql: "CREATE TABLE r(id BLOB PRIMARY KEY, \((0..<12).map { "c\($0)" }.joined(separator: ", ")))")
        }
        let t = Date()
        var rng = SystemRandomNumberGenerator()
        for chunk in stride(from: 0, to: rows.count, by: 1000) {
            try q.inTransaction { db in
                let st = try db.cachedStatement(sql: "INSERT INTO r VALUES (?\(String(repeating: ", ?", count: 12)))")
                for r in rows[chunk..<min(chunk + 1000, rows.count)] {
                    var args: [DatabaseValueConvertible?] = [Data(RecordID.v7(millis: 1, using: &rng).bytes)]
                    for f in W4.fields { args.append(W4.sql(r.values[f.0] ?? .null)) }
                    try st.execute(arguments: StatementArguments(args))
                }
                return .commit
            }
        }
        return Date().timeIntervalSince(t)
    }

    static func rssKB() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    static func peakRSSKB() -> Int {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Int(u.ru_maxrss)
    }
}

/// Fixed keys for the benchmark's two replicas.
struct BenchKeys {
    let a: SigningKeyPair
    let b: SigningKeyPair
    let abTX: SecretBytes
    let baTX: SecretBytes
    init() throws {
        a = SigningKeyPair()
        b = SigningKeyPair()
        let ka = KXKeyPair()
        let kb = KXKeyPair()
        abTX = try ka.clientSessionKeys(server: kb.publicKey).transmit
        baTX = try kb.serverSessionKeys(client: ka.publicKey).transmit
    }
}

/// The W4 workload as dumped by w4_merge.py (WORKLOAD.md).
struct W4 {
    static let fields: [(String, FieldType)] = [
        ("full_name", .string), ("address", .string), ("district", .string), ("ward", .string), ("age", .int),
        ("household_size", .int), ("monthly_income", .int), ("visit_count", .int), ("latitude", .double),
        ("longitude", .double), ("submitted_on", .date), ("status", .string),
    ]
    static let form = FormDefinition(
        id: "w4", version: 1, title: "W4 record", fields: fields.map { FieldSpec(name: $0.0, type: $0.1) })

    struct Row {
        var id: String
        var values: [String: Value]
    }
    struct Update {
        var who: String
        var id: String
        var field: String
        var value: Value
        var lose: Bool
    }
    var records: [Row] = []
    var updates: [Update] = []
    var deletes: [String] = []

    init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UserError("cannot read \(path)")
        }
        for line in text.split(separator: "\n") {
            let c = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch c.first {
            case "R" where c.count == 14:
                var v: [String: Value] = [:]
                for (i, f) in Self.fields.enumerated() { v[f.0] = try Self.parse(c[i + 2], f.1) }
                records.append(Row(id: c[1], values: v))
            case "U" where c.count == 6:
                guard let i = Int(c[3]), i < Self.fields.count else { throw UserError("bad field index in \(line)") }
                let f = Self.fields[i]
                updates.append(
                    Update(who: c[1], id: c[2], field: f.0, value: try Self.parse(c[4], f.1), lose: c[5] == "1"))
            case "D" where c.count == 3:
                deletes.append(c[2])
            default:
                throw UserError("unexpected line in \(path): \(line.prefix(80))")
            }
        }
    }

    static func parse(_ s: String, _ t: FieldType) throws -> Value {
        switch t {
        case .string: return .string(s)
        case .int: guard let i = Int64(s) else { throw UserError("not an int: \(s)") }; return .int(i)
        case .double: guard let d = Double(s) else { throw UserError("not a double: \(s)") }; return .double(d)
        case .date:
            guard let d = CivilDate(iso: s) else { throw UserError("not a date: \(s)") }; return .date(d.daysSinceEpoch)
        default: return .string(s)
        }
    }

    static func sql(_ v: Value) -> DatabaseValueConvertible? {
        switch v {
        case .text(let s): s
        case .int(let i): i
        case .double(let d): d
        case .date(let d): Int64(d)
        default: nil
        }
    }

    func edits(by who: String, ids: [String: RecordID]) -> [(RecordID, [String: Value])] {
        var order: [String] = []
        var by: [String: [String: Value]] = [:]
        for u in updates where u.who == who {
            if by[u.id] == nil { order.append(u.id) }
            by[u.id, default: [:]][u.field] = u.value
        }
        return order.compactMap { id in ids[id].map { ($0, by[id] ?? [:]) } }
    }

    /// Problems of a merged state against WORKLOAD.md's expectations (empty = valid):
    /// deleted records stay deleted, non-conflicting edits visible, A wins conflicts.
    func check(_ state: [RecordID: [String: Value]], ids: [String: RecordID]) -> [String: Int] {
        var p: [String: Int] = [:]
        let deleted = Set(deletes)
        var ea: [String: [String: Value]] = [:]
        var eb: [String: [String: Value]] = [:]
        for u in updates {
            if u.who == "A" {
                ea[u.id, default: [:]][u.field] = u.value
            } else {
                eb[u.id, default: [:]][u.field] = u.value
            }
        }
        for r in records {
            guard let id = ids[r.id], let got = state[id] else {
                p["missing_rows", default: 0] += 1
                continue
            }
            let isDeleted = got[deletedField] == .bool(true)
            if deleted.contains(r.id) {
                if !isDeleted { p["resurrected", default: 0] += 1 }
                continue
            }
            if isDeleted { p["wrongly_deleted", default: 0] += 1 }
            for (f, _) in Self.fields {
                let want = ea[r.id]?[f] ?? eb[r.id]?[f] ?? r.values[f]
                if got[f] != want { p["bad_fields", default: 0] += 1 }
            }
        }
        return p
    }
}

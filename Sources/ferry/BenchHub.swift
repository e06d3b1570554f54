import ArgumentParser
import FerryAgent
import FerryCore
import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import Foundation
import GRDB
import Logging

/// W2 of WORKLOAD.md: N enrolled agents' land records reach one hub over HTTP.
///
/// Everything the hub sees is what agents send: each agent is a real replica
/// (`AgentStore`) enrolled with a token from `ferry hub token`, synced once for
/// the catalog, and its outbox is frozen and sealed exactly as ``SyncEngine``
/// does (same header, same adaptive byte budget, same ack check). Preparation
/// is not timed; the timed part runs from the first upload until every change
/// set of every agent is acknowledged with a valid hub signature. The hub is a
/// `ferry hub serve` child process (or `--hub-url`), so its CPU and memory
/// figures are its own. `exactly_once` is computed afterwards from the hub's
/// operator API (status totals, each agent's applied sequence, every record's
/// winners), never assumed.
struct BenchHub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub",
        abstract: "W2 hub-ingest benchmark (WORKLOAD.md): enrolled agents upload over HTTP to a real hub.",
        discussion: """
            Prints one JSON object on stdout; progress and problems go to stderr.
            Full W2: ferry bench hub --agents 124 --records 3120 --concurrency 4 (release build).
            On PostgreSQL: add --store postgres://user@host:port/database (an empty database) and --hubs N;
            --store postgres starts a throwaway server with scripts/pg-test.sh (a source checkout) and stops it after.
            """)
    @Option(help: "Agents (one per commune of the hub's seed list, round robin).") var agents = 124
    @Option(help: "Land records each agent creates (12 fields each).") var records = 3120
    @Option(help: "Agents uploading at once (K).") var concurrency = 4
    @Option(help: "Seed of the record generator.") var seed = 42
    @Option(help: "Scratch directory (kept afterwards; default: a temporary one, removed).") var workdir: String?
    @Option(help: "Run against this already-running hub instead of starting one.") var hubURL: String?
    @Option(help: "With --hub-url: the hub's directory (operator.token; hub.sqlite for store_bytes).") var hubDir:
        String?
    @Option(help: "With --hub-url: the operator token (or $FERRY_OPERATOR_TOKEN, or --hub-dir).") var operatorToken:
        String?
    @Option(help: "With --hub-url: the hub's process id, for hub CPU and peak RSS.") var hubPid: Int32?
    @Option(help: "Largest change set in bytes (the agents' default; the adaptive budget starts lower).")
    var maxChangeSetBytes = 512 * 1024
    @Option(help: "Also cap each change set at this many writes (for a hub that bounds them).") var maxWrites: Int?
    @Option(help: "Seconds the timed upload phase may take before the run is abandoned.") var timeout = 3600
    @Option(
        help:
            "Hub store: postgres://user@host:port/database (an empty database), or postgres for a throwaway server; default: SQLite."
    )
    var store: String?
    @Option(help: "With --store: hub processes sharing the database (agents spread over them round robin).")
    var hubs = 1

    func run() async throws {
        guard (1...10_000).contains(agents), (1...1_000_000).contains(records), (1...1024).contains(concurrency),
            (16 * 1024...64 << 20).contains(maxChangeSetBytes), (1...86_400).contains(timeout),
            maxWrites.map({ (1...10_000_000).contains($0) }) ?? true, (1...64).contains(hubs)
        else {
            throw UserError(
                "--agents must be 1…10000, --records 1…1000000, --concurrency 1…1024, --max-change-set-bytes 16 KiB…64 MiB, --max-writes 1…10000000, --timeout 1…86400 s, --hubs 1…64"
            )
        }
        if hubs > 1 && store == nil {
            throw UserError("--hubs needs --store postgres://… (one database, several hubs)")
        }
        if store != nil && hubURL != nil { throw UserError("--store starts its own hubs: leave out --hub-url") }
        let logger = Log.logger("ferry.bench")
        let dir = workdir ?? NSTemporaryDirectory() + "ferry-w2-\(getpid())"
        if FileManager.default.fileExists(atPath: dir + "/agents") {
            throw UserError("\(dir) already holds a benchmark run: pass an empty or new --workdir")
        }
        try FileManager.default.createDirectory(atPath: dir + "/agents", withIntermediateDirectories: true)
        defer { if workdir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let spawn = Spawn(directory: dir)

        // The hub: a child `ferry hub serve` on a free port, or the one given,
        // or N of them in front of one PostgreSQL database.
        var child: Process?
        var children: [Process] = []
        var pg: PostgresBench?
        defer {
            if let child { Spawn.stop(child) }
            for c in children { Spawn.stop(c) }
            pg?.close()
        }
        let hub: HubTarget
        if let store {
            let p = try PostgresBench.open(store: store)
            pg = p
            let started = try PostgresBench.startHubs(hubs, url: p.url, dir: dir, spawn: spawn)
            children = started.hubs.map(\.process)
            guard
                waitUntil(
                    timeout: 60,
                    {
                        started.hubs.allSatisfy { !$0.process.isRunning || (try? $0.home.url()) != nil }
                    }), started.hubs.allSatisfy({ $0.process.isRunning })
            else {
                throw UserError("the hubs did not start within 60 s: see \(dir)/hub*.log")
            }
            let urls = try started.hubs.map { try $0.home.url() }
            hub = HubTarget(
                url: urls[0], operatorToken: try started.first.operatorToken(),
                pid: started.hubs[0].process.processIdentifier, storeDir: nil, urls: urls,
                pids: started.hubs.map(\.process.processIdentifier))
        } else if let hubURL {
            let home = hubDir.map { HubHome(directory: $0) }
            let env = ProcessInfo.processInfo.environment["FERRY_OPERATOR_TOKEN"]
            guard let token = try operatorToken ?? env ?? home?.operatorToken() else {
                throw UserError(
                    "--hub-url needs the operator token: --operator-token, $FERRY_OPERATOR_TOKEN or --hub-dir")
            }
            hub = HubTarget(
                url: hubURL, operatorToken: token, pid: hubPid, storeDir: hubDir, urls: [hubURL],
                pids: hubPid.map { [$0] } ?? [])
        } else {
            let home = HubHome(directory: dir + "/hub")
            try spawn.run(["hub", "init", "--dir", home.directory])
            let p = try spawn.start(
                ["hub", "serve", "--dir", home.directory, "--port", "0"], log: dir + "/hub.log")
            child = p
            guard waitUntil(timeout: 30, { !p.isRunning || (try? home.url()) != nil }), p.isRunning else {
                throw UserError("the hub did not start within 30 s: see \(dir)/hub.log")
            }
            hub = HubTarget(
                url: try home.url(), operatorToken: try home.operatorToken(), pid: p.processIdentifier,
                storeDir: home.directory, urls: [try home.url()], pids: [p.processIdentifier])
        }
        let ops = OperatorClient(url: hub.url, token: hub.operatorToken)
        note(
            "hubs \(hub.urls.joined(separator: " ")) pids \(hub.pids.map(String.init).joined(separator: " ")); preparing \(agents) agents"
        )
        // The database server's processes, when /proc shows them (a local server this user may read).
        let postmaster = pg.flatMap { PostgresBench.figures(url: $0.url).dataDirectory }
            .flatMap(PostgresBench.postmasterPID)

        // Preparation (not timed): enroll, first sync, create records, seal change sets.
        let communes = Seed.communes
        guard !communes.isEmpty else { throw UserError("the seed list has no communes") }
        let plan = Plan(
            records: records, seed: UInt64(truncatingIfNeeded: seed), maxChangeSetBytes: maxChangeSetBytes,
            maxWrites: maxWrites ?? Int.max)
        let t0 = Date()
        let prepared = try await withThrowingTaskGroup(of: PreparedAgent.self) { group in
            var out: [PreparedAgent] = []
            var next = 0
            // Two at a time: the machine has two cores, and the hub needs one.
            for _ in 0..<min(2, agents) {
                let i = next
                next += 1
                group.addTask { try await Self.prepare(i, communes[i % communes.count], plan, hub: hub, dir: dir) }
            }
            while let a = try await group.next() {
                out.append(a)
                if out.count % 10 == 0 { note("prepared \(out.count)/\(agents) agents") }
                if next < agents {
                    let i = next
                    next += 1
                    group.addTask { try await Self.prepare(i, communes[i % communes.count], plan, hub: hub, dir: dir) }
                }
            }
            return out.sorted { $0.index < $1.index }
        }
        let prepSeconds = Date().timeIntervalSince(t0)
        let totalWrites = prepared.reduce(0) { $0 + $1.writes }
        let totalSets = prepared.reduce(0) { $0 + $1.sets.count }
        note(
            "prepared \(agents) agents in \(Int(prepSeconds)) s: \(totalWrites) field writes in \(totalSets) change sets; uploading with K = \(concurrency)"
        )
        // On PostgreSQL from the database itself: the operator status page also
        // lists operator work items, which only the SQLite store keeps so far.
        let status: () async throws -> StatusBody = {
            if let pg { return try PostgresBench.status(url: pg.url) }
            return try await ops.call("GET", "status", as: StatusBody.self)
        }
        let before = try await status()

        // Timed: K agents upload at once, each its change sets strictly in sequence.
        let ledger = UploadLedger(count: prepared.count)
        let cpu0 = Self.cpuSeconds(hub.pids)
        let pgCPU0 = postmaster.flatMap(PostgresBench.serverCPUSeconds)
        let start = Date()
        let deadline = start.addingTimeInterval(Double(timeout))
        note("timed phase started")
        await withTaskGroup(of: Bool.self) { group in
            let k = min(concurrency, prepared.count)
            for _ in 0..<k {
                group.addTask {
                    // One client per hub this uploader meets (agents are spread over the hubs).
                    var clients: [String: HubClient] = [:]
                    while let i = await ledger.take() {
                        let a = prepared[i]
                        let client = clients[a.hubURL] ?? HubClient(baseURL: a.hubURL, link: Self.benchLink)
                        clients[a.hubURL] = client
                        await Self.upload(a, client: client, ledger: ledger, deadline: deadline)
                    }
                    for c in clients.values { await c.shutdown() }
                    return true
                }
            }
            group.addTask {
                // Progress for long runs; cancelled when the uploaders are done.
                var ticks = 0
                while ticks < 86_400 {
                    do { try await Task.sleep(nanoseconds: 1_000_000_000) } catch { break }
                    ticks += 1
                    if ticks % 15 == 0 {
                        let acked = await ledger.ackedWrites
                        note("\(ticks) s: \(acked)/\(totalWrites) field writes acknowledged")
                    }
                }
                return false
            }
            var uploaders = 0
            while let isUploader = await group.next() {
                if isUploader { uploaders += 1 }
                if uploaders == k { group.cancelAll() }
            }
        }
        let wall = Date().timeIntervalSince(start)
        let cpu1 = Self.cpuSeconds(hub.pids)
        let pgCPU1 = postmaster.flatMap(PostgresBench.serverCPUSeconds)
        // The largest single hub process.
        let rss = hub.pids.compactMap(Self.peakRSSKB).max()
        let result = await ledger.snapshot()
        note("timed phase done in \(String(format: "%.1f", wall)) s; checking the hub's rows")

        // Exactly once, from the hub's own answers.
        var problems = result.failures
        let after = try await status()
        problems += Self.checkTotals(
            before: before, after: after, records: agents * records, writes: totalWrites,
            changeSets: result.applied)
        let applied = Dictionary(after.agents.map { ($0.id, $0.appliedSeq) }, uniquingKeysWith: { a, _ in a })
        for a in prepared where applied[a.id] != UInt64(a.writes) {
            problems.append(
                "agent \(a.id) applied_seq is \(applied[a.id].map(String.init) ?? "absent"), sent \(a.writes)")
        }
        problems += try await Self.checkWinners(prepared, hub: hub)

        // The store, checkpointed once the hub has stopped (our own hub only).
        var storeBytes: Int?
        var storeNote = "hub.sqlite + -wal + -shm after the hub stopped and a TRUNCATE checkpoint"
        if let pg {
            for c in children { Spawn.stop(c, seconds: 30) }
            children = []
            storeBytes = PostgresBench.figures(url: pg.url).tableBytes
            storeNote =
                "pg_total_relation_size of every table of the database (indexes and TOAST included, WAL not), after the hubs stopped"
        } else if let p = child {
            Spawn.stop(p, seconds: 30)
            child = nil
            if let d = hub.storeDir { storeBytes = try Self.storeBytes(dir: d, checkpoint: true) }
        } else if let d = hub.storeDir {
            storeNote = "hub.sqlite + -wal + -shm of the running hub (no checkpoint)"
            storeBytes = try Self.storeBytes(dir: d, checkpoint: false)
        } else {
            storeNote = "unknown: pass --hub-dir"
        }
        if !problems.isEmpty {
            for p in problems.prefix(20) { note("exactly-once problem: \(p)") }
            if problems.count > 20 { note("… and \(problems.count - 20) more") }
        }

        let lat = result.latenciesMs.sorted()
        var out: [String: Any] = [
            "wall_s": Self.round(wall, 3),
            "field_writes_per_s": Self.round(Double(totalWrites) / max(wall, 1e-9), 0),
            "change_sets": result.applied + result.duplicates,
            "upload_p50_ms": Self.round(Self.percentile(lat, 0.50), 1),
            "upload_p99_ms": Self.round(Self.percentile(lat, 0.99), 1),
            "exactly_once": problems.isEmpty,
            "k": concurrency, "agents": agents, "records_per_agent": records, "field_writes": totalWrites,
            "upload_max_ms": Self.round(lat.last ?? 0, 1), "retries": result.retries,
            "duplicates": result.duplicates, "prepare_s": Self.round(prepSeconds, 1), "seed": seed,
            "max_change_set_bytes": maxChangeSetBytes, "store_bytes_includes": storeNote,
            "client_cpu_s": Self.round(Self.ownCPUSeconds(), 2),
            "store": pg == nil ? "sqlite" : "postgres", "hubs": hub.urls.count,
        ]
        if let cpu0, let cpu1 {
            out["hub_cpu_s"] = Self.round(cpu1 - cpu0, 2)
            var counted = cpu1 - cpu0
            var what = "\(hub.pids.count) hub process\(hub.pids.count == 1 ? "" : "es")"
            if pg != nil {
                if let pgCPU0, let pgCPU1 {
                    out["postgres_cpu_s"] = Self.round(pgCPU1 - pgCPU0, 2)
                    counted += pgCPU1 - pgCPU0
                    what += " + the PostgreSQL server (postmaster, backends and helpers, from /proc)"
                } else {
                    out["postgres_cpu_s"] = NSNull()
                    what += " only: the PostgreSQL server's processes are not visible in /proc"
                }
            } else {
                what += " (SQLite runs inside the hub)"
            }
            out["cpu_counted"] = what
            out["writes_per_hub_cpu_s"] = Self.round(Double(totalWrites) / max(counted, 1e-9), 0)
        } else {
            out["hub_cpu_s"] = NSNull()
            out["writes_per_hub_cpu_s"] = NSNull()
        }
        out["hub_rss_peak_kb"] = rss.map { $0 as Any } ?? NSNull()
        if let storeBytes {
            out["store_bytes"] = storeBytes
            out["store_bytes_per_field_write"] = Self.round(Double(storeBytes) / Double(max(totalWrites, 1)), 1)
        } else {
            out["store_bytes"] = NSNull()
        }
        let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        logger.debug("bench done", metadata: ["ferry.bench.dir": "\(dir)"])
        if !problems.isEmpty { throw ExitCode(2) }
    }

    // MARK: preparation

    /// Enrolls agent `index` in `commune`, syncs it once, creates its records and
    /// seals its whole outbox into change sets the way ``SyncEngine`` would.
    /// Loopback, not a commune link: generous timeouts, so a busy hub is measured, not cut off.
    static var benchLink: LinkSettings {
        var l = LinkSettings()
        l.connectTimeoutSeconds = 30
        l.idleTimeoutSeconds = 300
        return l
    }

    static func prepare(_ index: Int, _ commune: Commune, _ plan: Plan, hub: HubTarget, dir: String) async throws
        -> PreparedAgent
    {
        let spawn = Spawn(directory: dir)
        // Round robin over the hubs: each agent enrolls at, and uploads to, one of them.
        let hubURL = hub.urls.isEmpty ? hub.url : hub.urls[index % hub.urls.count]
        let issued = try spawn.run(
            ["hub", "token", "--commune", commune.code, "--hub", hubURL],
            environment: ["FERRY_OPERATOR_TOKEN": hub.operatorToken])
        let token = issued.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let home = AgentHome(directory: dir + "/agents/\(index)")
        let config = try await Enrollment.enroll(
            hubURL: hubURL, token: token, home: home, hostname: "bench-\(index)")
        // A first sync, as a new agent does: the catalog (forms) and the hub's clock.
        let engine = try SyncEngine(home: home, logger: Log.logger("ferry.agent"))
        do {
            try await engine.syncOnce()
        } catch {
            await engine.shutdown()
            throw error
        }
        await engine.shutdown()

        let store = try home.store()
        guard let form = try store.form("land-record") else {
            throw UserError("the hub's catalog has no land-record form (is it a `ferry hub init` hub?)")
        }
        var gen = SampleLandRecords(seed: plan.seed &* 1_000_003 &+ UInt64(index))
        var made = 0
        while made < plan.records {
            let n = min(1000, plan.records - made)
            try store.createMany(form: form, commune: config.commune, rows: (0..<n).map { _ in gen.next() })
            made += n
        }

        // SyncEngine's freeze and seal, with its budget assuming every upload
        // succeeds; the sets are released locally so the next one can freeze.
        let identity = try home.identity()
        let hubKeys = try home.hubKeys()
        let transmit = try identity.kx.clientSessionKeys(server: hubKeys.kx).transmit
        var budget = min(64 * 1024, plan.maxChangeSetBytes)
        var sets: [SealedSet] = []
        var digests: [RecordID: UInt64] = [:]
        var problems: [String] = []
        for _ in 0..<1_000_000 {
            var maxWrites = min(max(1, budget / 24), plan.maxWrites)
            var frozen: InFlight?
            var body = ChangeSetBody()
            for _ in 0..<32 {
                do {
                    let limit = budget
                    frozen = try store.freeze(maxWrites: maxWrites) { b, ctx in
                        let header = ChangeSetHeader(
                            id: randomBytes(16), origin: store.origin, seqFrom: ctx.seqFrom, seqTo: ctx.seqTo,
                            ack: ctx.hubCursor, senderKeyID: identity.signing.publicKey.id,
                            recipientKeyID: hubKeys.kx.id, createdHLC: ctx.now, compression: .zstd,
                            commune: config.commune)
                        let s = try Envelope.seal(
                            header: header, body: b, signer: identity.signing, key: transmit,
                            zstdLevel: Compressor.wireLevel)
                        if s.envelope.count > limit && b.writes.count > 1 { throw TooBig() }
                        body = b
                        return (s.header.id, s.envelope)
                    }
                    break
                } catch is TooBig {
                    maxWrites = max(1, maxWrites / 2)
                }
            }
            guard let f = frozen else { break }
            try store.acknowledge(upTo: f.seqTo)
            sets.append(
                SealedSet(
                    id: hex(f.id), seqFrom: f.seqFrom, seqTo: f.seqTo, envelope: f.envelope,
                    writes: body.writes.count))
            for (r, d) in Self.digests(body.writes) {
                if digests.updateValue(d, forKey: r) != nil { problems.append("record \(r) sealed twice") }
                if body.scopes[r]?.commune != config.commune { problems.append("record \(r) outside its commune") }
            }
            budget = min(plan.maxChangeSetBytes, budget * 3 / 2)
        }
        guard problems.isEmpty else { throw UserError("agent \(index): " + problems.prefix(3).joined(separator: "; ")) }
        let writes = sets.reduce(0) { $0 + $1.writes }
        guard writes == plan.records * 12, sets.last?.seqTo == UInt64(writes) else {
            throw UserError("agent \(index) sealed \(writes) writes, expected \(plan.records * 12)")
        }
        return PreparedAgent(
            index: index, id: config.agentID, commune: config.commune, hubURL: hubURL, hubSign: hubKeys.sign,
            sets: sets,
            writes: writes, digests: digests)
    }

    struct TooBig: Error {}

    // MARK: the timed uploads

    /// Uploads one agent's change sets in sequence, as SyncEngine does: a set is
    /// released only by an acknowledgement signed by the hub that covers it;
    /// "busy" and 5xx answers are retried with the same bytes (bounded).
    static func upload(_ a: PreparedAgent, client: HubClient, ledger: UploadLedger, deadline: Date) async {
        struct Ack: Decodable {
            var status: String
            var cursor: UInt64
            var signature: String
        }
        for s in a.sets {
            var done = false
            for attempt in 0..<30 where !done {
                guard Date() < deadline else {
                    await ledger.fail("agent \(a.id): the run's time limit passed before set \(s.seqFrom)…\(s.seqTo)")
                    return
                }
                let t = DispatchTime.now().uptimeNanoseconds
                let answer: HubAnswer
                do {
                    answer = try await client.send(
                        .POST, "/v1/changesets", body: s.envelope,
                        headers: ["Content-Type": "application/octet-stream"])
                } catch {
                    await ledger.retry()
                    try? await Task.sleep(nanoseconds: UInt64(min(5.0, 0.1 * Double(1 << min(attempt, 6))) * 1e9))
                    continue
                }
                let ms = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6
                if answer.status == 200 {
                    guard let ack = try? HubJSON.decoder.decode(Ack.self, from: Data(answer.body)),
                        ack.cursor >= s.seqTo, let sig = unhex(ack.signature),
                        a.hubSign.verify(
                            signature: sig,
                            of: AckAuth.message(agent: a.id, changeSet: s.id, cursor: ack.cursor, status: ack.status))
                    else {
                        await ledger.fail(
                            "agent \(a.id) set \(s.seqFrom)…\(s.seqTo): the answer is not a valid signed ack")
                        return
                    }
                    await ledger.acked(latencyMs: ms, writes: s.writes, duplicate: ack.status == "duplicate")
                    done = true
                } else if answer.status == 429 || answer.status >= 500 {
                    await ledger.retry()
                    try? await Task.sleep(nanoseconds: UInt64(min(5.0, 0.1 * Double(1 << min(attempt, 6))) * 1e9))
                } else {
                    let code = answer.error?.code ?? "http_\(answer.status)"
                    await ledger.fail(
                        "agent \(a.id) set \(s.seqFrom)…\(s.seqTo) (\(s.writes) writes) refused [\(code)]: \(answer.error?.message ?? "")"
                            + (code == "oversized"
                                ? " (rerun with a smaller --max-writes or --max-change-set-bytes)" : ""))
                    return
                }
            }
            if !done {
                await ledger.fail("agent \(a.id) set \(s.seqFrom)…\(s.seqTo): no acknowledgement after 30 attempts")
                return
            }
        }
    }

    // MARK: checks

    static func checkTotals(before: StatusBody, after: StatusBody, records: Int, writes: Int, changeSets: Int)
        -> [String]
    {
        var p: [String] = []
        func delta(_ k: String) -> Int? {
            guard let a = after.totals[k], let b = before.totals[k] else { return nil }
            return a - b
        }
        for (k, want) in [
            ("records", records), ("leaves", writes), ("conflicts", 0), ("quarantined", 0), ("changesets", changeSets),
        ] {
            guard let d = delta(k) else {
                p.append("the hub's status has no totals.\(k)")
                continue
            }
            if d != want { p.append("hub totals.\(k) grew by \(d), expected \(want)") }
        }
        return p
    }

    /// Every record each agent sent is at the hub with exactly the sent fields and values.
    static func checkWinners(_ agents: [PreparedAgent], hub: HubTarget) async throws -> [String] {
        var expected: [String: [RecordID: UInt64]] = [:]
        for a in agents { expected[a.commune, default: [:]].merge(a.digests) { x, _ in x } }
        var p: [String] = []
        let client = HubClient(baseURL: hub.url, link: Self.benchLink)
        defer { Task { await client.shutdown() } }  // detached: the checks' result must not wait on cleanup
        for (commune, want) in expected.sorted(by: { $0.key < $1.key }) {
            let a = try await client.send(
                .GET, "/v1/ops/winners?commune=\(commune)", headers: ["Authorization": "Bearer \(hub.operatorToken)"],
                expectedBytes: 64 << 20, maxBytes: 1 << 30)
            // A plain decoder: field names are dictionary keys and must stay as the hub wrote them.
            guard a.status == 200,
                let got = try? JSONDecoder().decode([String: [String: String]].self, from: Data(a.body))
            else {
                p.append("commune \(commune): the hub's winners could not be read (HTTP \(a.status))")
                continue
            }
            var seen = 0
            var wrong = 0
            for (id, fields) in got {
                guard let rid = RecordID(id), let w = want[rid] else { continue }
                seen += 1
                if digest(fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }) != w { wrong += 1 }
            }
            if seen != want.count {
                p.append("commune \(commune): \(want.count - seen) sent records missing at the hub")
            }
            if wrong > 0 { p.append("commune \(commune): \(wrong) records differ from what was sent") }
        }
        return p
    }

    /// One digest per record of its writes' fields and values ("type:value",
    /// as the operator API shows winners), so what was sent can be compared
    /// with what the hub holds without keeping 4.6 M values in memory.
    static func digests(_ writes: [FieldWrite]) -> [RecordID: UInt64] {
        var by: [RecordID: [(String, String)]] = [:]
        for w in writes { by[w.record, default: []].append((w.field, "\(w.value.typeName):\(w.value.display)")) }
        return by.mapValues { digest($0.sorted { $0.0 < $1.0 }) }
    }

    /// FNV-1a over field, value pairs in field order.
    static func digest(_ pairs: [(String, String)]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (f, v) in pairs {
            for b in f.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0x1f) &* 0x100_0000_01b3
            for b in v.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            h = (h ^ 0x1e) &* 0x100_0000_01b3
        }
        return h
    }

    // MARK: measurements

    /// utime + stime of every process, summed; nil when one is not readable (or none is given).
    static func cpuSeconds(_ pids: [Int32]) -> Double? {
        guard !pids.isEmpty else { return nil }
        var sum = 0.0
        for p in pids {
            guard let s = cpuSeconds(p) else { return nil }
            sum += s
        }
        return sum
    }

    /// utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name, which may hold spaces: state is field 3.
        let f = s[s.index(after: close)...].split(separator: " ")
        guard f.count > 13, let u = Double(f[11]), let k = Double(f[12]) else { return nil }
        return (u + k) / Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
    }

    /// VmHWM (peak resident set) of a process in KiB.
    static func peakRSSKB(_ pid: Int32) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    static func ownCPUSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        let t = [u.ru_utime, u.ru_stime].reduce(0.0) { $0 + Double($1.tv_sec) + Double($1.tv_usec) / 1e6 }
        return t
    }

    static func storeBytes(dir: String, checkpoint: Bool) throws -> Int {
        let path = dir + "/hub.sqlite"
        if checkpoint, FileManager.default.fileExists(atPath: path) {
            let q = try DatabaseQueue(path: path)
            try q.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try q.close()
        }
        return ["", "-wal", "-shm"].reduce(0) { sum, suffix in
            let size = (try? FileManager.default.attributesOfItem(atPath: path + suffix))?[.size] as? NSNumber
            return sum + (size?.intValue ?? 0)
        }
    }

    /// Nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    static func round(_ x: Double, _ digits: Int) -> Double {
        let m = pow(10.0, Double(digits))
        return (x * m).rounded() / m
    }
}

func note(_ s: String) { FileHandle.standardError.write(Data(("bench: " + s + "\n").utf8)) }

/// What every agent prepares (the command's options, as a value the tasks can share).
struct Plan: Sendable {
    var records: Int
    var seed: UInt64
    var maxChangeSetBytes: Int
    var maxWrites: Int
}

/// Where the benchmark's hub is.
struct HubTarget: Sendable {
    var url: String
    var operatorToken: String
    var pid: Int32?
    var storeDir: String?
    /// Every hub process's URL (agents spread over them) and pid (for CPU time).
    var urls: [String]
    var pids: [Int32]
}

/// One sealed change set, ready to send.
struct SealedSet: Sendable {
    var id: String
    var seqFrom: UInt64
    var seqTo: UInt64
    var envelope: [UInt8]
    var writes: Int
}

/// One enrolled agent with its change sets and a digest of every record it sent.
struct PreparedAgent: Sendable {
    var index: Int
    var id: String
    var commune: String
    /// The hub this agent enrolled at and uploads to.
    var hubURL: String
    var hubSign: SigningPublicKey
    var sets: [SealedSet]
    var writes: Int
    var digests: [RecordID: UInt64]
}

/// The operator API's status body, as much of it as the checks need.
struct StatusBody: Decodable {
    struct Agent: Decodable {
        init(id: String, appliedSeq: UInt64) {
            self.id = id
            self.appliedSeq = appliedSeq
        }
        var id: String
        var appliedSeq: UInt64
    }
    var totals: [String: Int]
    var agents: [Agent]
    init(totals: [String: Int], agents: [Agent]) {
        self.totals = totals
        self.agents = agents
    }
}

/// Hands agents to the K uploaders and collects what happened.
actor UploadLedger {
    let count: Int
    private var next = 0
    private(set) var ackedWrites = 0
    struct Result {
        var latenciesMs: [Double] = []
        var applied = 0
        var duplicates = 0
        var retries = 0
        var failures: [String] = []
    }
    private var r = Result()

    init(count: Int) { self.count = count }

    func take() -> Int? {
        guard next < count else { return nil }
        next += 1
        return next - 1
    }

    func acked(latencyMs: Double, writes: Int, duplicate: Bool) {
        r.latenciesMs.append(latencyMs)
        ackedWrites += writes
        if duplicate { r.duplicates += 1 } else { r.applied += 1 }
    }

    func retry() { r.retries += 1 }
    func fail(_ why: String) { r.failures.append(why) }
    func snapshot() -> Result { r }
}

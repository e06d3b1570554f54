import FerryHub
import FerryPostgres
import FerryStore
import Foundation

/// The PostgreSQL side of `ferry bench hub` (issue 10): N `ferry hub serve`
/// processes on their own ports in front of one database, a throwaway server
/// when only `--store postgres` is given, and the figures only the database
/// knows (its tables' size, its processes' CPU time).
struct PostgresBench {
    /// The database URL the hubs share (with the password, for `hub init` only).
    var url: String
    /// The throwaway server's directory (`scripts/pg-test.sh start`), stopped at the end; nil for a given URL.
    var throwaway: String?

    /// `scripts/pg-test.sh` of the source tree this binary was built from, or `$FERRY_PG_TEST_SCRIPT`.
    static var script: String {
        if let s = ProcessInfo.processInfo.environment["FERRY_PG_TEST_SCRIPT"], !s.isEmpty { return s }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/pg-test.sh").path
    }

    /// `--store postgres://…` as given, or (`--store postgres`) a throwaway
    /// server started by `scripts/pg-test.sh` (the script the tests use) in the temporary directory.
    static func open(store: String) throws -> PostgresBench {
        if PostgresURL.isPostgres(store) {
            do { _ = try PostgresURL(store) } catch let e as HubError { throw UserError(e.message) }
            return PostgresBench(url: store, throwaway: nil)
        }
        guard store == "postgres" else {
            throw UserError("--store must be postgres://user@host:port/database, or postgres for a throwaway server")
        }
        let path = script
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw UserError(
                "--store postgres starts a throwaway server with \(path), which is not here: give a postgres:// URL or set FERRY_PG_TEST_SCRIPT"
            )
        }
        // In the temporary directory, not the work directory: the server runs as
        // `postgres` (under root), which must reach its data directory.
        let pgDir = NSTemporaryDirectory() + "ferry-bench-pg-\(getpid())"
        let r = try run(["/bin/bash", path, "start", pgDir])
        let url = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, PostgresURL.isPostgres(url) else {
            throw UserError("scripts/pg-test.sh start failed (exit \(r.status)): \(r.err.suffix(2000))")
        }
        return PostgresBench(url: url, throwaway: pgDir)
    }

    /// Stops the throwaway server (and removes its directory); a given server is left alone.
    func close() {
        guard let throwaway else { return }
        _ = try? Self.run(["/bin/bash", Self.script, "stop", throwaway])
    }

    /// `ferry hub init --store URL` once, then N hub directories sharing its
    /// keys, operator token and database, each served by its own process on a free port.
    static func startHubs(_ n: Int, url: String, dir: String, spawn: Spawn) throws -> (
        hubs: [(home: HubHome, process: Process)], first: HubHome
    ) {
        let first = HubHome(directory: dir + "/hub0")
        try spawn.run(["hub", "init", "--dir", first.directory, "--store", url])
        var homes = [first]
        for i in 1..<max(1, n) {
            let h = HubHome(directory: dir + "/hub\(i)")
            try FileManager.default.createDirectory(
                atPath: h.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for f in ["hub.key", "operator.token", "hub.store"] {
                try FileManager.default.copyItem(atPath: first.directory + "/" + f, toPath: h.directory + "/" + f)
            }
            homes.append(h)
        }
        var out: [(home: HubHome, process: Process)] = []
        for (i, h) in homes.enumerated() {
            out.append(
                (h, try spawn.start(["hub", "serve", "--dir", h.directory, "--port", "0"], log: dir + "/hub\(i).log")))
        }
        return (out, first)
    }

    /// The database's figures, read through a store of its own (after the hubs stopped).
    static func figures(url: String) -> (tableBytes: Int?, dataDirectory: String?) {
        guard let s = try? PostgresHubStore(url: url) else { return (nil, nil) }
        return (try? s.tableBytes(), s.dataDirectory())
    }

    /// The totals and agents' applied sequences, read from the database (what the status page shows).
    static func status(url: String) throws -> StatusBody {
        let s: PostgresHubStore
        do { s = try PostgresHubStore(url: url) } catch let e as HubError { throw UserError(e.message) }
        return StatusBody(
            totals: try s.totals(), agents: try s.agents().map { .init(id: $0.id, appliedSeq: $0.appliedSeq) })
    }

    /// The postmaster's pid from `DATA/postmaster.pid`, when this process can read it (same machine).
    static func postmasterPID(dataDirectory: String) -> Int32? {
        guard let s = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
            let first = s.split(separator: "\n").first, let pid = Int32(first.trimmingCharacters(in: .whitespaces)),
            pid > 0
        else { return nil }
        return pid
    }

    /// CPU seconds of the server: the postmaster with its reaped children
    /// (cutime + cstime: backends that exited) plus every live child (backends,
    /// checkpointer, WAL writer). Nil when /proc does not show the postmaster.
    static func serverCPUSeconds(postmaster: Int32) -> Double? {
        guard let own = procTimes(postmaster) else { return nil }
        var total = own.selfSeconds + own.childrenSeconds
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for n in names {
            guard let pid = Int32(n), pid != postmaster, let t = procTimes(pid), t.parent == postmaster else {
                continue
            }
            total += t.selfSeconds + t.childrenSeconds
        }
        return total
    }

    /// Fields of /proc/PID/stat: parent pid, utime + stime, cutime + cstime (seconds).
    static func procTimes(_ pid: Int32) -> (parent: Int32, selfSeconds: Double, childrenSeconds: Double)? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = s.lastIndex(of: ")")
        else { return nil }
        // After the command name (which may hold spaces): state, ppid, … utime (14), stime, cutime, cstime (17).
        let f = s[s.index(after: close)...].split(separator: " ")
        guard f.count > 15, let ppid = Int32(f[1]), let u = Double(f[11]), let k = Double(f[12]),
            let cu = Double(f[13]), let ck = Double(f[14])
        else { return nil }
        let tick = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return (ppid, (u + k) / tick, (cu + ck) / tick)
    }

    /// Runs a helper (not ferry) to its end, bounded by `timeout` seconds;
    /// status, stdout, stderr. posix_spawn and waitpid with files, as
    /// `PostgresTestServer` does: Foundation's Process was seen here to miss the
    /// exit of the script whose grandchild (the postmaster) keeps running.
    static func run(_ args: [String], timeout: TimeInterval = 600) throws -> (status: Int32, out: String, err: String) {
        let base = NSTemporaryDirectory() + "ferry-bench-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let (outPath, errPath) = (base + ".out", base + ".err")
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
            FileManager.default.createFile(atPath: errPath, contents: nil),
            let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath)
        else { throw UserError("cannot create \(base).out/.err") }
        defer {
            try? out.close()
            try? err.close()
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out.fileDescriptor, 1)
        posix_spawn_file_actions_adddup2(&actions, err.fileDescriptor, 2)
        var cargs = args.map { strdup($0) }
        cargs.append(nil)
        defer { for a in cargs { free(a) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, args[0], &actions, nil, &cargs, environ) == 0 else {
            throw UserError("cannot start \(args[0])")
        }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) { break }
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw UserError("\(args.joined(separator: " ")) did not finish in \(Int(timeout)) s")
            }
            usleep(20_000)
        }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (
            code, (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }
}

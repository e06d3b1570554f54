import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway PostgreSQL server for the tests of one test process (issue 10):
/// started on first use by `scripts/pg-test.sh` (its own data directory, port
/// and socket directory on 127.0.0.1), stopped when the process exits. Tests
/// never use a server someone else started; each test takes a fresh database.
public final class PostgresTestServer: Sendable {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`: the maintenance database.
    public let url: String
    /// The server's directory (data, socket, log); removed at stop.
    public let directory: String

    private static let state = Mutex<Result<PostgresTestServer, PostgresTestServerError>?>(nil)
    private static let counter = Atomic<Int>(0)

    init(url: String, directory: String) {
        self.url = url
        self.directory = directory
    }

    /// The script that installs, starts and stops the server.
    public static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/pg-test.sh").path
    }

    /// The process's server, started on first call (tens of seconds when
    /// PostgreSQL must first be installed, about a second otherwise).
    /// - Throws: ``PostgresTestServerError`` with the script's output when it cannot start.
    public static func shared() throws -> PostgresTestServer {
        let r = state.withLock { s -> Result<PostgresTestServer, PostgresTestServerError> in
            if let s { return s }
            let r = Result { try start() }.mapError { ($0 as? PostgresTestServerError) ?? .init("\($0)") }
            s = r
            if case .success = r { atexit { PostgresTestServer.stopShared() } }
            return r
        }
        return try r.get()
    }

    static func start() throws -> PostgresTestServer {
        sweepStale()
        let dir = NSTemporaryDirectory() + "ferry-pg-test-\(getpid())"
        let (status, out, err) = run(["/bin/bash", script, "start", dir], timeout: 600)
        let url = out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard status == 0, url.hasPrefix("postgres://") else {
            throw PostgresTestServerError("scripts/pg-test.sh start failed (exit \(status)): \(err)\(out)")
        }
        return PostgresTestServer(url: url, directory: dir)
    }

    /// Stops the shared server (at process exit).
    static func stopShared() {
        guard case .success(let s) = state.withLock({ $0 }) else { return }
        _ = run(["/bin/bash", script, "stop", s.directory], timeout: 60)
    }

    /// Servers left by test processes that were killed: stop them.
    static func sweepStale() {
        let tmp = NSTemporaryDirectory()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
        for n in names where n.hasPrefix("ferry-pg-test-") {
            guard let pid = Int32(n.dropFirst("ferry-pg-test-".count)), pid != getpid() else { continue }
            // kill(pid, 0) fails with ESRCH once the process is gone.
            if kill(pid, 0) != 0 && errno == ESRCH {
                _ = run(["/bin/bash", script, "stop", tmp + n], timeout: 60)
            }
        }
    }

    /// A new, empty database on this server; its URL.
    public func makeDatabase(_ prefix: String = "t") throws -> String {
        let n = Self.counter.add(1, ordering: .relaxed).newValue
        let name = "\(prefix)_\(getpid())_\(n)_\(UInt32.random(in: 0...UInt32.max))".lowercased()
        let (status, out, err) = Self.run(
            ["/usr/bin/env", "psql", url, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE \(name)"], timeout: 60)
        guard status == 0 else {
            throw PostgresTestServerError("CREATE DATABASE \(name) failed (exit \(status)): \(err)\(out)")
        }
        // The maintenance URL ends in /postgres: the same server, the new database.
        return String(url.dropLast("postgres".count)) + name
    }

    /// Runs a command to its end (bounded by `timeout` seconds); its status, stdout and stderr.
    public static func run(_ args: [String], timeout: TimeInterval) -> (Int32, String, String) {
        // Files, not pipes: a chatty install cannot fill a pipe and block.
        let base = NSTemporaryDirectory() + "ferry-pg-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let (outPath, errPath) = (base + ".out", base + ".err")
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
            return (-1, "", "cannot create \(base).out/.err")
        }
        defer {
            try? out.close()
            try? err.close()
        }
        // posix_spawn and waitpid, not Foundation's Process: its exit monitoring
        // was seen to miss a child's exit inside the test runner (a zombie, forever).
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
            return (-1, "", "cannot start \(args[0])")
        }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(timeout)
        var done = false
        while !done {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno != EINTR) {
                done = true
            } else if Date() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                return (-1, "", "\(args.joined(separator: " ")) did not finish in \(Int(timeout)) s")
            } else {
                usleep(20_000)
            }
        }
        // The exit status as a shell reports it (WEXITSTATUS; 128+signal when killed).
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (
            code, (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        )
    }
}

/// The test server could not be started or used; the message carries the script's output.
public struct PostgresTestServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

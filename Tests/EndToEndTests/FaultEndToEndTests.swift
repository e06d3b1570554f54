import FerryAgent
import FerryCore
import FerryStore
import Foundation
import GRDB
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A small tmpfs the test mounts, fills, makes read-only and unmounts itself
/// (root only). It lives outside the sandbox so the sandbox can be removed first.
final class TmpFS {
    let path: String
    private var mounted = false

    /// True when this process may mount file systems (root on Linux).
    static var available: Bool {
        #if os(Linux)
            return getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount")
        #else
            return false
        #endif
    }

    init(megabytes: Int) throws {
        path = NSTemporaryDirectory() + "ferry-tmpfs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try Self.sh("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", path])
        mounted = true
    }

    static func sh(_ tool: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw HarnessError("`\(tool) \(args.joined(separator: " "))` failed (exit \(p.terminationStatus))")
        }
    }

    var filler: String { path + "/filler" }

    /// Writes a file until the disk is full (bounded by the tmpfs size).
    func fill() {
        _ = FileManager.default.createFile(atPath: filler, contents: nil)
        guard let fh = FileHandle(forWritingAtPath: filler) else { return }
        defer { try? fh.close() }
        let chunk = Data(repeating: 0x55, count: 16 * 1024)
        for _ in 0..<100_000 {
            do { try fh.write(contentsOf: chunk) } catch { break }
        }
        // The last partial page too.
        for _ in 0..<4096 {
            do { try fh.write(contentsOf: Data([0x55])) } catch { break }
        }
    }

    /// Frees the space `fill()` took.
    func free() { try? FileManager.default.removeItem(atPath: filler) }

    func remount(readOnly: Bool) throws {
        try Self.sh("/bin/mount", ["-o", readOnly ? "remount,ro" : "remount,rw", path])
    }

    func close() {
        if mounted {
            if (try? Self.sh("/bin/umount", [path])) == nil { try? Self.sh("/bin/umount", ["-l", path]) }
            mounted = false
        }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Folds the WAL into the database file and empties it, so the next write
/// needs fresh space on the disk (a WAL reuses space it already has).
func checkpoint(_ pool: DatabasePool) throws {
    try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
}

/// The hub and the agent on a disk that fills up, turns read-only, or holds a
/// damaged file: typed refusals (`disk_full`, `read_only`), nothing stored is
/// damaged, and work resumes by itself once the disk is back.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FaultEndToEndTests {
    static let commune = "24781"

    @Test(.enabled(if: TmpFS.available, "needs root to mount a tmpfs: skipped"))
    func diskFullAtTheHubIsRefusedAsDiskFullHealthSaysDegradedAndSyncResumesWhenSpaceIsBack() async throws {
        let fs = try TmpFS(megabytes: 8)
        defer { fs.close() }
        let sb = try Sandbox("hubfull")
        defer { sb.close() }
        try await sb.ok(["hub", "init", "--dir", fs.path + "/hub"])
        let hub = try await sb.serveHub(dir: fs.path + "/hub")
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let csv = try sampleCSV(sb, name: "a.csv", seed: 7, count: 200)
        try await sb.ok(["records", "import", csv.path, "--dir", a])
        let hubStore = try hubStore(hub.dir)
        try checkpoint(hubStore.pool)
        fs.fill()

        let refused = try await sb.run(["agent", "sync", "--dir", a])
        #expect(refused.status != 0)
        #expect(refused.text.contains("is full"), "\(refused.text)")
        #expect(!refused.text.contains("bad_request") && !refused.text.contains("SQLite error"), "\(refused.text)")
        let health = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/health") }
        let body = String(decoding: health.body, as: UTF8.self)
        #expect(health.status == 503, "\(body)")
        #expect(body.contains("\"status\":\"degraded\"") && body.contains("\"store_writable\":false"), "\(body)")
        #expect(body.contains("disk_full"), "\(body)")
        // What the hub stored is intact, and none of the refused writes is half there.
        try hubStore.verifyIntegrity()
        #expect(try hubStore.winners(commune: Self.commune).isEmpty)
        #expect(try hubStore.communes().count == 124)
        // Downloads only read: they still work.
        let statusRun = try await sb.run(["status", "--dir", a, "--json"])
        #expect(statusRun.status != 0, "\(statusRun.text)")
        let status = try decodeJSON(StatusJSON.self, statusRun.out)
        #expect(!status.inSync)

        fs.free()
        // No restart: the same hub process says it is healthy again by itself.
        var healthy = false
        for _ in 0..<50 where !healthy {
            healthy = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/health") }.status == 200
            if !healthy { try await Task.sleep(nanoseconds: 200_000_000) }
        }
        #expect(healthy, "health must turn ok once space is back")
        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.complete)
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        let after = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/health") }
        #expect(after.status == 200, "\(String(decoding: after.body, as: UTF8.self))")
        #expect(try hubStore.winners(commune: Self.commune).count == 200)
    }

    @Test(.enabled(if: TmpFS.available, "needs root to mount a tmpfs: skipped"))
    func diskFullAtTheAgentRefusesLocalWritesAsDiskFullAndKeepsTheReplicaIntact() async throws {
        let fs = try TmpFS(megabytes: 8)
        defer { fs.close() }
        let sb = try Sandbox("agentfull")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let token = try await sb.ok(["hub", "token", "--commune", Self.commune, "--hub-dir", hub.dir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let a = fs.path + "/agent"
        try await sb.ok(["agent", "enroll", hub.url, token, "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])
        try await sb.ok([
            "records", "add", "owner_name=Trần Thị Bích", "owner_id=068100200300", "status=draft", "--dir", a,
        ])
        let (store, _) = try agentStore(a)
        try checkpoint(store.pool)
        let before = try store.fullState()
        fs.fill()

        let add = try await sb.run([
            "records", "add", "owner_name=Võ Văn Kiệt An", "owner_id=068100200301", "status=draft", "--dir", a,
        ])
        #expect(add.status != 0)
        #expect(add.text.contains("is full") && add.text.contains("free some space"), "\(add.text)")
        #expect(!add.text.contains("SQLite error"), "\(add.text)")
        let sync = try await sb.run(["agent", "sync", "--dir", a])
        #expect(sync.status != 0)
        #expect(sync.text.contains("is full"), "\(sync.text)")
        try store.verifyIntegrity()
        #expect(try store.fullState() == before, "nothing stored changed")

        fs.free()
        try await sb.ok([
            "records", "add", "owner_name=Võ Văn Kiệt An", "owner_id=068100200301", "status=draft", "--dir", a,
        ])
        try await sb.ok(["agent", "sync", "--dir", a])
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(hub.dir))
        #expect(try store.fullState().count == 2)
    }

    @Test(.enabled(if: TmpFS.available, "needs root to mount a tmpfs: skipped"))
    func aReadOnlyDirectoryRefusesWritesAsReadOnlyAndWorkResumesOnceWritable() async throws {
        let fs = try TmpFS(megabytes: 16)
        defer { fs.close() }
        let sb = try Sandbox("readonly")
        defer { sb.close() }
        try await sb.ok(["hub", "init", "--dir", fs.path + "/hub"])
        let port = try freePort()
        var hub = try await sb.serveHub(dir: fs.path + "/hub", port: port)
        let token = try await sb.ok(["hub", "token", "--commune", Self.commune, "--hub-dir", hub.dir])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let a = fs.path + "/agent"
        try await sb.ok(["agent", "enroll", hub.url, token, "--dir", a])
        try await sb.ok(["agent", "sync", "--dir", a])
        sb.stop(hub.process)
        try fs.remount(readOnly: true)
        defer { try? fs.remount(readOnly: false) }

        let add = try await sb.run([
            "records", "add", "owner_name=Đặng Thị Mai", "owner_id=068100200400", "status=draft", "--dir", a,
        ])
        #expect(add.status != 0)
        #expect(add.text.contains("read-only"), "\(add.text)")
        #expect(!add.text.contains("SQLite error"), "\(add.text)")
        let serve = try await sb.run(["hub", "serve", "--dir", hub.dir, "--port", "0"], timeout: 30)
        #expect(serve.status != 0)
        #expect(serve.text.contains("read-only"), "\(serve.text)")
        #expect(!serve.text.contains("SQLite error"), "\(serve.text)")

        try fs.remount(readOnly: false)
        hub = try await sb.serveHub(dir: hub.dir, port: port, name: "hub2")
        try await sb.ok([
            "records", "add", "owner_name=Đặng Thị Mai", "owner_id=068100200400", "status=draft", "--dir", a,
        ])
        try await sb.ok(["agent", "sync", "--dir", a])
        try expectNoLossNoDuplicate(agentDir: a, hub: try hubStore(hub.dir))
    }

    @Test func aDamagedDatabaseIsFoundAtStartWithWhatToDo() async throws {
        let sb = try Sandbox("corrupt")
        defer { sb.close() }
        let dir = try await sb.initHub()
        let hub = try await sb.serveHub(dir: dir)
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        sb.stop(hub.process)

        // The hub's file cut short, as by a failed copy.
        let hubFile = dir + "/hub.sqlite"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: hubFile)[.size] as? Int)
        #expect(size > 16_384)
        let fh = try #require(FileHandle(forWritingAtPath: hubFile))
        try fh.truncate(atOffset: UInt64(size / 2))
        try fh.close()
        let serve = try await sb.run(["hub", "serve", "--dir", dir, "--port", "0"], timeout: 30)
        #expect(serve.status != 0)
        #expect(serve.text.contains("is damaged") && serve.text.contains("backup"), "\(serve.text)")
        #expect(serve.text.contains("OPERATIONS.md"), "\(serve.text)")

        // The agent's replica with garbage over its pages.
        let replica = a + "/replica.sqlite"
        let rsize = try #require(try FileManager.default.attributesOfItem(atPath: replica)[.size] as? Int)
        let rh = try #require(FileHandle(forWritingAtPath: replica))
        try rh.seek(toOffset: 4096)
        var rng = SystemRandomNumberGenerator()
        try rh.write(
            contentsOf: Data((0..<max(4096, rsize - 4096)).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        try rh.close()
        let sync = try await sb.run(["agent", "sync", "--dir", a])
        #expect(sync.status != 0)
        #expect(sync.text.contains("is damaged") && sync.text.contains("backup"), "\(sync.text)")
    }
}

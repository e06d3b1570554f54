import FerryAgent
import FerryCore
import FerryStore
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One process per directory (a lock naming the holder's PID), and files
/// private to their owner, with real `ferry` processes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct DirectoryEndToEndTests {
    static let commune = "24781"

    @Test func aSecondHubOnOneDirectoryIsRefusedNamingThePIDAndLeavesHubURLAlone() async throws {
        let sb = try Sandbox("hublock")
        defer { sb.close() }
        let dir = try await sb.initHub()
        let hub = try await sb.serveHub(dir: dir)
        let second = try sb.start(["hub", "serve", "--dir", dir, "--port", "0"], name: "hub2")
        let ended = try await waitUntil(timeout: 30) { !second.isRunning }
        #expect(ended, "the second hub must stop by itself")
        sb.kill9(second)
        #expect(second.terminationStatus != 0)
        let log = sb.log("hub2")
        #expect(log.contains("already running"), "\(log)")
        #expect(log.contains("PID \(hub.process.processIdentifier)"), "\(log)")
        // The first hub's URL file is untouched and it still serves.
        let url = try String(contentsOfFile: dir + "/hub.url", encoding: .utf8)
        #expect(url.trimmingCharacters(in: .whitespacesAndNewlines) == hub.url)
        let health = try await withHubClient(hub.url) { try await $0.send(.GET, "/v1/health") }
        #expect(health.status == 200)

        // A hub killed like a power cut leaves no stale lock.
        sb.kill9(hub.process)
        let again = try await sb.serveHub(dir: dir, name: "hub3")
        #expect(again.process.isRunning)
        // A clean stop removes its own hub.url.
        sb.stop(again.process)
        #expect(!FileManager.default.fileExists(atPath: dir + "/hub.url"))
    }

    @Test func aSecondAgentOnOneDirectoryIsRefusedNamingThePID() async throws {
        let sb = try Sandbox("agentlock")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let run = try sb.start(["agent", "run", "--dir", a, "--interval", "1"], name: "agent")
        let pid = run.processIdentifier
        let locked = try await waitUntil(timeout: 20) {
            // The first line is the holder's PID; a note (role, since when) may follow.
            (try? String(contentsOfFile: a + "/agent.lock", encoding: .utf8))?.split(separator: "\n").first.map(
                String.init) == String(pid)
        }
        #expect(locked, "agent run must hold agent.lock")
        let sync = try await sb.run(["agent", "sync", "--dir", a])
        #expect(sync.status != 0)
        #expect(sync.text.contains("already running") && sync.text.contains("PID \(pid)"), "\(sync.text)")
        let run2 = try await sb.run(["agent", "run", "--dir", a, "--rounds", "1"])
        #expect(run2.status != 0 && run2.text.contains("PID \(pid)"), "\(run2.text)")
        // Local writes are not locked out: the CLI shares the replica with the agent.
        try await sb.ok([
            "records", "add", "owner_name=Phạm Thị Lan", "owner_id=068555000111", "status=draft", "--dir", a,
        ])
        sb.stop(run)
        try await sb.ok(["agent", "sync", "--dir", a])
    }

    static func mode(_ path: String) -> UInt16? { Platform.mode(path) }

    @Test func hubAndAgentFilesArePrivateAndLooserModesAreWarnedAtStart() async throws {
        let sb = try Sandbox("privacy")
        defer { sb.close() }
        let dir = try await sb.initHub()
        #expect(Self.mode(dir) == 0o700, "hub directory mode \(String(Self.mode(dir) ?? 0, radix: 8))")
        for f in ["hub.key", "operator.token", "hub.sqlite"] {
            #expect(Self.mode(dir + "/" + f) == 0o600, "\(f) mode \(String(Self.mode(dir + "/" + f) ?? 0, radix: 8))")
        }
        // One port for both starts: the agent keeps the URL it enrolled with.
        let port = try freePort()
        var hub = try await sb.serveHub(dir: dir, port: port)
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        #expect(Self.mode(a) == 0o700, "agent directory mode \(String(Self.mode(a) ?? 0, radix: 8))")
        // The -wal and -shm files exist while the replica is open; SQLite gives them the file's mode.
        let (store, _) = try agentStore(a)
        _ = try store.counts()
        for f in ["agent.key", "replica.sqlite", "replica.sqlite-wal", "replica.sqlite-shm", "agent.lock"] {
            #expect(Self.mode(a + "/" + f) == 0o600, "\(f) mode \(String(Self.mode(a + "/" + f) ?? 0, radix: 8))")
        }
        for f in ["hub.sqlite-wal", "hub.sqlite-shm", "hub.lock"] {
            #expect(Self.mode(dir + "/" + f) == 0o600, "\(f) mode \(String(Self.mode(dir + "/" + f) ?? 0, radix: 8))")
        }
        #expect(!sb.log("hub").contains("not private"), "\(sb.log("hub"))")

        // Loosened by hand: the next start warns, naming the file and the fix.
        sb.stop(hub.process)
        Platform.setMode(dir, 0o755)
        Platform.setMode(dir + "/hub.sqlite", 0o644)
        hub = try await sb.serveHub(dir: dir, port: port, name: "hub2")
        let log = sb.log("hub2")
        #expect(log.contains("not private") && log.contains("chmod 700 \(dir)"), "\(log)")
        #expect(log.contains("chmod 600 \(dir)/hub.sqlite"), "\(log)")
        Platform.setMode(a + "/agent.key", 0o644)
        let sync = try await sb.run(["agent", "sync", "--dir", a])
        #expect(sync.status == 0, "\(sync.text)")
        #expect(sync.text.contains("chmod 600 \(a)/agent.key"), "\(sync.text)")
    }
}

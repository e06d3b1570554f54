import FerryAgent
import FerryCore
import FerryStore
import Foundation
import Testing

/// Where the upgrade fixtures are committed.
let upgradeFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/upgrade-0.1.0").path

/// A committed upgrade fixture is not where the tests expect it.
struct FixtureMissing: Error, CustomStringConvertible {
    var path: String
    var description: String {
        "\(path) is missing: the 0.1.0 upgrade fixtures are committed under Tests/Fixtures/upgrade-0.1.0 "
            + "(remade by scripts/make-upgrade-fixtures.sh with a 0.1.0 ferry)"
    }
}

/// Upgrades keep every record (issue 12): an agent directory and a hub
/// directory written by the previous release (0.1.0, commit 54e330f; see
/// Tests/Fixtures/upgrade-0.1.0/README.md and scripts/make-upgrade-fixtures.sh)
/// are opened by this build's `ferry`, migrated, and synced.
///
/// The fixtures are made by `scripts/make-upgrade-fixtures.sh` from a build of
/// 0.1.0 and committed; they are found relative to this file (#filePath), so a
/// clean clone runs the suite. A missing fixture fails the tests instead of
/// skipping them: an upgrade path that is not checked is not kept.
@Suite(.serialized)
struct UpgradeEndToEndTests {
    static let commune = "24781"
    static let owners = (1...7).map { String(format: "0123456789%02d", $0) }
    static let longName = "Phạm Thị Thu Hương Nguyễn Hoàng Bảo Ngọc"

    static var fixtures: String { upgradeFixtures }

    /// Copies the fixture into the sandbox with private modes (git keeps 0644).
    static func copyFixture(_ sb: Sandbox) throws -> (hub: String, agent: String) {
        let fm = FileManager.default
        for f in ["agent/replica.sqlite", "agent/agent.json", "hub/hub.sqlite", "hub/hub.key"] {
            guard fm.fileExists(atPath: fixtures + "/" + f) else {
                throw FixtureMissing(path: fixtures + "/" + f)
            }
        }
        for d in ["hub", "agent"] {
            try fm.copyItem(atPath: fixtures + "/" + d, toPath: sb.path(d))
            Platform.setMode(sb.path(d), 0o700)
            for f in try fm.contentsOfDirectory(atPath: sb.path(d)) { Platform.setMode(sb.path(d + "/" + f), 0o600) }
        }
        return (sb.path("hub"), sb.path("agent"))
    }

    @Test func aReplicaAndAHubStoreOfTheLastReleaseOpenMigrateAndSyncWithNothingLost() async throws {
        let sb = try Sandbox("upgrade")
        defer { sb.close() }
        let (hubDir, a) = try Self.copyFixture(sb)

        // The old agent's queue, read by the new code (the replica migrates on open).
        let (store, config) = try agentStore(a)
        let before = try store.counts()
        #expect(before.records == 7, "the 0.1.0 replica holds 7 records: \(before)")
        #expect(before.inFlightWrites > 0 && before.pendingWrites > 0, "a change set in flight and pending writes")
        #expect(try store.inFlight() != nil)
        let mine = try store.fullState()

        // The old hub store migrates when served; its conflict and quarantine stay.
        let hub = try await sb.serveHub(dir: hubDir)
        let hubStore = try hubStore(hubDir)
        let conflictsBefore = try hubStore.totals()["conflicts"] ?? 0
        #expect(conflictsBefore >= 1, "the fixture's open conflict survives the migration")
        let quarantine = try hubStore.quarantine()
        #expect(quarantine.contains { $0.field == "owner_name" && $0.value.text.contains("Phạm Thị Thu Hương") })

        // The hub moved (the fixture's port is gone): point the agent at it and sync.
        try await sb.ok(["agent", "set-hub", hub.url, "--dir", a])
        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.complete && sync.pendingWrites == 0, "\(sync)")

        // Every record of the old replica is at the hub with the agent's values,
        // except the one value the hub refused, which stays in quarantine.
        let theirs = try hubStore.winners(commune: Self.commune)
        let byOwner = Dictionary(theirs.compactMap { id, v in v["owner_id"].map { ($0, id) } }) { a, _ in a }
        for owner in Self.owners { #expect(byOwner[.string(owner)] != nil, "record of owner \(owner) at the hub") }
        for (id, values) in mine {
            var expected = values
            var got = theirs[id] ?? [:]
            if values["owner_name"] == .string(Self.longName) {
                expected["owner_name"] = nil
                got["owner_name"] = nil
            }
            // The field in conflict shows the hub's deterministic winner; both sides are kept.
            expected["status"] = nil
            got["status"] = nil
            #expect(expected == got, "record \(id) at the hub: \(got) vs \(expected)")
        }
        #expect(try hubStore.totals()["conflicts"] == conflictsBefore, "the conflict is still open for an operator")
        #expect(try store.counts().pendingWrites == 0 && store.counts().inFlightWrites == 0)
        #expect(config.commune == Self.commune)
        let r1 = try #require(byOwner[.string("012345678901")])
        #expect(theirs[r1]?["members"] == .int(5), "the pending edit made under 0.1.0 arrived")
    }

    @Test func anAgentOlderThanTheHubNeedsIsToldToUpdateAndKeepsItsData() async throws {
        let sb = try Sandbox("tooold")
        defer { sb.close() }
        let (hubDir, a) = try Self.copyFixture(sb)
        let port = try freePort()
        // This hub needs agents of 9.0 or newer (`--min-agent-version`).
        let p = try sb.start(
            ["hub", "serve", "--dir", hubDir, "--port", String(port), "--min-agent-version", "9.0.0"], name: "hub9")
        let url = "http://127.0.0.1:\(port)"
        let up = try await waitUntil(timeout: 30) { FileManager.default.fileExists(atPath: hubDir + "/hub.url") }
        #expect(up && p.isRunning, "\(sb.log("hub9"))")
        try await sb.ok(["agent", "set-hub", url, "--dir", a, "--no-check"])
        let (store, _) = try agentStore(a)
        let before = try store.counts()

        let r = try await sb.run(["agent", "sync", "--dir", a])
        #expect(r.status != 0)
        #expect(
            r.text.contains("older than the hub accepts") && r.text.contains("install the newer Ferry"), "\(r.text)")
        let status = try await sb.run(["status", "--dir", a])
        #expect(status.status == 2, "needs a person: \(status.out)")
        #expect(status.out.contains("Install the newer Ferry package"), "\(status.out)")
        let after = try store.counts()
        #expect(
            after.records == before.records && after.pendingWrites + after.inFlightWrites >= before.pendingWrites,
            "before \(before), after \(after)")
        #expect(try store.fullState().count == 7, "nothing written here is lost")
        sb.stop(p)

        // The same hub without the minimum takes everything.
        let hub = try await sb.serveHub(dir: hubDir, port: port, name: "hub")
        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.complete && sync.pendingWrites == 0)
        #expect(try hubStore(hub.dir).winners(commune: Self.commune).count == 7)
    }
}

import FerryAgent
import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Testing

/// Offline bundles (SPEC §12) with real `ferry` processes: a commune with no
/// link carries its change sets to the hub on a file and brings the hub's
/// changes back; every check of an upload applies, and nothing is lost or
/// applied twice, by the bundles or by a later online sync.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct BundleEndToEndTests {
    static let commune = "24781"

    /// Writes `count` sample records and a few edits at the agent (offline: no sync).
    static func writeOffline(_ sb: Sandbox, _ dir: String, name: String, seed: UInt64, count: Int) async throws {
        let csv = try sampleCSV(sb, name: name, seed: seed, count: count)
        try await sb.ok(["records", "import", csv.path, "--dir", dir])
        let (store, _) = try agentStore(dir)
        let ids = try store.records(limit: 5).map(\.id)
        try #require(ids.count >= 2)
        try await sb.ok(["records", "edit", ids[0].description, "status=verified", "--dir", dir])
        try await sb.ok(["records", "delete", ids[1].description, "--dir", dir])
    }

    /// The agent's change sets as the hub holds them: count and writes.
    static func hubWrites(_ hub: SQLiteHubStore, _ agent: String) throws -> (sets: Int, writes: Int) {
        let sets = try hubChangeSets(hub, origin: agent)
        return (sets.count, sets.reduce(0) { $0 + $1.writes })
    }

    /// SPEC §12.4: a value the hub quarantines from a bundle is reported back by
    /// the hub's bundle, signed, and the PC shows the hub's value with the reason,
    /// as an online upload's ack would have told it; before, the PC kept showing
    /// the refused value while `ferry status` said IN SYNC as of the bundle.
    @Test func aValueTheHubQuarantinesFromABundleComesBackCorrectedWithItsReason() async throws {
        let sb = try Sandbox("bundle-quarantine")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let rid = try await sb.ok([
            "records", "add", "owner_name=Phạm Thị Hoa", "owner_id=068123450001", "status=draft", "--dir", a,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        let recordID = try #require(RecordID(rid))
        try await sb.ok(["agent", "sync", "--dir", a])

        // The province drops the choice "submitted" (v2) and moves the records there;
        // the PC, offline from now on, still has v1 and writes it.
        try await publishFormDroppingSubmitted(sb, hubDir: hub.dir)
        // And the hub operator corrects the owner's id while the clerk does too: a conflict.
        try await sb.ok(["records", "edit", rid, "owner_id=068123450009", "--at-hub", "--hub-dir", hub.dir])
        try await sb.ok([
            "records", "edit", rid, "status=submitted", "owner_name=Phạm Thị Hoà", "owner_id=068123450008", "--dir", a,
        ])

        let up = sb.path("up.ferry")
        try await sb.ok(["agent", "export-bundle", up, "--dir", a])
        let imported = try await sb.ok(["hub", "import-bundle", up, "--dir", hub.dir, "--json"])
        #expect(imported.contains("\"quarantined\":1") || imported.contains("\"quarantined\" : 1"), "\(imported)")
        let hubStore = try hubStore(hub.dir)
        #expect(try hubStore.record(recordID)?.winners["status"] == .string("draft"), "the hub kept its value")

        let down = sb.path("down.ferry")
        let made = try await sb.ok([
            "hub", "export-bundle", "--agent", try agentStore(a).1.agentID, down, "--dir", hub.dir,
        ])
        #expect(made.contains("1 of its value(s)"), "\(made)")
        let back = try await sb.ok(["agent", "import-bundle", down, "--dir", a])
        #expect(back.contains("refused 1 value(s)") && back.contains("1 field(s) now show"), "\(back)")

        let (replica, _) = try agentStore(a)
        let shown = try #require(try replica.record(recordID))
        #expect(shown.values["status"] == .string("draft"), "the PC shows the hub's value: \(shown.values)")
        #expect(shown.values["owner_name"] == .string("Phạm Thị Hoà"), "the accepted edit stays")
        let q = try replica.quarantined()
        #expect(q.count == 1 && q.first?.field == "status" && q.first?.value == "submitted", "\(q)")
        #expect(q.first?.reason.isEmpty == false)
        // The commune's conflict list came with the bundle, as §9.13 would list it online.
        let listed = try replica.hubConflicts()
        #expect(listed.map(\.field) == ["owner_id"], "\(listed)")
        #expect(try replica.meta("commune_conflicts_open") == "1")
        let cmp = try compare(agentDir: a, hub: hubStore)
        #expect(cmp.identical, "PC and hub agree field by field after the bundles: \(cmp)")

        // The same bundle again: nothing new, nothing changed.
        let again = try await sb.run(["agent", "import-bundle", down, "--dir", a])
        #expect(again.status == 3, "\(again.text)")
        #expect(try replica.quarantined().count == 1)

        // The extras are sealed for this PC: the file shows no value or reason.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: down)))
        try #require(bytes[4] == OfflineBundle.extrasFormatVersion)
        let wire = String(decoding: bytes, as: UTF8.self)
        #expect(!wire.contains("draft") && !wire.contains("submitted") && !wire.contains(rid))
        // Extras that were altered are refused, and nothing of the bundle is applied.
        let parsed = try OfflineBundle.parseWithExtras(bytes)
        var extras = try #require(parsed.extras)
        extras[extras.count / 2] ^= 0x01
        bytes = OfflineBundle.encode(parsed.header, entries: parsed.entries, extras: extras)
        let forged = sb.path("forged.ferry")
        try Data(bytes).write(to: URL(fileURLWithPath: forged))
        let refused = try await sb.run(["agent", "import-bundle", forged, "--dir", a])
        #expect(refused.status != 0 && refused.text.contains("failed verification"), "\(refused.text)")
    }

    /// SPEC §12.5: a bundle whose numbers the hub already holds with other
    /// content is refused, nothing applied, and the message names the likely
    /// cause (a stale bundle) before the other one (a copied directory).
    @Test func aBundleWhoseNumbersTheHubHoldsWithOtherContentSaysWhichTwoCausesItCanHave() async throws {
        let sb = try Sandbox("bundle-stale")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        try await sb.ok([
            "records", "add", "owner_name=Đỗ Văn Nam", "owner_id=068123450002", "status=draft", "--dir", a,
        ])
        let other = sb.path("a-copy")
        try FileManager.default.copyItem(atPath: a, toPath: other)
        try await sb.ok([
            "records", "add", "owner_name=Đỗ Thị Lan", "owner_id=068123450003", "status=draft", "--dir", other,
        ])
        try await sb.ok(["agent", "sync", "--dir", a])
        let file = sb.path("stale.ferry")
        try await sb.ok(["agent", "export-bundle", file, "--dir", other])
        let hubStore = try hubStore(hub.dir)
        let before = try hubStore.totals()
        let r = try await sb.run(["hub", "import-bundle", file, "--dir", hub.dir, "--json"])
        let report = try decodeJSON(HubBundleImportJSON.self, r.out)
        let refused = try #require(report.entries.first, "\(r.text)")
        #expect(refused.status == "refused" && refused.code == "cloned_replica", "\(r.text)")
        #expect(refused.message?.contains("Most often this bundle is stale") == true, "\(refused.message ?? "")")
        #expect(refused.message?.contains("two PCs run copies") == true)
        #expect(try hubStore.totals()["leaves"] == before["leaves"], "nothing applied")
    }

    /// `ferry hub import-bundle --json`, as much as the tests read.
    struct HubBundleImportJSON: Decodable {
        struct Entry: Decodable {
            var status: String
            var code: String?
            var message: String?
        }
        var entries: [Entry]
    }

    @Test func aCommuneWithNoLinkSyncsByBundleBothWaysAndALaterSyncSendsNothingTwice() async throws {
        let sb = try Sandbox("bundle-trip")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let b = try await sb.enrollAgent("b", hub: hub, commune: "24848")
        let agentA = try agentStore(a).1.agentID
        let hubStore = try hubStore(hub.dir)

        // Weeks without a link: the clerk works; the operator adds a record for the commune.
        try await Self.writeOffline(sb, a, name: "a.csv", seed: 31, count: 120)
        let atHub = try await sb.ok([
            "records", "add", "owner_name=Trần Văn Long An", "owner_id=068987654321", "status=submitted", "--at-hub",
            "--hub-dir", hub.dir, "--commune", Self.commune,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        let atHubID = try #require(RecordID(atHub), "`records add --at-hub` printed \(atHub)")
        let before = try agentStore(a).0.counts()
        #expect(before.pendingWrites > 0)

        // 1. The clerk writes the bundle: the change sets are frozen, not acknowledged.
        let file = sb.path("stick/a-1.ferry")
        try FileManager.default.createDirectory(atPath: sb.path("stick"), withIntermediateDirectories: true)
        let exported = try await sb.ok(["agent", "export-bundle", file, "--dir", a])
        #expect(exported.contains("Bundle #1 written"), "\(exported)")
        let frozen = try agentStore(a).0.counts()
        #expect(frozen.pendingWrites == 0 && frozen.inFlightWrites == before.pendingWrites, "\(frozen)")
        #expect(try Self.hubWrites(hubStore, agentA).sets == 0, "nothing reaches the hub without the bundle")
        let onDisk = try #require(FileManager.default.contents(atPath: file) as Data?)
        #expect(Array(onDisk.prefix(4)) == Array("FRYB".utf8))

        // 2. The operator imports it while the hub serves, and another agent syncs meanwhile.
        try await Self.writeOffline(sb, b, name: "b.csv", seed: 32, count: 60)
        let syncB = try sb.start(["agent", "sync", "--dir", b], name: "sync-b")
        let imported = try await sb.run(["hub", "import-bundle", file, "--dir", hub.dir])
        #expect(imported.status == 0, "\(imported.text)")
        #expect(imported.out.contains(": accepted (") && imported.out.contains(" 0 refused."), "\(imported.text)")
        #expect(try await waitUntil(timeout: 60) { !syncB.isRunning }, "agent b's sync did not finish")
        #expect(syncB.terminationStatus == 0, "\(sb.log("sync-b"))")
        #expect(try converged(agentDir: b, hub: hubStore), "agent b, syncing during the import, converged")
        let atHubWrites = try Self.hubWrites(hubStore, agentA)
        #expect(UInt64(atHubWrites.writes) == frozen.lastSeq, "every write once: \(atHubWrites) vs \(frozen.lastSeq)")

        // Imported twice: nothing new, nothing applied again.
        let again = try await sb.run(["hub", "import-bundle", file, "--dir", hub.dir])
        #expect(again.status == 3, "\(again.text)")
        #expect(again.out.contains("Already imported, nothing new"), "\(again.text)")
        #expect(try Self.hubWrites(hubStore, agentA) == atHubWrites)

        // 3. The operator writes the commune's bundle back; 4. the clerk imports it.
        let back = sb.path("stick/a-back.ferry")
        let made = try await sb.ok(["hub", "export-bundle", "--agent", agentA, back, "--dir", hub.dir])
        #expect(made.contains("confirms the agent's changes up to #\(frozen.lastSeq)"), "\(made)")
        let applied = try await sb.ok(["agent", "import-bundle", back, "--dir", a])
        #expect(applied.contains("no longer waiting"), "\(applied)")
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        #expect(try agentStore(a).0.record(atHubID)?.values["owner_name"] == .string("Trần Văn Long An"))
        let status = try await sb.run(["status", "--dir", a, "--json"])
        let s = try decodeJSON(StatusJSON.self, status.out)
        #expect(status.status == 0 && s.inSync, "\(s.summary)")
        #expect(s.summary.contains("IN SYNC as of the offline bundle from the hub"), "\(s.summary)")

        // The return bundle imported twice: already imported, nothing changes.
        let twice = try await sb.run(["agent", "import-bundle", back, "--dir", a])
        #expect(twice.status == 3, "\(twice.text)")
        #expect(twice.out.contains("Already imported, nothing new"), "\(twice.text)")

        // The link comes back: a normal sync sends nothing twice.
        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.uploadedWrites == 0 && sync.duplicates == 0, "\(sync)")
        #expect(sync.complete)
        #expect(try Self.hubWrites(hubStore, agentA) == atHubWrites, "the hub counted no write twice")
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        let online = try decodeJSON(StatusJSON.self, try await sb.ok(["status", "--dir", a, "--json"]))
        #expect(online.inSync, "\(online.summary)")
    }

    @Test func aLaterSyncOfABundleNotYetImportedSendsTheSameChangeSetsOnce() async throws {
        let sb = try Sandbox("bundle-lost")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let agentA = try agentStore(a).1.agentID
        let hubStore = try hubStore(hub.dir)
        try await Self.writeOffline(sb, a, name: "a.csv", seed: 41, count: 80)
        let file = sb.path("a-1.ferry")
        try await sb.ok(["agent", "export-bundle", file, "--dir", a])
        // The link came back before the stick reached the hub: the sync sends the frozen bytes.
        let sync = try decodeJSON(SyncJSON.self, try await sb.ok(["agent", "sync", "--dir", a, "--json"]))
        #expect(sync.uploadedWrites > 0 && sync.complete, "\(sync)")
        let afterSync = try Self.hubWrites(hubStore, agentA)
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
        // Then the stick arrives: every change set is a duplicate.
        let late = try await sb.run(["hub", "import-bundle", file, "--dir", hub.dir])
        #expect(late.status == 3, "\(late.text)")
        #expect(late.out.contains(": duplicate") && late.out.contains(": 0 accepted"), "\(late.text)")
        #expect(try Self.hubWrites(hubStore, agentA) == afterSync)
    }

    @Test func wrongHubWrongAgentOutOfOrderTruncatedAndCorruptedBundlesAreRefusedAndNothingIsLost() async throws {
        let sb = try Sandbox("bundle-refusals")
        defer { sb.close() }
        let initA = try await sb.ok(["hub", "init", "--dir", sb.path("hub")])
        let initB = try await sb.ok(["hub", "init", "--dir", sb.path("other-hub")])
        func fingerprint(_ text: String) throws -> String {
            let line = try #require(text.split(separator: "\n").first { $0.contains("key fingerprint:") })
            return String(line.split(separator: ":").last ?? "").trimmingCharacters(in: .whitespaces)
        }
        let (fpA, fpB) = (try fingerprint(initA), try fingerprint(initB))
        let hub = try await sb.serveHub(dir: sb.path("hub"))
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)
        let b = try await sb.enrollAgent("b", hub: hub, commune: "24848")
        let agentA = try agentStore(a).1.agentID
        let agentB = try agentStore(b).1.agentID
        let hubStore = try hubStore(hub.dir)

        try await Self.writeOffline(sb, a, name: "a1.csv", seed: 51, count: 40)
        let first = sb.path("a-1.ferry")
        try await sb.ok(["agent", "export-bundle", first, "--dir", a])
        try await Self.writeOffline(sb, a, name: "a2.csv", seed: 52, count: 30)
        let second = sb.path("a-2.ferry")
        let newOnly = try await sb.ok(["agent", "export-bundle", second, "--new-only", "--dir", a])
        #expect(newOnly.contains("Bundle #2 written"), "\(newOnly)")

        // Out of order: the second bundle before the first.
        let early = try await sb.run(["hub", "import-bundle", second, "--dir", hub.dir])
        #expect(early.status == 1, "\(early.text)")
        #expect(early.out.contains("REFUSED [out_of_sequence]"), "\(early.text)")
        #expect(early.out.contains("are missing here") && early.out.contains("before bundle #2"), "\(early.text)")
        #expect(try Self.hubWrites(hubStore, agentA).sets == 0)

        // The wrong hub: refused, naming both fingerprints.
        let foreign = try await sb.run(["hub", "import-bundle", first, "--dir", sb.path("other-hub")])
        #expect(foreign.status == 1, "\(foreign.text)")
        #expect(foreign.text.contains("wrong_hub") && foreign.text.contains(fpA) && foreign.text.contains(fpB))

        // Truncated (the stick pulled out early) and corrupted (a failing stick).
        let bytes = try #require(FileManager.default.contents(atPath: first))
        let cut = sb.path("cut.ferry")
        try Data(bytes.prefix(bytes.count - 100)).write(to: URL(fileURLWithPath: cut))
        let truncated = try await sb.run(["hub", "import-bundle", cut, "--dir", hub.dir])
        #expect(truncated.status == 1 && truncated.text.contains("[truncated]"), "\(truncated.text)")
        var damaged = [UInt8](bytes)
        damaged[damaged.count / 2] ^= 0x20
        let bad = sb.path("bad.ferry")
        try Data(damaged).write(to: URL(fileURLWithPath: bad))
        let corrupted = try await sb.run(["hub", "import-bundle", bad, "--dir", hub.dir])
        #expect(corrupted.status == 1 && corrupted.text.contains("[corrupted]"), "\(corrupted.text)")
        let notABundle = sb.path("notes.txt")
        try "meeting notes".write(toFile: notABundle, atomically: true, encoding: .utf8)
        let text = try await sb.run(["hub", "import-bundle", notABundle, "--dir", hub.dir])
        #expect(text.status == 1 && text.text.contains("[not_a_bundle]"), "\(text.text)")
        #expect(try Self.hubWrites(hubStore, agentA).sets == 0, "no refusal applied anything")

        // In order, both go in.
        let one = try await sb.run(["hub", "import-bundle", first, "--dir", hub.dir])
        #expect(one.status == 0, "\(one.text)")
        let two = try await sb.run(["hub", "import-bundle", second, "--dir", hub.dir])
        #expect(two.status == 0 && two.out.contains(": accepted ("), "\(two.text)")

        // The hub's bundle for agent a, taken to agent b's PC: refused, naming both.
        let back = sb.path("a-back.ferry")
        try await sb.ok(["hub", "export-bundle", "--agent", agentA, back, "--dir", hub.dir])
        let elsewhere = try await sb.run(["agent", "import-bundle", back, "--dir", b])
        #expect(elsewhere.status == 1, "\(elsewhere.text)")
        #expect(elsewhere.text.contains("[wrong_agent]") && elsewhere.text.contains(agentA))
        #expect(elsewhere.text.contains(agentB))
        // An agent bundle given to an agent: the wrong kind.
        let kind = try await sb.run(["agent", "import-bundle", first, "--dir", a])
        #expect(kind.status == 1 && kind.text.contains("[wrong_kind]"), "\(kind.text)")

        // Nothing was lost: the right bundle converges the commune.
        try await sb.ok(["agent", "import-bundle", back, "--dir", a])
        try expectNoLossNoDuplicate(agentDir: a, hub: hubStore)
    }
}

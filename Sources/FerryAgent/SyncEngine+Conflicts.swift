import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

extension SyncEngine {
    /// How often the conflict list is asked for when no round moved writes.
    static let conflictsRefreshMs: UInt64 = 15 * 60_000
    /// How long an older hub without `/v1/conflicts` is not asked again.
    static let conflictsUnsupportedMs: UInt64 = 24 * 3_600_000

    /// Refreshes the hub's list of open conflicts on this commune (SPEC §9.13)
    /// after a round that finished: at once when the round moved writes (which
    /// is how conflicts appear and are resolved), else every 15 minutes.
    /// Informational: a failure is logged and leaves the last list standing,
    /// never fails the round.
    func refreshCommuneConflicts(roundMovedWrites: Bool) async {
        let now = wall.nowMillis()
        let store = self.store
        let num = { (k: String) in (try? store.meta(k)).flatMap { $0.flatMap(UInt64.init) } }
        if let until = num("commune_conflicts_unsupported_until_ms"), now < until { return }
        if !roundMovedWrites, let last = num("commune_conflicts_ms"), last <= now,
            now - last < Self.conflictsRefreshMs
        {
            return
        }
        let t = HybridLogicalClock.corrected(
            localMillis: now, offset: Int64((try? store.meta("clock_offset_ms")).flatMap { $0 } ?? "0") ?? 0)
        let sig = identity.signing.sign(ConflictsAuth.message(agent: config.agentID, timeMs: t))
        let answer: HubAnswer
        do {
            answer = try await request("conflict list") {
                try await client.send(
                    .GET, "/v1/conflicts",
                    headers: [
                        "X-Ferry-Agent": config.agentID, "X-Ferry-Time": String(t), "X-Ferry-Signature": hex(sig),
                    ], maxBytes: CommuneConflictsV1.maxPlaintextBytes + 64)
            }
        } catch {
            logger.info("could not fetch the hub's conflict list", metadata: ["ferry.error": "\(Self.plain(error))"])
            return
        }
        if answer.status == 404 {
            // A hub from before §9.13: ask again tomorrow (it may be updated).
            try? store.setMeta(["commune_conflicts_unsupported_until_ms": String(now + Self.conflictsUnsupportedMs)])
            return
        }
        guard answer.status == 200 else {
            logger.info(
                "the hub refused the conflict list",
                metadata: ["ferry.code": "\(answer.error?.code ?? "http_\(answer.status)")"])
            return
        }
        do {
            let list = try ConflictsAuth.open(
                answer.body, agent: config.agentID, commune: config.commune, timeMs: t, key: keys.receive)
            try store.replaceHubConflicts(list, atMillis: answer.receivedMs)
            try? store.setMeta(["commune_conflicts_unsupported_until_ms": nil])
        } catch {
            logger.warning("the hub's conflict list was refused", metadata: ["ferry.error": "\(error)"])
        }
    }
}

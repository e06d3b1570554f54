import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

extension HubService {
    /// GET /v1/conflicts (SPEC §9.13): the open conflicts on the records of the
    /// signing agent's commune, at most ``CommuneConflictsV1/maxListed`` of
    /// them with their competing values, sealed for that agent alone.
    public func communeConflicts(_ request: SignedAgentHeaders) -> HubReply {
        var reply = communeConflictsInner(request)
        if reply.status != 200 { metrics.add("ferry_conflict_list_refusals_total") }
        reply.headers.merge(timeHeader) { a, _ in a }
        return reply
    }

    /// The open conflicts on `agent`'s commune as §9.13 lists them (also put in
    /// the hub's offline bundles, §12.4). Bounded work: one keyset page of the
    /// commune's conflicts (an index on commune) and one count.
    func conflictList(for agent: AgentInfo) throws -> CommuneConflictsV1 {
        let page = try store.conflictPage(
            ConflictFilter(commune: agent.commune), after: nil, limit: CommuneConflictsV1.maxListed)
        var listed = page.items.map { c in
            var c = c
            c.sides = Array(c.sides.prefix(CommuneConflictsV1.maxSides))
            return c
        }
        var answer = CommuneConflictsV1(
            commune: agent.commune, open: listed.count + page.remaining, conflicts: listed,
            hubTimeMs: store.nowMillis())
        // Values are bounded by the forms, but fifty long texts could still
        // pass the bound: list fewer rather than refuse (`open` stays true).
        while !listed.isEmpty, (try HubJSON.encoder.encode(answer)).count > CommuneConflictsV1.maxPlaintextBytes {
            listed.removeLast(max(1, listed.count / 2))
            answer.conflicts = listed
        }
        return answer
    }

    private func communeConflictsInner(_ request: SignedAgentHeaders) -> HubReply {
        do {
            let agent: AgentInfo
            switch try signedAgent(
                request.agentID, signature: request.signature,
                message: ConflictsAuth.message(agent: request.agentID, timeMs: request.timeMs),
                what: "conflict list request")
            {
            case .success(let a): agent = a
            case .failure(let refusal): return refusal.reply
            }
            let answer = try conflictList(for: agent)
            let keys = try identity.kx.serverSessionKeys(client: try KXPublicKey(bytes: agent.kxPublicKey))
            let sealed = try ConflictsAuth.seal(
                answer, agent: agent.id, timeMs: request.timeMs, key: keys.transmit)
            metrics.add("ferry_conflict_lists_total")
            return HubReply(status: 200, contentType: "application/octet-stream", body: sealed)
        } catch {
            return refused(error)
        }
    }
}

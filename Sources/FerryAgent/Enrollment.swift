import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// Enrolls this PC with a hub using a one-time token (DESIGN §6).
public enum Enrollment {
    /// Makes the agent's keys, registers them with the token, checks the hub's
    /// keys against the fingerprint the token pins, and writes the agent directory.
    /// - Throws: ``AgentError`` naming what is wrong and what to do.
    ///
    /// On a directory that already holds an agent, enrollment is refused unless
    /// the hub refused that agent as a cloned replica or `reenroll` is set: then
    /// the directory gets new keys and the new agent's id, and every write the
    /// hub has not acknowledged is queued again under the new id (SPEC §7.2).
    /// The caller holds the directory's lock.
    public static func enroll(
        hubURL: String, token text: String, home: AgentHome, hostname: String, reenroll: Bool = false
    ) async throws -> AgentConfig {
        let hubURL = try SyncEngine.validatedHubURL(hubURL)
        guard let token = EnrollmentToken(text) else {
            throw AgentError(
                "the token is malformed: it looks like ferry1.<commune>.<secret>.<fingerprint>; copy it exactly")
        }
        var previous: (config: AgentConfig, store: AgentStore)? = nil
        if home.isEnrolled {
            let config = try home.config()
            let store = try home.store()
            let refusedAsCopy = try store.meta("cloned_replica") != nil
            guard reenroll || refusedAsCopy else {
                throw AgentError(
                    "\(home.directory) already holds an enrolled agent (\(config.agentID)): use another --dir, or remove it to start over. If this directory is a copy of another PC's agent directory, enroll it as its own agent with --reenroll: every change made here is kept and sent under the new enrollment"
                )
            }
            let pinned = try home.hubKeys()
            guard Identity.fingerprint(sign: pinned.sign.bytes, kx: pinned.kx.bytes) == token.hubFingerprint else {
                throw AgentError(
                    "this token was issued by another hub than the one this agent is enrolled with (\(config.hubURL)): ask that hub's operator for a token"
                )
            }
            previous = (config, store)
        }
        try FileManager.default.createDirectory(
            atPath: home.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        Platform.setMode(home.directory, 0o700)
        let identity = Identity()
        let client = HubClient(baseURL: hubURL)
        defer { Task { await client.shutdown() } }  // detached: cleanup must not block the caller's error path
        let req = EnrollRequest(
            token: text, signPublicKey: hex(identity.signing.publicKey.bytes),
            kxPublicKey: hex(identity.kx.publicKey.bytes),
            hostname: hostname)
        let answer: HubAnswer
        do {
            answer = try await client.send(
                .POST, "/v1/enroll", body: [UInt8](try HubJSON.encoder.encode(req)),
                headers: ["Content-Type": "application/json"])
        } catch {
            throw AgentError(
                "cannot reach the hub at \(hubURL) (\(error)): check the address and the network, then retry")
        }
        guard answer.status == 200 else {
            throw AgentError("the hub refused enrollment: \(answer.error?.message ?? "HTTP \(answer.status)")")
        }
        let resp = try HubJSON.decoder.decode(EnrollResponse.self, from: Data(answer.body))
        guard let s = unhex(resp.hubSignPublicKey), let k = unhex(resp.hubKxPublicKey),
            Identity.fingerprint(sign: s, kx: k) == token.hubFingerprint
        else {
            throw AgentError(
                "the hub at \(hubURL) is not the hub that issued this token (key fingerprint mismatch): nothing was saved"
            )
        }
        var config = AgentConfig(
            hubURL: hubURL, agentID: resp.agentId, commune: resp.commune, hubSignPublicKey: resp.hubSignPublicKey,
            hubKxPublicKey: resp.hubKxPublicKey)
        if let previous {
            config.syncIntervalSeconds = previous.config.syncIntervalSeconds
            config.maxChangeSetBytes = previous.config.maxChangeSetBytes
            // New keys beside the old ones, the replica moved to the new origin in
            // one transaction, then the keys and config swapped in by rename.
            try identity.save(path: home.keyPath + ".new")
            let requeued = try previous.store.reorigin(to: OriginID(resp.agentId))
            try Platform.replace(home.keyPath, with: home.keyPath + ".new")
            try home.save(config)
            try previous.store.setMeta([
                "previous_agent_id": previous.config.agentID, "reenrolled_ms": String(answer.receivedMs),
                "requeued_writes": String(requeued),
            ])
        } else {
            try identity.save(path: home.keyPath)
            try home.save(config)
        }
        let store = try home.store()
        // Not signed: only a first guess, clamped; signed download headers replace it (SPEC §9.8).
        let offset = HybridLogicalClock.offset(
            hubMillis: resp.hubTimeMs, localMillis: answer.sentMs / 2 + answer.receivedMs / 2)
        try store.setMeta([
            "clock_offset_ms": String(offset), "enrolled_ms": String(answer.receivedMs), "commune": resp.commune,
        ])
        return config
    }
}

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
    public static func enroll(hubURL: String, token text: String, home: AgentHome, hostname: String) async throws
        -> AgentConfig
    {
        let hubURL = try SyncEngine.validatedHubURL(hubURL)
        guard let token = EnrollmentToken(text) else {
            throw AgentError(
                "the token is malformed: it looks like ferry1.<commune>.<secret>.<fingerprint>; copy it exactly")
        }
        if home.isEnrolled {
            throw AgentError(
                "\(home.directory) already holds an enrolled agent: use another --dir, or remove it to start over")
        }
        try FileManager.default.createDirectory(atPath: home.directory, withIntermediateDirectories: true)
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
        let config = AgentConfig(
            hubURL: hubURL, agentID: resp.agentId, commune: resp.commune, hubSignPublicKey: resp.hubSignPublicKey,
            hubKxPublicKey: resp.hubKxPublicKey)
        try identity.save(path: home.keyPath)
        try home.save(config)
        let store = try home.store()
        let offset = Int64(bitPattern: resp.hubTimeMs) - Int64(bitPattern: answer.sentMs / 2 + answer.receivedMs / 2)
        try store.setMeta([
            "clock_offset_ms": String(offset), "enrolled_ms": String(answer.receivedMs), "commune": resp.commune,
        ])
        return config
    }
}

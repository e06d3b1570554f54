import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation

/// Moving an agent to a hub's new address (`ferry agent set-hub`).
extension SyncEngine {
    /// Checks a hub address before an agent is pointed at it: a URL with an
    /// http or https scheme and a host, nothing else (no user, query or fragment).
    /// - Returns: the address without a trailing slash.
    /// - Throws: ``AgentError`` saying what to type instead.
    public static func validatedHubURL(_ text: String) throws -> String {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw AgentError("the hub address is empty: give it like http://hub.example:8440") }
        guard t.contains("://") else {
            throw AgentError(
                "'\(t)' has no scheme: the hub address starts with http:// or https://, for example http://\(t)")
        }
        guard let c = URLComponents(string: t), let scheme = c.scheme?.lowercased() else {
            throw AgentError("'\(t)' is not a web address: give it like http://hub.example:8440")
        }
        guard scheme == "http" || scheme == "https" else {
            throw AgentError("'\(t)' uses \(scheme)://: the hub address starts with http:// or https://")
        }
        guard let host = c.host, !host.isEmpty else {
            throw AgentError("'\(t)' has no host name: give it like \(scheme)://hub.example:8440")
        }
        if let port = c.port, !(1...65535).contains(port) {
            throw AgentError("'\(t)' has port \(port): a port is 1 to 65535")
        }
        guard c.user == nil, c.password == nil, c.query == nil, c.fragment == nil else {
            throw AgentError("'\(t)' carries a user, query or fragment: give only scheme, host, port (and path)")
        }
        return t.hasSuffix("/") ? String(t.dropLast()) : t
    }

    /// Proves that `url` answers as the hub this agent pinned at enrollment:
    /// `/v1/health` answers, and a signed download answer from it opens and
    /// verifies under the pinned hub keys. Nothing is applied or saved.
    /// - Throws: ``AgentError`` naming what failed.
    public func verifyHub(at url: String) async throws {
        let probe = HubClient(baseURL: url, wall: wall, link: config.link ?? LinkSettings())
        do {
            try await verifyHub(probe)
            await probe.shutdown()
        } catch {
            await probe.shutdown()
            throw error
        }
    }

    private func verifyHub(_ probe: HubClient) async throws {
        let health: HubAnswer
        do {
            health = try await probe.send(.GET, "/v1/health")
        } catch {
            throw AgentError(
                "nothing answers at \(probe.baseURL) (\(Self.plain(error))): check the address, or save it anyway with --no-check",
                kind: .network)
        }
        struct Health: Decodable { var status: String }
        guard health.status == 200, (try? HubJSON.decoder.decode(Health.self, from: Data(health.body)))?.status == "ok"
        else {
            throw AgentError(
                "\(probe.baseURL) answers, but not as a Ferry hub (HTTP \(health.status)): check the address",
                kind: .notFerry)
        }
        let since = try store.counts().hubCursor
        let t = wall.nowMillis()
        let maxBytes = 4096
        let sig = identity.signing.sign(
            PullAuth.message(agent: config.agentID, since: since, maxBytes: maxBytes, timeMs: t))
        let a = try await probe.send(
            .GET, "/v1/changes?since=\(since)&max_bytes=\(maxBytes)",
            headers: ["X-Ferry-Agent": config.agentID, "X-Ferry-Time": String(t), "X-Ferry-Signature": hex(sig)])
        guard a.status == 200 else {
            throw AgentError(
                "the hub at \(probe.baseURL) does not know this agent: \(a.error?.message ?? "HTTP \(a.status)"); is it the same hub?",
                kind: .refused)
        }
        do {
            _ = try Envelope.open(
                a.body, recipientKeyID: identity.kx.publicKey.id, author: hubSign, key: keys.receive, normalize: false)
        } catch {
            throw AgentError(
                "the hub at \(probe.baseURL) is not the hub this agent enrolled with (its signed answer does not verify under the pinned keys): nothing was changed",
                kind: .verification)
        }
    }
}

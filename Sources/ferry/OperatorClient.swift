import ArgumentParser
import FerryAgent
import FerryHub
import FerryProtocol
import Foundation

/// Where to find the hub as an operator: a hub directory (reads hub.url and
/// operator.token) or an explicit URL and token.
struct HubOptions: ParsableArguments {
    @Option(name: .customLong("hub-dir"), help: "The hub directory (default: $FERRY_HUB_DIR or ./ferry-hub).")
    var hubDir: String?
    @Option(name: .customLong("hub"), help: "The hub URL (instead of --hub-dir).")
    var hubURL: String?
    @Option(name: .customLong("token"), help: "The operator token (instead of --hub-dir; or $FERRY_OPERATOR_TOKEN).")
    var token: String?

    var home: HubHome {
        HubHome(directory: hubDir ?? ProcessInfo.processInfo.environment["FERRY_HUB_DIR"] ?? "ferry-hub")
    }

    func client() throws -> OperatorClient {
        let env = ProcessInfo.processInfo.environment
        let explicitURL = hubURL ?? env["FERRY_HUB_URL"]
        let url: String
        do { url = try explicitURL ?? home.url() } catch { throw UserError("\(error)") }
        let given = token ?? env["FERRY_OPERATOR_TOKEN"]
        if explicitURL != nil && given == nil && hubDir == nil && env["FERRY_HUB_DIR"] == nil {
            // With a URL the hub directory is usually on another machine: do not
            // point at its missing token file (that advice, `hub init`, makes a new hub).
            throw UserError(
                "--hub \(url) needs the operator token too: pass --token TOKEN or set FERRY_OPERATOR_TOKEN (the token is the file operator.token in the hub's directory on the hub machine)"
            )
        }
        let token: String
        do { token = try given ?? home.operatorToken() } catch { throw UserError("\(error)") }
        return OperatorClient(
            url: try Self.checkedURL(url), token: token.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The hub URL, or a refusal that says how to write one (`http://host:port`).
    static func checkedURL(_ text: String) throws -> String {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let lower = t.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            throw UserError(
                "'\(t)' is not a hub URL: write it with http:// in front, e.g. http://\(t.isEmpty ? "hub.example:8440" : t)"
            )
        }
        guard let c = URLComponents(string: t), let host = c.host, !host.isEmpty else {
            throw UserError("'\(t)' is not a hub URL: write it as http://HOST:PORT, e.g. http://127.0.0.1:8440")
        }
        return t.hasSuffix("/") ? String(t.dropLast()) : t
    }
}

/// Calls the hub's operator endpoints.
struct OperatorClient {
    let url: String
    let token: String

    func call<T: Decodable>(
        _ method: String, _ path: String, body: (some Encodable)? = Optional<String>.none, as: T.Type
    ) async throws -> T {
        let bytes = try body.map { [UInt8](try HubJSON.encoder.encode($0)) }
        let client = HubClient(baseURL: url)
        let a: HubAnswer
        do {
            a = try await client.send(
                method == "GET" ? .GET : .POST, "/v1/ops/" + path, body: bytes,
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                maxBytes: Self.maxAnswerBytes)
        } catch {
            await client.shutdown()
            throw Self.transportError(error, url: client.baseURL)
        }
        await client.shutdown()
        try Self.check(a)
        do {
            return try HubJSON.decoder.decode(T.self, from: Data(a.body))
        } catch {
            throw UserError("unexpected answer from the hub: \(error)")
        }
    }

    func raw(_ path: String, body: [UInt8]) async throws -> [UInt8] {
        let client = HubClient(baseURL: url)
        let a: HubAnswer
        do {
            a = try await client.send(
                .POST, "/v1/ops/" + path, body: body, headers: ["Authorization": "Bearer \(token)"],
                maxBytes: Self.maxAnswerBytes)
        } catch {
            await client.shutdown()
            throw Self.transportError(error, url: url)
        }
        await client.shutdown()
        try Self.check(a)
        return a.body
    }

    /// The largest answer read; lists page (SPEC §9.6), so only a hub that
    /// ignores `limit` reaches it, and that is said, never cut silently.
    static let maxAnswerBytes = 64 << 20

    static func transportError(_ error: any Error, url: String) -> UserError {
        let text = String(describing: error)
        if text.contains("TooManyBytes") {
            return UserError(
                "the hub's answer is larger than \(maxAnswerBytes >> 20) MiB: ask for smaller pages (--limit) or use --cursor"
            )
        }
        return UserError(
            "cannot reach the hub at \(url): \(text). Is `ferry hub serve` running there, and is the address right?")
    }

    /// Turns a refusal into a ``UserError`` from the operator API's one error
    /// body (``ErrorBody``, FerryProtocol); an answer that is not one says so.
    static func check(_ a: HubAnswer) throws {
        guard a.status != 200 else { return }
        if let e = try? HubJSON.decoder.decode(ErrorBody.self, from: Data(a.body)) {
            let problems = (e.error.problems ?? []).map {
                "\n  - \($0.at.map { "\($0): " } ?? "")\($0.message) [\($0.code)]"
            }
            throw UserError("the hub refused: \(e.error.message) [\(e.error.code)]" + problems.joined())
        }
        let text = String(decoding: a.body.prefix(300), as: UTF8.self)
        throw UserError("the hub answered HTTP \(a.status) without a Ferry error body: \(text)")
    }
}

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
        let url = try hubURL ?? env["FERRY_HUB_URL"] ?? home.url()
        let token = try token ?? env["FERRY_OPERATOR_TOKEN"] ?? home.operatorToken()
        return OperatorClient(url: url, token: token)
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
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"])
        } catch {
            await client.shutdown()
            throw UserError("cannot reach the hub at \(client.baseURL): \(error). Is `ferry hub serve` running?")
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
                .POST, "/v1/ops/" + path, body: body, headers: ["Authorization": "Bearer \(token)"])
        } catch {
            await client.shutdown()
            throw UserError("cannot reach the hub at \(url): \(error). Is `ferry hub serve` running?")
        }
        await client.shutdown()
        try Self.check(a)
        return a.body
    }

    /// Turns a refusal into a ``UserError`` from the operator API's one error
    /// body (``ErrorBody``, FerryProtocol); an answer that is not one says so.
    static func check(_ a: HubAnswer) throws {
        guard a.status != 200 else { return }
        if let e = try? HubJSON.decoder.decode(ErrorBody.self, from: Data(a.body)) {
            throw UserError("the hub refused: \(e.error.message) [\(e.error.code)]")
        }
        let text = String(decoding: a.body.prefix(300), as: UTF8.self)
        throw UserError("the hub answered HTTP \(a.status) without a Ferry error body: \(text)")
    }
}

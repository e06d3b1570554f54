import FerryStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Where and whether `ferry agent run` serves the local entry page
/// (`"entryPage"` in agent.json; every key optional).
public struct EntryPageSettings: Codable, Sendable, Equatable {
    /// False turns the page off (default on).
    public var enabled: Bool?
    /// The port on 127.0.0.1 (default 8441; 0 = any free port, written to `page.url`).
    public var port: Int?

    public init(enabled: Bool? = nil, port: Int? = nil) {
        self.enabled = enabled
        self.port = port
    }

    /// The default port of the entry page.
    public static let defaultPort = 8441
}

/// The local data-entry page as a swift-service-lifecycle `Service` inside
/// `ferry agent run`. It listens on 127.0.0.1 only (the page has no login:
/// whoever sits at the PC is the clerk), refuses requests whose Host is not
/// loopback (DNS rebinding), and checks a per-run CSRF token on every POST.
/// If its port is taken, it logs why and the agent keeps syncing.
public struct EntryPageService: Service {
    let home: AgentHome
    let store: AgentStore
    let port: Int
    let logger: Logger

    /// - Parameters:
    ///   - store: the agent's open replica (the sync engine's), written as `ferry records` does.
    ///   - port: the port on 127.0.0.1; 0 = any free port.
    public init(home: AgentHome, store: AgentStore, port: Int, logger: Logger) {
        self.home = home
        self.store = store
        self.port = port
        self.logger = logger
    }

    /// The file holding the page's address while it runs.
    public static func urlPath(_ home: AgentHome) -> String { home.directory + "/page.url" }

    public func run() async throws {
        let page: EntryPage
        do {
            page = try EntryPage(home: home, store: store, config: try home.config())
        } catch {
            logger.error("entry page not started", metadata: ["ferry.error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        let urlPath = Self.urlPath(home)
        let logger = logger
        let written = URLFile()
        let app = Application(
            router: Self.router(page),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "ferry-agent-page"),
            onServerRunning: { channel in
                let url = "http://127.0.0.1:\(channel.localAddress?.port ?? 0)/"
                try? (url + "\n").write(toFile: urlPath, atomically: true, encoding: .utf8)
                written.set(url + "\n")
                logger.notice("entry page listening", metadata: ["ferry.url": "\(url)"])
            }, logger: logger)
        do {
            try await app.run()
        } catch {
            // The page is a convenience; syncing goes on without it.
            logger.error(
                "entry page stopped; records can still be entered with `ferry records add`",
                metadata: ["ferry.error": "\(error)", "ferry.port": "\(port)"])
            try? await gracefulShutdown()
        }
        if let mine = written.get(), (try? String(contentsOfFile: urlPath, encoding: .utf8)) == mine {
            try? FileManager.default.removeItem(atPath: urlPath)
        }
    }

    static func router(_ page: EntryPage) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { request, _ in
            if let refused = guardLocal(request) { return refused }
            let before = request.uri.queryParameters["before"].map(String.init)
            return reply(await detached { page.homePage(before: before) })
        }
        router.get("/new") { request, _ in
            if let refused = guardLocal(request) { return refused }
            let form = request.uri.queryParameters["form"].map(String.init)
            return reply(await detached { page.newRecordPage(form: form) })
        }
        router.get("/records/:id") { request, context in
            if let refused = guardLocal(request) { return refused }
            let id = context.parameters.get("id") ?? ""
            let saved = request.uri.queryParameters["saved"] == "1"
            return reply(await detached { page.editPage(id, saved: saved) })
        }
        router.post("/records") { request, _ in
            if let refused = guardLocal(request) { return refused }
            guard let body = try? await request.body.collect(upTo: 64 * 1024) else {
                return reply(.init(status: 413, html: "form data over 64 KiB"))
            }
            let bytes = Array(buffer: body)
            return reply(await detached { page.save(nil, body: bytes) })
        }
        router.post("/records/:id") { request, context in
            if let refused = guardLocal(request) { return refused }
            let id = context.parameters.get("id") ?? ""
            guard let body = try? await request.body.collect(upTo: 64 * 1024) else {
                return reply(.init(status: 413, html: "form data over 64 KiB"))
            }
            let bytes = Array(buffer: body)
            return reply(await detached { page.save(id, body: bytes) })
        }
        return router
    }

    /// SQLite work off the event loop.
    static func detached(_ body: @escaping @Sendable () -> EntryPage.Reply) async -> EntryPage.Reply {
        await Task.detached { body() }.value
    }

    /// Refuses a request whose Host is not this PC's loopback: a web page
    /// elsewhere that points its own name at 127.0.0.1 (DNS rebinding) must
    /// not read or write the replica through the clerk's browser.
    static func guardLocal(_ request: Request) -> Response? {
        let authority = request.head.authority ?? ""
        let host: Substring
        if authority.hasPrefix("[") {
            host = authority.split(separator: "]").first.map { $0.dropFirst() } ?? ""
        } else {
            host = authority.split(separator: ":").first ?? ""
        }
        if ["127.0.0.1", "localhost", "::1"].contains(String(host)) { return nil }
        return reply(.init(status: 421, html: "this page answers only on 127.0.0.1"))
    }

    static func reply(_ r: EntryPage.Reply) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        // No framing by other sites (clickjacking), no scripts at all.
        if let frame = HTTPField.Name("X-Frame-Options") { headers[frame] = "DENY" }
        if let csp = HTTPField.Name("Content-Security-Policy") {
            headers[csp] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
        }
        if let l = r.location { headers[.location] = l }
        return Response(
            status: HTTPResponse.Status(code: r.status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: r.html)))
    }
}

/// The URL this process wrote to page.url, so it removes only its own.
private final class URLFile: Sendable {
    private let value = Mutex<String?>(nil)
    func set(_ s: String) { value.withLock { $0 = s } }
    func get() -> String? { value.withLock { $0 } }
}

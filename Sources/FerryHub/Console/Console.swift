import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Mustache
import NIOCore

/// The hub's web console under `/`: server-side rendered HTML (swift-mustache),
/// no scripts. Pages read through the same service functions as `/v1/ops`;
/// the writes (resolve; quarantine fix and release, ``ConsoleQuarantine``) go through ``HubService/operatorRequest(method:path:query:body:identity:)``
/// so it is role-checked and lands in the operator log like a CLI call.
enum Console {
    static let library: MustacheLibrary = {
        var lib = MustacheLibrary()
        for (name, text) in ConsoleTemplates.all {
            // The templates are constants of this file's module: a parse error is a
            // programming error caught by the console tests, rendered as a plain message.
            if let t = try? MustacheTemplate(string: text) { lib.register(t, named: name) }
        }
        return lib
    }()

    static let loginCSRFCookie = "ferry_login_csrf"

    static func register(on router: Router<HubRequestContext>, service: HubService) {
        let pages = router.group("").add(middleware: OperatorAuthenticator(access: service.access))
        pages.get("/") { _, context in
            redirect(context.identity == nil ? "/login" : "/progress")
        }
        pages.get("/login") { _, _ in loginPage(error: nil, user: "") }
        pages.post("/login") { request, _ in
            let form = try await formFields(request)
            let cookie = request.cookies[loginCSRFCookie]?.value ?? ""
            guard !cookie.isEmpty, constantTimeEqual(Array(cookie.utf8), Array((form["csrf"] ?? "").utf8)) else {
                return loginPage(
                    error: "The login form expired (or cookies are off): load the page again and retry.", user: "",
                    status: .forbidden)
            }
            let name = (form["user"] ?? "").nfc
            let access = service.access
            defer { access.loginsInFlight.closed() }
            guard access.loginsInFlight.opened(limit: OperatorAccess.maxConcurrentLogins) else {
                return loginPage(
                    error: "The hub is checking other logins: retry in a few seconds.", user: name,
                    status: .tooManyRequests)
            }
            // Argon2id takes a moment: keep it off the event loop.
            let password = form["password"] ?? ""
            let checked = await Task.detached { access.login(name: name, password: password) }.value
            guard let who = checked else {
                service.noteFailedLogin(name: name)
                return loginPage(
                    error: "Wrong user name or password, or the user is disabled.", user: name, status: .unauthorized)
            }
            service.logger.notice("console login", metadata: ["ferry.user": "\(who.name)"])
            return startSession(service, who, next: "/progress")
        }
        pages.get("/login/once") { request, _ in
            let secret = request.uri.queryParameters["t"].map(String.init) ?? ""
            guard let who = service.access.redeem(link: secret) else {
                service.noteFailedLogin(name: "(login link)")
                return loginPage(
                    error: "This login link was used already or expired (links work once, for 2 minutes).", user: "",
                    status: .unauthorized)
            }
            let next = request.uri.queryParameters["next"].map(String.init) ?? "/progress"
            // Only paths of this hub: a link must not send the operator elsewhere.
            let local = next.hasPrefix("/") && !next.hasPrefix("//") && !next.contains("\\") ? next : "/progress"
            // A Location header is ASCII: encode spaces and Vietnamese letters of a search.
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "+#")
            let safe = local.addingPercentEncoding(withAllowedCharacters: allowed) ?? "/progress"
            return startSession(service, who, next: safe)
        }
        pages.post("/logout") { request, context in
            let form = try await formFields(request)
            if let who = context.identity, let s = who.session, checkCSRF(service, s, form) {
                service.access.closeSession(s)
            }
            var r = redirect("/login")
            r.headers[values: .setCookie].append(
                "\(OperatorAccess.sessionCookie)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
            return r
        }
        pages.get("/progress") { _, context in
            try page(service, context, "progress", title: "Campaign progress") { try ConsoleViews.progress(service) }
        }
        pages.get("/fleet") { _, context in
            try page(service, context, "fleet", title: "Agent fleet") { try ConsoleViews.fleet(service) }
        }
        pages.get("/conflicts") { _, context in
            try page(service, context, "conflicts", title: "Conflicts") { who in
                try ConsoleViews.conflicts(service, who)
            }
        }
        ConsoleQuarantine.register(on: pages, service: service)
        pages.get("/records") { request, context in
            let q = request.uri.queryParameters["q"].map(String.init) ?? ""
            let c = request.uri.queryParameters["commune"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
            return try page(service, context, "records", title: "Records") {
                try ConsoleViews.records(service, q: q, commune: c)
            }
        }
        pages.get("/records/:id") { request, context in
            let id = context.parameters.get("id") ?? ""
            guard let rid = RecordID(id) else {
                return try message(service, context, .badRequest, "Not a record id", "'\(id)' is not a record id.")
            }
            guard try service.store.record(rid) != nil else {
                return try message(service, context, .notFound, "No such record", "Record \(id) is not at this hub.")
            }
            return try page(service, context, "records", template: "record", title: "Record") {
                try ConsoleViews.record(service, rid)
            }
        }
        pages.post("/conflicts/resolve") { request, context in
            let form = try await formFields(request)
            guard let who = context.identity, let s = who.session else { return redirect("/login") }
            guard checkCSRF(service, s, form) else {
                return try message(
                    service, context, .forbidden, "Form expired",
                    "The form is stale: reload the conflict queue and retry.")
            }
            let value = form["value"].flatMap { $0.isEmpty ? nil : $0 }
            let body = try HubJSON.encoder.encode(
                ResolveRequest(record: form["record"] ?? "", field: form["field"] ?? "", value: value))
            let r = await Task.detached {
                service.operatorRequest(
                    method: "POST", path: ["conflicts", "resolve"], query: [:], body: [UInt8](body), identity: who)
            }.value
            guard r.status == 200 else {
                let why =
                    (try? HubJSON.decoder.decode(ErrorBody.self, from: Data(r.body)))?.error.message
                    ?? "HTTP \(r.status)"
                return try message(
                    service, context, HTTPResponse.Status(code: r.status), "Not resolved", why, back: "/conflicts")
            }
            return redirect("/conflicts?resolved=1")
        }
    }

    // MARK: helpers

    static func html(_ text: String, status: HTTPResponse.Status = .ok, headers extra: [String] = []) -> Response {
        var h = HTTPFields()
        h[.contentType] = "text/html; charset=utf-8"
        h[.cacheControl] = "no-store"
        if let name = HTTPField.Name("X-Frame-Options") { h[name] = "DENY" }
        if let name = HTTPField.Name("Content-Security-Policy") {
            h[name] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
        }
        for c in extra { h.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ to: String, cookies: [String] = []) -> Response {
        var h = HTTPFields()
        h[.location] = to
        h[.cacheControl] = "no-store"
        for c in cookies { h.append(HTTPField(name: .setCookie, value: c)) }
        return Response(status: .seeOther, headers: h)
    }

    static func startSession(_ service: HubService, _ who: OperatorIdentity, next: String) -> Response {
        guard let id = try? service.access.openSession(who) else {
            // Sessions live in the store: when it cannot take a write, say so rather than loop on the login.
            return loginPage(
                error:
                    "the hub could not open a session (its store refuses writes): retry in a moment, or tell the hub's administrator",
                user: who.name, status: .serviceUnavailable)
        }
        return redirect(
            next,
            cookies: [
                "\(OperatorAccess.sessionCookie)=\(id); Path=/; Max-Age=\(OperatorAccess.sessionTTL / 1000); HttpOnly; SameSite=Strict",
                "\(loginCSRFCookie)=; Path=/login; Max-Age=0; HttpOnly; SameSite=Strict",
            ])
    }

    static func loginPage(error: String?, user: String, status: HTTPResponse.Status = .ok) -> Response {
        let csrf = hex(randomBytes(24))
        struct View {
            var error: String?
            var user: String
            var csrf: String
        }
        let body = library.render(View(error: error, user: user, csrf: csrf), withTemplate: "login") ?? ""
        return html(
            wrap(title: "Log in", body: body, user: nil, flash: nil), status: status,
            headers: ["\(loginCSRFCookie)=\(csrf); Path=/login; Max-Age=3600; HttpOnly; SameSite=Strict"])
    }

    struct NavItem {
        var href: String
        var label: String
        var current: Bool
    }
    struct UserView {
        var name: String
        var role: String
        var csrf: String
        var nav: [NavItem]
    }

    static func wrap(title: String, body: String, user: UserView?, flash: String?) -> String {
        struct Layout {
            var title: String
            var body: String
            var user: UserView?
            var flash: String?
        }
        return library.render(Layout(title: title, body: body, user: user, flash: flash), withTemplate: "layout")
            ?? body
    }

    static func userView(_ service: HubService, _ who: OperatorIdentity, current: String) -> UserView {
        let items = [
            ("/progress", "Progress", "progress"), ("/fleet", "Fleet", "fleet"),
            ("/conflicts", "Conflicts", "conflicts"),
            ("/quarantine", "Quarantine", "quarantine"), ("/records", "Records", "records"),
        ]
        return UserView(
            name: who.name, role: who.role.rawValue, csrf: who.session.flatMap(service.access.csrf(session:)) ?? "",
            nav: items.map { NavItem(href: $0.0, label: $0.1, current: $0.2 == current) })
    }

    /// A page for a signed-in operator (any role reads), or a redirect to the login page.
    static func page(
        _ service: HubService, _ context: HubRequestContext, _ current: String, template: String? = nil,
        title: String, _ view: (OperatorIdentity) throws -> Any
    ) throws -> Response {
        guard let who = context.identity else { return redirect("/login") }
        guard who.may(.viewer) else { return html("forbidden", status: .forbidden) }
        let model = try view(who)
        let body = library.render(model, withTemplate: template ?? current) ?? ""
        return html(wrap(title: title, body: body, user: userView(service, who, current: current), flash: nil))
    }

    static func page(
        _ service: HubService, _ context: HubRequestContext, _ current: String, template: String? = nil,
        title: String, _ view: () throws -> Any
    ) throws -> Response {
        try page(service, context, current, template: template, title: title) { (_: OperatorIdentity) in try view() }
    }

    static func message(
        _ service: HubService, _ context: HubRequestContext, _ status: HTTPResponse.Status, _ heading: String,
        _ text: String, back: String = "/progress"
    ) throws -> Response {
        struct View {
            var heading: String
            var text: String
            var back: String
        }
        let body = library.render(View(heading: heading, text: text, back: back), withTemplate: "message") ?? text
        let user = context.identity.map { userView(service, $0, current: "") }
        return html(wrap(title: heading, body: body, user: user, flash: nil), status: status)
    }

    static func checkCSRF(_ service: HubService, _ session: String, _ form: [String: String]) -> Bool {
        guard let want = service.access.csrf(session: session), let got = form["csrf"] else { return false }
        return constantTimeEqual(Array(want.utf8), Array(got.utf8))
    }

    /// An `application/x-www-form-urlencoded` body (at most 64 KiB) as fields.
    static func formFields(_ request: Request) async throws -> [String: String] {
        guard let body = try await HubServer.collect(request, upTo: 64 * 1024, what: "form") else {
            throw HTTPError(.contentTooLarge, message: "the form is over 64 KiB")
        }
        return parseForm(String(buffer: body))
    }

    /// Parses `a=1&b=x+y`; pairs that are not valid percent-encoding are dropped (never a trap).
    static func parseForm(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(100) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? {
                s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let k = kv.first.flatMap(decode), let v = kv.count > 1 ? decode(kv[1]) : "" else { continue }
            if out[k] == nil { out[k] = v }
        }
        return out
    }
}

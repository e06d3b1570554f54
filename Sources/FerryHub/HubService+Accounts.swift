import FerryCore
import FerryCrypto
import FerryProtocol
import FerryStore
import Foundation
import Logging

/// `POST /v1/ops/users`.
public struct UserAddRequest: Codable, Sendable {
    public var name: String
    public var role: String
    public var password: String?
    public init(name: String, role: String, password: String?) {
        self.name = name
        self.role = role
        self.password = password
    }
}

/// A user as `GET /v1/ops/users` lists it (never the password hash).
public struct UserJSON: Codable, Sendable {
    public var name: String
    public var role: String
    public var disabled: Bool
    public var createdMs: UInt64
    public var hasPassword: Bool
}

/// `POST /v1/ops/users/NAME/tokens`.
public struct UserTokenRequest: Codable, Sendable {
    public var label: String?
    public var days: Int?
    public init(label: String?, days: Int?) {
        self.label = label
        self.days = days
    }
}

public struct UserTokenResponse: Codable, Sendable {
    public var user: String
    public var token: String
    public var expiresMs: UInt64
}

/// `POST /v1/ops/login-links`: a one-time console link for the caller.
public struct LoginLinkResponse: Codable, Sendable {
    public var path: String
    public var expiresMs: UInt64
}

extension HubService {
    /// An operator request from `who`: checks the role the endpoint needs,
    /// serves the account endpoints, and writes every successful write into the
    /// operator log (and the hub's log) under the user's name. Bodies are never
    /// logged: they may hold passwords.
    public func operatorRequest(
        method: String, path: [String], query: [String: String], body: [UInt8], identity who: OperatorIdentity
    ) -> HubReply {
        let needed = OperatorAccess.requiredRole(method: method, path: path)
        let target = "\(method) /v1/ops/\(path.joined(separator: "/"))"
        guard who.may(needed) else {
            metrics.add("ferry_operator_denied_total", "role=\"\(who.role.rawValue)\"")
            logger.warning(
                "operator request denied",
                metadata: [
                    "ferry.user": "\(who.name)", "ferry.role": "\(who.role.rawValue)", "ferry.request": "\(target)",
                ])
            return .error(
                403, code: "forbidden",
                "\(target) needs the \(needed.rawValue) role; user \(who.name) is \(who.role.rawValue): ask an admin")
        }
        let reply: HubReply
        do {
            reply =
                try accountRequest(method: method, path: path, query: query, body: body, who: who)
                ?? operatorRequest(method: method, path: path, query: query, body: body, by: who.name)
        } catch let e as HubError {
            reply = .error(
                e.code == .notFound ? 404 : e.code == .conflict ? 409 : 400, code: e.code.rawValue, e.message)
        } catch {
            reply = .error(400, code: "bad_request", "\(error)")
        }
        if method != "GET", reply.status == 200 { noteOperatorWrite(who: who, path: path, query: query, body: body) }
        return reply
    }

    /// The account endpoints, or nil for every other path.
    func accountRequest(method: String, path: [String], query: [String: String], body: [UInt8], who: OperatorIdentity)
        throws -> HubReply?
    {
        switch (method, path.count, path.first ?? "") {
        case ("GET", 1, "users"):
            return .json(
                200,
                try store.operatorAccounts().map {
                    UserJSON(
                        name: $0.name, role: $0.role.rawValue, disabled: $0.disabled, createdMs: $0.createdMs,
                        hasPassword: $0.passwordHash != nil)
                })
        case ("POST", 1, "users"):
            let req = try decode(UserAddRequest.self, body)
            let a = try access.addUser(name: req.name.nfc, role: req.role, password: req.password)
            return .json(
                200,
                UserJSON(
                    name: a.name, role: a.role.rawValue, disabled: false, createdMs: a.createdMs,
                    hasPassword: a.passwordHash != nil))
        case ("POST", 3, "users") where path[2] == "disable" || path[2] == "enable":
            try store.setOperatorDisabled(name: path[1], disabled: path[2] == "disable")
            return .json(200, ["user": path[1], "status": path[2] == "disable" ? "disabled" : "enabled"])
        case ("POST", 3, "users") where path[2] == "tokens":
            let req = body.isEmpty ? UserTokenRequest(label: nil, days: nil) : try decode(UserTokenRequest.self, body)
            let t = try access.issueToken(name: path[1], label: req.label ?? "cli", days: req.days ?? 90)
            return .json(200, UserTokenResponse(user: path[1], token: t.token, expiresMs: t.expiresMs))
        case ("POST", 1, "login-links"):
            let secret = try access.loginLink(for: who)
            return .json(
                200,
                LoginLinkResponse(
                    path: "/login/once?t=\(secret)", expiresMs: store.nowMillis() + OperatorAccess.loginLinkTTL))
        case ("GET", 1, "actions"):
            let limit = max(1, min(Int(query["limit"] ?? "") ?? 100, 1000))
            return .json(200, try store.operatorActions(record: query["record"], limit: limit))
        default:
            return nil
        }
    }

    /// The action a lifecycle write notes in the operator log itself, in the
    /// transaction of the write (so it carries the target and the note); nil for
    /// the writes this function logs.
    static func storeLoggedAction(path: [String], query: [String: String]) -> String? {
        switch (path.first ?? "", path.count, path.last ?? "") {
        case ("forms", 1, _): (try? flag(query, "draft")) == true ? "form.draft" : "form.publish"
        case ("forms", 4, "publish"): "form.publish"
        case ("forms", 4, "retire"): "form.retire"
        case ("forms", 3, "migrate"): "form.migrate"
        case ("campaigns", 1, _): "campaign.publish"
        case ("quarantine", 3, "fix"): "quarantine.fixed"
        case ("quarantine", 3, "release"): "quarantine.released"
        case ("records", 2, "import"): "records.import"
        default: nil
        }
    }

    /// Records an operator's write in the one operator log (`operator_log`) and
    /// the hub's log, with the same fields: who, what, which record; never the
    /// body's values.
    func noteOperatorWrite(who: OperatorIdentity, path: [String], query: [String: String] = [:], body: [UInt8]) {
        guard path.first != "login-links" else { return }
        var record: String?
        var detail = path.joined(separator: "/")
        var target = ""
        if path.first == "records", path.count == 2, path[1] != "import" { record = path[1] }
        if path.first == "conflicts", let r = try? decode(ResolveRequest.self, body) {
            record = r.record
            detail += " field=\(r.field)"
        }
        if path.first == "records", let r = try? decode(RecordWriteRequest.self, body) {
            detail += " fields=\(r.values.keys.sorted().joined(separator: ","))"
        }
        if path.first == "quarantine", path.count == 3 {
            target = "#\(path[1])"
            record = (try? Self.quarantineID(path[1])).flatMap { try? store.quarantineEntry(id: $0)?.record }
        }
        if path.first == "agents" || path.first == "users", path.count == 3 { target = path[1] }
        let inStore = Self.storeLoggedAction(path: path, query: query)
        // A verb, not an id: "records/edit", "agents/revoke", "users/disable".
        let action =
            inStore
            ?? {
                switch (path.first ?? "", path.count) {
                case ("records", 1): "records/create"
                case ("records", 2): "records/edit"
                case (let head, 1): head
                default: path[0] + "/" + path[path.count - 1]
                }
            }()
        if inStore == nil {
            try? store.logOperatorAction(
                OperatorAction(
                    atMs: store.nowMillis(), user: who.name, action: action, record: record, detail: detail,
                    target: target))
        }
        metrics.add("ferry_operator_writes_total", "user=\"\(Self.labelSafe(who.name))\"")
        logger.notice(
            "operator write",
            metadata: [
                "ferry.user": "\(who.name)", "ferry.role": "\(who.role.rawValue)", "ferry.action": "\(action)",
                "ferry.record": "\(record ?? "-")", "ferry.target": "\(target.isEmpty ? "-" : target)",
                "ferry.detail": "\(detail)",
            ])
    }

    static func labelSafe(_ s: String) -> String {
        // A label value of the hub's own making: no quotes, commas or backslashes to escape.
        String(
            s.unicodeScalars.filter {
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0))
            }.prefix(64))
    }

    /// Logs and counts a refused enrollment (the token's secret is never logged).
    func noteEnrollment(_ reply: HubReply) {
        guard reply.status != 200 else { return }
        let code = (try? HubJSON.decoder.decode(ErrorBody.self, from: Data(reply.body)))?.error.code ?? "unknown"
        metrics.add("ferry_enrollments_refused_total", "code=\"\(Self.labelSafeCode(code))\"")
        logger.warning("enrollment refused", metadata: ["ferry.code": "\(code)", "ferry.status": "\(reply.status)"])
    }

    /// Logs and counts a failed console login (the name tried, never the password).
    func noteFailedLogin(name: String) {
        metrics.add("ferry_operator_logins_failed_total")
        logger.warning("console login failed", metadata: ["ferry.user": "\(String(name.prefix(64)))"])
    }
}

import FerryCrypto
import FerryStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import Logging
import Synchronization

/// Who is calling an operator endpoint or a console page.
public struct OperatorIdentity: Sendable, Equatable, RoleProviding {
    public var name: String
    public var role: OperatorRole
    /// Set when the caller came in through a console session (for its CSRF token).
    public var session: String?

    /// Every role up to the caller's own (an admin also holds operator and viewer).
    public var roles: Set<OperatorRole> { Set(OperatorRole.allCases.filter { $0 <= role }) }

    public func may(_ needed: OperatorRole) -> Bool { role >= needed }

    public init(name: String, role: OperatorRole, session: String? = nil) {
        self.name = name
        self.role = role
        self.session = session
    }
}

/// The request context of the hub's router: Hummingbird's core plus the
/// authenticated operator, if any (hummingbird-auth).
public struct HubRequestContext: AuthRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: OperatorIdentity?
    public init(source: Source) {
        coreContext = .init(source: source)
        identity = nil
    }
}

/// Finds the operator behind a request: `Authorization: Bearer <token>` (the
/// bootstrap `operator.token` is the admin "admin"; other tokens are per user,
/// stored hashed) or the console's session cookie.
struct OperatorAuthenticator: AuthenticatorMiddleware {
    typealias Context = HubRequestContext
    let access: OperatorAccess

    func authenticate(request: Request, context: Context) async throws -> OperatorIdentity? {
        if let bearer = request.headers.bearer {
            return access.identity(token: bearer.token)
        }
        if let cookie = request.cookies[OperatorAccess.sessionCookie]?.value {
            return access.identity(session: cookie)
        }
        return nil
    }
}

/// Accounts, sessions and one-time login links of the hub's operators.
/// Sessions and login links (two minutes, one use) live in the store (only a
/// digest of their secret), so a restarted hub, or another hub process on the
/// same database, keeps an operator signed in and honours a link another
/// process made.
public final class OperatorAccess: Sendable {
    static let sessionCookie = "ferry_session"
    static let sessionTTL: UInt64 = 8 * 3_600_000
    static let loginLinkTTL: UInt64 = 120_000
    static let maxSessions = 10_000

    let store: any OperatorAccountStore & Sendable
    let bootstrapToken: String
    let cost: PasswordHash.Cost
    let now: @Sendable () -> UInt64

    init(
        store: any OperatorAccountStore & Sendable, bootstrapToken: String, cost: PasswordHash.Cost,
        now: @escaping @Sendable () -> UInt64
    ) {
        self.store = store
        self.bootstrapToken = bootstrapToken
        self.cost = cost
        self.now = now
    }

    /// Digest under which an API token is stored (tokens are 32 random bytes, so a fast hash suffices).
    static func tokenHash(_ token: String) -> [UInt8] { digest(Array(("ferry-operator-token:" + token).utf8)) }

    /// The identity behind an API token, or nil (unknown, expired, or its user disabled).
    func identity(token: String) -> OperatorIdentity? {
        if !bootstrapToken.isEmpty, constantTimeEqual(Array(token.utf8), Array(bootstrapToken.utf8)) {
            return OperatorIdentity(name: "admin", role: .admin)
        }
        guard token.hasPrefix("fop_"), token.utf8.count < 200,
            let a = try? store.operatorAccount(tokenHash: Self.tokenHash(token))
        else { return nil }
        return OperatorIdentity(name: a.name, role: a.role)
    }

    /// Digest under which a console session id is stored.
    static func sessionHash(_ id: String) -> [UInt8] { digest(Array(("ferry-console-session:" + id).utf8)) }

    /// The identity of a live session whose user is still enabled.
    func identity(session id: String) -> OperatorIdentity? {
        guard id.utf8.count <= 128, let s = try? store.operatorSession(idHash: Self.sessionHash(id)),
            s.expiresMs > now()
        else { return nil }
        // The bootstrap admin (operator.token) has no account row; every other
        // user is looked up again, so a disabled user loses the console at once.
        var i = OperatorIdentity(name: s.name, role: s.role, session: id)
        guard i.name != "admin" else { return i }
        guard let a = try? store.operatorAccount(name: i.name), !a.disabled else {
            try? store.deleteOperatorSession(idHash: Self.sessionHash(id))
            return nil
        }
        i.role = a.role
        return i
    }

    func csrf(session id: String) -> String? {
        guard id.utf8.count <= 128 else { return nil }
        return try? store.operatorSession(idHash: Self.sessionHash(id))?.csrf
    }

    /// Checks a password; the identity on success. Unknown users cost a hash too,
    /// so timing does not tell which names exist.
    func login(name: String, password: String) -> OperatorIdentity? {
        let a = try? store.operatorAccount(name: name)
        guard let a, let hash = a.passwordHash, !a.disabled else {
            _ = PasswordHash.verify(password, against: dummyHash())
            return nil
        }
        guard PasswordHash.verify(password, against: hash) else { return nil }
        return OperatorIdentity(name: a.name, role: a.role)
    }

    /// A hash at the hub's own cost, made on first use (it takes ~64 MiB and a moment).
    private let dummy = Mutex<String?>(nil)
    private func dummyHash() -> String {
        if let d = dummy.withLock({ $0 }) { return d }
        let d = PasswordHash.hash(hex(randomBytes(16)), cost: cost) ?? ""
        dummy.withLock { $0 = d }
        return d
    }

    /// Logins being checked now: each Argon2id check takes ~64 MiB, so past a
    /// few at once the hub answers "busy" instead of running out of memory.
    let loginsInFlight = ConnectionCount()
    static let maxConcurrentLogins = 4

    /// Opens a console session; returns its id (the cookie value).
    /// - Throws: when the store cannot keep it (the login then fails with the store's reason).
    func openSession(_ identity: OperatorIdentity) throws -> String {
        let id = hex(randomBytes(32))
        try store.addOperatorSession(
            OperatorSession(
                idHash: Self.sessionHash(id), name: identity.name, role: identity.role, csrf: hex(randomBytes(24)),
                expiresMs: now() + Self.sessionTTL), keep: Self.maxSessions)
        return id
    }

    func closeSession(_ id: String) {
        guard id.utf8.count <= 128 else { return }
        try? store.deleteOperatorSession(idHash: Self.sessionHash(id))
    }

    /// Digest under which a login link is stored: another domain than sessions,
    /// so a link's secret never works as a session cookie.
    static func linkHash(_ secret: String) -> [UInt8] { digest(Array(("ferry-console-link:" + secret).utf8)) }

    /// A one-time login link secret for `identity`, valid for two minutes.
    /// - Throws: when the store cannot keep it.
    func loginLink(for identity: OperatorIdentity) throws -> String {
        let secret = hex(randomBytes(24))
        try store.addOperatorSession(
            OperatorSession(
                idHash: Self.linkHash(secret), name: identity.name, role: identity.role, csrf: "",
                expiresMs: now() + Self.loginLinkTTL), keep: Self.maxSessions)
        return secret
    }

    /// Redeems a login link (once, whichever hub process made it): the identity it was made for.
    func redeem(link secret: String) -> OperatorIdentity? {
        guard secret.utf8.count <= 128, let l = try? store.takeOperatorSession(idHash: Self.linkHash(secret)) else {
            return nil
        }
        if l.name == "admin" { return OperatorIdentity(name: "admin", role: .admin) }
        guard let a = try? store.operatorAccount(name: l.name), !a.disabled else { return nil }
        return OperatorIdentity(name: a.name, role: a.role)
    }

    /// Creates an account.
    /// - Throws: ``HubError`` with what to change (name, role, password).
    func addUser(name: String, role: String, password: String?) throws -> OperatorAccount {
        let name = name.trimmingCharacters(in: .whitespaces)
        guard Self.isValidName(name) else {
            throw HubError(
                .badRequest, "'\(name)' is not a usable user name: use 1–64 letters, digits, '.', '-' or '_'")
        }
        guard name != "admin" else {
            throw HubError(.conflict, "'admin' is the bootstrap identity of operator.token: pick another name")
        }
        guard let r = OperatorRole(rawValue: role) else {
            throw HubError(.badRequest, "role '\(role)' is unknown: use viewer, operator or admin")
        }
        var hash: String?
        if let password {
            guard password.count >= 8, password.utf8.count <= PasswordHash.maxPasswordBytes else {
                throw HubError(.badRequest, "the password must have 8 to 1024 bytes")
            }
            guard let h = PasswordHash.hash(password, cost: cost) else {
                throw HubError(.badRequest, "the hub could not hash the password (out of memory?): retry")
            }
            hash = h
        }
        let a = OperatorAccount(name: name, role: r, disabled: false, createdMs: now(), passwordHash: hash)
        try store.addOperator(a)
        return a
    }

    /// Issues an API token for `name` (shown once; stored as a digest).
    func issueToken(name: String, label: String, days: Int) throws -> (token: String, expiresMs: UInt64) {
        guard let a = try store.operatorAccount(name: name) else {
            throw HubError(.notFound, "there is no user \(name): add it with `ferry hub users add`")
        }
        guard !a.disabled else { throw HubError(.conflict, "user \(name) is disabled: enable it first") }
        let token = "fop_" + hex(randomBytes(32))
        let expires = now() + UInt64(max(1, min(days, 366))) * 86_400_000
        try store.addOperatorToken(
            name: name, tokenHash: Self.tokenHash(token), label: String(label.prefix(100)), expiresMs: expires)
        return (token, expires)
    }

    static func isValidName(_ n: String) -> Bool {
        !n.isEmpty && n.count <= 64
            && n.unicodeScalars.allSatisfy {
                ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0))
            }
    }

    /// The least role an operator request needs: viewers read; operators resolve
    /// and edit records and quarantine; admins manage users, forms, campaigns,
    /// enrollment tokens and agents.
    public static func requiredRole(method: String, path: [String]) -> OperatorRole {
        let head = path.first ?? ""
        if head == "users" { return .admin }
        if method == "GET" || method == "HEAD" { return .viewer }
        switch head {
        case "conflicts", "records", "quarantine", "login-links": return head == "login-links" ? .viewer : .operator
        default: return .admin
        }
    }
}

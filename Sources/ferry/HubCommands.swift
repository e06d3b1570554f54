import ArgumentParser
import FerryAgent
import FerryCore
import FerryCrypto
import FerryHub
import FerryPostgres
import FerryProtocol
import FerryStore
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

struct HubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hub", abstract: "Run and operate the provincial hub.",
        subcommands: [
            HubInit.self, HubServe.self, HubToken.self, HubAgents.self, HubRevoke.self, HubCommunes.self,
            HubUsers.self, HubImportBundle.self, HubExportBundle.self,
        ])
}

struct HubInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a hub: keys, store, operator token, the province's communes and the land-record form.")
    @Option(help: "Directory for the hub's files.") var dir = "ferry-hub"
    @Option(
        help: ArgumentHelp(
            "Keep the records in this PostgreSQL database (postgres://user@host:port/db) instead of DIR/hub.sqlite.",
            discussion: "Keys and the operator token stay in DIR; the URL is kept in DIR/hub.store (0600)."))
    var store: String?

    func run() async throws {
        let home = HubHome(directory: dir)
        let identity: Identity
        do { identity = try home.initialize(storeURL: store) } catch let e as HubError { throw UserError(e.message) }
        print("Hub created in \(dir)")
        if let store { print("  store:           \((try? PostgresURL(store))?.description ?? "postgres")") }
        print("  key fingerprint: \(hex(identity.fingerprint))")
        print("  operator token:  \(home.tokenPath) (keep it secret)")
        print("  seeded:          \(Seed.communes.count) communes, form land-record v1, campaign land-2025")
        print("Next: ferry hub serve --dir \(dir)")
    }
}

struct HubServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve agents and operators over HTTP.")
    @Option(help: "Directory of the hub (from `ferry hub init`).") var dir = "ferry-hub"
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0 = any free port; the URL is written to DIR/hub.url).") var port = 8440
    @Option(help: "Seconds a write may be stamped ahead of the hub's clock.") var futureBound = 600
    @Option(help: "Seconds a new connection has to send a complete request head (then 408).")
    var headTimeout = 20
    @Option(help: "Seconds a request body may stall without a byte (then 408).") var bodyIdleTimeout = 30
    @Option(help: "Open connections above this are answered 503.") var maxConnections = 512
    @Option(help: "Password hashing cost: interactive (default) or test (libsodium's minimum; tests only).")
    var passwordCost = "interactive"
    @Option(help: "Log format: text, or json (one object a line, for journald or Loki).") var logFormat = "text"
    @Option(help: "PostgreSQL store URL (postgres://…); default: DIR/hub.store, else DIR/hub.sqlite.")
    var store: String?
    @Option(
        name: .customLong("min-agent-version"),
        help:
            "Refuse agents whose software is older than this (426 agent_too_old; SPEC §9.1.1). Default: $FERRY_HUB_MIN_AGENT_VERSION, else none."
    )
    var minAgentVersion: String?

    func run() async throws {
        guard ["text", "json"].contains(logFormat) else { throw UserError("--log-format must be text or json") }
        // Before the first logger: logging is bootstrapped once, from the environment.
        if logFormat == "json" { setenv("FERRY_LOG_FORMAT", "json", 1) }
        let logger = Log.logger("ferry.hub")
        let home = HubHome(directory: dir)
        guard home.isInitialized else { throw UserError("no hub in \(dir): run `ferry hub init --dir \(dir)` first") }
        guard (0...86_400 * 365).contains(futureBound), (1...3600).contains(headTimeout),
            (1...3600).contains(bodyIdleTimeout), (1...1_000_000).contains(maxConnections)
        else {
            throw UserError(
                "--future-bound must be 0…31536000 s, --head-timeout and --body-idle-timeout 1…3600 s, --max-connections 1…1000000"
            )
        }
        let minText = minAgentVersion ?? ProcessInfo.processInfo.environment["FERRY_HUB_MIN_AGENT_VERSION"]
        let minAgent = try minText.flatMap { t -> SoftwareVersion? in
            if t.isEmpty { return nil }
            guard let v = SoftwareVersion(t) else { throw UserError("--min-agent-version must look like 0.2.0") }
            return v
        }
        var limits = ServerLimits.standard
        limits.headTimeout = .seconds(Int64(headTimeout))
        limits.bodyIdleTimeout = .seconds(Int64(bodyIdleTimeout))
        limits.maxConnections = maxConnections
        // One hub per directory: a second one would also rewrite (and on stop delete) hub.url.
        let lock: DirectoryLock
        do { lock = try home.lock() } catch { throw UserError("\(error)") }
        defer { lock.release() }
        for w in home.privacyWarnings() { logger.warning("file is not private", metadata: ["ferry.problem": "\(w)"]) }
        let store: any HubServiceStore
        let bound = UInt64(futureBound) * 1000
        if let url = self.store ?? home.storeURL() {
            // Several hub processes may share this database; never log its password.
            do {
                store = try PostgresHubStore(url: url, futureBoundMillis: bound, logger: logger)
            } catch let e as HubError {
                throw UserError(e.message)
            } catch {
                throw UserError("\(error)")
            }
            logger.notice("hub store", metadata: ["ferry.store": "\(store.location)"])
        } else {
            do {
                let s = try SQLiteHubStore(path: home.storePath, futureBoundMillis: bound)
                try s.verifyIntegrity()
                store = s
            } catch {
                throw UserError(StoreFault.describe(error, path: home.storePath))
            }
        }
        guard let cost = PasswordHash.Cost(rawValue: passwordCost) else {
            throw UserError("--password-cost must be interactive or test")
        }
        let service = HubService(
            store: store, identity: try home.identity(), operatorToken: try home.operatorToken(), logger: logger,
            passwordCost: cost)
        let urlPath = home.urlPath
        let host = host
        let written = Mutex<String?>(nil)
        let app = HubServer.application(
            service: service, host: host, port: port, logger: logger, limits: limits, minAgentVersion: minAgent
        ) {
            bound in
            // hub.url is for local CLI use: a wildcard bind is reached on loopback.
            let local = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
            let url = "http://\(local):\(bound)"
            try? (url + "\n").write(toFile: urlPath, atomically: true, encoding: .utf8)
            written.withLock { $0 = url + "\n" }
            logger.notice("hub listening", metadata: ["ferry.url": "\(url)"])
        }
        let group = ServiceGroup(
            configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            let text = String(describing: error)
            if text.contains("Address already in use") || text.contains("errno: 98") {
                throw UserError(
                    "port \(port) on \(host) is already in use (another ferry hub, or another program): stop that one, or choose another port with --port (--port 0 takes any free port)"
                )
            }
            if text.contains("Cannot assign requested address") || text.contains("errno: 99") {
                throw UserError(
                    "\(host) is not an address of this machine: use --host 127.0.0.1, 0.0.0.0 or one of its own addresses"
                )
            }
            throw error
        }
        // Remove hub.url only if it is still the one this process wrote.
        if let mine = written.withLock({ $0 }), (try? String(contentsOfFile: urlPath, encoding: .utf8)) == mine {
            try? FileManager.default.removeItem(atPath: urlPath)
        }
    }
}

struct HubToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Issue a one-time enrollment token for a commune's agent.")
    @Option(help: "Commune code (see `ferry hub communes`).") var commune: String
    @Option(help: "Hours the token stays valid.") var ttlHours = 168
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        let r = try await hub.client().call(
            "POST", "tokens", body: TokenRequest(commune: commune, ttlHours: ttlHours), as: TokenResponse.self)
        if json { try printJSON(r) } else { print(r.token) }
    }
}

struct HubAgents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents", abstract: "List agents: last contact, lag, clock skew, errors.")
    @OptionGroup var page: PageOptions
    @OptionGroup var hub: HubOptions
    @Flag var json = false

    func run() async throws {
        let p = try await hub.client().list("agents", [], page, as: AgentJSON.self)
        if json { return try printJSON(p) }
        let agents = p.items
        defer {
            print(pageFooter(agents.count, remaining: p.remaining, next: p.nextCursor, command: "ferry hub agents"))
        }
        if agents.isEmpty && page.cursor == nil {
            print("No agents enrolled yet. Issue a token: ferry hub token --commune CODE")
        }
        for a in agents {
            let skew = a.lastSkewMs.map { abs($0) > 120_000 ? " clock off by \($0 / 1000) s!" : "" } ?? ""
            print(
                "\(a.id)  \(a.communeName) [\(a.commune)]  \(a.status)  last seen \(ago(a.lastSeenMs))  lag \(a.lag)\(skew)"
            )
            if let t = a.clonedMs {
                print(
                    "    CLONED REPLICA: \(a.clonedRefusals ?? 1) change set(s) refused, last \(ago(t)): this agent's directory runs on two PCs; enroll the copy as its own agent with a new token (ferry agent enroll URL TOKEN --dir DIR on that PC)"
                )
            }
            if let e = a.lastError { print("    last error: \(e)") }
        }
    }
}

struct HubRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke an agent: its key is refused from now on.")
    @Argument var agent: String
    @OptionGroup var hub: HubOptions

    func run() async throws {
        _ = try await hub.client().call("POST", "agents/\(agent)/revoke", as: [String: String].self)
        print("Agent \(agent) revoked. Its change sets and downloads are refused.")
    }
}

struct HubCommunes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "communes", abstract: "List the province's communes and their codes.")
    func run() async throws {
        for c in Seed.communes { print("\(c.code)  \(c.name)  (\(c.kind))") }
    }
}

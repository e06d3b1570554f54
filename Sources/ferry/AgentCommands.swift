import ArgumentParser
import FerryAgent
import FerryCore
import FerryStore
import Foundation
import Logging
import ServiceLifecycle

/// The agent directory option shared by agent-side commands.
struct AgentDir: ParsableArguments {
    @Option(name: .customLong("dir"), help: "The agent directory (default: $FERRY_AGENT_DIR or ./ferry-agent).")
    var dir: String?
    var home: AgentHome {
        AgentHome(directory: dir ?? ProcessInfo.processInfo.environment["FERRY_AGENT_DIR"] ?? "ferry-agent")
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Enroll and run the commune agent.",
        subcommands: [
            AgentEnroll.self, AgentRun.self, AgentSync.self, AgentSetHub.self, AgentExportBundle.self,
            AgentImportBundle.self,
        ])
}

struct AgentEnroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll", abstract: "Enroll this PC with the hub using a one-time token.")
    @Argument(help: "The hub URL, e.g. http://hub.example:8440") var url: String
    @Argument(help: "The token from `ferry hub token`.") var token: String
    @OptionGroup var agent: AgentDir
    @Flag(
        help:
            "Enroll a directory that already holds an agent as a new agent (it is a copy of another PC's): new keys, every unsent change kept and re-sent."
    )
    var reenroll = false

    func run() async throws {
        let host = ProcessInfo.processInfo.hostName
        let home = agent.home
        let wasEnrolled = home.isEnrolled
        let previous = wasEnrolled ? try? home.config().agentID : nil
        // Re-keying a directory must not race a running agent.
        let lock = wasEnrolled ? try home.lock() : nil
        defer { lock?.release() }
        let c = try await Enrollment.enroll(
            hubURL: url, token: token, home: home, hostname: host, reenroll: reenroll)
        if let previous {
            let queued = try home.store().counts().pendingWrites
            print(
                "Re-enrolled as \(c.agentID) for commune \(c.commune) (this directory was agent \(previous)); \(queued) change(s) made here will be sent under the new agent."
            )
        } else {
            print("Enrolled as \(c.agentID) for commune \(c.commune). Hub keys pinned.")
        }
        print("Next: ferry agent run --dir \(agent.home.directory)")
    }
}

struct AgentRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the sync loop until stopped (SIGTERM/SIGINT stop it cleanly).")
    @OptionGroup var agent: AgentDir
    @Option(help: "Seconds between syncs (default from agent.json).") var interval: Double?
    @Option(help: "Stop after this many sync rounds.") var rounds: Int?
    @Option(
        name: .customLong("page-port"),
        help: "Port of the local entry page on 127.0.0.1 (default from agent.json, else 8441; 0 = any free port).")
    var pagePort: Int?
    @Flag(name: .customLong("no-page"), help: "Do not serve the local entry page.") var noPage = false

    func run() async throws {
        let logger = Log.logger("ferry.agent")
        let home = agent.home
        let lock = try AgentStart.prepare(home, logger: logger, role: "run")
        defer { lock.release() }
        let engine = try SyncEngine(home: home, logger: logger)
        // The service takes over: an earlier one-off sync no longer vouches for
        // this copy once the service has run (and may be killed).
        try? engine.store.setMeta(["oneoff_sync_ms": nil])
        let config = try home.config()
        let svc = AgentService(
            engine: engine, interval: interval ?? config.syncIntervalSeconds, logger: logger, maxRounds: rounds)
        logger.notice(
            "agent started", metadata: ["ferry.agent": "\(config.agentID)", "ferry.dir": "\(home.directory)"])
        // With --rounds the loop ends by itself: that is success, not a crash.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: svc, successTerminationBehavior: .gracefullyShutdownGroup)
        ]
        let settings = config.entryPage ?? EntryPageSettings()
        if !noPage && settings.enabled != false {
            let port = pagePort ?? settings.port ?? EntryPageSettings.defaultPort
            guard (0...65_535).contains(port) else { throw UserError("--page-port must be 0…65535") }
            services.append(
                .init(service: EntryPageService(home: home, store: engine.store, port: port, logger: logger)))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.notice("agent stopped")
    }
}

struct AgentSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sync", abstract: "Sync once now and report.")
    @OptionGroup var agent: AgentDir
    @Flag var json = false
    @Option(
        name: .customLong("max-requests"), help: "Stop after this many HTTP requests; the rest waits for the next sync."
    )
    var maxRequests: Int = 200

    func run() async throws {
        let logger = Log.logger("ferry.agent")
        let lock = try AgentStart.prepare(agent.home, logger: logger, role: "sync")
        defer { lock.release() }
        let engine = try SyncEngine(home: agent.home, logger: logger)
        do {
            // `ferry status` trusts a copy without a running service only for a
            // moment after this one-off check ended, never after a killed service.
            defer { try? engine.store.setMeta(["oneoff_sync_ms": String(SystemClock().nowMillis())]) }
            let r = try await engine.syncOnce(maxRequests: min(max(maxRequests, 1), 100_000))
            await engine.shutdown()
            if json { return try printJSON(r) }
            print(
                "Sent \(r.uploadedWrites) writes in \(r.uploadedChangeSets) change sets, received \(r.downloadedWrites); \(r.pendingWrites) pending."
            )
        } catch {
            await engine.shutdown()
            throw UserError(StoreFault.describe(error, path: agent.home.replicaPath))
        }
    }
}

/// What `agent run` and `agent sync` do before syncing: one process per
/// directory, a damaged replica found now rather than mid-sync, and a warning
/// for files other users can read.
enum AgentStart {
    static func prepare(_ home: AgentHome, logger: Logger, role: String) throws -> DirectoryLock {
        _ = try home.config()
        let lock: DirectoryLock
        do { lock = try home.lock(role: role) } catch { throw UserError("\(error)") }
        do { try home.store().verifyIntegrity() } catch {
            throw UserError(StoreFault.describe(error, path: home.replicaPath))
        }
        for w in home.privacyWarnings() { logger.warning("file is not private", metadata: ["ferry.problem": "\(w)"]) }
        return lock
    }
}

struct AgentSetHub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-hub",
        abstract: "Point this agent at the hub's address(es), keeping its keys and the hub's pinned keys.",
        discussion: """
            For a province that moves its hub: ferry agent set-hub http://NEW-ADDRESS:8440
            For a hub with several processes or a standby: ferry agent set-hub http://HUB1:8440 http://HUB2:8440 \
            (the first is preferred; the agent fails over down the list when one cannot be reached and returns \
            to the first when it answers again). --add appends to the list already saved.
            Before saving, the command checks that each address answers and is the same hub (its signed \
            answer verifies under the keys pinned at enrollment). A running agent uses the new addresses from \
            its next round. FERRY_HUB_URL, when set, overrides agent.json for agent commands.
            """)
    @Argument(help: "The hub's address(es), e.g. http://hub.example:8440, first preferred") var urls: [String]
    @OptionGroup var agent: AgentDir
    @Flag(name: .customLong("no-check"), help: "Save without checking (the new hub is not up yet).")
    var noCheck = false
    @Flag(name: .customLong("add"), help: "Add the addresses after the ones already saved instead of replacing them.")
    var add = false

    func run() async throws {
        let home = agent.home
        var given: [String] = []
        do {
            for u in urls { given.append(try SyncEngine.validatedHubURL(u)) }
        } catch { throw UserError("\(error)") }
        guard !given.isEmpty else { throw UserError("give at least one hub address, like http://hub.example:8440") }
        var config = try home.config()
        let old = config.hubURLs
        var list: [String] = add ? old : []
        for u in given where !list.contains(u) { list.append(u) }
        guard list.count <= AgentConfig.maxHubURLs else {
            throw UserError(
                "\(list.count) hub addresses is too many: an agent keeps at most \(AgentConfig.maxHubURLs) (each unreachable one costs a timeout)"
            )
        }
        if !noCheck {
            let engine = try SyncEngine(home: home, logger: Log.logger("ferry.agent"))
            for u in given {
                do {
                    try await engine.verifyHub(at: u)
                } catch {
                    await engine.shutdown()
                    throw UserError("\(error)")
                }
            }
            await engine.shutdown()
        }
        config.hubURL = list[0]
        config.hubs = list.count > 1 ? list : nil
        try home.save(config)
        let oldText = old.joined(separator: ", ")
        let newText = list.joined(separator: ", ")
        print(
            "Hub address\(list.count > 1 ? "es" : "") changed: \(oldText) -> \(newText)\(noCheck ? " (not checked)" : " (checked: same hub)")."
        )
        print("The hub's pinned keys are unchanged. A running agent uses the new address from its next round.")
    }
}

import ArgumentParser
import FerryAgent
import FerryCore
import FerryCrypto
import FerryHub
import FerryProtocol
import FerryStore
import Foundation
import Logging

/// Exit codes of the bundle commands: 0 something was carried, 3 nothing new
/// (the bundle was imported before), 1 refused (the message says why).
enum BundleExit {
    static let nothingNew: Int32 = 3
}

/// A bundle refusal printed for a person; `already_imported` exits 3.
func bundleFailure(_ e: BundleError, json: Bool) throws -> Never {
    if json { try? printJSON(["code": e.code.rawValue, "message": e.message]) }
    if e.code == .alreadyImported {
        if !json { print("Already imported, nothing new: \(e.message)") }
        throw ExitCode(BundleExit.nothingNew)
    }
    throw UserError("\(e.message) [\(e.code.rawValue)]")
}

/// Runs one bundle step on a sync engine over `home`, then shuts the engine
/// down. A bundle refusal ends the command as ``bundleFailure(_:json:)`` says;
/// any other failure is described as a fault of the replica.
func bundleStep<T>(_ home: AgentHome, logger: Logger, json: Bool, _ step: (SyncEngine) throws -> T) async throws -> T {
    let engine = try SyncEngine(home: home, logger: logger)
    let result = Result { try step(engine) }
    await engine.shutdown()
    do {
        return try result.get()
    } catch let e as BundleError {
        try bundleFailure(e, json: json)
    } catch {
        throw UserError(StoreFault.describe(error, path: home.replicaPath))
    }
}

struct AgentExportBundle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-bundle",
        abstract: "Write the changes the hub has not confirmed to a file (a USB stick) for a commune with no link.",
        discussion: """
            Carry FILE to the hub; the operator runs ferry hub import-bundle FILE and gives you back a file made \
            with ferry hub export-bundle --agent AGENT_ID; import it here with ferry agent import-bundle FILE. \
            Nothing is marked as sent until the hub confirms it, so a lost stick loses nothing: export again. \
            Each bundle carries every change the hub has not confirmed (use --new-only for just the changes not \
            in an earlier bundle). The change sets are the same signed, sealed bytes a sync would send, so a later \
            sync never applies them twice.
            """)
    @Argument(help: "The bundle file to write, e.g. /media/usb/commune-24781.ferry") var file: String
    @OptionGroup var agent: AgentDir
    @Flag(name: .customLong("new-only"), help: "Only change sets not in an earlier bundle.") var newOnly = false
    @Flag var json = false

    func run() async throws {
        let home = agent.home
        let (file, newOnly) = (file, newOnly)
        let r = try await bundleStep(home, logger: Log.logger("ferry.agent"), json: json) {
            try $0.exportBundle(to: file, newOnly: newOnly)
        }
        if json { return try printJSON(r) }
        print(
            "Bundle #\(r.serial) written to \(r.file): \(r.writes) change(s) (numbers \(r.seqFrom)…\(r.seqTo)) in \(r.changeSets) change set(s), \(r.bytes) bytes, sealed for the hub with key fingerprint \(r.hubFingerprint)."
        )
        if r.leftOver > 0 {
            print(
                "\(r.leftOver) more change(s) did not fit in this bundle: export another one after this one is imported."
            )
        }
        print(
            "Nothing is marked as sent until the hub confirms it. Take the file to the hub; bring back the file the operator makes with: ferry hub export-bundle --agent \(try home.config().agentID) FILE"
        )
    }
}

struct AgentImportBundle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-bundle",
        abstract: "Apply a file the hub made for this agent (ferry hub export-bundle): its changes and confirmations.",
        discussion: """
            Exit status: 0 applied, 3 already imported (nothing new), 1 refused (another hub's or another agent's \
            bundle, an earlier bundle missing, a damaged file: the message says which). The agent service must not \
            be running meanwhile (stop it, import, start it again).
            """)
    @Argument(help: "The bundle file from the hub.") var file: String
    @OptionGroup var agent: AgentDir
    @Flag var json = false

    func run() async throws {
        let home = agent.home
        let logger = Log.logger("ferry.agent")
        // Applying pages races the sync loop's downloads: one process at a time.
        let lock: DirectoryLock
        do { lock = try AgentStart.prepare(home, logger: logger, role: "bundle") } catch {
            throw UserError(
                "\(error). Stop the agent service first (systemctl stop ferry-agent), import the bundle, then start it again"
            )
        }
        defer { lock.release() }
        let file = file
        let r = try await bundleStep(home, logger: logger, json: json) { try $0.importBundle(from: file) }
        if json { return try printJSON(r) }
        print(
            "Imported the hub's bundle: \(r.pagesApplied) of \(r.pages) page(s) new, \(r.writesChanged) field(s) changed; hub changes here now up to #\(r.hubCursor)."
        )
        print(
            "The hub confirmed this agent's changes up to #\(r.hubApplied)"
                + (r.acknowledgedUpTo.map { "; changes up to #\($0) are no longer waiting." } ?? "."))
        if r.quarantined > 0 {
            print(
                "The hub refused \(r.quarantined) value(s) written here (quarantine); \(r.corrected) field(s) now show the value the hub kept. See the reasons with ferry status or on the entry page."
            )
        }
        if r.pendingWrites > 0 {
            print("\(r.pendingWrites) change(s) made here still wait for the hub: export a new bundle or sync.")
        }
        if r.moreAtHub {
            print("The hub has more changes for this commune than the bundle held: ask for another bundle.")
        }
        if r.pendingWrites == 0 && !r.moreAtHub {
            print("In sync as of the hub's bundle: check with ferry status.")
        }
    }
}

struct HubImportBundle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-bundle",
        abstract: "Ingest an agent's bundle (ferry agent export-bundle) with every check an upload gets.",
        discussion: """
            Each change set goes through the same pipeline as an upload (keys, signature, replay, sequence, \
            scope, validation, quarantine), each in its own transaction; the hub may be running meanwhile. \
            Exit status: 0 something new was applied, 3 already imported (nothing new), 1 a change set or the \
            file was refused (the message says why; nothing after a refused change set is applied).
            """)
    @Argument(help: "The bundle file from the commune.") var file: String
    @Option(help: "Directory of the hub (from `ferry hub init`).") var dir = "ferry-hub"
    @Flag var json = false

    func run() async throws {
        let service = try bundleService(dir)
        // Both steps throw only `BundleError` (typed throws).
        let result = Result { () throws(BundleError) -> HubBundleImport in
            try service.importBundle(try BundleFile.read(file, maxBytes: OfflineBundleLimits.standard.maxBytes))
        }
        let r: HubBundleImport
        switch result {
        case .success(let v): r = v
        case .failure(let e): try bundleFailure(e, json: json)
        }
        if json {
            try printJSON(r)
        } else {
            for e in r.entries {
                let what = "changes #\(e.seqFrom)…#\(e.seqTo)"
                switch e.status {
                case "accepted": print("\(what): accepted (\(e.merged) merged, \(e.quarantined) quarantined)")
                case "duplicate": print("\(what): duplicate (already at the hub; not applied again)")
                case "refused": print("\(what): REFUSED [\(e.code ?? "?")]: \(e.message ?? "")")
                default: print("\(what): not tried (after the refusal above)")
                }
            }
            print(
                "Bundle #\(r.serial) from agent \(r.agent): \(r.accepted) accepted, \(r.duplicates) duplicate, \(r.refused) refused."
            )
        }
        if r.refused > 0 { throw ExitCode.failure }
        if r.nothingNew {
            if !json { print("Already imported, nothing new.") }
            throw ExitCode(BundleExit.nothingNew)
        }
        if !json {
            print("Give the commune its bundle back: ferry hub export-bundle --agent \(r.agent) FILE --dir \(dir)")
        }
    }
}

struct HubExportBundle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-bundle",
        abstract: "Write what an agent would download (the hub's changes and its confirmations) to a file.",
        discussion: """
            The file holds the sealed pages a download would answer, from the cursor the hub last heard from the \
            agent; their signed headers confirm the agent's changes applied here. The commune imports it with \
            ferry agent import-bundle FILE.
            """)
    @Option(help: "The agent id (see ferry hub agents).") var agent: String
    @Argument(help: "The bundle file to write.") var file: String
    @Option(help: "Directory of the hub (from `ferry hub init`).") var dir = "ferry-hub"
    @Flag var json = false

    func run() async throws {
        let service = try bundleService(dir)
        let r: HubBundleExport
        do {
            let made = try service.exportBundle(agentID: agent)
            try BundleFile.write(made.bytes, to: file)
            r = made.report
        } catch let e as BundleError {
            try bundleFailure(e, json: json)
        }
        if json { return try printJSON(r) }
        print(
            "Bundle for agent \(r.agent) written to \(file): hub changes #\(r.seqFrom)…#\(r.seqTo) in \(r.pages) page(s) (\(r.writes) field(s)), \(r.bytes) bytes; it confirms the agent's changes up to #\(r.acknowledged)."
        )
        if r.quarantined > 0 {
            print(
                "It also tells the PC which \(r.quarantined) of its value(s) this hub holds in quarantine, and the values kept instead."
            )
        }
        if r.conflicts > 0 {
            print("It lists the \(r.conflicts) open conflict(s) on the commune's records for the PC's staff.")
        }
        if r.more {
            print("The agent has more waiting than one bundle holds: make another after this one is imported.")
        }
        print("At the commune: ferry agent import-bundle FILE")
    }
}

/// A hub service over the store of hub directory `dir`, without serving HTTP:
/// the bundle commands run the same code as the server, beside it if it runs.
func bundleService(_ dir: String) throws -> HubService {
    let home = HubHome(directory: dir)
    guard home.isInitialized else { throw UserError("no hub in \(dir): run `ferry hub init --dir \(dir)` first") }
    let store: any HubServiceStore
    do { store = try home.store() } catch { throw UserError(StoreFault.describe(error, path: home.storePath)) }
    return HubService(
        store: store, identity: try home.identity(), operatorToken: try home.operatorToken(),
        logger: Log.logger("ferry.hub"))
}

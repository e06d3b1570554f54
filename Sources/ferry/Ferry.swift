import ArgumentParser
import FerryProtocol
import Foundation
import Logging

@main
struct Ferry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Ferry: offline-first sync of commune records with the provincial hub.",
        discussion: """
            Start here:  ferry demo                          (a hub and three agents syncing, on this machine)
            At a commune: ferry status                        (is this commune in sync? what is wrong?)
            """,
        version: SoftwareVersion.current.description,
        subcommands: [
            StatusCommand.self, HubCommand.self, AgentCommand.self, RecordsCommand.self, FormsCommand.self,
            CampaignsCommand.self, ConflictsCommand.self, QuarantineCommand.self, AuditCommand.self, DemoCommand.self,
            BenchCommand.self,
        ])
}

/// Logging is bootstrapped once, here in the executable (swift-log rule).
enum Log {
    static let bootstrap: Void = {
        let env = ProcessInfo.processInfo.environment
        let level = env["FERRY_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let json = env["FERRY_LOG_FORMAT"] == "json"
        LoggingSystem.bootstrap { label in
            if json {
                var h = JSONLogHandler(label: label)
                h.logLevel = level
                return h
            }
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }()

    static func logger(_ label: String) -> Logger {
        Log.bootstrap
        return Logger(label: label)
    }
}

/// Prints JSON (snake_case, sorted keys, pretty).
func printJSON(_ value: some Encodable) throws {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}

/// A failure the user can act on: printed without a stack trace, exit code 1.
struct UserError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// "3 min ago", "2 h ago", "4 days ago".
func ago(_ ms: UInt64?, now: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)) -> String {
    guard let ms, ms > 0 else { return "never" }
    let s = Int64(now) - Int64(ms)
    if s < 0 { return "just now" }
    let sec = s / 1000
    if sec < 90 { return "\(sec) s ago" }
    if sec < 5400 { return "\(sec / 60) min ago" }
    if sec < 172_800 { return "\(sec / 3600) h ago" }
    return "\(sec / 86400) days ago"
}

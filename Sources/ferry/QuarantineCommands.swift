import ArgumentParser
import FerryProtocol
import Foundation

/// Prints one quarantine entry for a person to decide on.
func printQuarantine(_ d: QuarantineDetailV1) {
    let e = d.entry
    print("#\(e.id)  \(e.status.uppercased())  record \(e.record)  field \(e.field)")
    print("  refused value: \(e.value) (\(e.valueType)) from \(e.origin), \(ago(e.timeMs))")
    print("  reason:        \(e.reason)")
    print("  the hub holds: \(d.recordExists ? (d.current?.description ?? "∅ (no value)") : "no such record")")
    if let by = e.closedBy { print("  closed by \(by) \(ago(e.closedMs))\(e.note.map { ": \($0)" } ?? "")") }
    if e.status == QuarantineStatus.open {
        print(
            "  To close it: ferry quarantine fix \(e.id) CORRECTED_VALUE   or   ferry quarantine release \(e.id) --note WHY"
        )
    }
}

struct QuarantineShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one quarantined value, its reason and what the record holds now.")
    @Argument(help: "The entry number (#N in `ferry quarantine list`).") var id: String
    @OptionGroup var hub: HubOptions
    @Flag var json = false
    func run() async throws {
        let n = id.hasPrefix("#") ? String(id.dropFirst()) : id
        let d = try await hub.client().call("GET", "quarantine/\(n)", as: QuarantineDetailV1.self)
        if json { return try printJSON(d) }
        printQuarantine(d)
    }
}

struct QuarantineFix: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fix",
        abstract: "Close an entry by writing the corrected value to the record (it replicates to the commune).")
    @Argument(help: "The entry number.") var id: String
    @Argument(help: "The corrected value, as you would type it in `records edit`.") var value: String
    @Option(help: "Why (kept in the audit trail).") var note: String?
    @OptionGroup var hub: HubOptions
    func run() async throws {
        let n = id.hasPrefix("#") ? String(id.dropFirst()) : id
        let d = try await hub.client().call(
            "POST", "quarantine/\(n)/fix", body: QuarantineCloseRequest(value: value, note: note),
            as: QuarantineDetailV1.self)
        print("fixed #\(d.entry.id): \(d.entry.record).\(d.entry.field) is now \(d.current?.description ?? value)")
    }
}

struct QuarantineRelease: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Close an entry without a write: the refusal stands; the refused value stays recorded.")
    @Argument(help: "The entry number.") var id: String
    @Option(help: "Why (required; kept in the audit trail).") var note: String?
    @OptionGroup var hub: HubOptions
    func run() async throws {
        let n = id.hasPrefix("#") ? String(id.dropFirst()) : id
        let d = try await hub.client().call(
            "POST", "quarantine/\(n)/release", body: QuarantineCloseRequest(note: note), as: QuarantineDetailV1.self)
        print("released #\(d.entry.id): closed without a write; the value stays recorded at the hub")
    }
}

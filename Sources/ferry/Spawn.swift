import Foundation

/// Runs `ferry` itself as child processes (demo, benchmarks): real processes, real HTTP.
struct Spawn {
    let executable: String
    let directory: String

    init(directory: String) {
        executable = Bundle.main.executablePath ?? CommandLine.arguments[0]
        self.directory = directory
    }

    /// Runs a command to completion and returns (exit status, stdout, stderr).
    /// `environment` adds variables (e.g. a secret that must not show in `ps`).
    @discardableResult
    func run(_ args: [String], check: Bool = true, environment: [String: String] = [:]) throws -> (
        status: Int32, out: String, err: String
    ) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let r = (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        if check && r.0 != 0 {
            throw UserError("`ferry \(args.joined(separator: " "))` failed (\(r.0)): \(r.2.isEmpty ? r.1 : r.2)")
        }
        return r
    }

    /// Starts a long-running command with its output in `log`.
    func start(_ args: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: directory)
        guard FileManager.default.createFile(atPath: log, contents: nil), let fh = FileHandle(forWritingAtPath: log)
        else {
            throw UserError("cannot create the log file \(log)")
        }
        p.standardOutput = fh
        p.standardError = fh
        try p.run()
        return p
    }

    /// Sends SIGTERM and waits up to `seconds`, then SIGKILL.
    static func stop(_ p: Process, seconds: Double = 10) {
        guard p.isRunning else { return }
        p.terminate()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }
}

/// Polls `body` every `interval` seconds until it returns true or `timeout` passes.
func waitUntil(timeout: Double, interval: Double = 0.25, _ body: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try body() { return true }
        usleep(UInt32(interval * 1_000_000))
    }
    return try body()
}

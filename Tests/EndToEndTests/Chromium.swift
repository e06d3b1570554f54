import Foundation

/// Debian's headless Chromium.
struct Chromium {
    let path: String

    static func find() throws -> Chromium {
        for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        where FileManager.default.isExecutableFile(atPath: p) {
            return Chromium(path: p)
        }
        throw HarnessError("chromium is not installed: run scripts/install-deps.sh (it installs Debian's chromium)")
    }

    func run(_ args: [String], sandbox: Sandbox, timeout: Double = 60) async throws -> String {
        let n = UInt32.random(in: 0...UInt32.max)
        let profile = sandbox.path("chromium-\(n)")
        let out = sandbox.path("logs/chromium-\(n).out")
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        guard let fh = FileHandle(forWritingAtPath: out) else { throw HarnessError("cannot open \(out)") }
        defer { try? fh.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments =
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                "--window-size=1366,768", "--hide-scrollbars",
            ] + args
        p.standardOutput = fh
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { try await Task.sleep(nanoseconds: 50_000_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw HarnessError("chromium \(args.joined(separator: " ")) did not finish in \(timeout) s")
        }
        p.waitUntilExit()
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    func screenshot(_ url: String, to png: String, sandbox: Sandbox) async throws {
        _ = try await run(["--screenshot=\(png)", url], sandbox: sandbox)
        guard FileManager.default.fileExists(atPath: png) else {
            throw HarnessError("chromium took no screenshot of \(url) (an HTTP error page gives none)")
        }
    }

    func dom(_ url: String, sandbox: Sandbox) async throws -> String {
        try await run(["--dump-dom", url], sandbox: sandbox)
    }
}

import FerryStore
import Foundation
import Testing

/// `agent/install.sh` from a tarball (issue 12): `--dry-run` changes nothing,
/// `--prefix` installs under a directory without root, users or a running
/// systemd, and the installed binary and unit point into the prefix.
struct InstallScriptEndToEndTests {
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("agent/install.sh").path
    }

    static func bash(_ args: [String], in dir: String) throws -> CommandResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script] + args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = dir + "/install.out"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        guard let h = FileHandle(forWritingAtPath: out) else { throw HarnessError("cannot write \(out)") }
        defer { try? h.close() }
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw HarnessError("install.sh did not finish in 60 s")
        }
        p.waitUntilExit()
        return CommandResult(
            status: p.terminationStatus, out: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", err: "")
    }

    @Test func aDryRunChangesNothingAndAPrefixInstallNeedsNoRootNorSystemd() throws {
        let sb = try Sandbox("install")
        defer { sb.close() }
        let prefix = sb.path("root")
        let dry = try Self.bash(["--dry-run", "--prefix", prefix, "--binary", sb.ferry], in: sb.root)
        #expect(dry.status == 0, "\(dry.out)")
        #expect(dry.out.contains("would run: install -m 0755"), "\(dry.out)")
        #expect(!FileManager.default.fileExists(atPath: prefix), "--dry-run created \(prefix)")

        let real = try Self.bash(["--prefix", prefix, "--binary", sb.ferry, "--no-start"], in: sb.root)
        #expect(real.status == 0, "\(real.out)")
        let bin = prefix + "/usr/local/bin/ferry"
        #expect(FileManager.default.isExecutableFile(atPath: bin))
        #expect(Platform.mode(prefix + "/var/lib/ferry-agent") == 0o700)
        let unit = try String(contentsOfFile: prefix + "/etc/systemd/system/ferry-agent.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=\(bin) agent run --dir \(prefix)/var/lib/ferry-agent"), "\(unit)")
        #expect(FileManager.default.fileExists(atPath: prefix + "/etc/systemd/journald.conf.d/ferry.conf"))
        #expect(real.out.contains("not enrolled yet"), "\(real.out)")

        // Run again: every step sees what is there already.
        let again = try Self.bash(["--prefix", prefix, "--binary", sb.ferry, "--no-start"], in: sb.root)
        #expect(again.status == 0 && again.out.contains("already this version"), "\(again.out)")
        #expect(again.out.contains("is up to date"), "\(again.out)")
    }
}

import Foundation

/// Locates the `ferry` executable built with the tests: the test bundle sits in
/// the same bin directory (`swift build --show-bin-path`). `FERRY_BIN` overrides.
public enum FerryBinary {
    /// The path of the `ferry` executable.
    /// - Throws: a message saying how to build it when it is missing.
    public static func path() throws -> String {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["FERRY_BIN"] {
            guard fm.isExecutableFile(atPath: p) else {
                throw FerryBinaryMissing("FERRY_BIN=\(p) is not an executable file")
            }
            return p
        }
        var dirs: [URL] = []
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for b in Bundle.allBundles { dirs.append(b.bundleURL.deletingLastPathComponent()) }
        // An .xctest bundle on Darwin nests the binary: walk up a few levels.
        for d in dirs {
            var dir = d
            for _ in 0..<4 {
                let candidate = dir.appendingPathComponent("ferry").path
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
                    fm.isExecutableFile(atPath: candidate)
                {
                    return candidate
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        throw FerryBinaryMissing(
            "the `ferry` executable was not found next to the test bundle (looked in \(dirs.map(\.path))): build it first with `swift build --build-tests`, or set FERRY_BIN"
        )
    }
}

/// The `ferry` executable could not be found.
public struct FerryBinaryMissing: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

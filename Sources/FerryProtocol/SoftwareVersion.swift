/// Ferry's software version and the agent-version check (SPEC §9.1.1).
///
/// Every agent request carries `X-Ferry-Software: ferry/MAJOR.MINOR.PATCH`.
/// A hub started with a minimum agent version answers an older agent (or one
/// that sends no header: 0.1.0, which predates it) with 426 `agent_too_old`;
/// the agent keeps every record and tells the person to update.
public struct SoftwareVersion: Sendable, Comparable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    /// This build's version (also `ferry --version`).
    public static let current = SoftwareVersion(major: 0, minor: 1, patch: 0)
    /// What a request without the header is taken to be: the release that did not send it.
    public static let unannounced = SoftwareVersion(major: 0, minor: 1, patch: 0)
    /// The request header naming the agent's software.
    public static let header = "X-Ferry-Software"

    public init(major: Int, minor: Int, patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `1.2.3` or `ferry/1.2.3` (a missing minor or patch is 0; a suffix
    /// such as `-dev` is ignored). Nil for anything else, or numbers over 99,999.
    public init?(_ text: String) {
        var t = Substring(text.prefix(64))
        if t.hasPrefix("ferry/") { t = t.dropFirst(6) }
        if let dash = t.firstIndex(where: { $0 == "-" || $0 == "+" }) { t = t[..<dash] }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { return nil }
        var n: [Int] = []
        for p in parts {
            guard (1...5).contains(p.count), p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(p) else {
                return nil
            }
            n.append(v)
        }
        while n.count < 3 { n.append(0) }
        self.init(major: n[0], minor: n[1], patch: n[2])
    }

    public var description: String { "\(major).\(minor).\(patch)" }
    /// The header value an agent sends.
    public var headerValue: String { "ferry/\(description)" }

    public static func < (a: SoftwareVersion, b: SoftwareVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }

    /// The hub's check: nil when `announced` (the header's value, if any) is
    /// at least `minimum`, else the refusal message for the person at the PC.
    public static func refusal(announced: String?, minimum: SoftwareVersion) -> String? {
        let v = announced.map { SoftwareVersion($0) ?? unannounced } ?? unannounced
        guard v < minimum else { return nil }
        return
            "this PC's Ferry software (\(v)) is older than the hub accepts (\(minimum) or newer): install the newer Ferry package on this PC; every record written here is kept and sent after the update"
    }
}

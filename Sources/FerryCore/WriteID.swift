/// The id of a replica: an enrolled agent, or the hub (``OriginID/hub``).
public struct OriginID: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public var rawValue: String
    public init(_ raw: String) { rawValue = raw }
    /// The provincial hub's own origin (operator writes).
    public static let hub = OriginID("hub")
    public static func < (a: OriginID, b: OriginID) -> Bool {
        a.rawValue.utf8.lexicographicallyPrecedes(b.rawValue.utf8)
    }
    public var description: String { rawValue }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// The id of one field write: (hlc, origin). Ordered by hlc, then origin bytes,
/// which makes the winner of a register deterministic (DESIGN §4).
public struct WriteID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var hlc: HLC
    public var origin: OriginID

    public init(hlc: HLC, origin: OriginID) {
        self.hlc = hlc
        self.origin = origin
    }

    public static func < (a: WriteID, b: WriteID) -> Bool {
        a.hlc != b.hlc ? a.hlc < b.hlc : a.origin < b.origin
    }

    public var description: String { "\(hlc)@\(origin)" }
}

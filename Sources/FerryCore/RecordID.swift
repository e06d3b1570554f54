/// A record id: a UUID, version 7 (time-ordered) when Ferry makes it (DESIGN §3).
public struct RecordID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads 16 big-endian bytes; nil unless exactly 16.
    // Inlinable so callers in other modules get it specialised for their
    // collection: unspecialised, the generic walk was 18 % of the hub's CPU
    // while it served download pages (every leaf row names its record).
    @inlinable
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var h: UInt64 = 0
        var l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        self.init(high: h, low: l)
    }

    /// Parses the canonical 8-4-4-4-12 hex form (case-insensitive); nil when malformed.
    public init?(_ text: String) {
        let u = Array(text.utf8)
        if u.count == 36 {
            // Canonical form: dashes exactly at 8, 13, 18 and 23.
            for (i, c) in u.enumerated() where (c == UInt8(ascii: "-")) != [8, 13, 18, 23].contains(i) { return nil }
        } else if u.count != 32 {
            return nil
        }
        let hex = u.filter { $0 != UInt8(ascii: "-") }
        guard hex.count == 32 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let x = RecordID.nibble(a), let y = RecordID.nibble(b) else { return nil }
            out.append(x << 4 | y)
        }
        self.init(bytes: out)
    }

    /// A new UUIDv7: 48-bit milliseconds, version 7, variant 10, random rest.
    public static func v7(millis: UInt64, using rng: inout some RandomNumberGenerator) -> RecordID {
        let r1 = UInt64.random(in: 0...UInt64.max, using: &rng)
        let r2 = UInt64.random(in: 0...UInt64.max, using: &rng)
        let high = (millis & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | (r1 & 0x0FFF)
        let low = 0x8000_0000_0000_0000 | (r2 & 0x3FFF_FFFF_FFFF_FFFF)
        return RecordID(high: high, low: low)
    }

    /// The 16 big-endian bytes.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    public var description: String {
        let hex = bytes.map { b -> String in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
    }

    public static func < (a: RecordID, b: RecordID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

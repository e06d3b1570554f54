import FerryCore
import Foundation

/// Deterministic land records shaped like WORKLOAD.md's (demo, benchmarks, tests).
public struct SampleLandRecords {
    var rng: SplitMix

    public init(seed: UInt64) { rng = SplitMix(state: seed) }

    static let surnames = [
        "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "K'",
    ]
    static let middles = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Xuân", "Thu"]
    static let givens = [
        "Ánh", "Bảo", "Chi", "Dũng", "Hà", "Hải", "Hạnh", "Hiếu", "Hương", "Khánh", "Linh", "Long", "Mai", "Nam",
        "Phúc", "Sơn", "Thảo", "Trang", "Tuấn", "Yến",
    ]
    static let streets = [
        "Đường Trần Phú", "Đường Phan Đình Phùng", "Đường Hùng Vương", "Đường 3 Tháng 2", "Thôn Đạ Nghịt",
        "Thôn Tân Hà", "Tổ dân phố 4",
    ]
    static let uses = ["ONT", "ODT", "CLN", "LUA", "BHK", "RSX"]

    mutating func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
    mutating func int(_ lo: Int, _ hi: Int) -> Int { lo + Int(rng.next() % UInt64(hi - lo + 1)) }
    mutating func double(_ lo: Double, _ hi: Double) -> Double {
        ((lo + Double(rng.next() % 1_000_000) / 1_000_000 * (hi - lo)) * 1_000_000).rounded() / 1_000_000
    }

    /// The next record's field values, valid for the land-record form.
    public mutating func next() -> [String: Value] {
        var name = "\(pick(Self.surnames)) \(pick(Self.middles)) \(pick(Self.givens))"
        while name.count < 8 { name += " \(pick(Self.givens))" }
        var address = "Số \(int(1, 299)) \(pick(Self.streets))"
        while address.count < 16 { address += " \(int(1, 9))" }
        let year = int(1993, 2025)
        return [
            "owner_name": .string(String(name.prefix(24))),
            "owner_id": .string(String(format: "068%09d", int(0, 999_999_999))),
            "address": .string(String(address.prefix(48))),
            "parcel_no": .string("\(int(1, 99))/\(int(1, 999))"),
            "area_m2": .double((double(40, 5000) * 10).rounded() / 10),
            "land_use": .string(pick(Self.uses)),
            "year_granted": .int(Int64(year)),
            "members": .int(Int64(int(1, 12))),
            "lat": .double(double(11.0, 12.5)),
            "lon": .double(double(107.0, 108.9)),
            "granted_on": .date(CivilDate(year: year, month: int(1, 12), day: int(1, 28)).daysSinceEpoch),
            "status": .string(pick(["draft", "submitted", "verified"])),
        ]
    }

    /// A CSV file (header + rows) of `count` records.
    public mutating func csv(count: Int) -> String {
        let fields = [
            "owner_name", "owner_id", "address", "parcel_no", "area_m2", "land_use", "year_granted", "members", "lat",
            "lon", "granted_on", "status",
        ]
        var out = fields.joined(separator: ",") + "\n"
        for _ in 0..<count {
            let r = next()
            out +=
                fields.map { f -> String in
                    switch r[f] ?? .null {
                    case .double(let d): return "\(d)"
                    case let v: return v.display
                    }
                }.joined(separator: ",") + "\n"
        }
        return out
    }
}

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

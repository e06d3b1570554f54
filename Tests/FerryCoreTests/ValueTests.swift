import FerryCore
import FerryTesting
import Testing

struct ValueTests {
    // "Nguyễn": ễ typed as e + circumflex + tilde (decomposed) or as one code point.
    static let decomposed = "Nguye\u{0302}\u{0303}n"
    static let precomposed = "Nguy\u{1EC5}n"

    @Test func aVietnameseNameTypedDecomposedOrPrecomposedIsTheSameValue() {
        #expect(Array(Self.decomposed.utf8) != Array(Self.precomposed.utf8))
        let a = Value.string(Self.decomposed)
        let b = Value.string(Self.precomposed)
        #expect(a == b)
        guard case .text(let sa) = a, case .text(let sb) = b else {
            Issue.record("Value.string did not make a text value")
            return
        }
        // Equal bytes, not only equal under Swift's canonical equivalence:
        // the bytes are what the wire, the database and search compare.
        #expect(Array(sa.utf8) == Array(Self.precomposed.utf8))
        #expect(Array(sb.utf8) == Array(Self.precomposed.utf8))
        #expect(a.hashValue == b.hashValue)
    }

    @Test func nfcIsIdempotentAndKeepsAsciiUnchanged() {
        let s = "Phạm Thị Thu Hà, Thôn Đông"
        #expect(s.nfc.nfc == s.nfc)
        #expect("parcel 12/3".nfc == "parcel 12/3")
        #expect(Array(Self.decomposed.nfc.utf8).count < Array(Self.decomposed.utf8).count)
    }

    @Test func typeNamesAndDisplay() {
        #expect(Value.null.typeName == "null" && Value.null.isNull)
        #expect(Value.bool(true).display == "true")
        #expect(Value.int(-42).display == "-42")
        #expect(Value.double(12.5).display == "12.5")
        #expect(Value.double(3).display == "3.0")
        #expect(Value.string("Lê").display == "Lê")
        #expect(Value.date(0).display == "1970-01-01")
        #expect(Value.date(20_000).typeName == "date")
        #expect(Value.bytes([0x0a, 0xff]).display == "0x0aff")
        #expect(Value.text("x").typeName == "string")
        #expect(!Value.int(0).isNull)
    }
}

struct CivilDateTests {
    @Test func daysAndDatesRoundTripAcrossFourCenturies() {
        // Every day from 1900 to 2300 (leap rules of 1900, 2000 and 2100 included).
        let start = CivilDate(year: 1900, month: 1, day: 1).daysSinceEpoch
        let end = CivilDate(year: 2300, month: 12, day: 31).daysSinceEpoch
        var previous: CivilDate?
        for d in start...end {
            let date = CivilDate(daysSinceEpoch: d)
            #expect(date.daysSinceEpoch == d)
            if let p = previous, date.day != 1 {
                #expect(date.day == p.day + 1 && date.month == p.month)
            }
            previous = date
            if d % 97 == 0 { #expect(CivilDate(iso: date.description) == date) }
        }
    }

    @Test func knownDates() {
        #expect(CivilDate(year: 1970, month: 1, day: 1).daysSinceEpoch == 0)
        #expect(CivilDate(year: 1969, month: 12, day: 31).daysSinceEpoch == -1)
        #expect(CivilDate(year: 2000, month: 3, day: 1).daysSinceEpoch == 11_017)
        #expect(CivilDate(year: 2025, month: 11, day: 24).daysSinceEpoch == 20_416)
        #expect(CivilDate(daysSinceEpoch: 20_416).description == "2025-11-24")
    }

    @Test func leapDaysAreRealOnlyInLeapYears() {
        #expect(CivilDate(iso: "2024-02-29") != nil)
        #expect(CivilDate(iso: "2000-02-29") != nil)
        #expect(CivilDate(iso: "1900-02-29") == nil)
        #expect(CivilDate(iso: "2023-02-29") == nil)
        #expect(CivilDate(iso: "2025-04-31") == nil)
    }

    @Test(arguments: [
        "", "2025", "2025-1-01", "2025-01-1", "25-01-01", "2025/01/01", "2025-13-01", "2025-00-10", "2025-01-00",
        "2025-01-32", "abcd-01-01", "2025-01-01T00:00",
    ])
    func malformedIsoDatesAreRefused(_ text: String) {
        #expect(CivilDate(iso: text) == nil)
    }
}

struct RecordIDTests {
    static let text = "0193a5f2-7c1d-7e4b-9a3f-2b6c8d0e1f42"

    @Test func theCanonicalFormRoundTrips() throws {
        let id = try #require(RecordID(Self.text))
        #expect(id.description == Self.text)
        #expect(RecordID(Self.text.uppercased()) == id)
        #expect(RecordID(Self.text.replacingOccurrences(of: "-", with: "")) == id)
        #expect(RecordID(bytes: id.bytes) == id)
        #expect(id.bytes.count == 16 && id.bytes.first == 0x01 && id.bytes.last == 0x42)
    }

    @Test(arguments: [
        "", "0193a5f2", "0193a5f2-7c1d-7e4b-9a3f-2b6c8d0e1f4", "0193a5f2-7c1d-7e4b-9a3f-2b6c8d0e1f421",
        "0193a5f2-7c1d-7e4b-9a3f-2b6c8d0e1g42", "{0193a5f2-7c1d-7e4b-9a3f-2b6c8d0e1f42}",
        "0193a5f2 7c1d 7e4b 9a3f 2b6c8d0e1f42",
    ])
    func malformedIDsAreRefused(_ text: String) {
        #expect(RecordID(text) == nil)
    }

    @Test func bytesOfTheWrongLengthAreRefused() {
        #expect(RecordID(bytes: [UInt8](repeating: 1, count: 15)) == nil)
        #expect(RecordID(bytes: [UInt8](repeating: 1, count: 17)) == nil)
    }

    @Test func v7IdsCarryTheirTimeVersionAndVariantAndSortByTime() {
        var rng = SeededGenerator(seed: 7)
        var millis: UInt64 = 1_764_000_000_000
        var ids: [RecordID] = []
        for _ in 0..<500 {
            millis += UInt64.random(in: 1...5_000, using: &rng)
            let id = RecordID.v7(millis: millis, using: &rng)
            #expect(id.high >> 16 == millis)
            #expect(id.bytes[6] >> 4 == 7)
            #expect(id.bytes[8] >> 6 == 0b10)
            #expect(RecordID(id.description) == id)
            ids.append(id)
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
    }
}

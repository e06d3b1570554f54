import FerryCore
import FerryStore
import Foundation
import Testing

/// The seed data compiled into `ferry` must be exactly the files shipped in hub/seed/.
struct SeedTests {
    static let seedDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "../../hub/seed")

    /// The file's text with CRLF read as LF: the province's CSV uses CRLF, and a
    /// Swift multi-line literal always holds LF.
    func file(_ name: String) throws -> String {
        try String(contentsOf: Self.seedDir.appendingPathComponent(name), encoding: .utf8)
            .replacingOccurrences(of: "\r\n", with: "\n")
    }

    @Test func theEmbeddedSeedIsExactlyTheShippedFiles() throws {
        #expect(Seed.communesCSV == (try file("lam-dong-communes.csv")))
        #expect(Seed.landRecordForm == (try file("land-record.form.json")))
        #expect(Seed.landCampaign == (try file("land-2025.campaign.json")))
    }

    @Test func theProvinceHas124CommuneUnitsWithOfficialCodesKindsAndNFCNames() throws {
        let communes = Seed.communes
        #expect(communes.count == 124)
        #expect(Set(communes.map(\.code)).count == 124)
        var kinds: [String: Int] = [:]
        for c in communes { kinds[c.kind, default: 0] += 1 }
        #expect(kinds == ["xã": 103, "phường": 20, "đặc khu": 1])
        #expect(communes.allSatisfy { $0.code.count == 5 && $0.code.allSatisfy(\.isNumber) })
        #expect(communes.allSatisfy { $0.name == $0.name.precomposedStringWithCanonicalMapping })
        #expect(communes.contains { $0.code == "23272" && $0.name == "Đặc khu Phú Quý" })
    }

    @Test func theLandRecordFormMatchesTheWorkloadAndItsCampaignTargetsEveryCommune() throws {
        let form = try Seed.form
        #expect(form.problems().isEmpty)
        #expect(
            form.fields.map(\.name) == [
                "owner_name", "owner_id", "address", "parcel_no", "area_m2", "land_use", "year_granted", "members",
                "lat",
                "lon", "granted_on", "status",
            ])
        #expect(form.violation(field: "owner_id", value: .string("068123456789")) == nil)
        #expect(form.violation(field: "owner_id", value: .string("12345")) != nil)
        #expect(form.violation(field: "lat", value: .double(10.9)) != nil)
        let campaign = try Seed.campaign
        #expect(campaign.formID == form.id)
        #expect(campaign.targets.count == 124)
        #expect(campaign.targets.values.reduce(0, +) == 124 * 3120)
    }
}

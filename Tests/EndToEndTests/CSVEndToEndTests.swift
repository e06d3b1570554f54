import FerryCore
import FerryStore
import Foundation
import Testing

/// CSV in and out through SwiftCSV against a real hub and agent: quoted
/// commas and quotes, a BOM, NFC, spreadsheet row numbers, a second import
/// refused, import at the hub, export with a BOM (issue 11 item 6).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CSVEndToEndTests {
    static let commune = "24781"

    @Test func quotedCellsImportOnceRowNumbersMatchASpreadsheetAndExportRoundTrips() async throws {
        let sb = try Sandbox("csv")
        defer { sb.close() }
        let hub = try await sb.serveHub(dir: try await sb.initHub())
        let h = ["--hub-dir", hub.dir]
        let a = try await sb.enrollAgent("a", hub: hub, commune: Self.commune)

        // "Võ Văn Phúc" typed decomposed (NFD), an address with a comma, a quote inside.
        let nfd = "Vo\u{303} Va\u{306}n Phu\u{301}c"
        let text =
            "owner_name,owner_id,address,status,members\r\n"
            + "\"\(nfd)\",068123456789,\"12 Lê Lợi, Phường 1, Đà Lạt\",draft,3\r\n"
            + "\"Nguyễn \"\"Út\"\" An\",068123456780,\"Thôn 2, xã Lạc Dương\",submitted,4\r\n"
        let good = sb.path("good.csv")
        try Data([0xEF, 0xBB, 0xBF] + Array(text.utf8)).write(to: URL(fileURLWithPath: good))
        let out = try await sb.ok(["records", "import", good, "--dir", a])
        #expect(out.contains("imported 2 records"), "\(out)")
        let (store, _) = try agentStore(a)
        let names = Set(try store.records(limit: 10).compactMap { $0.values["owner_name"] })
        #expect(names == [.string("Võ Văn Phúc"), .string("Nguyễn \"Út\" An")], "quotes parsed, NFC: \(names)")
        let addresses = Set(try store.records(limit: 10).compactMap { $0.values["address"] })
        #expect(addresses.contains(.string("12 Lê Lợi, Phường 1, Đà Lạt")))

        // The same file again is refused with the reason; nothing doubles.
        let again = try await sb.run(["records", "import", good, "--dir", a])
        #expect(again.status != 0 && again.text.contains("already imported"), "\(again.text)")
        #expect(try store.records(limit: 10).count == 2)

        // A bad value in spreadsheet row 3 is reported as row 3.
        let bad = sb.path("bad.csv")
        try ("owner_name,owner_id,status\n" + "Trần Văn Long An,068123456789,draft\n" + "Lê Thị Ánh Hồng,12,draft\n")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await sb.run(["records", "import", bad, "--dir", a])
        #expect(
            refused.status != 0 && refused.text.contains("row 3:") && !refused.text.contains("row 2:"),
            "\(refused.text)")
        #expect(try store.records(limit: 10).count == 2, "all rows or none")

        // Import at the hub, then once more refused there too.
        let hubOut = try await sb.ok(["records", "import", good, "--at-hub", "--commune", "24787"] + h)
        #expect(hubOut.contains("imported 2 records"), "\(hubOut)")
        let hubAgain = try await sb.run(["records", "import", good, "--at-hub", "--commune", "24787"] + h)
        #expect(hubAgain.status != 0 && hubAgain.text.contains("already imported"), "\(hubAgain.text)")

        // Export: BOM, RFC 4180 quoting, every record of the commune; parses back the same.
        try await sb.ok(["agent", "sync", "--dir", a])
        let file = sb.path("export.csv")
        try await sb.ok(["records", "export", "--form", "land-record", "--commune", Self.commune, "--out", file] + h)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        #expect(bytes.starts(with: [0xEF, 0xBB, 0xBF]), "a BOM so Excel reads UTF-8")
        let table = try RecordsCSV.parse(bytes)
        #expect(table.rows.count == 2 && table.header.starts(with: ["id", "commune", "form_version"]))
        let col = try #require(table.header.firstIndex(of: "address"))
        #expect(Set(table.rows.map { $0.cells[col] }).contains("12 Lê Lợi, Phường 1, Đà Lạt"))
        let nameCol = try #require(table.header.firstIndex(of: "owner_name"))
        #expect(Set(table.rows.map { $0.cells[nameCol] }) == ["Võ Văn Phúc", "Nguyễn \"Út\" An"])
    }
}

import FerryCore
import FerryCrypto
import Foundation
import SwiftCSV

/// A CSV import refused, with where (a row number as a spreadsheet shows it:
/// the header is row 1) and what to change. Nothing of the file was imported.
public struct CSVImportError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable {
        case notUTF8 = "not_utf8", malformed, emptyFile = "empty_file", badHeader = "bad_header"
        case columnCount = "column_count", badValue = "bad_value", alreadyImported = "already_imported"
        case tooLarge = "too_large"
    }
    public var code: Code
    /// The spreadsheet row (1 = the header), when the problem is one row's.
    public var row: Int?
    public var message: String
    /// The ledger already holds this file (SPEC §9.6): nothing was imported again.
    public static func alreadyImported(by: String, records: Int, atMs: UInt64) -> CSVImportError {
        CSVImportError(
            .alreadyImported,
            "this file was already imported by \(by) (\(records) records, at \(Date(timeIntervalSince1970: Double(atMs) / 1000))): nothing was imported again; to import it anyway, pass --again"
        )
    }

    public init(_ code: Code, row: Int? = nil, _ message: String) {
        self.code = code
        self.row = row
        self.message = message
    }
    public var description: String { message }
}

/// Records in and out of CSV (RFC 4180) with SwiftCSV: UTF-8 with or without
/// a BOM, text normalised to NFC, rows numbered as a spreadsheet numbers them.
public enum RecordsCSV {
    /// The largest file imported at once.
    public static let maxBytes = 64 << 20
    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// A parsed file: the header and each data row with its spreadsheet row number.
    public struct Table: Sendable {
        public var header: [String]
        public var rows: [(row: Int, cells: [String])]
        /// A digest of the file's bytes, to recognise a second import of the same file.
        public var digest: [UInt8]
    }

    /// Parses `bytes`. Blank lines are skipped (but still counted in row numbers).
    /// - Throws: ``CSVImportError`` naming the row.
    public static func parse(_ bytes: [UInt8]) throws -> Table {
        guard bytes.count <= maxBytes else {
            throw CSVImportError(.tooLarge, "the file is over \(maxBytes >> 20) MiB: split it into smaller files")
        }
        let body = bytes.starts(with: bom) ? Array(bytes.dropFirst(3)) : bytes
        guard let text = String(validating: body, as: UTF8.self) else {
            throw CSVImportError(
                .notUTF8,
                "the file is not UTF-8 text: in Excel use Save As → \"CSV UTF-8 (Comma delimited)\", in LibreOffice choose the character set Unicode (UTF-8)"
            )
        }
        let csv: EnumeratedCSV
        do {
            csv = try EnumeratedCSV(string: text.nfc, delimiter: .comma, loadColumns: false)
        } catch {
            throw CSVImportError(
                .malformed,
                "the file is not valid CSV (a quote \" is opened and not closed, or text follows a closing quote)")
        }
        let header = csv.header.map { $0.trimmingCharacters(in: .whitespaces) }
        guard !header.isEmpty, !(header.count == 1 && header[0].isEmpty) else {
            throw CSVImportError(.emptyFile, "the file is empty: its first row must name the form's fields")
        }
        if let i = header.firstIndex(where: \.isEmpty) {
            throw CSVImportError(.badHeader, row: 1, "row 1, column \(i + 1) has no field name")
        }
        var seen = Set<String>()
        for h in header where !seen.insert(h).inserted {
            throw CSVImportError(.badHeader, row: 1, "row 1 names the column '\(h)' twice")
        }
        // Spreadsheet rows: the header is row 1; a cell with a line break stays one row.
        var rows: [(Int, [String])] = []
        for (i, cells) in csv.rows.enumerated() {
            let row = i + 2
            if cells.allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) { continue }
            guard cells.count == header.count else {
                throw CSVImportError(
                    .columnCount, row: row,
                    "row \(row) has \(cells.count) cells, the header has \(header.count): check for a comma inside a value that is not in quotes"
                )
            }
            rows.append((row, cells))
        }
        return Table(header: header, rows: rows, digest: FerryCrypto.digest(bytes))
    }

    /// Each row as typed values of `form`, or every bad row (up to 20) at once.
    public static func values(_ t: Table, form: FormDefinition) throws -> [[String: Value]] {
        let unknown = t.header.filter { form.spec($0) == nil }
        if !unknown.isEmpty {
            throw CSVImportError(
                .badHeader, row: 1,
                "row 1 names column(s) \(unknown.joined(separator: ", ")) that form \(form.id) v\(form.version) does not have; its fields are \(form.fields.map(\.name).joined(separator: ", "))"
            )
        }
        var out: [[String: Value]] = []
        var problems: [String] = []
        var count = 0
        for (row, cells) in t.rows {
            var values: [String: Value] = [:]
            var bad: [String] = []
            for (k, v) in zip(t.header, cells) {
                do throws(FormError) {
                    let value = try form.parse(field: k, text: v)
                    if let why = form.violation(field: k, value: value) { bad.append(why) } else { values[k] = value }
                } catch {
                    bad.append(error.message)
                }
            }
            let missing = form.missingRequired(in: values)
            if !missing.isEmpty { bad.append("required \(missing.joined(separator: ", ")) empty") }
            if bad.isEmpty {
                out.append(values)
            } else {
                count += 1
                if problems.count < 20 { problems.append("row \(row): \(bad.joined(separator: "; "))") }
            }
        }
        if count > 0 {
            throw CSVImportError(
                .badValue, row: nil,
                "\(count) row(s) have values the form refuses; nothing was imported:\n  "
                    + problems.joined(separator: "\n  ")
                    + (count > problems.count ? "\n  … \(count - problems.count) more" : ""))
        }
        return out
    }

    /// RFC 4180 text with a UTF-8 BOM (so Excel reads Vietnamese correctly)
    /// and CRLF line ends; a cell is quoted when it holds a comma, quote or line break.
    public static func export(header: [String], rows: [[String]]) -> [UInt8] {
        // SwiftCSV's serializer does not quote line breaks, so cells are quoted here.
        func cell(_ s: String) -> String {
            let n = s.nfc
            guard n.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return n }
            return "\"" + n.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var out = bom
        for r in [header] + rows { out += Array((r.map(cell).joined(separator: ",") + "\r\n").utf8) }
        return out
    }
}

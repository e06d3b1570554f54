import FerryCore
import Foundation

extension Seed {
    /// The 124 commune-level units, parsed from ``communesCSV`` (NFC).
    public static var communes: [Commune] {
        communesCSV.split(separator: "\n").dropFirst().compactMap { line in
            let cols = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard cols.count >= 3, !cols[0].isEmpty else { return nil }
            return Commune(code: cols[0], name: cols[1], kind: cols[2])
        }
    }

    /// The land-record form of WORKLOAD.md.
    public static var form: FormDefinition {
        get throws { try JSONDecoder().decode(FormDefinition.self, from: Data(landRecordForm.utf8)) }
    }

    /// The land campaign, with a target of 3,120 records in every commune
    /// (386,949 land records / 124 communes).
    public static var campaign: CampaignDefinition {
        get throws {
            var c = try JSONDecoder().decode(CampaignDefinition.self, from: Data(landCampaign.utf8))
            for commune in communes { c.targets[commune.code] = 3120 }
            return c
        }
    }
}

import Foundation

/// One problem in a campaign definition, found before it is published.
public struct CampaignProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong; the raw value is the code the hub answers.
    public enum Code: String, Sendable, Codable, CaseIterable {
        case missingID = "missing_id"
        case missingTitle = "missing_title"
        case unknownForm = "unknown_form"
        case badDate = "bad_date"
        case datesReversed = "dates_reversed"
        case unknownCommune = "unknown_commune"
        case negativeTarget = "negative_target"
        case badStatus = "bad_status"
    }
    public var code: Code
    /// The commune or key at fault, when there is one.
    public var at: String?
    public var message: String
    public init(_ code: Code, at: String? = nil, _ message: String) {
        self.code = code
        self.at = at
        self.message = message
    }
    public var description: String { message }
}

extension CampaignDefinition {
    /// The statuses a campaign may have.
    public static let statuses = ["planned", "active", "paused", "closed"]
    /// The largest target a commune may have (a province has ~400,000 land records in all).
    public static let maxTarget = 10_000_000

    /// Every problem of this campaign, given the published forms and the
    /// province's commune codes. Empty when it may be published.
    public func validate(formIDs: Set<String>, communes: Set<String>) -> [CampaignProblem] {
        var out: [CampaignProblem] = []
        if id.isEmpty || id.utf8.count > 64 || id.contains(where: { $0.isWhitespace || $0 == "/" }) {
            out.append(
                CampaignProblem(
                    .missingID, "the campaign id '\(id.prefix(80))' must be 1–64 bytes without spaces or '/'"))
        }
        if title.trimmingCharacters(in: .whitespaces).isEmpty {
            out.append(CampaignProblem(.missingTitle, "the campaign needs a title"))
        }
        if !formIDs.contains(formID) {
            out.append(
                CampaignProblem(
                    .unknownForm, at: "form",
                    "form '\(formID.prefix(80))' is not published at this hub (published: \(formIDs.sorted().joined(separator: ", ")))"
                ))
        }
        let start = CivilDate(iso: starts)
        let end = CivilDate(iso: ends)
        if start == nil {
            out.append(
                CampaignProblem(.badDate, at: "starts", "starts '\(starts.prefix(40))' must be a date YYYY-MM-DD"))
        }
        if end == nil {
            out.append(CampaignProblem(.badDate, at: "ends", "ends '\(ends.prefix(40))' must be a date YYYY-MM-DD"))
        }
        if let s = start, let e = end, e.daysSinceEpoch < s.daysSinceEpoch {
            out.append(CampaignProblem(.datesReversed, at: "ends", "the campaign ends (\(e)) before it starts (\(s))"))
        }
        if !Self.statuses.contains(status) {
            out.append(
                CampaignProblem(
                    .badStatus, at: "status",
                    "status '\(status.prefix(40))' must be one of \(Self.statuses.joined(separator: ", "))"))
        }
        for (code, n) in targets.sorted(by: { $0.key < $1.key }) {
            if !communes.contains(code) {
                out.append(
                    CampaignProblem(
                        .unknownCommune, at: code,
                        "commune '\(code.prefix(40))' is not one of the province's (see `ferry hub communes`)"))
            }
            if n < 0 || n > Self.maxTarget {
                out.append(
                    CampaignProblem(
                        .negativeTarget, at: code,
                        "the target of commune \(code.prefix(40)) must be 0…\(Self.maxTarget), got \(n)"))
            }
        }
        return out
    }

    /// The campaign's period in Unix milliseconds, [start, end), for Vietnam
    /// time (UTC+7): from the start day's midnight to the end day's last moment.
    public var periodMillis: (start: UInt64, end: UInt64)? {
        guard let s = CivilDate(iso: starts), let e = CivilDate(iso: ends) else { return nil }
        let ict: Int64 = 7 * 3_600_000
        let a = Int64(s.daysSinceEpoch) * 86_400_000 - ict
        let b = (Int64(e.daysSinceEpoch) + 1) * 86_400_000 - ict
        return (UInt64(clamping: a), UInt64(clamping: b))
    }
}

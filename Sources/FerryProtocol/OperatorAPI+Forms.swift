import FerryCore
import Foundation

/// A value a migration could not carry into the new form version: reported, and kept.
public struct MigrationProblemV1: Codable, Sendable, Equatable {
    public var record: String
    public var field: String
    public var value: JSONValue
    public var reason: String
    public init(record: String, field: String, value: JSONValue, reason: String) {
        self.record = record
        self.field = field
        self.value = value
        self.reason = reason
    }
}

/// `POST forms/{id}/migrate {from, to, dry_run}`: records moved to a newer
/// version of their form (SPEC §9.6). Every value is carried; fields the new
/// version adds stay empty; values it rejects are listed here and kept.
public struct MigrationRequest: Codable, Sendable {
    public var from: Int
    public var to: Int
    public var dryRun: Bool?
    public init(from: Int, to: Int, dryRun: Bool? = nil) {
        self.from = from
        self.to = to
        self.dryRun = dryRun
    }
}

/// What a migration did (or, with `dry_run`, would do).
public struct MigrationReportV1: Codable, Sendable, Equatable {
    public var form: String
    public var from: Int
    public var to: Int
    /// Records of version `from` found (and, unless a dry run, now of version `to`).
    public var records: Int
    public var dryRun: Bool
    /// How many values the new version rejects (all kept); the first 1,000 are in `problems`.
    public var problemCount: Int
    public var problems: [MigrationProblemV1]
    public init(
        form: String, from: Int, to: Int, records: Int, dryRun: Bool, problemCount: Int, problems: [MigrationProblemV1]
    ) {
        self.form = form
        self.from = from
        self.to = to
        self.records = records
        self.dryRun = dryRun
        self.problemCount = problemCount
        self.problems = problems
    }
}

/// A form version as `GET forms` lists it: published (live or retired) or a draft.
public struct FormStateV1: Codable, Sendable {
    public var form: FormDefinition
    /// `draft`, `published` or `retired`.
    public var state: String
    public init(form: FormDefinition, state: String) {
        self.form = form
        self.state = state
    }
}

/// `POST quarantine/{id}/fix {value, note?}` and `POST quarantine/{id}/release {note?}`.
public struct QuarantineCloseRequest: Codable, Sendable {
    /// The corrected value as text, parsed with the record's form (fix only).
    public var value: String?
    public var note: String?
    public init(value: String? = nil, note: String? = nil) {
        self.value = value
        self.note = note
    }
}

/// `GET quarantine/{id}`: the entry and what the record holds now.
public struct QuarantineDetailV1: Codable, Sendable {
    public var entry: QuarantineEntry
    /// The record's current value of the field, when it has one.
    public var current: JSONValue?
    public var recordExists: Bool
    public init(entry: QuarantineEntry, current: JSONValue?, recordExists: Bool) {
        self.entry = entry
        self.current = current
        self.recordExists = recordExists
    }
}

/// The answer to `POST records/import?form&commune[&again]` (a CSV body).
public struct CSVImportResultV1: Codable, Sendable {
    public var imported: Int
    public var form: String
    public var version: Int
    public var commune: String
    public init(imported: Int, form: String, version: Int, commune: String) {
        self.imported = imported
        self.form = form
        self.version = version
        self.commune = commune
    }
}

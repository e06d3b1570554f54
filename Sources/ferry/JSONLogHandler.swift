import Foundation
import Logging

/// One JSON object per line on standard error, for journald or Loki
/// (`ferry hub serve --log-format json`, or FERRY_LOG_FORMAT=json):
/// `{"ts":"…","level":"notice","label":"ferry.hub","msg":"operator write","ferry.user":"alice",…}`.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: String] = [:]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { object[k] = "\(v)" }
        object["ts"] = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        object["level"] = event.level.rawValue
        object["label"] = label
        object["msg"] = "\(event.message)"
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? e.encode(object) else { return }
        line.append(0x0A)
        // One write per line, so lines from concurrent tasks do not interleave.
        FileHandle.standardError.write(line)
    }
}

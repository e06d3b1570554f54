import ArgumentParser
import FerryProtocol
import Foundation

/// Paging options every operator list shares (SPEC §9.6).
struct PageOptions: ParsableArguments {
    @Option(help: "Items per page (1…1000).") var limit = 50
    @Option(help: "Continue after a page: the cursor the previous page printed.") var cursor: String?
    @Flag(name: .customLong("all-pages"), help: "Fetch every page, one request per page.") var allPages = false

    func validate() throws {
        guard (1...PageLimit.maximum).contains(limit) else {
            throw ValidationError("--limit must be 1…\(PageLimit.maximum), got \(limit)")
        }
    }
}

/// A query string with each value percent-encoded; nil values are left out.
func queryString(_ items: [(String, String?)]) -> String {
    var allowed = CharacterSet.urlQueryAllowed
    allowed.remove(charactersIn: "&=+;#?/")
    let parts = items.compactMap { k, v in
        v.map { "\(k)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0)" }
    }
    return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
}

extension OperatorClient {
    /// Reads one page of a list, or every page with `--all-pages` (one request
    /// each, so no answer grows past a page); bounded at 100,000 pages.
    func list<T: Codable & Sendable>(
        _ path: String, _ query: [(String, String?)], _ options: PageOptions, as: T.Type
    ) async throws -> PageV1<T> {
        try await list(
            path, query, limit: options.limit, cursor: options.cursor, allPages: options.allPages, as: T.self)
    }

    func list<T: Codable & Sendable>(
        _ path: String, _ query: [(String, String?)], limit: Int, cursor start: String?, allPages: Bool, as: T.Type
    ) async throws -> PageV1<T> {
        var cursor = start
        var items: [T] = []
        for _ in 0..<100_000 {
            let q = query + [("limit", String(limit)), ("cursor", cursor)]
            let page = try await call("GET", path + queryString(q), as: PageV1<T>.self)
            items += page.items
            guard allPages, let next = page.nextCursor else {
                return PageV1(items: items, nextCursor: page.nextCursor, remaining: page.remaining)
            }
            cursor = next
        }
        throw UserError("the hub gave more than 100,000 pages for \(path): stopped; use --limit 1000")
    }
}

/// The line under a list: how many more there are and how to see them, so a
/// list never stops silently.
func pageFooter(_ shown: Int, remaining: Int, next: String?, command: String) -> String {
    guard remaining > 0, let next else { return "(\(shown) shown, end of the list)" }
    return "(\(shown) shown, \(remaining) more. Next page: \(command) --cursor \(next)   or all of them: --all-pages)"
}

/// A JSON decoding failure as a person reads it: what is missing or wrong, and where.
func describeDecoding(_ error: any Error, file: String, what: String) -> String {
    func path(_ keys: [any CodingKey]) -> String {
        let p = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return p.isEmpty ? "the top level" : "'\(p.replacingOccurrences(of: ".[", with: "["))'"
    }
    guard let e = error as? DecodingError else { return "\(file) is not \(what): \(error)" }
    switch e {
    case .keyNotFound(let key, let c):
        let at = c.codingPath.isEmpty ? "" : " in \(path(c.codingPath))"
        return "\(file) is not \(what): the key '\(key.stringValue)' is missing\(at)"
    case .typeMismatch(let type, let c):
        return "\(file) is not \(what): \(path(c.codingPath)) must be \(jsonKind(type))"
    case .valueNotFound(let type, let c):
        return "\(file) is not \(what): \(path(c.codingPath)) must be \(jsonKind(type)), not null"
    case .dataCorrupted(let c):
        if c.codingPath.isEmpty {
            return "\(file) is not valid JSON (check commas, quotes and brackets; a JSON linter shows where)"
        }
        return "\(file) is not \(what): \(path(c.codingPath)): \(c.debugDescription)"
    @unknown default:
        return "\(file) is not \(what): \(e)"
    }
}

private func jsonKind(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: "a string in quotes"
    case is Int.Type, is Int64.Type, is UInt64.Type: "a whole number"
    case is Double.Type: "a number"
    case is Bool.Type: "true or false"
    default:
        String(describing: type).hasPrefix("Array") || String(describing: type).hasPrefix("[")
            ? "a list [...]" : "an object {...}"
    }
}

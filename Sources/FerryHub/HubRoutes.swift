import Foundation

/// Every endpoint the hub serves under `/v1`, as `protocol/openapi.json`
/// documents it. The operator router refuses a path that is not here (so
/// nothing is served undocumented), and `OpenAPITests` checks this table
/// against the document both ways and that each route is handled.
public enum HubRoutes {
    /// (method, path) with `{name}` for a path parameter.
    public static let all: [(method: String, path: String)] = [
        ("GET", "/v1/health"),
        ("GET", "/v1/metrics"),
        ("GET", "/v1/openapi.json"),
        ("POST", "/v1/enroll"),
        ("POST", "/v1/changesets"),
        ("GET", "/v1/changes"),
        ("GET", "/v1/conflicts"),
        ("GET", "/v1/ops/status"),
        ("GET", "/v1/ops/agents"),
        ("POST", "/v1/ops/agents/{id}/revoke"),
        ("POST", "/v1/ops/tokens"),
        ("GET", "/v1/ops/conflicts"),
        ("POST", "/v1/ops/conflicts/resolve"),
        ("GET", "/v1/ops/quarantine"),
        ("GET", "/v1/ops/quarantine/{id}"),
        ("POST", "/v1/ops/quarantine/{id}/fix"),
        ("POST", "/v1/ops/quarantine/{id}/release"),
        ("GET", "/v1/ops/forms"),
        ("POST", "/v1/ops/forms"),
        ("GET", "/v1/ops/forms/drafts"),
        ("POST", "/v1/ops/forms/{id}/{version}/publish"),
        ("POST", "/v1/ops/forms/{id}/{version}/retire"),
        ("POST", "/v1/ops/forms/{id}/migrate"),
        ("GET", "/v1/ops/communes"),
        ("GET", "/v1/ops/campaigns"),
        ("POST", "/v1/ops/campaigns"),
        ("GET", "/v1/ops/records"),
        ("POST", "/v1/ops/records"),
        ("POST", "/v1/ops/records/import"),
        ("GET", "/v1/ops/records/{id}"),
        ("POST", "/v1/ops/records/{id}"),
        ("GET", "/v1/ops/audit/{id}"),
        ("GET", "/v1/ops/winners"),
        ("GET", "/v1/ops/actions"),
    ]

    /// Operator routes as path components after `/v1/ops/`.
    static let operatorPatterns: [(String, [String])] = all.compactMap { m, p in
        p.hasPrefix("/v1/ops/") ? (m, p.dropFirst("/v1/ops/".count).split(separator: "/").map(String.init)) : nil
    }

    /// Whether `method path` (after `/v1/ops/`) is a documented operator route.
    public static func isOperatorRoute(method: String, path: [String]) -> Bool {
        operatorPatterns.contains { m, pattern in
            m == method && pattern.count == path.count
                && zip(pattern, path).allSatisfy { a, b in a.hasPrefix("{") || a == b }
        }
    }
}

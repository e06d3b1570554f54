import FerryProtocol
import FerryStore
import Foundation
import Metrics
import Prometheus
import Synchronization

/// The hub's metrics through swift-metrics, exported by swift-prometheus at
/// `/v1/metrics`. Each hub service has its own registry (no global bootstrap,
/// so tests can run several hubs in one process). Every family exists from the
/// start with value 0, so an alert on "refusals went up" works from the first scrape.
final class HubMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let gauges = Mutex<[String: CoreMetrics.Gauge]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])

    /// Latency buckets, 1 ms to 30 s: a loopback ingest takes milliseconds, a 2G commune's upload seconds.
    static let buckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        .seconds(10), .seconds(30),
    ]

    /// Refusal codes an agent can meet (SPEC §7, §9): each has a series from the start.
    static let refusalCodes: [String] =
        ChangeSetError.Code.allCases.map(\.rawValue) + [
            "revoked", "unknown_agent", "bad_signature", "scope", "cursor_ahead", "bad_request",
        ]
    static let enrollmentCodes = ["bad_token", "bad_key", "bad_request", "not_found", "disk_full", "read_only"]

    init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = Self.buckets
        factory = f
        for n in [
            "ferry_changesets_received_total", "ferry_bytes_received_total", "ferry_writes_merged_total",
            "ferry_writes_quarantined_total", "ferry_enrollments_total", "ferry_pulls_total", "ferry_bytes_sent_total",
            "ferry_internal_errors_total", "ferry_operator_logins_failed_total", "ferry_pull_ranges_total",
            "ferry_pull_range_skipped_bytes_total", "ferry_conflict_lists_total", "ferry_conflict_list_refusals_total",
        ] {
            add(n, "", 0)
        }
        for code in Set(Self.refusalCodes).sorted() { add("ferry_changesets_refused_total", "code=\"\(code)\"", 0) }
        for code in Self.enrollmentCodes { add("ferry_enrollments_refused_total", "code=\"\(code)\"", 0) }
        for code in ["unknown_agent", "revoked", "bad_signature", "bad_request"] {
            add("ferry_pulls_refused_total", "code=\"\(code)\"", 0)
        }
        for s in ["ok", "duplicate"] { add("ferry_changesets_total", "status=\"\(s)\"", 0) }
        for role in OperatorRole.allCases { add("ferry_operator_denied_total", "role=\"\(role.rawValue)\"", 0) }
        _ = timer("ferry_ingest_duration_seconds")
        _ = timer("ferry_pull_duration_seconds")
    }

    /// Dimensions from `k="v",k2="v2"` (the hub's own label text; values never hold quotes).
    static func dimensions(_ labels: String) -> [(String, String)] {
        labels.split(separator: ",").compactMap { pair in
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { return nil }
            return (String(kv[0]), String(kv[1].filter { $0 != "\"" }))
        }
    }

    /// Adds `by` to a counter (created at 0 when new).
    func add(_ name: String, _ labels: String = "", _ by: Double = 1) {
        let key = labels.isEmpty ? name : "\(name){\(labels)}"
        let c = counters.withLock { m in
            if let c = m[key] { return c }
            let c = CoreMetrics.Counter(label: name, dimensions: Self.dimensions(labels), factory: factory)
            m[key] = c
            return c
        }
        let n = by.isFinite ? Int64(clamping: Int64(exactly: by.rounded()) ?? 0) : 0
        if n > 0 { c.increment(by: n) }
    }

    func timer(_ name: String) -> CoreMetrics.Timer {
        timers.withLock { m in
            if let t = m[name] { return t }
            let t = CoreMetrics.Timer(label: name, dimensions: [], factory: factory)
            m[name] = t
            return t
        }
    }

    /// Records how long something that started at `start` took.
    func observe(_ name: String, since start: ContinuousClock.Instant) {
        let d = ContinuousClock.now - start
        let (s, a) = d.components
        // Clamped: a duration never overflows 64-bit nanoseconds in practice, but the math stays checked.
        let ns = s.multipliedReportingOverflow(by: 1_000_000_000)
        let sum = ns.partialValue.addingReportingOverflow(a / 1_000_000_000)
        timer(name).recordNanoseconds(ns.overflow || sum.overflow ? Int64.max : max(0, sum.partialValue))
    }

    /// Sets a gauge.
    func set(_ name: String, _ dimensions: [(String, String)] = [], _ value: Double) {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let g = gauges.withLock { m in
            if let g = m[key] { return g }
            let g = CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: factory)
            m[key] = g
            return g
        }
        g.record(value)
    }
}

extension HubService {
    /// GET /v1/metrics in Prometheus text format: the counters and histograms,
    /// plus gauges read from the store at scrape time (totals, open conflicts and
    /// quarantine, and per agent its lag and last contact).
    public func metricsText() -> HubReply {
        if let totals = try? store.totals() {
            for (k, v) in totals { metrics.set("ferry_hub_\(k)", [], Double(v)) }
        }
        if let agents = try? store.agents() {
            let now = store.nowMillis()
            for a in agents {
                let dims = [("agent", a.id), ("commune", a.commune)]
                metrics.set("ferry_agent_lag", dims, Double((try? store.lag(of: a)) ?? 0))
                let seen = a.lastSeenMs.map { now >= $0 ? Double(now - $0) / 1000 : 0 } ?? -1
                // -1: never seen since enrollment.
                metrics.set("ferry_agent_last_contact_age_seconds", dims, seen)
                metrics.set("ferry_agent_last_contact_timestamp_seconds", dims, Double(a.lastSeenMs ?? 0) / 1000)
                metrics.set("ferry_agent_clock_skew_seconds", dims, Double(a.lastSkewMs ?? 0) / 1000)
            }
        }
        metrics.set("ferry_hub_uptime_seconds", [], Date().timeIntervalSince(started).rounded(.down))
        return HubReply(
            status: 200, contentType: "text/plain; version=0.0.4", body: metrics.registry.emitToBuffer())
    }

    /// Counts and logs a refused download under its code, naming the agent.
    func countPullRefusal(_ reply: HubReply, agent: String?) {
        guard reply.status >= 400 else { return }
        let code = (try? HubJSON.decoder.decode(ErrorBody.self, from: Data(reply.body)))?.error.code ?? "unknown"
        metrics.add("ferry_pulls_refused_total", "code=\"\(Self.labelSafeCode(code))\"")
        logger.warning(
            "download refused",
            metadata: ["ferry.code": "\(code)", "ferry.agent": "\(agent.map { String($0.prefix(80)) } ?? "-")"])
    }

    static func labelSafeCode(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || $0 == "_") }.prefix(40))
    }
}

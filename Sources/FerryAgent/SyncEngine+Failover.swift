import FerryProtocol
import Foundation
import Logging
import Synchronization

/// The hub addresses an agent knows and the one it uses now (SPEC §9.11).
struct HubRoute: Sendable {
    /// The addresses in order of preference (never empty).
    var urls: [String]
    /// Index in ``urls`` of the address in use.
    var active: Int
    /// The client for `urls[active]`.
    var client: HubClient
    /// When the first address was last probed while on another (ms, wall clock).
    var lastFailbackProbeMs: UInt64 = 0
}

/// Failover between the addresses of one hub (SPEC §9.11): a round that cannot
/// reach the hub in use (connection refused or cut, timeout, HTTP 5xx or 429)
/// is retried at once on the next address; while on another address, the
/// first is probed every `failbackSeconds` and used again as soon as it
/// answers. Every address serves the same hub (same keys, same database), and
/// the change set in flight is re-sent byte for byte, so the hub's per-origin
/// sequence makes a write sent to two addresses count once (SPEC §7).
extension SyncEngine {
    /// The address in use now.
    public var activeHubURL: String { route.withLock { $0.client.baseURL } }

    /// Follows a hub address list changed by `ferry agent set-hub` while the agent runs.
    func followHubURL() async {
        guard let fresh = try? home.config() else { return }
        let urls = Self.hubURLs(fresh)
        let link = config.link ?? LinkSettings()
        let old: HubClient? = route.withLock { r in
            guard urls != r.urls, let first = urls.first else { return nil }
            let previous = r.client
            r = HubRoute(
                urls: urls, active: 0,
                client: HubClient(baseURL: first, wall: wall, link: link, retryConnect: urls.count == 1))
            return previous
        }
        if let old {
            logger.notice("hub URL changed", metadata: ["ferry.hub": "\(urls.joined(separator: " "))"])
            try? store.setMeta(["hub_active_url": nil])
            await old.shutdown()
        }
    }

    /// Moves to the next address after a failure; false when there is no other.
    func failOver(because error: AgentError) async -> Bool {
        let link = config.link ?? LinkSettings()
        let moved: (from: String, to: String, old: HubClient)? = route.withLock { r in
            guard r.urls.count > 1 else { return nil }
            let next = (r.active + 1) % r.urls.count
            let previous = r.client
            r.active = next
            r.client = HubClient(baseURL: r.urls[next], wall: wall, link: link, retryConnect: false)
            // Probing the first address again right after leaving it would only fail.
            r.lastFailbackProbeMs = wall.nowMillis()
            return (previous.baseURL, r.urls[next], previous)
        }
        guard let moved else { return false }
        logger.warning(
            "hub unreachable, trying its next address",
            metadata: ["ferry.from": "\(moved.from)", "ferry.to": "\(moved.to)", "ferry.error": "\(error)"])
        try? store.setMeta(["hub_active_url": moved.to])
        await moved.old.shutdown()
        return true
    }

    /// While on another address, returns to the first when its `/v1/health`
    /// answers (at most once per `failbackSeconds`). The first address's
    /// answers are verified under the pinned keys like any other's, so a wrong
    /// server there only fails the round and fails over again.
    func failBackIfAnswering() async {
        let link = config.link ?? LinkSettings()
        let now = wall.nowMillis()
        let intervalMs = UInt64(link.failback * 1000)
        let first: String? = route.withLock { r in
            guard r.active != 0, now >= r.lastFailbackProbeMs &+ intervalMs, let first = r.urls.first else {
                return nil
            }
            r.lastFailbackProbeMs = now
            return first
        }
        guard let first else { return }
        let probe = HubClient(baseURL: first, wall: wall, link: link, retryConnect: false)
        let answered: Bool
        do {
            let a = try await probe.send(.GET, "/v1/health")
            answered = a.status == 200
        } catch {
            answered = false
        }
        await probe.shutdown()
        guard answered else { return }
        let old: HubClient? = route.withLock { r in
            guard r.active != 0, r.urls.first == first else { return nil }
            let previous = r.client
            r.active = 0
            r.client = HubClient(baseURL: first, wall: wall, link: link, retryConnect: false)
            return previous
        }
        if let old {
            logger.notice("first hub address answers again, back to it", metadata: ["ferry.hub": "\(first)"])
            try? store.setMeta(["hub_active_url": nil])
            await old.shutdown()
        }
    }

    /// A round that, when the hub in use cannot be reached, goes on at the next
    /// address, trying each address at most once; the reports add up.
    func roundWithFailover(maxRequests: Int) async -> SyncRoundResult {
        let tries = max(1, route.withLock { $0.urls.count })
        var total = SyncReport()
        var last = SyncRoundResult(report: total, error: nil, stoppedAtBound: false)
        for attempt in 0..<tries {
            last = await roundAtActiveHub(maxRequests: maxRequests)
            total.add(last.report)
            last.report = total
            guard let e = last.error, e.kind == .network || e.kind == .hubUnavailable, attempt + 1 < tries else {
                break
            }
            guard await failOver(because: e) else { break }
        }
        // For `ferry status`: which address this process used last (none = the first).
        let using: String? = route.withLock { $0.active == 0 ? nil : $0.client.baseURL }
        try? store.setMeta(["hub_active_url": using])
        return last
    }
}

extension SyncReport {
    /// Adds a later part of the same round: counts add, states are the later part's.
    mutating func add(_ r: SyncReport) {
        uploadedChangeSets += r.uploadedChangeSets
        uploadedWrites += r.uploadedWrites
        downloadedWrites += r.downloadedWrites
        duplicates += r.duplicates
        retries += r.retries
        progress = progress || r.progress
        hubCursor = r.hubCursor
        pendingWrites = r.pendingWrites
        complete = r.complete
        moreAtHub = r.moreAtHub
        hubHead = r.hubHead ?? hubHead
    }
}

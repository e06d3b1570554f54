import Foundation
import Synchronization

/// Download pages the hub sealed and keeps byte-identical until the agent
/// acknowledges them (SPEC §9.12), so a page cut in transit is resumed with
/// `Range` instead of sent again whole. Bounded in count per agent, in bytes
/// in all and in age; kept in memory, so a hub restart drops them (the agent's
/// resume then gets a fresh page).
public final class PageCache: Sendable {
    public struct Limits: Sendable {
        /// Pages one agent may have kept at once (it pulls one page at a time).
        public var perAgent: Int
        /// Bytes all kept pages may hold together.
        public var totalBytes: Int
        /// A page is dropped this long after it was sealed.
        public var maxAgeMs: UInt64

        public init(perAgent: Int = 2, totalBytes: Int = 64 << 20, maxAgeMs: UInt64 = 3_600_000) {
            self.perAgent = perAgent
            self.totalBytes = totalBytes
            self.maxAgeMs = maxAgeMs
        }
    }

    /// One kept page: its sealed bytes, strong ETag and informational headers.
    public struct Page: Sendable, Equatable {
        public var agent: String
        public var since: UInt64
        public var etag: String
        public var bytes: [UInt8]
        public var headers: [String: String]
        public var storedMs: UInt64
    }

    struct Key: Hashable {
        var agent: String
        var since: UInt64
    }

    let limits: Limits
    private let state = Mutex<(pages: [Key: Page], total: Int)>(([:], 0))

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Keeps `page` (replacing the agent's page at the same `since`), then
    /// evicts the oldest pages past the bounds. A page larger than the whole
    /// budget is not kept.
    func keep(_ page: Page) {
        state.withLock { s in
            let key = Key(agent: page.agent, since: page.since)
            if let old = s.pages.removeValue(forKey: key) { s.total -= old.bytes.count }
            guard page.bytes.count <= limits.totalBytes else { return }
            s.pages[key] = page
            s.total += page.bytes.count
            let mine = s.pages.filter { $0.key.agent == page.agent }.sorted { $0.value.storedMs < $1.value.storedMs }
            for (k, p) in mine.prefix(max(0, mine.count - limits.perAgent)) {
                s.pages[k] = nil
                s.total -= p.bytes.count
            }
            if s.total > limits.totalBytes {
                for (k, p) in s.pages.sorted(by: { $0.value.storedMs < $1.value.storedMs }) {
                    guard s.total > limits.totalBytes else { break }
                    guard k != key else { continue }
                    s.pages[k] = nil
                    s.total -= p.bytes.count
                }
            }
        }
    }

    /// The agent's kept page at `since`, if it is younger than the age bound.
    func page(agent: String, since: UInt64, nowMs: UInt64) -> Page? {
        state.withLock { s in
            Self.purge(&s, nowMs: nowMs, maxAgeMs: limits.maxAgeMs)
            return s.pages[Key(agent: agent, since: since)]
        }
    }

    /// A pull at `cursor` acknowledges the agent's pages below it: they are dropped.
    func acknowledge(agent: String, cursor: UInt64, nowMs: UInt64) {
        state.withLock { s in
            Self.purge(&s, nowMs: nowMs, maxAgeMs: limits.maxAgeMs)
            for (k, p) in s.pages where k.agent == agent && k.since < cursor {
                s.pages[k] = nil
                s.total -= p.bytes.count
            }
        }
    }

    /// Number of kept pages and their bytes (tests, metrics).
    public var usage: (count: Int, bytes: Int) { state.withLock { ($0.pages.count, $0.total) } }

    private static func purge(_ s: inout (pages: [Key: Page], total: Int), nowMs: UInt64, maxAgeMs: UInt64) {
        for (k, p) in s.pages where nowMs >= p.storedMs && nowMs - p.storedMs > maxAgeMs {
            s.pages[k] = nil
            s.total -= p.bytes.count
        }
    }
}

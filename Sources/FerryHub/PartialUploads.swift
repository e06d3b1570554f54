import Foundation
import Synchronization

/// The hub's partial uploads (SPEC §9.10): bytes of envelopes that have not
/// all arrived yet, kept in memory and bounded in size, count per agent and
/// age. A hub restart drops them (the agent's HEAD then gets 404 and it starts
/// the upload over); nothing is ingested until the whole envelope is here and
/// its digest matches.
public final class PartialUploads: Sendable {
    public struct Limits: Sendable {
        /// Partial uploads one agent may hold at once (it uploads one change set at a time).
        public var perAgent: Int
        /// Bytes all partial uploads may hold together.
        public var totalBytes: Int
        /// A partial upload untouched for this long is dropped.
        public var maxAgeMs: UInt64

        public init(perAgent: Int = 2, totalBytes: Int = 64 << 20, maxAgeMs: UInt64 = 3_600_000) {
            self.perAgent = perAgent
            self.totalBytes = totalBytes
            self.maxAgeMs = maxAgeMs
        }
    }

    struct Partial {
        var agent: String
        var length: Int
        var digest: String
        var bytes: [UInt8]
        var touchedMs: UInt64
        /// Bumped by every request that takes the resource over, so a stale
        /// request from before a cut stops appending.
        var generation: UInt64
    }

    /// Why an upload request was refused.
    public enum Refusal: Error, Equatable, Sendable {
        case notFound
        case wrongAgent
        case mismatch(String)
        case offset(expected: Int)
        case full(String)
        case superseded
    }

    let limits: Limits
    private let state = Mutex<(partials: [String: Partial], total: Int, generation: UInt64)>(([:], 0, 0))

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Starts (or restarts at 0) the upload `id` for `agent`; returns the generation.
    func create(id: String, agent: String, length: Int, digest: String, nowMs: UInt64) throws(Refusal) -> UInt64 {
        try state.withLock { (s) throws(Refusal) -> UInt64 in
            Self.purge(&s, nowMs: nowMs, maxAgeMs: limits.maxAgeMs)
            if let old = s.partials[id] {
                guard old.agent == agent else { throw Refusal.wrongAgent }
                s.total -= old.bytes.count
                s.partials[id] = nil
            }
            let mine = s.partials.values.filter { $0.agent == agent }.count
            guard mine < limits.perAgent else {
                throw Refusal.full(
                    "this agent already has \(mine) uploads in progress; finish one or wait \(limits.maxAgeMs / 60_000) min"
                )
            }
            s.generation &+= 1
            s.partials[id] = Partial(
                agent: agent, length: length, digest: digest, bytes: [], touchedMs: nowMs, generation: s.generation)
            return s.generation
        }
    }

    /// Takes the upload over for a resuming request at `offset`; returns the generation.
    func resume(id: String, agent: String, length: Int, digest: String, offset: Int, nowMs: UInt64) throws(Refusal)
        -> UInt64
    {
        try state.withLock { (s) throws(Refusal) -> UInt64 in
            Self.purge(&s, nowMs: nowMs, maxAgeMs: limits.maxAgeMs)
            guard var p = s.partials[id] else { throw Refusal.notFound }
            guard p.agent == agent else { throw Refusal.wrongAgent }
            guard p.length == length, p.digest == digest else {
                throw Refusal.mismatch("Upload-Length or X-Ferry-Digest differs from the upload's creation")
            }
            guard p.bytes.count == offset else { throw Refusal.offset(expected: p.bytes.count) }
            s.generation &+= 1
            p.generation = s.generation
            p.touchedMs = nowMs
            s.partials[id] = p
            return s.generation
        }
    }

    /// The bytes received so far of upload `id`, for `HEAD`.
    func offset(id: String, agent: String, nowMs: UInt64) throws(Refusal) -> (offset: Int, length: Int) {
        try state.withLock { (s) throws(Refusal) -> (offset: Int, length: Int) in
            Self.purge(&s, nowMs: nowMs, maxAgeMs: limits.maxAgeMs)
            guard let p = s.partials[id] else { throw Refusal.notFound }
            guard p.agent == agent else { throw Refusal.wrongAgent }
            return (p.bytes.count, p.length)
        }
    }

    /// Appends `chunk` for the request holding `generation`; returns the new offset.
    func append(id: String, generation: UInt64, chunk: some Collection<UInt8>, nowMs: UInt64) throws(Refusal) -> Int {
        try state.withLock { (s) throws(Refusal) -> Int in
            guard var p = s.partials[id] else { throw Refusal.notFound }
            guard p.generation == generation else { throw Refusal.superseded }
            guard chunk.count <= p.length - p.bytes.count else {
                throw Refusal.mismatch("the body runs past Upload-Length (\(p.length) bytes)")
            }
            guard s.total + chunk.count <= limits.totalBytes else {
                throw Refusal.full("the hub holds \(s.total) bytes of unfinished uploads; retry shortly")
            }
            s.partials[id] = nil  // keep the array uniquely referenced while it grows
            p.bytes.append(contentsOf: chunk)
            p.touchedMs = nowMs
            s.total += chunk.count
            let n = p.bytes.count
            s.partials[id] = p
            return n
        }
    }

    /// Removes a finished upload and returns its bytes and expected digest.
    func take(id: String, generation: UInt64) throws(Refusal) -> (bytes: [UInt8], length: Int, digest: String) {
        try state.withLock { (s) throws(Refusal) -> (bytes: [UInt8], length: Int, digest: String) in
            guard let p = s.partials[id] else { throw Refusal.notFound }
            guard p.generation == generation else { throw Refusal.superseded }
            s.partials[id] = nil
            s.total -= p.bytes.count
            return (p.bytes, p.length, p.digest)
        }
    }

    /// Drops upload `id` (a digest that did not match, a body past its length).
    func drop(id: String) {
        state.withLock { s in
            if let p = s.partials.removeValue(forKey: id) { s.total -= p.bytes.count }
        }
    }

    /// Number of partial uploads and their bytes (metrics, tests).
    public var usage: (count: Int, bytes: Int) { state.withLock { ($0.partials.count, $0.total) } }

    private static func purge(
        _ s: inout (partials: [String: Partial], total: Int, generation: UInt64), nowMs: UInt64, maxAgeMs: UInt64
    ) {
        for (id, p) in s.partials where nowMs >= p.touchedMs && nowMs - p.touchedMs > maxAgeMs {
            s.partials[id] = nil
            s.total -= p.bytes.count
        }
    }
}

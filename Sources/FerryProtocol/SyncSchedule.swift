/// When the agent's sync loop tries next (DESIGN §7, SPEC §9.9): a small
/// synchronous state machine, fed the outcome of each round and the wall
/// clock, that returns what to do. The loop that owns it only sleeps.
///
/// The rule is *progress, not completion*: a round that got any change set
/// acknowledged or any download page applied resets the backoff, so after a
/// cut the agent is back within seconds while the link carries data; only
/// rounds where nothing moved back off (jittered, doubling, capped). A round
/// that is done waits the interval. Nothing here returns a zero wait, so the
/// loop cannot spin.
public struct SyncScheduleStateMachine: Sendable {
    /// The knobs, in seconds.
    public struct Policy: Sendable, Equatable {
        /// Between rounds when everything is in sync.
        public var interval: Double
        /// After a round that failed but moved data (the link just went down, or came back).
        public var retryAfterProgress: Double
        /// The first wait after a round in which nothing moved; doubles per such round.
        public var backoffMin: Double
        /// The longest wait while nothing moves and the cause may clear by itself.
        public var backoffMax: Double
        /// The longest wait when the cause needs a person (a revoked agent, a hub
        /// that refuses): still retried, so the agent recovers unattended once fixed.
        public var backoffMaxNeedsPerson: Double

        /// - Parameters: see the properties; values are clamped to sane ranges
        ///   (a wait is at least 0.1 s, so the loop never spins).
        public init(
            interval: Double = 30, retryAfterProgress: Double = 1, backoffMin: Double = 2, backoffMax: Double = 60,
            backoffMaxNeedsPerson: Double = 300
        ) {
            self.interval = Self.sane(interval, 30)
            self.retryAfterProgress = Self.sane(retryAfterProgress, 1)
            self.backoffMin = Self.sane(backoffMin, 2)
            self.backoffMax = max(self.backoffMin, Self.sane(backoffMax, 60))
            self.backoffMaxNeedsPerson = max(self.backoffMax, Self.sane(backoffMaxNeedsPerson, 300))
        }

        static func sane(_ v: Double, _ fallback: Double) -> Double {
            guard v.isFinite, v > 0 else { return fallback }
            return min(max(v, 0.1), 86_400)
        }
    }

    /// How a round ended.
    public enum Outcome: Sendable, Equatable {
        /// Nothing pending here, nothing more at the hub.
        case inSync
        /// The round stopped at its request bound with work left, after moving data.
        case moreToDo
        /// The round failed; `progress` says whether it moved data before failing,
        /// `needsPerson` whether the cause is one the agent cannot clear by itself.
        case failed(progress: Bool, needsPerson: Bool)
    }

    /// Why the loop waits.
    public enum Reason: Sendable, Equatable {
        case interval
        case continuing
        case retryAfterProgress
        case backoff(failures: Int)
    }

    /// What the loop does next.
    public enum Action: Sendable, Equatable {
        /// Sleep `ms` milliseconds, then run a round (at `untilMs` on the wall clock).
        case wait(ms: UInt64, untilMs: UInt64, reason: Reason)
    }

    public let policy: Policy
    /// Rounds in a row in which nothing moved.
    public private(set) var failuresWithoutProgress = 0
    /// Wall-clock ms of the next planned round, once one is planned.
    public private(set) var nextAttemptMs: UInt64?
    private var random: SplitMix64

    /// - Parameter seed: seeds the jitter (tests pass a fixed one).
    public init(policy: Policy, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.policy = policy
        random = SplitMix64(seed: seed)
    }

    /// The round ended at wall-clock `nowMs`: returns how long to wait.
    public mutating func roundEnded(_ outcome: Outcome, nowMs: UInt64) -> Action {
        let seconds: Double
        let reason: Reason
        switch outcome {
        case .inSync:
            failuresWithoutProgress = 0
            // ±10 %: 124 communes that start together do not stay in step.
            seconds = policy.interval * jitter(0.9, 1.1)
            reason = .interval
        case .moreToDo:
            failuresWithoutProgress = 0
            seconds = 0.1
            reason = .continuing
        case .failed(progress: true, _):
            failuresWithoutProgress = 0
            seconds = policy.retryAfterProgress * jitter(0.5, 1.5)
            reason = .retryAfterProgress
        case .failed(progress: false, let needsPerson):
            failuresWithoutProgress = min(failuresWithoutProgress + 1, 64)
            let cap = needsPerson ? policy.backoffMaxNeedsPerson : policy.backoffMax
            let exponent = Double(min(failuresWithoutProgress - 1, 30))
            let base = min(cap, policy.backoffMin * pow2(exponent))
            // "Equal jitter": half fixed, half random, so waits stay spread but never collapse to zero.
            seconds = base * jitter(0.5, 1.0)
            reason = .backoff(failures: failuresWithoutProgress)
        }
        let ms = UInt64(max(100, min(seconds, 86_400) * 1000))
        let until = nowMs.addingReportingOverflow(ms)
        let untilMs = until.overflow ? UInt64.max : until.partialValue
        nextAttemptMs = untilMs
        return .wait(ms: ms, untilMs: untilMs, reason: reason)
    }

    private mutating func jitter(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * Double(random.next() >> 11) / Double(1 << 53)
    }

    private func pow2(_ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= 2 }
        return r
    }
}

/// How big the next change set and download page are (DESIGN §5, SPEC §9.7),
/// in sealed bytes and in time: a synchronous state machine fed what each
/// transfer measured.
///
/// It keeps the link's measured throughput (bytes per second) and the sealed
/// bytes per write of the change sets frozen so far. A transfer targets what
/// the link carries in `targetSeconds` (so one fits in a short up window of a
/// dead-zone link), never more than `maxBytes` (PLATFORM.md: requests under
/// ~100 KB survive bad links) nor less than `minBytes`. Each direction grows
/// by half after a success and shrinks by a third after a failure.
public struct TransferSizeStateMachine: Sendable {
    /// The knobs.
    public struct Policy: Sendable, Equatable {
        public var targetSeconds: Double
        public var maxBytes: Int
        public var minBytes: Int
        public var initialBytes: Int
        /// Sealed bytes per write assumed before any change set was sealed.
        public var initialBytesPerWrite: Double
        /// Most writes in one change set, whatever their sealed size: freezing
        /// holds every write of a change set in memory at once (~0.6 KB each
        /// measured), so this bounds the agent's memory when writes compress well.
        public var maxWrites: Int

        /// - Parameters: see the properties; clamped so that min ≤ initial ≤ max.
        public init(
            targetSeconds: Double = 10, maxBytes: Int = 96 * 1024, minBytes: Int = 8 * 1024,
            initialBytes: Int = 48 * 1024, initialBytesPerWrite: Double = 7, maxWrites: Int = 16_384
        ) {
            self.maxWrites = min(max(maxWrites, 1), 1_000_000)
            self.targetSeconds = targetSeconds.isFinite && targetSeconds > 0 ? min(targetSeconds, 3600) : 10
            self.minBytes = min(max(minBytes, 1024), 4 << 20)
            self.maxBytes = min(max(maxBytes, self.minBytes), 4 << 20)
            self.initialBytes = min(max(initialBytes, self.minBytes), self.maxBytes)
            self.initialBytesPerWrite =
                initialBytesPerWrite.isFinite && initialBytesPerWrite >= 1 ? min(initialBytesPerWrite, 1_048_576) : 7
        }
    }

    /// The direction of a transfer.
    public enum Direction: Sendable, Equatable {
        case upload
        case download
    }

    public let policy: Policy
    private var upload: Double
    private var download: Double
    /// Measured link throughput in bytes per second, once a transfer big enough to tell was timed.
    public private(set) var throughput: Double?
    /// Measured sealed bytes per write (moving average).
    public private(set) var bytesPerWrite: Double

    /// - Parameters:
    ///   - throughput: a figure measured earlier (kept across restarts), if any.
    ///   - bytesPerWrite: likewise.
    public init(policy: Policy, throughput: Double? = nil, bytesPerWrite: Double? = nil) {
        self.policy = policy
        upload = Double(policy.initialBytes)
        download = Double(policy.initialBytes)
        self.throughput = throughput.flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
        self.bytesPerWrite =
            bytesPerWrite.flatMap { $0.isFinite && $0 >= 1 ? min($0, 1_048_576) : nil }
            ?? policy.initialBytesPerWrite
    }

    /// The byte budget of the next transfer in `direction`.
    public func bytes(_ direction: Direction) -> Int {
        let value = direction == .upload ? upload : download
        var cap = Double(policy.maxBytes)
        if let throughput { cap = min(cap, throughput * policy.targetSeconds) }
        return Int(min(max(min(value, cap), Double(policy.minBytes)), Double(policy.maxBytes)))
    }

    /// How many writes to freeze so that the sealed change set lands near the upload budget.
    public var writesPerChangeSet: Int {
        min(policy.maxWrites, max(1, Int(Double(bytes(.upload)) / bytesPerWrite)))
    }

    /// A change set was sealed: `bytes` sealed bytes for `writes` writes.
    public mutating func sealed(bytes: Int, writes: Int) {
        guard writes > 0, bytes > 0 else { return }
        let sample = Double(bytes) / Double(writes)
        // Small change sets are dominated by the fixed envelope overhead; weigh them less.
        let weight = min(1, Double(writes) / 1000) * 0.5
        bytesPerWrite = max(1, bytesPerWrite * (1 - weight) + sample * weight)
    }

    /// A transfer in `direction` moved `bytes` (request plus answer) in `millis` ms.
    public mutating func succeeded(_ direction: Direction, bytes: Int, millis: UInt64) {
        let current = Double(self.bytes(direction))
        let grown = min(Double(policy.maxBytes), current * 1.5)
        switch direction {
        case .upload: upload = grown
        case .download: download = grown
        }
        // Only transfers of some size say anything about the rate; small ones are
        // all round-trip time. The slow average keeps one lucky sample from
        // sizing the next transfer past an up window.
        guard bytes >= policy.minBytes / 2, millis > 0 else { return }
        let sample = Double(bytes) * 1000 / Double(millis)
        throughput = throughput.map { $0 * 0.5 + sample * 0.5 } ?? sample
    }

    /// A transfer in `direction` failed (cut, timeout, refused for size).
    public mutating func failed(_ direction: Direction) {
        let shrunk = max(Double(policy.minBytes), Double(bytes(direction)) * 2 / 3)
        switch direction {
        case .upload: upload = shrunk
        case .download: download = shrunk
        }
    }

    /// The hub refused a change set as too big: halve the upload budget.
    public mutating func halveUpload() {
        upload = max(Double(policy.minBytes), Double(bytes(.upload)) / 2)
    }
}

/// SplitMix64: a tiny deterministic generator for jitter (not for keys).
struct SplitMix64: Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

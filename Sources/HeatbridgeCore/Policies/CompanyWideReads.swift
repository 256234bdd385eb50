/// When a box asks a partner account's company-wide endpoints (the device list, the API's health, an
/// organisation's listings). Every box of a partner shares one bucket per such path, so a box that knows its own
/// devices asks them at start and then about hourly (with random jitter, so a fleet does not ask in step), and
/// early only on evidence that the answer changed (a device of the box answered 403/404). A stated fleet size
/// spreads the first read after a start over four shares (a fleet restarting together asks at a quarter of the
/// bucket's rate: at half of it, a 100-box start overflowed Bosch's burst about once in four) and stretches the
/// interval so that all boxes together stay inside the path's bucket: `boxes / perSecond` seconds between two reads
/// of one box is its share, and a box reads at most every two shares, so that a fleet's reads, arriving at random,
/// average half the bucket's rate and its bursts stay inside the bucket's burst.
public actor CompanyWideReads {
    public struct Policy: Sendable, Equatable {
        /// The usual time between two reads of one path.
        public var refreshS: Double = 3600
        /// The refresh interval varies by up to this fraction, at random.
        public var jitter: Double = 0.2
        /// The least time between two reads of one path, also on evidence.
        public var minGapS: Double = 60
        /// When the fleet's size is not stated (`fleet:` absent), the first read after a start is spread over
        /// this many seconds: boxes restarted together (a region's power cut, a rollout) do not ask in the same
        /// second. The box polls its own gateways meanwhile (read by id).
        public var unknownFleetSpreadS: Double = 60
        /// A failed read (429, 5xx) is asked again after the least gap, doubling per failure in a row up to the
        /// refresh interval, at a random point of that wait: boxes that failed together do not retry together.
        public init() {}
    }

    let clock: any Clock
    let policy: Policy
    let boxes: Int
    /// Whether `fleet.boxes` was stated (1 then means a box alone: its first read is at once).
    let stated: Bool
    let perSecond: Double
    /// Failed reads in a row, per path.
    var failures: [String: Int] = [:]
    var random: @Sendable () -> Double
    /// Per path: when it may be read next, and when it was last asked.
    var next: [String: EpochSeconds] = [:]
    var lastAsked: [String: EpochSeconds] = [:]
    var answers: [String: [UInt8]] = [:]
    let started: EpochSeconds

    /// - Parameters:
    ///   - boxes: boxes on the same partner key (`fleet.boxes`).
    ///   - perSecond: the sustained rate of one company-wide path's bucket, for the whole partner.
    public init(
        clock: any Clock, boxes: Int?, perSecond: Double, policy: Policy = Policy(),
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.clock = clock
        self.boxes = max(1, boxes ?? 1)
        self.stated = boxes != nil
        self.perSecond = perSecond
        self.policy = policy
        self.random = random
        started = clock.now()
    }

    /// The fleet's share of one box: the bucket's time per request times the boxes.
    public var shareS: Double { Double(boxes) / perSecond }

    /// The usual time between two reads of one path: hourly, longer when the fleet needs it.
    public var intervalS: Double { max(policy.refreshS, 2 * shareS) }

    /// Whether `path` should be asked now. A first read is spread over the fleet's share after a start.
    public func due(_ path: String) -> Bool {
        let now = clock.now()
        if next[path] == nil {
            let spread = boxes > 1 ? min(4 * shareS, intervalS) : stated ? 0 : policy.unknownFleetSpreadS
            next[path] = started + random() * spread
        }
        return now >= next[path]!
    }

    /// The earliest time one of `paths` is due (a path never asked counts from its spread start).
    public func nextDue(_ paths: [String]) -> EpochSeconds {
        paths.map { path -> EpochSeconds in
            _ = due(path)
            return next[path]!
        }.min() ?? .infinity
    }

    /// Whether `path` is due, and if so marks it asked: of two callers at the same moment (a poll and the
    /// background read) only one reads it.
    public func claim(_ path: String) -> Bool {
        guard due(path) else { return false }
        asked(path)
        return true
    }

    /// `path` is being asked now (whatever its answer): the next read waits a full interval.
    public func asked(_ path: String) {
        let now = clock.now()
        lastAsked[path] = now
        next[path] = now + intervalS * (1 + policy.jitter * (random() * 2 - 1))
    }

    /// Keeps the last good answer of `path`, for the polls until the next read.
    public func keep(_ path: String, _ body: [UInt8]) {
        answers[path] = body
        failures[path] = nil
    }

    /// The last good answer of `path`; nil before the first.
    public func answer(_ path: String) -> [UInt8]? { answers[path] }

    /// The answer failed for a reason worth retrying soon (429, 5xx, timeout): try again after the least gap,
    /// doubled per failure in a row (up to the interval), at a random point between half and all of that wait.
    public func failed(_ path: String) {
        let n = failures[path, default: 0]
        failures[path] = n + 1
        let wait = min(intervalS, max(policy.minGapS, shareS) * Double(1 << min(n, 10)))
        next[path] = clock.now() + wait * (0.5 + 0.5 * random())
    }

    /// A device of this box suggests the answer changed (403/404): ask at the next chance the least gap allows.
    public func evidence(_ path: String) {
        let earliest = (lastAsked[path] ?? -.infinity) + max(policy.minGapS, shareS)
        next[path] = min(next[path] ?? earliest, max(clock.now(), earliest))
    }
}

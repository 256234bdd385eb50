/// Client-side token buckets, so heatbridge stays inside a cloud's documented rate limits instead of learning
/// them from 429s. For Bosch this matters beyond heatbridge: the limits are per gateway, so a client that
/// exceeds them also breaks the owner's own app.
public actor RateBudget {
    struct Bucket {
        var tokens: Double
        var last: EpochSeconds
    }

    /// How one class of request is limited.
    public struct Limit: Sendable, Equatable {
        public var capacity: Double
        public var perSecond: Double
        public init(capacity: Double, perSecond: Double) {
            self.capacity = capacity
            self.perSecond = perSecond
        }
    }

    let clock: any Clock
    var buckets: [String: Bucket] = [:]
    /// Tokens a bucket starts with: not its whole burst. The cloud's bucket does not know this process just
    /// started; a daemon restarted in a loop (every 5 s by systemd) with full buckets spent a burst each time
    /// (188 × 429 measured). Two tokens cover a start's poll and one command per key.
    public static let startingTokens = 2.0
    /// Requests waiting per key and priority: a token goes to the most urgent waiter first.
    var waiting: [String: [RequestPriority: Int]] = [:]
    /// Requests that had to wait, for health and tests.
    public private(set) var waits = 0

    public init(clock: any Clock) { self.clock = clock }

    /// Waits until `key` has a token under `limit`, then takes it.
    ///
    /// Background work (polls, sync) leaves the last burst token of a bucket to commands and their read-back,
    /// and never takes a token while a more urgent request waits for the same key: a poll cycle that runs
    /// into the limit slows down, a command does not.
    public func acquire(_ key: String, _ limit: Limit, priority: RequestPriority = RequestPriority.current) async throws {
        let reserve = priority >= .readBack || limit.capacity < 2 ? 0.0 : 1.0
        var registered = false
        defer { if registered { waiting[key]![priority]! -= 1 } }
        while true {
            let now = clock.now()
            var b = buckets[key] ?? Bucket(tokens: min(limit.capacity, Self.startingTokens), last: now)
            b.tokens = min(limit.capacity, b.tokens + (now - b.last) * limit.perSecond)
            b.last = now
            let urgentWaiting = (waiting[key] ?? [:]).contains { $0.key > priority && $0.value > 0 }
            if b.tokens >= 1 + reserve && !urgentWaiting {
                b.tokens -= 1
                buckets[key] = b
                return
            }
            buckets[key] = b
            if !registered {
                registered = true
                waiting[key, default: [:]][priority, default: 0] += 1
                waits += 1
            }
            // Until the token this request needs is there; when yielding to a more urgent waiter, until that
            // one can have its token.
            let need = urgentWaiting ? 1.0 : 1 + reserve
            try await clock.sleep(seconds: max((need - b.tokens) / limit.perSecond, 0.01))
        }
    }
}

/// How urgent a cloud request is, set by the bridge for the work it starts (a task-local, so adapters need
/// no extra parameter). Under a shared rate budget the more urgent request gets the token first.
public enum RequestPriority: Int, Sendable, Comparable, CustomStringConvertible {
    /// Schedule and component sync: needed, but rarely urgent.
    case sync = 0
    /// State polls.
    case poll = 1
    /// Reading a device back after a command.
    case readBack = 2
    /// The command itself.
    case command = 3

    @TaskLocal public static var current: RequestPriority = .poll

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var description: String { ["sync", "poll", "read-back", "command"][rawValue] }

    /// Runs `operation` with requests at `priority`.
    public static func with<T: Sendable>(
        _ priority: RequestPriority, isolation: isolated (any Actor)? = #isolation,
        _ operation: () async throws(CloudError) -> T
    ) async throws(CloudError) -> T {
        do {
            return try await $current.withValue(priority, operation: { try await operation() }, isolation: isolation)
        } catch let e as CloudError {
            throw e
        } catch {
            throw CloudError(.unavailable, message: "\(error)")
        }
    }
}

/// Remembers answers for a while so a poll cycle does not spend rate budget asking again: errors that say
/// "not there" (404) or "device offline" (504), and bodies of resources that hardly ever change (e.g. a heating
/// circuit's distribution type, a property of the installation).
public actor AnswerCache {
    let clock: any Clock
    var until: [String: (until: EpochSeconds, storedAt: EpochSeconds, answer: Result<[UInt8], CloudError>)] = [:]

    public init(clock: any Clock) { self.clock = clock }

    /// The cached answer for `key`, if it has not expired.
    public func lookup(_ key: String) -> Result<[UInt8], CloudError>? {
        guard let e = until[key] else { return nil }
        if clock.now() >= e.until {
            until[key] = nil
            return nil
        }
        return e.answer
    }

    /// When the answer cached for `key` was received, if one is cached.
    public func storedAt(_ key: String) -> EpochSeconds? {
        lookup(key) == nil ? nil : until[key]?.storedAt
    }

    public func remember(_ key: String, _ error: CloudError, forS seconds: Double) {
        let now = clock.now()
        until[key] = (now + seconds, now, .failure(error))
    }

    /// Drops `key`, e.g. after a command changed the resource.
    public func forget(_ key: String) { until[key] = nil }

    public func remember(_ key: String, body: [UInt8], forS seconds: Double) {
        let now = clock.now()
        until[key] = (now + seconds, now, .success(body))
    }
}

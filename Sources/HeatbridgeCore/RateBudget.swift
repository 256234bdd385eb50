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
    /// Requests that had to wait, for health and tests.
    public private(set) var waits = 0

    public init(clock: any Clock) { self.clock = clock }

    /// Waits until `key` has a token under `limit`, then takes it.
    public func acquire(_ key: String, _ limit: Limit) async throws {
        while true {
            let now = clock.now()
            var b = buckets[key] ?? Bucket(tokens: limit.capacity, last: now)
            b.tokens = min(limit.capacity, b.tokens + (now - b.last) * limit.perSecond)
            b.last = now
            if b.tokens >= 1 {
                b.tokens -= 1
                buckets[key] = b
                return
            }
            buckets[key] = b
            waits += 1
            try await clock.sleep(seconds: (1 - b.tokens) / limit.perSecond)
        }
    }
}

/// Remembers answers for a while so a poll cycle does not spend rate budget asking again: errors that say
/// "not there" (404) or "device offline" (504), and bodies of resources that hardly ever change (e.g. a heating
/// circuit's distribution type, a property of the installation).
public actor AnswerCache {
    let clock: any Clock
    var until: [String: (EpochSeconds, Result<[UInt8], CloudError>)] = [:]

    public init(clock: any Clock) { self.clock = clock }

    /// The cached answer for `key`, if it has not expired.
    public func lookup(_ key: String) -> Result<[UInt8], CloudError>? {
        guard let (t, answer) = until[key] else { return nil }
        if clock.now() >= t {
            until[key] = nil
            return nil
        }
        return answer
    }

    public func remember(_ key: String, _ error: CloudError, forS seconds: Double) {
        until[key] = (clock.now() + seconds, .failure(error))
    }

    public func remember(_ key: String, body: [UInt8], forS seconds: Double) {
        until[key] = (clock.now() + seconds, .success(body))
    }
}

/// Per-account bookkeeping: the state published on `bridge/account/<name>`, the counters of `bridge/health`,
/// which accounts have answered their first poll, and the pacing inputs of the next poll.
struct AccountBook {
    struct Status: Equatable {
        var state: AccountState
        var since: EpochSeconds
        var retryAt: EpochSeconds?
        var error: String?
    }

    struct Stats {
        var polls = 0
        var commands = 0
        var errors = 0
        var rateLimited = 0
    }

    private(set) var status: [String: Status] = [:]
    var stats: [String: Stats] = [:]
    /// Accounts whose first poll (since start) has ended, with or without success.
    var firstPollDone: Set<String> = []
    /// Polls in a row per account that changed nothing, and when a command last succeeded there (pacing).
    var unchangedPolls: [String: Int] = [:]
    var lastCommandAt: [String: EpochSeconds] = [:]
    /// When each account polls next: also the `retry_at` of commands held while the account is down.
    var nextPollAt: [String: EpochSeconds] = [:]
    /// Accounts whose key-expiry warning was logged this run.
    var keyWarned: Set<String> = []
    /// Per account: vendor ids in its scope that the last successful poll did not return.
    var notVisible: [String: [String]] = [:]
    /// Devices removed while still in their account's scope (the cloud or the relay stopped listing them), with
    /// why: a command for one is refused as FORBIDDEN with that reason rather than "unknown device".
    var lostAccess: [String: String] = [:]

    /// Records `state`; `since` moves only when the state changes. Returns the previous status.
    mutating func set(_ name: String, _ state: AccountState, error: String?, retryAt: EpochSeconds?, now: EpochSeconds) -> (
        previous: Status?, current: Status
    ) {
        let previous = status[name]
        let since = previous?.state == state ? previous!.since : now
        let current = Status(state: state, since: since, retryAt: retryAt, error: error)
        status[name] = current
        return (previous, current)
    }

    mutating func forget(_ name: String) {
        status[name] = nil
        notVisible[name] = nil
        firstPollDone.remove(name)
    }

    mutating func count(_ name: String, _ change: (inout Stats) -> Void) { change(&stats[name, default: Stats()]) }

    /// The retained payload of an account; `keyExpiry` adds when its credential expires and a warning close to it.
    /// `notVisible`: devices in the account's scope that its last poll did not return.
    static func payload(_ s: Status, keyExpiry: EpochSeconds?, notVisible: [String] = [], now: EpochSeconds) -> (payload: JSONValue, warning: String?)
    {
        var o: [String: JSONValue] = [
            "state": .string(s.state.rawValue), "since": .string(Timestamp.iso8601(s.since)),
            "retry_at": .string(s.retryAt.map(Timestamp.iso8601)), "error": .string(s.error),
        ]
        if !notVisible.isEmpty { o["not_visible"] = .array(notVisible.map { .string($0) }) }
        var warning: String?
        if let keyExpiry {
            o["key_expires_at"] = .string(Timestamp.iso8601(keyExpiry))
            warning = keyWarning(expires: keyExpiry, now: now)
            if let warning { o["warning"] = .string(warning) }
        }
        return (.object(o), warning)
    }

    /// Within 30 days of expiry (or past it): what the installer must do.
    static func keyWarning(expires: EpochSeconds, now: EpochSeconds) -> String? {
        let days = (expires - now) / 86_400
        if days < 0 { return "the API key expired on \(Timestamp.iso8601(expires)); request a new one from the vendor" }
        if days <= 30 { return "the API key expires in \(Int(days.rounded(.up))) days (\(Timestamp.iso8601(expires))); rotate it" }
        return nil
    }

    /// The result code a command waiting on an account in `state` is queued with; nil when it may run.
    static func holdCode(_ state: AccountState) -> ResultCode? {
        switch state {
        case .offline: return .cloudUnavailable
        case .authRequired: return .authFailed
        case .rateLimited, .starting, .ready, .degraded: return nil
        }
    }

    /// Per-account counters for `bridge/health`.
    func healthJSON(accounts: [String]) -> JSONValue {
        var perAccount: [String: JSONValue] = [:]
        for name in accounts {
            let s = stats[name] ?? Stats()
            perAccount[name] = [
                "polls": .int(s.polls), "commands": .int(s.commands), "errors": .int(s.errors),
                "rate_limited": .int(s.rateLimited),
            ]
        }
        return .object(perAccount)
    }
}

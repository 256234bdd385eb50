/// How often an account is polled: faster for a while after a command (so its effect shows up quickly),
/// slower while nothing changes (so a quiet house costs less of the cloud's rate budget), never slower than
/// `maxS` and back to `baseS` as soon as something changes.
public struct PollPacing: Sendable, Equatable {
    /// `poll_interval_s`.
    public var baseS: Double
    /// `poll_max_interval_s`: the slowest a quiet account is polled.
    public var maxS: Double
    /// The interval right after a command, for `fastWindowS`.
    public var fastS: Double = 15
    public var fastWindowS: Double = 120
    /// Unchanged polls in a row before the interval doubles (again).
    public var unchangedPerStep = 3

    public init(baseS: Double, maxS: Double? = nil) {
        self.baseS = baseS
        self.maxS = max(maxS ?? baseS * 4, baseS)
    }

    /// The wait before the next poll, after `unchanged` polls in a row that changed nothing; `sinceCommand` is
    /// the time since the last command succeeded on the account (nil: none yet).
    public func interval(unchanged: Int, sinceCommand: Double?) -> Double {
        if let s = sinceCommand, s < fastWindowS { return min(baseS, fastS) }
        let steps = min(unchanged / max(unchangedPerStep, 1), 16)
        var wait = baseS
        for _ in 0..<steps where wait < maxS { wait *= 2 }
        return min(wait, maxS)
    }
}

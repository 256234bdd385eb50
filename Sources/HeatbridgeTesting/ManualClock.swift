import HeatbridgeCore
import Synchronization

/// A clock that stands still until the test moves it (`advance(by:)`): sleepers wake in deadline order as time
/// passes them, so a test of an hour of polling takes milliseconds and never depends on the machine's speed
/// (swift-nio's `EmbeddedEventLoop.advanceTime(by:)`).
public final class ManualClock: HeatbridgeCore.Clock {
    struct Sleeper {
        var deadline: EpochSeconds
        var continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var now: EpochSeconds
        var sleepers: [Int: Sleeper] = [:]
        var next = 0
    }

    private let state: Mutex<State>

    /// Starts at `start` (default 2027-01-15 08:00 UTC).
    public init(start: EpochSeconds = 1_800_000_000) { state = Mutex(State(now: start)) }

    public func now() -> EpochSeconds { state.withLock { $0.now } }

    /// How many tasks are sleeping on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The earliest time a sleeper wakes at (nil: none sleeps): lets a test wait until work it started has
    /// scheduled what comes next, instead of guessing with a pause.
    public var nextDeadline: EpochSeconds? { state.withLock { $0.sleepers.values.map(\.deadline).min() } }

    public func sleep(seconds: Double) async throws {
        let id = state.withLock { s -> Int in
            s.next += 1
            return s.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let immediate = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    if seconds <= 0 { return true }
                    s.sleepers[id] = Sleeper(deadline: s.now + seconds, continuation: c)
                    return false
                }
                if immediate {
                    if Task.isCancelled { c.resume(throwing: CancellationError()) } else { c.resume() }
                }
            }
        } onCancel: {
            let s = state.withLock { $0.sleepers.removeValue(forKey: id) }
            s?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward by `seconds`, stopping at every sleeper's deadline on the way: the sleeper wakes, and
    /// whatever it starts (new sleeps included) runs before time moves on.
    public func advance(by seconds: Double) async {
        let target = now() + seconds
        while true {
            await settle()
            let due = state.withLock { s -> [Sleeper] in
                guard let next = s.sleepers.values.map(\.deadline).min(), next <= target else {
                    s.now = max(s.now, target)
                    return []
                }
                s.now = max(s.now, next)
                let woken = s.sleepers.filter { $0.value.deadline <= next }
                for k in woken.keys { s.sleepers[k] = nil }
                return Array(woken.values)
            }
            if due.isEmpty { break }
            for s in due { s.continuation.resume() }
        }
        await settle()
    }

    /// Lets woken tasks run until the set of sleepers stops changing (bounded): work the bridge does between two
    /// sleeps happens on other executors, so the test task yields and waits briefly for it.
    public func settle() async {
        var stable = 0
        var last = (-1, EpochSeconds.nan)
        for _ in 0..<400 {
            await Task.yield()
            try? await Task.sleep(nanoseconds: 200_000)
            let now = state.withLock { s in (s.sleepers.count, s.sleepers.values.map(\.deadline).min() ?? -1) }
            if now.0 == last.0 && now.1 == last.1 { stable += 1 } else { stable = 0 }
            last = now
            if stable >= 5 { return }
        }
    }
}

import Glibc
import HeatbridgeCore
import Synchronization

/// A clock that stands still until the test moves it (`advance(by:)`): sleepers wake in deadline order as time
/// passes them, so a test of an hour of polling takes milliseconds and never depends on the machine's speed
/// (swift-nio's `EmbeddedEventLoop.advanceTime(by:)`).
public final class ManualClock: HeatbridgeCore.Clock {
    struct Sleeper {
        var deadline: EpochSeconds
        var continuation: CheckedContinuation<Void, any Error>
        /// The work the sleeping task belongs to: not running while it sleeps.
        var gauge: WorkGauge?
    }

    struct State {
        var now: EpochSeconds
        var sleepers: [Int: Sleeper] = [:]
        var next = 0
        var owner: Owner?
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

    struct Owner {
        var quiesce: @Sendable () async -> Void
        var nextDeadline: @Sendable () -> EpochSeconds?
    }

    /// Makes `advance` drive an owner of timers and work (the bridge: `drive(bridge)`): between two steps of
    /// time it waits for `quiesce` (the work the last step started has finished or sleeps on this clock, every
    /// due timer has fired) instead of guessing with short pauses, and it stops at `nextDeadline` even when
    /// the owner's timer loop is not asleep on the clock yet.
    public func drive(quiesce: @escaping @Sendable () async -> Void, nextDeadline: @escaping @Sendable () -> EpochSeconds?) {
        state.withLock { $0.owner = Owner(quiesce: quiesce, nextDeadline: nextDeadline) }
    }

    public func sleep(seconds: Double) async throws {
        try await sleep(until: now() + seconds)
    }

    public func sleep(until deadline: EpochSeconds) async throws {
        let gauge = WorkGauge.current
        let id = state.withLock { s -> Int in
            s.next += 1
            return s.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let immediate = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    if deadline <= s.now { return true }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c, gauge: gauge)
                    return false
                }
                if !immediate { gauge?.end() }
                if immediate {
                    if Task.isCancelled { c.resume(throwing: CancellationError()) } else { c.resume() }
                }
            }
        } onCancel: {
            let s = state.withLock { $0.sleepers.removeValue(forKey: id) }
            s?.gauge?.begin()
            s?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward by `seconds`, stopping at every sleeper's deadline (and the driven owner's next timer)
    /// on the way: the sleeper wakes, and whatever it starts (new sleeps included) runs before time moves on.
    public func advance(by seconds: Double) async {
        let target = now() + seconds
        while true {
            await quiesce()
            let ownerNext = state.withLock { $0.owner }?.nextDeadline()
            let due = state.withLock { s -> [Sleeper]? in
                // The owner's next timer counts even before its loop sleeps on it; one at or before now has had
                // its turn in `quiesce`, so it cannot hold time still.
                let ownerDeadline = ownerNext.flatMap { $0 > s.now ? $0 : nil }
                guard let next = (s.sleepers.values.map(\.deadline) + [ownerDeadline].compactMap { $0 }).min(), next <= target else {
                    s.now = max(s.now, target)
                    return nil
                }
                s.now = max(s.now, next)
                let woken = s.sleepers.filter { $0.value.deadline <= next }
                for k in woken.keys { s.sleepers[k] = nil }
                return Array(woken.values)
            }
            guard let due else { break }
            for s in due {
                s.gauge?.begin()  // running again from here: `quiesce` waits for it
                s.continuation.resume()
            }
        }
        await quiesce()
    }

    /// The driven owner's quiescence, or the pause heuristic (`settle`) when none was given.
    public func quiesce() async {
        if let owner = state.withLock({ $0.owner }) { await owner.quiesce() } else { await settle() }
    }

    /// Lets woken tasks run until the set of sleepers stops changing (bounded): for a clock no owner is driven
    /// by (`drive`), whose work between two sleeps happens on other executors, the test task yields and waits
    /// briefly for it.
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

/// Polls `condition` on the test's thread until it holds or `timeoutS` of real time passed; returns whether it
/// held. For what a test hands to the bridge from outside its clock (an MQTT message): the bridge answers on its
/// own executor.
public func waitUntil(timeoutS: Double = 5, _ condition: () -> Bool) -> Bool {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    let deadline = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 + timeoutS
    while true {
        if condition() { return true }
        clock_gettime(CLOCK_MONOTONIC, &ts)
        if Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 > deadline { return false }
        usleep(2_000)
    }
}

import Synchronization

/// Keyed deadlines served by one loop: the bridge's timers (switch points of week programs, command wake-ups,
/// lease ends, trigger times, polls) without a task per timer. Scheduling a key again moves its deadline and
/// cancelling removes it, so a timer that is no longer wanted costs nothing. `run` is a child task of its
/// owner's task group: no timer outlives the owner.
public final class TimerQueue<Key: Hashable & Sendable>: Sendable {
    struct State {
        var deadlines: [Key: EpochSeconds] = [:]
        /// Bumped on every change, so the loop knows whether what it slept on is still current.
        var version = 0
        var waiter: CheckedContinuation<Void, Never>?
        /// The clock time of the loop's last pass that found nothing due, and who waits for a later one.
        var idleAt: EpochSeconds = -.infinity
        var settleWaiters: [(through: EpochSeconds, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Fires `key` at `at` (replacing an earlier deadline of the same key).
    public func schedule(_ key: Key, at: EpochSeconds) {
        change { $0.deadlines[key] = at }
    }

    /// Fires `key` at `at` unless it is already due earlier.
    public func scheduleEarliest(_ key: Key, at: EpochSeconds) {
        change { s in
            if let existing = s.deadlines[key], existing <= at { return }
            s.deadlines[key] = at
        }
    }

    public func cancel(_ key: Key) {
        change { $0.deadlines[key] = nil }
    }

    /// Cancels every key `matching`.
    public func cancelAll(where matching: (Key) -> Bool) {
        change { s in s.deadlines = s.deadlines.filter { !matching($0.key) } }
    }

    public func deadline(_ key: Key) -> EpochSeconds? { state.withLock { $0.deadlines[key] } }

    /// The earliest deadline (nil: none).
    public var nextDeadline: EpochSeconds? { state.withLock { $0.deadlines.values.min() } }

    /// Until cancelled: calls `fire` for each key whose deadline has come, earliest first.
    public func run(clock: any Clock, fire: (Key) async -> Void) async {
        defer { resumeSettled(through: .infinity) }
        while !Task.isCancelled {
            let now = clock.now()
            let (due, next, version) = state.withLock { s in
                let due = s.deadlines.filter { $0.value <= now }.sorted { $0.value < $1.value }.map(\.key)
                for k in due { s.deadlines[k] = nil }
                return (due, s.deadlines.values.min(), s.version)
            }
            for key in due { await fire(key) }
            if !due.isEmpty { continue }
            resumeSettled(through: now)
            // Sleep until the next deadline, or until the deadlines change (a new, earlier one may be there).
            await withTaskGroup(of: Void.self) { group in
                if let next { group.addTask { try? await clock.sleep(until: next) } }
                group.addTask { await self.changed(since: version) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Returns once every deadline up to `through` (a time on the loop's clock) has fired and its `fire`
    /// returned. After a jump of the clock (the daemon's test clock) this wakes the loop, which would otherwise
    /// sleep out the real time it computed before the jump.
    public func settle(through: EpochSeconds) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.idleAt >= through { return true }
                s.settleWaiters.append((through, c))
                return false
            }
            if done { c.resume() } else { change { _ in } }
        }
    }

    private func resumeSettled(through now: EpochSeconds) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.idleAt = now
            let ready = s.settleWaiters.filter { $0.through <= now }.map(\.continuation)
            s.settleWaiters.removeAll { $0.through <= now }
            return ready
        }
        for c in ready { c.resume() }
    }

    private func change(_ body: (inout State) -> Void) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            body(&s)
            s.version += 1
            // A deadline at or before the loop's last idle pass is due and not fired yet: `settle` waits for
            // the next pass again.
            if let first = s.deadlines.values.min(), first <= s.idleAt { s.idleAt = -.infinity }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Returns once the deadlines differ from `version` (or the task is cancelled).
    private func changed(since version: Int) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                // Cancellation sets the flag before it runs the handler below, so checking it under the lock
                // cannot miss a cancellation that came before the continuation was stored.
                let now = state.withLock { s -> Bool in
                    if s.version != version || Task.isCancelled { return true }
                    s.waiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}

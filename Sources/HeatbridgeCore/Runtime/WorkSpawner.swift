import Synchronization

/// Hands work to the task group of a `run()`: the bridge starts a command's execution or a poll through it,
/// so every task it starts is a child of `run()` and ends with it (swift-service-lifecycle's rule: no
/// unstructured tasks). Every piece of work is counted on `gauge` from `spawn` until it returns.
public struct WorkSpawner: Sendable {
    public typealias Work = @Sendable () async -> Void
    let continuation: AsyncStream<Work>.Continuation
    /// The stream `run()` drains into its task group.
    public let work: AsyncStream<Work>
    /// The work in flight: what a test's clock waits for before it moves time on.
    public let gauge = WorkGauge()

    public init() {
        (work, continuation) = AsyncStream.makeStream(of: Work.self)
    }

    public func spawn(_ body: @escaping Work) {
        let gauge = self.gauge
        // Counted from here, not from when the task group starts it: between the two the work is on its way,
        // not idle.
        gauge.begin()
        let result = continuation.yield {
            await WorkGauge.$current.withValue(gauge) { await body() }
            gauge.end()
        }
        if case .terminated = result { gauge.end() }  // `run()` has ended: the work never starts
    }
}

/// How much of an owner's work is running, as opposed to finished or waiting for time to pass. A clock that
/// a test moves by hand (`ManualClock`) marks the work that sleeps on it as not running (`WorkGauge.current`
/// says whose work a task is) and as running again when it wakes it, so the test can wait until everything
/// the last step of time started has finished or is asleep: swift-nio's `EmbeddedEventLoop.advanceTime(by:)`
/// runs due work itself for the same reason. In the daemon nothing waits on it; it costs a lock per spawn.
public final class WorkGauge: Sendable {
    /// The gauge of the work this task belongs to (set by `WorkSpawner`, inherited by child tasks).
    @TaskLocal public static var current: WorkGauge?

    struct State {
        var running = 0
        /// Bumped by every `begin`, so a waiter can tell "idle all along" from "idle again".
        var generation = 0
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// Pieces of work running now.
    public var running: Int { state.withLock { $0.running } }
    /// How many times work started or woke so far.
    public var generation: Int { state.withLock { $0.generation } }

    /// A piece of work starts, or wakes from a sleep.
    public func begin() {
        state.withLock { s in
            s.running += 1
            s.generation += 1
        }
    }

    /// A piece of work returns, or goes to sleep on the clock.
    public func end() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.running -= 1
            guard s.running <= 0 else { return [] }
            defer { s.idleWaiters = [] }
            return s.idleWaiters
        }
        for w in waiters { w.resume() }
    }

    /// Returns once no work is running.
    public func idle() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.running <= 0 { return true }
                s.idleWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}

extension TimerQueue {
    /// Returns once nothing is left to do at `clock`'s current time: no work on `gauge` runs (it has returned or
    /// sleeps on the clock) and every timer due by now has fired. What a test's clock waits for between two
    /// steps of time.
    public func quiesce(with gauge: WorkGauge, clock: any Clock) async {
        while true {
            let generation = gauge.generation
            await gauge.idle()
            await settle(through: clock.now())
            // A timer that fired may have started work, and work may have scheduled a timer: round again.
            if gauge.running == 0 && gauge.generation == generation { return }
        }
    }
}

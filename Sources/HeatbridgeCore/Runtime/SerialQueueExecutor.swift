import Dispatch

/// Runs an actor's jobs in order on a serial dispatch queue instead of Swift's cooperative pool.
///
/// The bridge writes to SQLite synchronously: each accepted command and each result is committed (and
/// fsynced) before it is published, which is the contract's "never lost". A serial queue gets a thread of its
/// own when it blocks, so those waits hold up only the bridge, never the cooperative threads that HTTP polls
/// and the MQTT side share (sqlite-nio's rule: blocking calls never run on the shared executor).
public final class SerialQueueExecutor: SerialExecutor {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}

import Logging

/// Whether the store takes writes, as the bridge last saw it. A bridge whose store cannot write answers every
/// command `STORE_FAILED` and cannot promise never-twice: it says so (`bridge/health` `ready: false`,
/// `store.writable: false` with the error) from the first failed write until a write succeeds again.
struct StoreHealth: Sendable {
    var writable = true
    var problem: String?
    var since: EpochSeconds?
}

/// A write the bridge declined to make itself, because the store has not taken an earlier one.
struct StoreRefusal: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// What `StoreWatch` needs of the bridge around it: its timers, readiness and health, and what waits for the
/// store. The bridge conforms.
protocol StoreWatchHost: Actor {
    var timers: TimerQueue<BridgeTimer> { get }
    /// Told when the bridge stops or starts being ready, with the reason (the service's `STATUS=`).
    var readinessChanged: @Sendable (_ ready: Bool, _ reason: String?) -> Void { get }
    func publishHealth()
    /// Writes the terminal results the store refused earlier.
    func recordUnrecorded()
    /// Lets the commands that waited for the store run.
    func pumpWaiting()
}

/// The store's health, kept from what each write did: not ready from the first failed write, a write check every
/// `probeS` seconds meanwhile, ready again (and what it refused written first) once it writes. It runs on the
/// bridge's actor (`host: isolated`), like the bridge's other components.
final class StoreWatch {
    /// While the store cannot write, it is tried this often, so recovery (space or permission back) shows
    /// without waiting for a command.
    static let probeS: Double = 10

    private(set) var health = StoreHealth()
    let store: any StatePort
    let clock: any Clock
    let logger: Logger

    init(store: any StatePort, clock: any Clock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.logger = logger
    }

    /// Keeps the store's health from what a write did.
    func note(_ effect: ResultOutbox.StoreEffect, host: isolated some StoreWatchHost) {
        switch effect {
        case .untouched: break
        case .worked: worked(host: host)
        case .failed(let error): failed(error, host: host)
        }
    }

    func failed(_ error: any Error, host: isolated some StoreWatchHost) {
        health.problem = "\(error)"
        // Already not writable: `bridge/health` follows what changed since (a result the store refused is now
        // unrecorded); the retained topic publishes only a change.
        guard health.writable else { return host.publishHealth() }
        health.writable = false
        health.since = clock.now()
        logger.error("the store cannot write: the bridge is not ready until it can", metadata: ["error": "\(error)"])
        host.readinessChanged(false, "the store cannot write: \(error)")
        host.publishHealth()
        host.timers.schedule(.storeProbe, at: clock.now() + Self.probeS)
    }

    func worked(host: isolated some StoreWatchHost) {
        guard !health.writable else { return }
        health = StoreHealth()
        host.timers.cancel(.storeProbe)
        logger.notice("the store writes again: the bridge is ready")
        host.readinessChanged(true, nil)
        host.publishHealth()
    }

    /// The store's own write check, while it is marked as failing; what it refused before is written first.
    func probe(host: isolated some StoreWatchHost) {
        guard !health.writable else { return }
        do {
            try store.writeCheck()
            worked(host: host)
            host.recordUnrecorded()
            host.pumpWaiting()
        } catch {
            health.problem = "\(error)"
            host.timers.schedule(.storeProbe, at: clock.now() + Self.probeS)
        }
    }
}

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

extension Bridge {
    /// While the store cannot write, it is tried this often, so recovery (space or permission back) shows
    /// without waiting for a command.
    static let storeProbeS: Double = 10

    func storeFailed(_ error: any Error) {
        storeHealth.problem = "\(error)"
        // Already not writable: `bridge/health` follows what changed since (a result the store refused is now
        // unrecorded); the retained topic publishes only a change.
        guard storeHealth.writable else { return publishHealth() }
        storeHealth.writable = false
        storeHealth.since = clock.now()
        logger.error("the store cannot write: the bridge is not ready until it can", metadata: ["error": "\(error)"])
        readinessChanged(false, "the store cannot write: \(error)")
        publishHealth()
        timers.schedule(.storeProbe, at: clock.now() + Self.storeProbeS)
    }

    func storeWorked() {
        guard !storeHealth.writable else { return }
        storeHealth = StoreHealth()
        timers.cancel(.storeProbe)
        logger.notice("the store writes again: the bridge is ready")
        readinessChanged(true, nil)
        publishHealth()
    }

    /// The store's own write check, while it is marked as failing; what it refused before is written first.
    func probeStore() {
        guard !storeHealth.writable else { return }
        do {
            try store.writeCheck()
            storeWorked()
            recordUnrecorded()
            for device in commands.queue.devicesWaiting { pump(device) }
        } catch {
            storeHealth.problem = "\(error)"
            timers.schedule(.storeProbe, at: clock.now() + Self.storeProbeS)
        }
    }
}

extension Bridge {
    /// Writes the terminal results the store refused earlier (`ResultOutbox.recordUnrecorded`).
    func recordUnrecorded() {
        commands.recordUnrecorded(host: self)
    }

    /// Keeps the store's health from what a write did.
    func noteStore(_ effect: ResultOutbox.StoreEffect) {
        switch effect {
        case .untouched: break
        case .worked: storeWorked()
        case .failed(let error): storeFailed(error)
        }
    }
}

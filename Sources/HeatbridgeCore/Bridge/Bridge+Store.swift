/// The bridge as the host of `StoreWatch`, and the calls its components make about the store.
extension Bridge: StoreWatchHost {
    /// Whether the store took its last write, for `bridge/health` and readiness.
    var storeHealth: StoreHealth { storeWatch.health }

    /// Keeps the store's health from what a write did.
    func noteStore(_ effect: ResultOutbox.StoreEffect) { storeWatch.note(effect, host: self) }

    /// Writes the terminal results the store refused earlier (`ResultOutbox.recordUnrecorded`).
    func recordUnrecorded() { commands.recordUnrecorded(host: self) }

    func pumpWaiting() {
        for device in commands.queue.devicesWaiting { pump(device) }
    }
}

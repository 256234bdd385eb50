/// What `AccountPoller` needs of the bridge around it: the accounts and their books, the devices a read
/// updates, the push state that slows polling, timers and spawning work. The bridge actor conforms.
protocol PollHost: Actor {
    var settings: BridgeSettings { get }
    var accounts: [String: AccountRuntime] { get }
    var devices: DeviceRegistry { get }
    /// Account states, counters, pacing inputs (`unchangedPolls`, `lastCommandAt`, `nextPollAt`).
    var book: AccountBook { get set }
    var allFirstPollsDone: Bool { get }
    var timers: TimerQueue<BridgeTimer> { get }
    var poller: AccountPoller { get }

    /// Runs `work` in the host's task group.
    func spawn(_ work: @escaping @Sendable () async -> Void)
    /// Takes an account's poll; returns whether anything changed (a device's state, or the device list).
    func apply(_ snapshots: [DeviceSnapshot], account: String) -> Bool
    /// Takes one device's fresh snapshot; returns whether it differs from before.
    func update(_ polled: DeviceSnapshot, account: String, now: EpochSeconds) -> Bool
    func publishDevice(_ e: DeviceRegistry.Entry, at stamp: EpochSeconds)
    func setAccount(_ name: String, _ state: AccountState, error: String?, retryAt: EpochSeconds?)
    /// Push events arrive for the account (polls then only reconcile).
    func pushLive(_ account: AccountRuntime) -> Bool
    func lastPushEvent(account: String) -> EpochSeconds?
    /// An account's energy statistics for one device.
    func takeStatistics(_ readings: [MeterReading], device: String)
    /// Every account has been read once: what waited for the devices to be known runs now.
    func everyAccountReadOnce()
}

extension PollHost {
    /// Runs `body` isolated to the host with its poller: how work the poller spawned gets back to it.
    func polling<T: Sendable>(_ body: @Sendable (isolated Self, AccountPoller) async -> T) async -> T {
        await body(self, poller)
    }
}

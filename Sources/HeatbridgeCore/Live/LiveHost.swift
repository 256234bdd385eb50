/// What `LiveState` needs of the bridge around it: the accounts and devices events are for (it merges into the
/// registry and publishes), the account state a live push shows in, timers and settings. The bridge conforms.
protocol LiveHost: Actor {
    var settings: BridgeSettings { get }
    var accounts: [String: AccountRuntime] { get }
    var devices: DeviceRegistry { get set }
    var book: AccountBook { get set }
    var timers: TimerQueue<BridgeTimer> { get }
    /// Bridge-local settings as loaded and saved (pushed state, meters).
    var localSettings: [String: JSONValue] { get set }

    func publishDevice(_ e: DeviceRegistry.Entry, at stamp: EpochSeconds)
    func setAccount(_ name: String, _ state: AccountState, error: String?, retryAt: EpochSeconds?)
    func saveSetting(_ key: String, _ value: JSONValue?, what: String)
    func noteStore(_ effect: ResultOutbox.StoreEffect)
    /// Subscribes to a topic (the push filters).
    func subscribe(_ topic: String)
}

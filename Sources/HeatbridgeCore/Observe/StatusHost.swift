/// What `StatusReport` reads of the bridge (read-only, but for the push state it asks `LiveState` about).
protocol StatusHost: LiveHost {
    var devices: DeviceRegistry { get set }
    var storeHealth: StoreHealth { get }
    var mqttConnected: Bool { get }
    var startedAt: EpochSeconds { get }
    var clock: any Clock { get }
    var live: LiveState { get }
    var commands: CommandPipeline { get }
    var processStats: @Sendable () -> [String: JSONValue] { get }
    var mqttCounters: MQTTCounters { get }
}

/// What `Automation` needs of the bridge around it: the devices and settings its rules name, the command path
/// (`submit`), persisted settings, timers, and the MQTT side of trigger conditions. The bridge actor conforms.
protocol AutomationHost: Actor {
    var settings: BridgeSettings { get }
    var devices: DeviceRegistry { get }
    var timers: TimerQueue<BridgeTimer> { get }
    var allFirstPollsDone: Bool { get }
    var mqttConnected: Bool { get }
    /// Bridge-local settings as loaded from the store (leases, trigger states, the legionella watch).
    var localSettings: [String: JSONValue] { get }
    var limits: LimitsPolicy { get set }

    /// Issues a command through the normal pipeline.
    func submit(_ s: Submission)
    func saveSetting(_ key: String, _ value: JSONValue?, what: String)
    func publishDevice(_ e: DeviceRegistry.Entry, at stamp: EpochSeconds)
    /// Subscribes to a trigger condition's topic.
    func subscribe(_ topic: String)
    /// `bridge/triggers`, retained.
    func publishTriggerView(_ view: JSONValue)
}

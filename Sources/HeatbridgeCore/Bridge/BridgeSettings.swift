/// The bridge's configuration values: its accounts, what it needs besides its ports, and the names of its timers.

/// One configured cloud account with its adapter.
public struct AccountRuntime: Sendable {
    public var name: String
    public var vendor: String
    public var pollIntervalS: Double { pacing.baseS }
    public var pacing: PollPacing
    public var adapter: any VendorAdapter
    /// The vendor ids the account's `devices:` names; nil for every device the credentials reach. One of them
    /// missing from a poll's answer is reported on the account state (`not_visible`).
    public var scope: [String]?
    /// `push:`: the account takes pushed events (its adapter is `PushDecoding`); nil polls only.
    public var push: PushSettings?

    public init(
        name: String, vendor: String, pollIntervalS: Double, maxPollIntervalS: Double? = nil, adapter: any VendorAdapter,
        scope: [String]? = nil, push: PushSettings? = nil
    ) {
        self.push = push
        self.name = name
        self.vendor = vendor
        self.pacing = PollPacing(baseS: pollIntervalS, maxS: maxPollIntervalS)
        self.adapter = adapter
        self.scope = scope
    }
}

/// What the bridge needs besides its ports.
public struct BridgeSettings: Sendable {
    public var topics: TopicLayout
    public var version: String
    /// Short hash of the config file, published in `bridge/info` so an installer can tell which config runs.
    public var configHash: String
    public var behaviour: BridgeBehaviour
    public var accounts: [AccountRuntime]
    /// The box's local time, for evaluating week programs.
    public var localTime: any LocalTime
    /// Home Assistant discovery; nil leaves Home Assistant's topics alone.
    public var discovery: HomeAssistantDiscovery?
    /// `mqtt.max_payload_bytes`: larger commands are refused `PAYLOAD_TOO_LARGE`.
    public var maxPayloadBytes: Int
    /// The config file as loaded, secrets redacted: the `config` bridge request's answer (nil: none).
    public var configDocument: JSONValue?
    /// How `log_level` requests change the level (nil: they are refused `UNSUPPORTED`).
    public var logLevel: LogLevelControl?

    public init(
        topics: TopicLayout, version: String, configHash: String, behaviour: BridgeBehaviour, accounts: [AccountRuntime],
        localTime: any LocalTime = FixedOffsetTime(offsetS: 0), discovery: HomeAssistantDiscovery? = nil,
        maxPayloadBytes: Int = MQTTConfig.defaultMaxPayloadBytes, configDocument: JSONValue? = nil,
        logLevel: LogLevelControl? = nil
    ) {
        self.maxPayloadBytes = maxPayloadBytes
        self.configDocument = configDocument
        self.logLevel = logLevel
        self.localTime = localTime
        self.discovery = discovery
        self.topics = topics
        self.version = version
        self.configHash = configHash
        self.behaviour = behaviour
        self.accounts = accounts
    }
}

/// The bridge's timers, all served by one `TimerQueue` inside `run()`.
enum BridgeTimer: Hashable, Sendable {
    /// The account's next poll.
    case poll(account: String)
    /// A waiting command of this device may run or expire.
    case wake(device: String)
    /// The device's week programs reach a switch point: `schedule_now` moves on.
    case schedule(device: String)
    /// A lease (by its key) ends.
    case lease(String)
    /// A local trigger's time, or the end of its condition's hold time.
    case trigger(String)
    /// The read-back of a device after a command.
    case readBack(account: String, device: String)
    /// Home Assistant came back: re-announce everything.
    case rediscovery
    /// An adapter's background reads (`VendorAdapter.backgroundRead`).
    case background(account: String)
    /// The store's write check, while writes fail.
    case storeProbe
    /// `bridge/health` again (every `Bridge.healthIntervalS`).
    case health
    /// Pushed state and meters waiting to be written (coalesced: `Bridge.pushSaveIntervalS`).
    case liveSave
    /// An account's energy statistics read (`EnergyStatistics`).
    case statistics(account: String)
    /// A device's grown discovery config, sent once more (`publishDeviceDiscovery`).
    case discoveryRepeat(device: String)
    /// A log level raised by a `log_level` request falls back to the config's.
    case logLevelBack
}

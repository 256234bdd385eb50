/// The bridge's Home Assistant side: which discovery configs to publish or take back, and the re-announcement
/// after Home Assistant restarts. The configs themselves come from `HomeAssistantDiscovery`.
struct DiscoveryPublisher {
    let discovery: HomeAssistantDiscovery?
    /// Configs taken back this run because discovery is switched off (each once).
    private var cleared: Set<String> = []
    private var rediscoveryPending = false
    /// The component ids last announced per device config topic.
    private var announced: [String: Set<String>] = [:]

    init(_ discovery: HomeAssistantDiscovery?) { self.discovery = discovery }

    /// Home Assistant's birth/will topic, while discovery is on.
    var statusTopic: String? { discovery.flatMap { $0.enabled ? $0.statusTopic : nil } }
    /// The discovery prefix, when Home Assistant is configured at all (its topics are replayed first).
    var prefix: String? { discovery?.prefix }
    func deviceConfigTopic(_ device: String) -> String? { discovery?.deviceConfigTopic(device) }

    func publishBridge(accounts: [String], into retained: inout RetainedTopics) {
        guard let d = discovery else { return }
        if d.enabled {
            retained.publish(d.bridgeConfigTopic, d.bridgeConfig(accounts: accounts))
        } else {
            retained.clear(d.bridgeConfigTopic)
        }
    }

    /// Returns true when the config gained components over the one announced before (see `Bridge.publishDeviceDiscovery`).
    @discardableResult
    mutating func publishDevice(_ snapshot: DeviceSnapshot, adapter: (any VendorAdapter)?, into retained: inout RetainedTopics) -> Bool {
        guard let d = discovery else { return false }
        let topic = d.deviceConfigTopic(snapshot.id)
        guard d.enabled else {
            // Discovery switched off: take back what an earlier run announced (once per device).
            if cleared.insert(topic).inserted { retained.clear(topic) }
            return false
        }
        guard let adapter else { return false }
        let config = d.deviceConfig(
            snapshot, names: adapter.frontEndName(snapshot),
            capabilities: { adapter.capabilities(of: $0) },
            exposes: { node, caps in adapter.exposes(node: node, state: snapshot.nodes[node] ?? .null, capabilities: caps) },
            localDefaults: { adapter.localDefaults(of: $0) },
            meter: (adapter as? any EnergyMetering)?.meterLayout(snapshot) ?? MeterLayout(power: false, counters: []))
        retained.publish(topic, config)
        let ids = Set((config["cmps"]?.objectValue ?? [:]).keys)
        let before = announced.updateValue(ids, forKey: topic)
        return before.map { !ids.subtracting($0).isEmpty } ?? false
    }

    /// True when a re-announcement is to be scheduled (discovery on, none pending).
    mutating func startRediscovery() -> Bool {
        guard let d = discovery, d.enabled, !rediscoveryPending else { return false }
        rediscoveryPending = true
        return true
    }

    /// The scheduled re-announcement is due: the prefix whose configs go first.
    mutating func endRediscovery() -> String? {
        rediscoveryPending = false
        return discovery?.prefix
    }
}

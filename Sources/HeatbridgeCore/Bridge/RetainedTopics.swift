/// Everything the bridge keeps published as retained messages: the last payload per topic (compared to skip
/// unchanged publishes, replayed after the broker reconnects, since a restarted broker may have lost them)
/// and deletions waiting for the broker to be reachable.
struct RetainedTopics {
    let mqtt: any MQTTPort
    /// Last payload per retained topic.
    private(set) var payloads: [String: [UInt8]] = [:]
    /// Content of a topic without its volatile stamp, to tell a real change from a new timestamp.
    private var contentKeys: [String: String] = [:]
    /// Retained topics to delete once the broker is reachable.
    private var pendingClears: Set<String> = []

    init(mqtt: any MQTTPort) { self.mqtt = mqtt }

    /// Publishes `value` when its content changed; `stamp` goes into `updated_at` without counting as a
    /// change. Returns true when it published.
    @discardableResult
    mutating func publish(_ topic: String, _ value: JSONValue, stamp: EpochSeconds? = nil) -> Bool {
        let content = value.serialized
        if contentKeys[topic] == content { return false }
        contentKeys[topic] = content
        var stamped = value
        if let stamp, case .object(var o) = value {
            o["updated_at"] = .string(Timestamp.iso8601(stamp))
            stamped = .object(o)
        }
        let payload = stamped.bytes
        payloads[topic] = payload
        mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
        return true
    }

    /// Publishes a plain-text retained payload (availability) when it changed.
    mutating func publishText(_ topic: String, _ text: String) {
        let payload = Array(text.utf8)
        if payloads[topic] == payload { return }
        payloads[topic] = payload
        contentKeys[topic] = text
        mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
    }

    /// Publishes `payload` now and keeps it for replays, whatever was there before.
    mutating func force(_ topic: String, _ payload: [UInt8]) {
        payloads[topic] = payload
        mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
    }

    /// Keeps `payload` as the topic's value for the next replay without publishing it now.
    mutating func remember(_ topic: String, _ payload: [UInt8]) { payloads[topic] = payload }

    /// Deletes a retained topic on the broker; while the broker is away the deletion waits for the next connect.
    mutating func clear(_ topic: String) {
        payloads[topic] = nil
        contentKeys[topic] = nil
        if !mqtt.publish(topic: topic, payload: [], qos: 1, retain: true) { pendingClears.insert(topic) }
    }

    /// After a (re)connect: deletions that waited, then every retained topic, those under `first` first (Home
    /// Assistant must know an entity before its first value arrives).
    mutating func replay(first: String?) {
        for topic in pendingClears.sorted() where mqtt.publish(topic: topic, payload: [], qos: 1, retain: true) {
            pendingClears.remove(topic)
        }
        for (topic, payload) in payloads.sorted(by: { a, b in
            let ca = first.map { a.key.hasPrefix($0) } ?? false
            let cb = first.map { b.key.hasPrefix($0) } ?? false
            return ca != cb ? ca : a.key < b.key
        }) {
            mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
        }
    }

    /// Publishes again every topic under `prefix`, then all the others; returns how many were under `prefix`.
    func republish(prefix: String) -> Int {
        let under = payloads.filter { $0.key.hasPrefix(prefix) }
        for (topic, payload) in under.sorted(by: { $0.key < $1.key }) { mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true) }
        for (topic, payload) in payloads.sorted(by: { $0.key < $1.key }) where !topic.hasPrefix(prefix) {
            mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
        }
        return under.count
    }
}

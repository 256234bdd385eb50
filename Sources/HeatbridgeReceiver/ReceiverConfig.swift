import HeatbridgeConfig
import HeatbridgeCore

/// `heatbridge-receiver`'s config file (etc/heatbridge-receiver/receiver.yaml, commented there).
public struct ReceiverConfig: Sendable, Equatable {
    /// Where it listens: nginx forwards the registered webhook path here (loopback only by default).
    public var listenHost = "127.0.0.1"
    public var listenPort = 8091
    /// The secret that must be in the registered URL (`/bosch/events/<token>`) or in `X-Heatbridge-Token`.
    public var tokenFile = "/etc/heatbridge-receiver/token"
    public var spoolPath = "/var/lib/heatbridge-receiver/spool.db"
    /// The relay's scope map: gateway → box.
    public var scopeMap = "/etc/heatbridge-relay/boxes.map"
    public var maxBodyBytes = 262_144
    /// Repeats within this window are dropped (Bosch's backend may send an event twice after a restart).
    public var dedupeWindowS: Double = 86_400
    public var topicTemplate = "partner/boxes/{box}/heatbridge/push/bosch/{gateway}"
    public var partnerTopic: String? = "partner/events/bosch/contracts/{gateway}"
    public var mqttHost = "127.0.0.1"
    public var mqttPort = 1883
    public var mqttClientId = "heatbridge-receiver"
    public var mqttTLS = false
    public var mqttCAFile: String?
    public var mqttUsername: String?
    public var mqttPasswordFile: String?
    /// QoS 1 messages in flight to the broker before waiting for acknowledgements.
    public var window = 200

    public init() {}

    /// Reads the YAML text; every mistake with its line and column.
    public static func parse(_ text: String, file: String) -> Result<ReceiverConfig, ConfigErrors> {
        let root: ConfigNode
        switch YAMLReader.parse(text, file: file) {
        case .success(let r): root = r
        case .failure(let d): return .failure(ConfigErrors(diagnostics: [d]))
        }
        var d = ConfigDecoder(file: file, vendors: [])
        var c = ReceiverConfig()
        guard let m = d.mapping(root, path: "receiver") else { return .failure(ConfigErrors(diagnostics: d.diagnostics)) }
        d.checkKeys(
            m,
            known: [
                "listen", "token_file", "spool", "scope_map", "max_body_bytes", "dedupe_window_s", "topic", "partner_topic",
                "mqtt", "window",
            ], section: "receiver")
        if let (listen, mark) = d.stringWithMark(m, "listen") {
            if let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (1...65_535).contains(port) {
                c.listenHost = String(listen[..<colon])
                c.listenPort = port
            } else {
                d.error(mark, "\"listen\" must be HOST:PORT", hint: "127.0.0.1:8091 behind nginx")
            }
        }
        if let v = d.string(m, "token_file") { c.tokenFile = v }
        if let v = d.string(m, "spool") { c.spoolPath = v }
        if let v = d.string(m, "scope_map") { c.scopeMap = v }
        if let v = d.number(m, "max_body_bytes", range: 1024...16_777_216) { c.maxBodyBytes = Int(v) }
        if let v = d.number(m, "dedupe_window_s", range: 60...604_800) { c.dedupeWindowS = v }
        if let v = d.number(m, "window", range: 1...10_000) { c.window = Int(v) }
        if let (t, mark) = d.stringWithMark(m, "topic") {
            if !t.contains("{gateway}") || t.contains("#") || t.contains("+") {
                d.error(mark, "\"topic\" must name {gateway} and hold no wildcard", hint: "partner/boxes/{box}/heatbridge/push/bosch/{gateway}")
            } else {
                c.topicTemplate = t
            }
        }
        if let n = d.value(m, "partner_topic") {
            if n.isNull { c.partnerTopic = nil } else if let t = d.string(m, "partner_topic") { c.partnerTopic = t }
        }
        if let mn = d.value(m, "mqtt"), let mm = d.mapping(mn, path: "mqtt") {
            d.checkKeys(mm, known: ["host", "port", "client_id", "tls", "ca_file", "username", "password_file"], section: "mqtt")
            if let v = d.string(mm, "host") { c.mqttHost = v }
            if let v = d.number(mm, "port", range: 1...65_535) { c.mqttPort = Int(v) }
            if let v = d.string(mm, "client_id") { c.mqttClientId = v }
            if let (v, _) = d.bool(mm, "tls") { c.mqttTLS = v }
            c.mqttCAFile = d.string(mm, "ca_file")
            c.mqttUsername = d.string(mm, "username")
            c.mqttPasswordFile = d.string(mm, "password_file")
        }
        return d.diagnostics.isEmpty ? .success(c) : .failure(ConfigErrors(diagnostics: d.diagnostics))
    }
}

/// Every mistake found in a config file.
public struct ConfigErrors: Error, Sendable {
    public var diagnostics: [ConfigDiagnostic]
}

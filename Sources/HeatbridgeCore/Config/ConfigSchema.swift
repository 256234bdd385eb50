/// A position in the config file, 1-based, for error messages an installer can act on.
public struct SourceMark: Sendable, Equatable, Hashable {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

/// The config file as a tree, independent of the YAML library that produced it.
public indirect enum ConfigNode: Sendable {
    /// A scalar; `plain` is false for quoted scalars (so `"null"` stays a string).
    case scalar(String, SourceMark, plain: Bool)
    case mapping([(key: String, keyMark: SourceMark, value: ConfigNode)], SourceMark)
    case sequence([ConfigNode], SourceMark)

    public var mark: SourceMark {
        switch self {
        case .scalar(_, let m, _), .mapping(_, let m), .sequence(_, let m): return m
        }
    }

    public var kindName: String {
        switch self {
        case .scalar: return "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// True for `~`, `null` and an empty plain scalar.
    public var isNull: Bool {
        if case .scalar(let s, _, true) = self { return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL" }
        return false
    }
}

/// One problem in the config file.
public struct ConfigDiagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var mark: SourceMark
    public var message: String
    public var hint: String?

    public init(file: String, mark: SourceMark, message: String, hint: String? = nil) {
        self.file = file
        self.mark = mark
        self.message = message
        self.hint = hint
    }

    /// `file:line:column: error: message (hint: …)`, the compiler-style line editors and humans both read.
    public var description: String {
        var s = "\(file):\(mark.line):\(mark.column): error: \(message)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}

/// Where a secret comes from. Secrets are never written inline in the config file.
public struct SecretRef: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        /// A file readable by the daemon (e.g. `/etc/heatbridge/cloud.key`, mode 0600).
        case file(String)
        /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>` (LoadCredential=).
        case credential(String)
    }
    public var source: Source
    /// The config key that named it (`api_key_file`), for error messages.
    public var key: String
    public var mark: SourceMark

    public init(source: Source, key: String, mark: SourceMark) {
        self.source = source
        self.key = key
        self.mark = mark
    }
}

/// Every problem found in a config file.
public struct ConfigErrors: Error, Sendable {
    public var diagnostics: [ConfigDiagnostic]
    public init(_ diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }

    /// The first `limit` diagnostics as text, then one line for the rest: a generated config with thousands
    /// of mistakes still gets a readable answer (and a journal that is not flooded).
    public func lines(limit: Int = 50) -> [String] {
        var out = diagnostics.prefix(limit).map(\.description)
        if diagnostics.count > limit { out.append("… and \(diagnostics.count - limit) more") }
        return out
    }
}

/// A URL split into the parts the daemon needs.
public struct ParsedURL: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int?
    public var path: String

    /// Parses `scheme://host[:port][/path]`; IPv6 hosts in brackets. Nil when malformed.
    public static func parse(_ text: String) -> ParsedURL? {
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let scheme = parts[0].lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" }) else { return nil }
        var rest = parts[1]
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[slash...])
            rest = rest[..<slash]
        }
        guard !rest.contains("@"), !rest.contains(" ") else { return nil }
        var host = String(rest)
        var port: Int?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { return nil }
        return ParsedURL(scheme: scheme, host: host, port: port, path: path)
    }
}

/// `mqtt:` section.
public struct MQTTConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 1883
    public var tls = false
    public var baseTopic = "heatbridge"
    public var clientId = "heatbridge"
    public var username: String?
    public var password: SecretRef?
    public var caFile: String?
    public var keepaliveS = 30
    /// Commands larger than this are refused `PAYLOAD_TOO_LARGE` without being parsed or stored.
    public var maxPayloadBytes = MQTTConfig.defaultMaxPayloadBytes
    public static let defaultMaxPayloadBytes = 65_536
    public init() {}
}

/// `store:` section.
public struct StoreConfig: Sendable, Equatable {
    public var path = "/var/lib/heatbridge/heatbridge.db"
    public init() {}
}

/// One entry of `accounts:`: what every account has, and its vendor's own part (`vendorSettings`).
public struct AccountConfig: Sendable, Equatable {
    public var name: String
    /// The `vendor:` value, naming its `VendorModule`.
    public var vendor: String
    public var baseURL: String
    public var pollIntervalS: Double
    /// The slowest an account is polled while nothing changes (`poll_max_interval_s`, default 4 × poll_interval_s).
    public var maxPollIntervalS: Double? = nil
    public var timeoutS: Double
    /// Vendor device ids to bridge: the box's scope. nil bridges every device the credentials reach, which
    /// a vendor whose credentials are partner-wide only allows as an explicit `devices: all` (`allDevices`).
    public var devices: [String]?
    /// `devices: all` was written: a partner's back-office box, warned about at every start.
    public var allDevices = false
    /// `ca_file`, `client_cert_file`, `client_key_file`, `proxy`: how the box reaches its cloud or relay.
    public var connection = ConnectionOptions()
    /// Where the connection's files were named (key → position), for the loader's file checks.
    public var connectionMarks: [String: SourceMark] = [:]
    /// `client_key_credential`: the box key as a systemd credential (LoadCredential=); the loader turns it into
    /// `connection.clientKeyFile` inside `$CREDENTIALS_DIRECTORY`.
    public var clientKeyCredential: String?
    /// Keep to the vendor's documented rate limits on the client side (off only against a simulator
    /// that has its limits off too, e.g. for benchmarks).
    public var rateLimit: Bool = true
    /// The vendor's own keys, as its module decoded them.
    public var vendorSettings: any VendorAccountSettings
    /// `push:`: events pushed by the cloud, through the partner's receiver and the box's broker; nil polls only.
    public var push: PushSettings?

    public init(
        name: String, vendor: String, baseURL: String, pollIntervalS: Double, maxPollIntervalS: Double? = nil, timeoutS: Double,
        devices: [String]? = nil, rateLimit: Bool = true, vendorSettings: any VendorAccountSettings = NoVendorSettings()
    ) {
        self.name = name
        self.vendor = vendor
        self.baseURL = baseURL
        self.pollIntervalS = pollIntervalS
        self.maxPollIntervalS = maxPollIntervalS
        self.timeoutS = timeoutS
        self.devices = devices
        self.rateLimit = rateLimit
        self.vendorSettings = vendorSettings
    }

    /// The vendor's part as its own type (nil for another vendor's account).
    public func settings<T: VendorAccountSettings>(as type: T.Type) -> T? { vendorSettings as? T }

    public static func == (a: AccountConfig, b: AccountConfig) -> Bool {
        a.name == b.name && a.vendor == b.vendor && a.baseURL == b.baseURL && a.pollIntervalS == b.pollIntervalS
            && a.maxPollIntervalS == b.maxPollIntervalS && a.timeoutS == b.timeoutS && a.devices == b.devices && a.allDevices == b.allDevices
            && a.connection == b.connection && a.push == b.push
            && a.rateLimit == b.rateLimit && a.vendorSettings.isEqual(to: b.vendorSettings)
    }
}

/// The vendor part of an account that has none (while its common part is decoded).
public struct NoVendorSettings: VendorAccountSettings, Equatable {
    public init() {}
    public var secretRefs: [SecretRef] { [] }
}

/// `log:` section.
public struct LogConfig: Sendable, Equatable {
    public var level = "info"
    public init() {}
}

/// `bridge:` section: command and cache behaviour.
public struct BridgeBehaviour: Sendable, Equatable {
    /// How late a command may still run when it carries no `valid_for_s`.
    public var commandValidForS: Double = 600
    /// Cached state older than this is published with `"stale":true`.
    public var staleAfterS: Double = 900
    /// Per-capability defaults for `valid_for_s` (e.g. a DHW charge is worth less an hour late than a mode).
    public var capabilityValidForS: [String: Double] = [:]
    /// `groups:` — group name → its members, for `<base>/group/<name>/<capability>/set`.
    public var groups: [String: [GroupMember]] = [:]
    /// `triggers:` — local rules that issue commands on their own.
    public var triggers: [TriggerRule] = []
    /// `limits:` — the installer's safety limits, enforced for every command (MQTT or trigger).
    public var limits = SafetyLimits()
    public init() {}

    /// How long a command for `capability` may wait when it carries no `valid_for_s`.
    public func validFor(_ capability: String) -> Double { capabilityValidForS[capability] ?? commandValidForS }
}

/// `limits:` in the config. Every limit is off unless set.
public struct SafetyLimits: Sendable, Equatable {
    /// Room setpoint bounds (°C) for every command that sets a room setpoint or the ends of a comfort band.
    public var setpointMin: Double?
    public var setpointMax: Double?
    /// Largest derogation, in whole °C either way.
    public var derogationMaxDelta: Int?
    /// Longest derogation.
    public var derogationMaxMinutes: Int?
    /// Minimum time between two commands for the same device.
    public var minSpacingS: Double?
    /// Anti-legionella: DHW that has been off or below `legionellaMinTemperature` for `legionellaMaxHours` gets a
    /// charge from the bridge, and commands that would keep it so are refused.
    public var legionellaMinTemperature: Double?
    public var legionellaMaxHours: Double?
    public init() {}
}

/// One member of a group: a device's node, written `<device>/<node>` in the config.
public struct GroupMember: Sendable, Equatable, Hashable {
    public var device: String
    public var node: String
    public init(device: String, node: String) {
        self.device = device
        self.node = node
    }
    public var key: String { "\(device)/\(node)" }
}

/// `homeassistant:` section.
public struct HomeAssistantConfig: Sendable, Equatable {
    public var discovery = false
    public var prefix = "homeassistant"
    /// Buttons offered wherever a node exposes derogation presets.
    public var derogationPresets: [DerogationPreset] = [DerogationPreset(name: "-2 °C for 2 h", delta: -2, durationMin: 120)]
    public init() {}
}

/// A Home Assistant button that sends `{"delta":…,"duration_min":…}` to a room's derogation.
public struct DerogationPreset: Sendable, Equatable {
    public var name: String
    public var delta: Int
    public var durationMin: Int
    public init(name: String, delta: Int, durationMin: Int) {
        self.name = name
        self.delta = delta
        self.durationMin = durationMin
    }
}

/// The whole config file, validated.
/// `fleet:`: how many boxes share this box's partner accounts, so each box takes only its share of the
/// clouds' company-wide buckets (the device list, health, organisation listings).
public struct FleetConfig: Sendable, Equatable {
    /// Boxes on the same partner key (1: this box alone); nil when the config does not say (a fleet of unknown
    /// size: the first company-wide reads after a start are spread, `CompanyWideReads.Policy.unknownFleetSpreadS`).
    public var boxes: Int?
    public init(boxes: Int? = nil) { self.boxes = boxes }
}

/// `http:`: the local listener (status page, `/metrics`, `/healthz`).
public struct HTTPConfig: Sendable, Equatable {
    /// The address to bind: loopback by default; any other address needs `token`.
    public var listen = "127.0.0.1"
    /// 0 turns the listener off.
    public var port = 8787
    /// `token_file`/`token_credential`: the bearer token every request must carry (required off loopback).
    public var token: SecretRef?
    public var listenMark: SourceMark?
    public init() {}

    public static let defaultPort = 8787

    /// Whether `listen` reaches only this machine.
    public static func isLoopback(_ address: String) -> Bool {
        address == "localhost" || address == "::1" || address.hasPrefix("127.")
    }
}

public struct HeatbridgeConfig: Sendable, Equatable {
    public var http = HTTPConfig()
    public var homeAssistant = HomeAssistantConfig()
    public var mqtt = MQTTConfig()
    public var store = StoreConfig()
    public var accounts: [AccountConfig] = []
    public var log = LogConfig()
    public var bridge = BridgeBehaviour()
    public var fleet = FleetConfig()
    public init() {}

    /// Every secret reference in the file, so the loader can check each is readable.
    public var secretRefs: [SecretRef] {
        var refs: [SecretRef] = []
        if let p = mqtt.password { refs.append(p) }
        if let t = http.token { refs.append(t) }
        for a in accounts { refs += a.vendorSettings.secretRefs }
        return refs
    }
}

extension ConfigNode {
    /// The config as JSON for the `config` bridge request: scalars as the file spells them (plain numbers and
    /// booleans typed), secrets redacted. Secrets are never inline (the decoder refuses them), so this is a second
    /// line of defence: any key that names one without being a path to it (`*_file`, `*_credential`), and any
    /// password in a URL, shows as `"<redacted>"`.
    public var redactedJSON: JSONValue { redacted(key: nil) }

    static let secretWords = ["password", "secret", "token", "api_key", "private"]

    /// `scheme://user:pass@host…` → `scheme://<redacted>@host…`; nil when there is no userinfo.
    static func withoutUserinfo(_ text: String) -> String? {
        let chars = Array(text)
        var i = 0
        while i + 2 < chars.count, !(chars[i] == ":" && chars[i + 1] == "/" && chars[i + 2] == "/") { i += 1 }
        guard i + 2 < chars.count else { return nil }
        let start = i + 3
        guard let at = chars[start...].firstIndex(of: "@"), !chars[start..<at].contains("/") else { return nil }
        return String(chars[..<start]) + "<redacted>@" + String(chars[(at + 1)...])
    }

    private func redacted(key: String?) -> JSONValue {
        switch self {
        case .scalar(let text, _, let plain):
            if let key, !key.hasSuffix("_file"), !key.hasSuffix("_credential"),
                Self.secretWords.contains(where: { key.lowercased().contains($0) })
            {
                return "<redacted>"
            }
            if let url = Self.withoutUserinfo(text) { return .string(url) }
            guard plain else { return .string(text) }
            if text == "true" || text == "false" { return .bool(text == "true") }
            if text == "null" || text == "~" { return .null }
            if let d = Double(text), !text.hasPrefix("0x") { return .number(d) }
            return .string(text)
        case .mapping(let members, _):
            return .object(Dictionary(members.map { ($0.key, $0.value.redacted(key: $0.key)) }, uniquingKeysWith: { a, _ in a }))
        case .sequence(let items, _):
            return .array(items.map { $0.redacted(key: key) })
        }
    }
}

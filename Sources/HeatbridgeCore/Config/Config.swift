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

    var kindName: String {
        switch self {
        case .scalar: return "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// True for `~`, `null` and an empty plain scalar.
    var isNull: Bool {
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
        /// A file readable by the daemon (e.g. `/etc/heatbridge/bosch.key`, mode 0600).
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

/// The supported clouds.
public enum VendorKind: String, Sendable, CaseIterable {
    case bosch, homesmartlink, podero
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
    public init() {}
}

/// `store:` section.
public struct StoreConfig: Sendable, Equatable {
    public var path = "/var/lib/heatbridge/heatbridge.db"
    public init() {}
}

/// One entry of `accounts:`.
public struct AccountConfig: Sendable, Equatable {
    public var name: String
    public var vendor: VendorKind
    public var baseURL: String
    public var apiKey: SecretRef?
    /// Bosch `x-user-id` for remote-control calls.
    public var userId: String?
    /// OAuth / Basic client id (Podero, HomeSmartlink).
    public var clientId: String?
    /// OAuth / Basic client secret (Podero, HomeSmartlink): only from a file or a credential.
    public var clientSecret: SecretRef?
    /// Podero organisation id.
    public var orgId: String?
    /// Podero token endpoint; nil derives `<scheme://host[/prefix]>/oauth2/token/` from `base_url`.
    public var tokenURL: String?
    /// HomeSmartlink home ids to bridge (the API has no "list my homes" for partners).
    public var homes: [String] = []
    /// HomeSmartlink: how long a derogation may wait for every home's acknowledgement.
    public var reportTimeoutS: Double = 300
    /// HomeSmartlink: how often the delivery report is read meanwhile.
    public var reportIntervalS: Double = 10
    /// HomeSmartlink: how long after a diagnosis request its result is first asked for (then every poll).
    public var diagnosisCheckS: Double = 60
    public var pollIntervalS: Double
    /// The slowest an account is polled while nothing changes (`poll_max_interval_s`, default 4 × poll_interval_s).
    public var maxPollIntervalS: Double? = nil
    /// Bosch: rotate the API key with `POST /api-keys` 30 days before it expires and write the new key to
    /// `api_key_file` (which therefore must be a file the daemon may replace).
    public var rotateKey: Bool = false
    public var timeoutS: Double
    /// Vendor device ids to bridge; nil bridges every accessible device.
    public var devices: [String]?
    /// Keep to the vendor's documented rate limits on the client side (off only against a simulator
    /// that has its limits off too, e.g. for benchmarks).
    public var rateLimit: Bool = true
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
    /// Room setpoint bounds (°C) for `hc<N>/setpoint` and the Podero comfort band.
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
    /// Derogation buttons on every HomeSmartlink room.
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
public struct HeatbridgeConfig: Sendable, Equatable {
    public var homeAssistant = HomeAssistantConfig()
    public var mqtt = MQTTConfig()
    public var store = StoreConfig()
    public var accounts: [AccountConfig] = []
    public var log = LogConfig()
    public var bridge = BridgeBehaviour()
    public init() {}

    /// Every secret reference in the file, so the loader can check each is readable.
    public var secretRefs: [SecretRef] {
        var refs: [SecretRef] = []
        if let p = mqtt.password { refs.append(p) }
        for a in accounts {
            if let k = a.apiKey { refs.append(k) }
            if let k = a.clientSecret { refs.append(k) }
        }
        return refs
    }
}

/// Turns a `ConfigNode` tree into a `HeatbridgeConfig`, collecting every error instead of stopping at the first.
public struct ConfigDecoder {
    public let file: String
    var diagnostics: [ConfigDiagnostic] = []

    public init(file: String) { self.file = file }

    /// Decodes `root`; the config is nil when any error was found.
    public static func decode(_ root: ConfigNode, file: String) -> (HeatbridgeConfig?, [ConfigDiagnostic]) {
        var d = ConfigDecoder(file: file)
        let config = d.decodeRoot(root)
        return (d.diagnostics.isEmpty ? config : nil, d.diagnostics)
    }

    mutating func error(_ mark: SourceMark, _ message: String, hint: String? = nil) {
        diagnostics.append(ConfigDiagnostic(file: file, mark: mark, message: message, hint: hint))
    }

    mutating func decodeRoot(_ root: ConfigNode) -> HeatbridgeConfig {
        var config = HeatbridgeConfig()
        guard let top = mapping(root, path: "the file") else { return config }
        let known = ["mqtt", "store", "accounts", "log", "bridge", "homeassistant", "groups", "triggers", "limits"]
        checkKeys(top, known: known, section: "top level")
        if let n = value(top, "mqtt") { config.mqtt = decodeMQTT(n) } else {
            error(root.mark, "missing required section \"mqtt\"", hint: "add mqtt: { url: mqtt://127.0.0.1:1883 }")
        }
        if let n = value(top, "homeassistant"), let m = mapping(n, path: "homeassistant") {
            checkKeys(m, known: ["discovery", "prefix", "derogation_presets"], section: "homeassistant")
            if let n = value(m, "derogation_presets") {
                if case .sequence(let items, _) = n {
                    var presets: [DerogationPreset] = []
                    for item in items {
                        guard let p = mapping(item, path: "derogation preset") else { continue }
                        checkKeys(p, known: ["name", "delta", "duration_min"], section: "derogation preset")
                        let name = string(p, "name")
                        let delta = number(p, "delta", range: -5...5)
                        let duration = number(p, "duration_min", range: 5...1440)
                        if let delta, delta.rounded() != delta || delta == 0 { error(item.mark, "\"delta\" must be a whole number of °C other than 0") }
                        guard let name, let delta, let duration else {
                            error(item.mark, "a derogation preset needs \"name\", \"delta\" and \"duration_min\"", hint: "e.g. {name: \"-2 °C for 2 h\", delta: -2, duration_min: 120}")
                            continue
                        }
                        presets.append(DerogationPreset(name: name, delta: Int(delta), durationMin: Int(duration)))
                    }
                    config.homeAssistant.derogationPresets = presets
                } else {
                    error(n.mark, "\"derogation_presets\" must be a list, found \(n.kindName)")
                }
            }
            if let (d, mark) = stringWithMark(m, "discovery") {
                if d == "true" || d == "false" { config.homeAssistant.discovery = d == "true" } else {
                    error(mark, "\"discovery\" must be true or false, found \"\(d)\"")
                }
            }
            if let (p, mark) = stringWithMark(m, "prefix") {
                if p.isEmpty || p.contains("+") || p.contains("#") || p.hasPrefix("/") || p.hasSuffix("/") {
                    error(mark, "bad discovery prefix \"\(p)\"", hint: "topic levels without wildcards, e.g. homeassistant")
                } else if p == config.mqtt.baseTopic || p.hasPrefix(config.mqtt.baseTopic + "/") || config.mqtt.baseTopic.hasPrefix(p + "/") {
                    error(mark, "discovery prefix \"\(p)\" overlaps the base topic \"\(config.mqtt.baseTopic)\"",
                          hint: "they must differ, e.g. homeassistant and heatbridge")
                } else {
                    config.homeAssistant.prefix = p
                }
            }
        }
        if let n = value(top, "store"), let m = mapping(n, path: "store") {
            checkKeys(m, known: ["path"], section: "store")
            if let p = string(m, "path") { config.store.path = p }
        }
        if let n = value(top, "log"), let m = mapping(n, path: "log") {
            checkKeys(m, known: ["level"], section: "log")
            if let l = enumString(m, "level", allowed: ["trace", "debug", "info", "notice", "warning", "error", "critical"]) {
                config.log.level = l
            }
        }
        if let n = value(top, "bridge"), let m = mapping(n, path: "bridge") {
            checkKeys(m, known: ["command_valid_for_s", "capability_valid_for_s", "stale_after_s"], section: "bridge")
            if let v = number(m, "command_valid_for_s", range: 1...86_400) { config.bridge.commandValidForS = v }
            if let v = number(m, "stale_after_s", range: 10...604_800) { config.bridge.staleAfterS = v }
            if let n = value(m, "capability_valid_for_s"), let caps = mapping(n, path: "capability_valid_for_s") {
                for e in caps {
                    guard TopicLayout.sanitize(e.key) == e.key else {
                        error(e.keyMark, "bad capability name \"\(e.key)\"", hint: "as in the topic, e.g. charge, derogation, mode")
                        continue
                    }
                    if let v = number(caps, e.key, range: 1...604_800) { config.bridge.capabilityValidForS[e.key] = v }
                }
            }
        }
        if let n = value(top, "groups"), let m = mapping(n, path: "groups") {
            for e in m {
                guard TopicLayout.sanitize(e.key) == e.key else {
                    error(e.keyMark, "group name \"\(e.key)\" may only contain a-z, 0-9, '_' and '-'", hint: "it becomes part of MQTT topics")
                    continue
                }
                guard case .sequence(let items, _) = e.value, !items.isEmpty else {
                    error(e.value.mark, "group \"\(e.key)\" must be a non-empty list of \"<device>/<node>\"", hint: "e.g. [hsl-64f1c0a2e9b3/room-1]")
                    continue
                }
                var members: [GroupMember] = []
                for item in items {
                    guard case .scalar(let text, let mark, _) = item else {
                        error(item.mark, "group members are \"<device>/<node>\" strings, found \(item.kindName)")
                        continue
                    }
                    let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                          TopicLayout.sanitize(parts[0]) == parts[0], TopicLayout.sanitize(parts[1]) == parts[1] else {
                        error(mark, "bad group member \"\(text)\"", hint: "<device>/<node> as in the topics, e.g. hsl-64f1c0a2e9b3/room-1")
                        continue
                    }
                    let member = GroupMember(device: parts[0], node: parts[1])
                    if members.contains(member) { error(mark, "\"\(text)\" is listed twice in group \"\(e.key)\"") } else { members.append(member) }
                }
                config.bridge.groups[e.key] = members
            }
        }
        if let n = value(top, "accounts") {
            if case .sequence(let items, _) = n {
                var names: [String: SourceMark] = [:]
                for item in items {
                    guard let a = decodeAccount(item) else { continue }
                    if let first = names[a.name] {
                        error(item.mark, "duplicate account name \"\(a.name)\"", hint: "first used at line \(first.line)")
                    } else {
                        names[a.name] = item.mark
                        config.accounts.append(a)
                    }
                }
            } else if !n.isNull {
                error(n.mark, "\"accounts\" must be a list, found \(n.kindName)", hint: "start each account with \"- name: …\"")
            }
        }
        if let n = value(top, "limits"), let m = mapping(n, path: "limits") {
            config.bridge.limits = decodeLimits(m)
        }
        if let n = value(top, "triggers") {
            config.bridge.triggers = decodeTriggers(n, groups: config.bridge.groups, accounts: config.accounts)
        }
        return config
    }

    mutating func decodeMQTT(_ node: ConfigNode) -> MQTTConfig {
        var c = MQTTConfig()
        guard let m = mapping(node, path: "mqtt") else { return c }
        checkKeys(m, known: ["url", "base_topic", "client_id", "username", "password_file", "password_credential",
                             "ca_file", "keepalive_s"], section: "mqtt",
                  inlineSecrets: ["password": "password_file or password_credential"])
        if let (url, mark) = stringWithMark(m, "url") {
            if let u = ParsedURL.parse(url), u.scheme == "mqtt" || u.scheme == "mqtts", u.path.isEmpty || u.path == "/" {
                c.host = u.host
                c.tls = u.scheme == "mqtts"
                c.port = u.port ?? (c.tls ? 8883 : 1883)
            } else {
                error(mark, "bad MQTT URL \"\(url)\"", hint: "use mqtt://HOST:PORT or mqtts://HOST:PORT")
            }
        } else if value(m, "url") == nil {
            error(node.mark, "missing required key \"url\" in mqtt", hint: "e.g. url: mqtt://127.0.0.1:1883")
        }
        if let (b, mark) = stringWithMark(m, "base_topic") {
            if b.isEmpty || b.hasPrefix("/") || b.hasSuffix("/") || b.contains("+") || b.contains("#") || b.contains("//") {
                error(mark, "bad base_topic \"\(b)\"", hint: "topic levels without wildcards or leading/trailing '/', e.g. heatbridge")
            } else {
                c.baseTopic = b
            }
        }
        if let id = string(m, "client_id") { c.clientId = id }
        if let u = string(m, "username") { c.username = u }
        c.password = secret(m, base: "password")
        if let ca = string(m, "ca_file") { c.caFile = ca }
        if let k = number(m, "keepalive_s", range: 5...3600) { c.keepaliveS = Int(k) }
        return c
    }

    mutating func decodeAccount(_ node: ConfigNode) -> AccountConfig? {
        guard let m = mapping(node, path: "account") else { return nil }
        checkKeys(m, known: ["name", "vendor", "base_url", "api_key_file", "api_key_credential", "user_id",
                             "poll_interval_s", "timeout_s", "devices", "rate_limit", "client_id", "client_secret_file",
                             "client_secret_credential", "org_id", "token_url", "homes", "report_timeout_s", "report_interval_s", "diagnosis_check_s",
                             "poll_max_interval_s", "rotate_key"], section: "account",
                  inlineSecrets: ["api_key": "api_key_file or api_key_credential",
                                  "client_secret": "client_secret_file or client_secret_credential"])
        let name = string(m, "name")
        if name == nil && value(m, "name") == nil {
            error(node.mark, "missing required key \"name\" in account", hint: "a short id such as bosch-main")
        }
        if let (n, mark) = stringWithMark(m, "name"), TopicLayout.sanitize(n) != n {
            error(mark, "account name \"\(n)\" may only contain a-z, 0-9, '_' and '-'", hint: "it becomes part of MQTT topics")
        }
        let vendor = enumString(m, "vendor", allowed: VendorKind.allCases.map(\.rawValue)).flatMap(VendorKind.init(rawValue:))
        if value(m, "vendor") == nil {
            error(node.mark, "missing required key \"vendor\" in account", hint: "one of bosch, homesmartlink, podero")
        }
        var baseURL: String?
        if let (u, mark) = stringWithMark(m, "base_url") {
            if let p = ParsedURL.parse(u), p.scheme == "http" || p.scheme == "https" {
                baseURL = u.hasSuffix("/") ? String(u.dropLast()) : u
            } else {
                error(mark, "bad base_url \"\(u)\"", hint: "use https://HOST[:PORT][/PATH]")
            }
        } else if value(m, "base_url") == nil {
            error(node.mark, "missing required key \"base_url\" in account", hint: "the vendor's API base URL")
        }
        let apiKey = secret(m, base: "api_key")
        if vendor == .bosch && apiKey == nil && value(m, "api_key") == nil {
            error(node.mark, "bosch account needs \"api_key_file\" or \"api_key_credential\"", hint: "the partner x-api-key")
        }
        let userId = string(m, "user_id")
        if vendor == .bosch && userId == nil && value(m, "user_id") == nil {
            error(node.mark, "bosch account needs \"user_id\"", hint: "sent as x-user-id on remote-control calls")
        }
        let clientId = string(m, "client_id")
        let clientSecret = secret(m, base: "client_secret")
        let orgId = string(m, "org_id")
        var tokenURL: String?
        if let (u, mark) = stringWithMark(m, "token_url") {
            if let p = ParsedURL.parse(u), p.scheme == "http" || p.scheme == "https" { tokenURL = u } else {
                error(mark, "bad token_url \"\(u)\"", hint: "use https://HOST[:PORT]/oauth2/token/")
            }
        }
        if vendor == .podero {
            if clientId == nil && value(m, "client_id") == nil {
                error(node.mark, "podero account needs \"client_id\"", hint: "the OAuth application's client id")
            }
            if clientSecret == nil && value(m, "client_secret") == nil {
                error(node.mark, "podero account needs \"client_secret_file\" or \"client_secret_credential\"",
                      hint: "the OAuth client secret, in a file readable only by heatbridge")
            }
            if orgId == nil && value(m, "org_id") == nil {
                error(node.mark, "podero account needs \"org_id\"", hint: "the organisation id from the Podero back office")
            }
        }
        let homes = scalarList(m, "homes", what: "HomeSmartlink home ids") ?? []
        if vendor == .homesmartlink {
            if clientId == nil && value(m, "client_id") == nil {
                error(node.mark, "homesmartlink account needs \"client_id\"", hint: "the ClientId received at partner registration")
            }
            if clientSecret == nil && value(m, "client_secret") == nil {
                error(node.mark, "homesmartlink account needs \"client_secret_file\" or \"client_secret_credential\"",
                      hint: "the ClientSecret, in a file readable only by heatbridge")
            }
            if homes.isEmpty && value(m, "homes") == nil {
                error(node.mark, "homesmartlink account needs \"homes\"", hint: "the home ids to bridge; heatbridge homesmartlink homes --email lists them")
            }
        }
        let reportTimeout = number(m, "report_timeout_s", range: 1...3600) ?? 300
        let reportInterval = number(m, "report_interval_s", range: 0.2...600) ?? 10
        let diagnosisCheck = number(m, "diagnosis_check_s", range: 0...3600) ?? 60
        // Podero refreshes heat-pump state from the manufacturer cloud every 5–15 min: polling faster only
        // repeats the same answer, so its default is 5 min.
        let poll = number(m, "poll_interval_s", range: 1...86_400) ?? (vendor == .podero ? 300 : 60)
        let timeout = number(m, "timeout_s", range: 0.1...300) ?? 10
        let devices = scalarList(m, "devices", what: "vendor device ids")
        var rateLimit = true
        if let (r, mark) = stringWithMark(m, "rate_limit") {
            if r == "true" || r == "false" { rateLimit = r == "true" } else {
                error(mark, "\"rate_limit\" must be true or false, found \"\(r)\"")
            }
        }
        var maxPoll: Double?
        if let (_, mark) = stringWithMark(m, "poll_max_interval_s"), let v = number(m, "poll_max_interval_s", range: 1...86_400) {
            if v < poll { error(mark, "\"poll_max_interval_s\" (\(JSONValue.format(v))) must not be below poll_interval_s (\(JSONValue.format(poll)))",
                                hint: "set it equal to poll_interval_s to poll at a fixed rate") } else { maxPoll = v }
        }
        var rotateKey = false
        if let (r, mark) = stringWithMark(m, "rotate_key") {
            if r == "true" || r == "false" { rotateKey = r == "true" } else {
                error(mark, "\"rotate_key\" must be true or false, found \"\(r)\"")
            }
            if rotateKey && vendor != .bosch { error(mark, "\"rotate_key\" is only for bosch accounts") }
            if rotateKey, let ref = apiKey, case .credential = ref.source {
                error(mark, "\"rotate_key\" needs \"api_key_file\": a systemd credential is read-only",
                      hint: "keep the key in a file owned by the heatbridge user, mode 0600")
            }
        }
        guard let name, let vendor, let baseURL else { return nil }
        var a = AccountConfig(name: name, vendor: vendor, baseURL: baseURL, apiKey: apiKey, userId: userId,
                              clientId: clientId, clientSecret: clientSecret, orgId: orgId, tokenURL: tokenURL,
                              homes: homes, reportTimeoutS: reportTimeout, reportIntervalS: reportInterval, diagnosisCheckS: diagnosisCheck,
                              pollIntervalS: poll, timeoutS: timeout, devices: devices, rateLimit: rateLimit)
        a.maxPollIntervalS = maxPoll
        a.rotateKey = rotateKey
        return a
    }

    mutating func decodeLimits(_ m: Entries) -> SafetyLimits {
        checkKeys(m, known: ["setpoint", "derogation", "min_spacing_s", "legionella"], section: "limits")
        var l = SafetyLimits()
        if let n = value(m, "setpoint"), let s = mapping(n, path: "limits.setpoint") {
            checkKeys(s, known: ["min", "max"], section: "limits.setpoint")
            l.setpointMin = number(s, "min", range: 5...30)
            l.setpointMax = number(s, "max", range: 5...30)
            if let lo = l.setpointMin, let hi = l.setpointMax, lo >= hi { error(n.mark, "limits.setpoint: min must be below max") }
        }
        if let n = value(m, "derogation"), let d = mapping(n, path: "limits.derogation") {
            checkKeys(d, known: ["max_delta", "max_duration_min"], section: "limits.derogation")
            l.derogationMaxDelta = number(d, "max_delta", range: 1...5).map { Int($0) }
            l.derogationMaxMinutes = number(d, "max_duration_min", range: 5...1440).map { Int($0) }
        }
        l.minSpacingS = number(m, "min_spacing_s", range: 1...86_400)
        if let n = value(m, "legionella"), let g = mapping(n, path: "limits.legionella") {
            checkKeys(g, known: ["min_temperature", "max_hours"], section: "limits.legionella")
            l.legionellaMinTemperature = number(g, "min_temperature", range: 30...70)
            l.legionellaMaxHours = number(g, "max_hours", range: 1...720)
            if (l.legionellaMinTemperature == nil) != (l.legionellaMaxHours == nil) {
                error(n.mark, "limits.legionella needs both \"min_temperature\" and \"max_hours\"")
            }
        }
        return l
    }

    // MARK: helpers

    /// A list of non-empty scalars (ids); nil when the key is absent.
    mutating func scalarList(_ m: Entries, _ key: String, what: String) -> [String]? {
        guard let d = value(m, key) else { return nil }
        guard case .sequence(let items, _) = d else {
            error(d.mark, "\"\(key)\" must be a list of \(what), found \(d.kindName)")
            return nil
        }
        return items.compactMap { item in
            if case .scalar(let s, _, _) = item, !s.isEmpty { return s }
            error(item.mark, "\(what) must be non-empty scalars, found \(item.kindName)")
            return nil
        }
    }

    typealias Entries = [(key: String, keyMark: SourceMark, value: ConfigNode)]

    mutating func mapping(_ node: ConfigNode, path: String) -> Entries? {
        if case .mapping(let entries, _) = node {
            var seen: [String: SourceMark] = [:]
            for e in entries {
                if let first = seen[e.key] {
                    error(e.keyMark, "duplicate key \"\(e.key)\"", hint: "first given at line \(first.line)")
                }
                seen[e.key] = e.keyMark
            }
            return entries
        }
        if node.isNull { return [] }
        error(node.mark, "\(path) must be a mapping of keys, found \(node.kindName)")
        return nil
    }

    func value(_ m: Entries, _ key: String) -> ConfigNode? {
        m.first(where: { $0.key == key })?.value
    }

    mutating func checkKeys(_ m: Entries, known: [String], section: String, inlineSecrets: [String: String] = [:]) {
        for e in m where !known.contains(e.key) {
            if let use = inlineSecrets[e.key] {
                error(e.keyMark, "inline secret \"\(e.key)\" is not allowed in \(section)",
                      hint: "put it in a file readable only by heatbridge and use \(use)")
                continue
            }
            let suggestion = known.min(by: { editDistance($0, e.key) < editDistance($1, e.key) })
            if let s = suggestion, editDistance(s, e.key) <= max(2, e.key.count / 3) {
                error(e.keyMark, "unknown key \"\(e.key)\" in \(section)", hint: "did you mean \"\(s)\"?")
            } else {
                error(e.keyMark, "unknown key \"\(e.key)\" in \(section)", hint: "known keys: \(known.joined(separator: ", "))")
            }
        }
    }

    mutating func stringWithMark(_ m: Entries, _ key: String) -> (String, SourceMark)? {
        guard let n = value(m, key) else { return nil }
        if case .scalar(let s, let mark, _) = n, !n.isNull { return (s, mark) }
        error(n.mark, "\"\(key)\" must be a string, found \(n.isNull ? "nothing" : n.kindName)")
        return nil
    }

    mutating func string(_ m: Entries, _ key: String) -> String? { stringWithMark(m, key)?.0 }

    mutating func number(_ m: Entries, _ key: String, range: ClosedRange<Double>) -> Double? {
        guard let (s, mark) = stringWithMark(m, key) else { return nil }
        guard let v = Double(s), v.isFinite else {
            error(mark, "\"\(key)\" must be a number, found \"\(s)\"")
            return nil
        }
        guard range.contains(v) else {
            error(mark, "\"\(key)\" must be within \(JSONValue.format(range.lowerBound))…\(JSONValue.format(range.upperBound)), found \(s)")
            return nil
        }
        return v
    }

    mutating func enumString(_ m: Entries, _ key: String, allowed: [String]) -> String? {
        guard let (s, mark) = stringWithMark(m, key) else { return nil }
        guard allowed.contains(s) else {
            let close = allowed.min(by: { editDistance($0, s) < editDistance($1, s) })
            let hint = close.map { editDistance($0, s) <= 2 ? "did you mean \"\($0)\"?" : "one of \(allowed.joined(separator: ", "))" }
            error(mark, "bad \(key) \"\(s)\"", hint: hint)
            return nil
        }
        return s
    }

    /// `<base>_file` or `<base>_credential` (not both).
    mutating func secret(_ m: Entries, base: String) -> SecretRef? {
        let fileKey = base + "_file", credKey = base + "_credential"
        let file = stringWithMark(m, fileKey)
        let cred = stringWithMark(m, credKey)
        if file != nil, let cred {
            error(cred.1, "give either \"\(fileKey)\" or \"\(credKey)\", not both")
            return nil
        }
        if let (path, mark) = file {
            guard path.hasPrefix("/") || path.hasPrefix("./") || !path.isEmpty else { return nil }
            return SecretRef(source: .file(path), key: fileKey, mark: mark)
        }
        if let (name, mark) = cred {
            guard !name.isEmpty, !name.contains("/") else {
                error(mark, "bad credential name \"\(name)\"", hint: "a file name inside $CREDENTIALS_DIRECTORY")
                return nil
            }
            return SecretRef(source: .credential(name), key: credKey, mark: mark)
        }
        return nil
    }
}

/// Levenshtein distance, for did-you-mean hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

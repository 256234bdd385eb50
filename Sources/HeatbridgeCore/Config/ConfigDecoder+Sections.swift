/// The sections of the config file, each decoded with every mistake reported at its position.
extension ConfigDecoder {
    mutating func decodeRoot(_ root: ConfigNode) -> HeatbridgeConfig {
        var config = HeatbridgeConfig()
        guard let top = mapping(root, path: "the file") else { return config }
        let known = ["mqtt", "store", "accounts", "log", "bridge", "homeassistant", "groups", "triggers", "limits", "fleet", "http"]
        checkKeys(top, known: known, section: "top level")
        if let n = value(top, "mqtt") {
            config.mqtt = decodeMQTT(n)
        } else {
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
                        if let delta, delta.rounded() != delta || delta == 0 {
                            error(item.mark, "\"delta\" must be a whole number of °C other than 0")
                        }
                        guard let name, let delta, let duration else {
                            error(
                                item.mark, "a derogation preset needs \"name\", \"delta\" and \"duration_min\"",
                                hint: "e.g. {name: \"-2 °C for 2 h\", delta: -2, duration_min: 120}")
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
                if d == "true" || d == "false" {
                    config.homeAssistant.discovery = d == "true"
                } else {
                    error(mark, "\"discovery\" must be true or false, found \(ConfigText.echo(d))")
                }
            }
            if let (p, mark) = stringWithMark(m, "prefix") {
                if p.isEmpty || p.contains("+") || p.contains("#") || p.hasPrefix("/") || p.hasSuffix("/") {
                    error(mark, "bad discovery prefix \"\(p)\"", hint: "topic levels without wildcards, e.g. homeassistant")
                } else if p == config.mqtt.baseTopic || p.hasPrefix(config.mqtt.baseTopic + "/") || config.mqtt.baseTopic.hasPrefix(p + "/") {
                    error(
                        mark, "discovery prefix \"\(p)\" overlaps the base topic \"\(config.mqtt.baseTopic)\"",
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
        if let n = value(top, "http"), let m = mapping(n, path: "http") {
            checkKeys(m, known: ["listen", "port", "token_file", "token_credential"], section: "http", inlineSecrets: ["token": "token_file"])
            if let (l, mark) = stringWithMark(m, "listen") {
                let ok =
                    !l.isEmpty
                    && l.utf8.allSatisfy {
                        ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x3a || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46)
                    } || l == "localhost"
                if ok {
                    config.http.listen = l
                } else {
                    error(
                        mark, "\"listen\" must be an IP address, found \(ConfigText.echo(l))",
                        hint: "127.0.0.1 (this box only), 0.0.0.0 (every interface) or one LAN address")
                }
                config.http.listenMark = mark
            }
            if let p = number(m, "port", range: 0...65_535) {
                if p.rounded() != p { error(n.mark, "\"port\" must be a whole number") } else { config.http.port = Int(p) }
            }
            config.http.token = secret(m, base: "token")
            if config.http.port != 0, !HTTPConfig.isLoopback(config.http.listen), config.http.token == nil {
                error(
                    config.http.listenMark ?? n.mark,
                    "listening on \(config.http.listen) needs a token: anyone on the LAN could read the box's status",
                    hint: "add token_file: /etc/heatbridge/http.token (mode 0600, e.g. from `openssl rand -hex 24`), or listen: 127.0.0.1")
            }
        }
        if let n = value(top, "fleet"), let m = mapping(n, path: "fleet") {
            checkKeys(m, known: ["boxes"], section: "fleet")
            if let b = number(m, "boxes", range: 1...1_000_000) {
                if b.rounded() != b { error(n.mark, "\"boxes\" must be a whole number") } else { config.fleet.boxes = Int(b) }
            }
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
                    error(
                        e.value.mark, "group \"\(e.key)\" must be a non-empty list of \"<device>/<node>\"",
                        hint: "e.g. [<device>/<node>, <device>/<node>] as in the topics")
                    continue
                }
                var members: [GroupMember] = []
                var seen = Set<GroupMember>()  // linear however long the list
                for item in items {
                    guard case .scalar(let text, let mark, _) = item else {
                        error(item.mark, "group members are \"<device>/<node>\" strings, found \(item.kindName)")
                        continue
                    }
                    let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
                    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                        TopicLayout.sanitize(parts[0]) == parts[0], TopicLayout.sanitize(parts[1]) == parts[1]
                    else {
                        error(mark, "bad group member \"\(text)\"", hint: "<device>/<node> as in the topics")
                        continue
                    }
                    let member = GroupMember(device: parts[0], node: parts[1])
                    if !seen.insert(member).inserted {
                        error(mark, "\"\(text)\" is listed twice in group \"\(e.key)\"")
                    } else {
                        members.append(member)
                    }
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
        checkKeys(
            m,
            known: [
                "url", "base_topic", "client_id", "username", "password_file", "password_credential",
                "ca_file", "keepalive_s", "max_payload_bytes",
            ], section: "mqtt",
            inlineSecrets: ["password": "password_file or password_credential"])
        if let (url, mark) = stringWithMark(m, "url") {
            if ConfigText.hasUserInfo(url) {
                error(
                    mark, "the MQTT URL \"\(ConfigText.redactedURL(url))\" holds a user or password",
                    hint: "use mqtt.username and mqtt.password_file (or password_credential): a URL is printed and logged")
            } else if let u = ParsedURL.parse(url), u.scheme == "mqtt" || u.scheme == "mqtts", u.path.isEmpty || u.path == "/" {
                c.host = u.host
                c.tls = u.scheme == "mqtts"
                c.port = u.port ?? (c.tls ? 8883 : 1883)
            } else {
                error(mark, "bad MQTT URL \"\(ConfigText.redactedURL(url))\"", hint: "use mqtt://HOST:PORT or mqtts://HOST:PORT")
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
        if let n = number(m, "max_payload_bytes", range: 1024...1_048_576) { c.maxPayloadBytes = Int(n) }
        return c
    }

    /// `push:` of an account: `true`, or a mapping with `reconcile_interval_s` and `silent_after_s`.
    mutating func decodePush(_ node: ConfigNode, poll: Double, module: (any VendorModule)?) -> PushSettings? {
        if let module, !module.pushesEvents {
            let with = vendors.filter(\.pushesEvents).map(\.name).joined(separator: ", ")
            error(node.mark, "\"push\" is only for accounts whose cloud pushes events (\(with.isEmpty ? "none" : with)); \(module.name) is polled")
            return nil
        }
        if case .scalar(let s, let mark, _) = node, !node.isNull {
            switch s {
            case "true", "yes", "on": return PushSettings()
            case "false", "no", "off": return nil
            default:
                error(mark, "\"push\" must be true, false or a mapping", hint: "push: {reconcile_interval_s: 900, silent_after_s: 1800}")
                return nil
            }
        }
        guard let pm = mapping(node, path: "push") else { return nil }
        checkKeys(pm, known: ["reconcile_interval_s", "silent_after_s"], section: "push")
        var p = PushSettings()
        if let v = number(pm, "reconcile_interval_s", range: 60...86_400) {
            if v < poll {
                error(
                    node.mark, "\"reconcile_interval_s\" (\(JSONValue.format(v))) must not be below poll_interval_s (\(JSONValue.format(poll)))",
                    hint: "while events arrive the account is polled less often, not more")
            } else {
                p.reconcileIntervalS = v
            }
        }
        if let v = number(pm, "silent_after_s", range: 60...86_400) { p.silentAfterS = v }
        return p
    }

    /// Keys every account has, whatever its vendor.
    static let commonAccountKeys = [
        "name", "vendor", "base_url", "poll_interval_s", "poll_max_interval_s", "timeout_s", "devices",
        "rate_limit", "ca_file", "client_cert_file", "client_key_file", "client_key_credential", "proxy", "push",
    ]

    /// One account: the keys every account has here, the vendor's own keys by its module.
    mutating func decodeAccount(_ node: ConfigNode) -> AccountConfig? {
        guard let m = mapping(node, path: "account") else { return nil }
        let vendorKeys = vendors.flatMap(\.accountKeys)
        var inlineSecrets: [String: String] = [:]
        for v in vendors { inlineSecrets.merge(v.inlineSecrets) { a, _ in a } }
        checkKeys(
            m, known: Self.commonAccountKeys + vendorKeys.filter { !Self.commonAccountKeys.contains($0) }, section: "account",
            inlineSecrets: inlineSecrets)
        let name = string(m, "name")
        if name == nil && value(m, "name") == nil {
            error(node.mark, "missing required key \"name\" in account", hint: "a short id such as heating-main")
        }
        if let (n, mark) = stringWithMark(m, "name"), TopicLayout.sanitize(n) != n {
            error(mark, "account name \"\(n)\" may only contain a-z, 0-9, '_' and '-'", hint: "it becomes part of MQTT topics")
        }
        let vendorNames = vendors.map(\.name)
        let module = enumString(m, "vendor", allowed: vendorNames).flatMap { vendors.module($0) }
        if value(m, "vendor") == nil {
            error(node.mark, "missing required key \"vendor\" in account", hint: "one of \(vendorNames.joined(separator: ", "))")
        }
        var baseURL: String?
        if let (u, mark) = stringWithMark(m, "base_url") {
            if let p = ParsedURL.parse(u), p.scheme == "http" || p.scheme == "https" {
                baseURL = u.hasSuffix("/") ? String(u.dropLast()) : u
            } else {
                error(mark, "bad base_url \"\(ConfigText.redactedURL(u))\"", hint: "use https://HOST[:PORT][/PATH]")
            }
        } else if value(m, "base_url") == nil {
            error(node.mark, "missing required key \"base_url\" in account", hint: "the vendor's API base URL")
        }
        let poll = number(m, "poll_interval_s", range: 1...86_400) ?? module?.defaultPollIntervalS ?? 60
        let timeout = number(m, "timeout_s", range: 0.1...300) ?? 10
        var devices: [String]?
        var allDevices = false
        if let d = value(m, "devices"), case .scalar("all", _, _) = d {
            allDevices = true
        } else {
            devices = scalarList(m, "devices", what: "vendor device ids")
        }
        let rateLimit = bool(m, "rate_limit")?.0 ?? true
        var maxPoll: Double?
        if let (_, mark) = stringWithMark(m, "poll_max_interval_s"), let v = number(m, "poll_max_interval_s", range: 1...86_400) {
            if v < poll {
                error(
                    mark, "\"poll_max_interval_s\" (\(JSONValue.format(v))) must not be below poll_interval_s (\(JSONValue.format(poll)))",
                    hint: "set it equal to poll_interval_s to poll at a fixed rate")
            } else {
                maxPoll = v
            }
        }
        var account = AccountConfig(
            name: name ?? "", vendor: module?.name ?? "", baseURL: baseURL ?? "", pollIntervalS: poll,
            maxPollIntervalS: maxPoll, timeoutS: timeout, devices: devices, rateLimit: rateLimit)
        account.allDevices = allDevices
        for key in ["ca_file", "client_cert_file", "client_key_file"] {
            if let (_, mark) = stringWithMark(m, key) { account.connectionMarks[key] = mark }
        }
        account.connection = ConnectionOptions(
            caFile: string(m, "ca_file"), clientCertFile: string(m, "client_cert_file"),
            clientKeyFile: string(m, "client_key_file"), proxy: string(m, "proxy"))
        if let (name, mark) = stringWithMark(m, "client_key_credential") {
            if account.connection.clientKeyFile != nil {
                error(mark, "give either \"client_key_file\" or \"client_key_credential\", not both")
            } else if name.isEmpty || name.contains("/") {
                error(mark, "bad credential name \"\(name)\"", hint: "a file name inside $CREDENTIALS_DIRECTORY")
            } else {
                account.clientKeyCredential = name
                account.connectionMarks["client_key_credential"] = mark
            }
        }
        let hasKey = account.connection.clientKeyFile != nil || value(m, "client_key_credential") != nil
        if (account.connection.clientCertFile == nil) == hasKey {
            error(node.mark, "\"client_cert_file\" and \"client_key_file\" go together", hint: "mutual TLS needs the certificate and its key")
        }
        if let (p, mark) = stringWithMark(m, "proxy"), ParsedURL.parse(p).map({ $0.scheme == "http" }) != true {
            error(mark, "bad proxy \"\(ConfigText.redactedURL(p))\"", hint: "an HTTP CONNECT proxy: http://HOST:PORT")
        }
        if let pn = value(m, "push") { account.push = decodePush(pn, poll: poll, module: module) }
        guard let module else { return nil }
        // Partner-wide credentials reach every customer of the partner: a box says which devices are its own.
        if module.requiresScope, value(m, "devices") == nil {
            error(
                node.mark, "missing required key \"devices\" in \(module.name) account \"\(name ?? "")\"",
                hint: "list this customer's \(module.name) device ids (devices: [\"…\"]); without it the box would publish every device "
                    + "of the partner account. A partner's own back-office box may write devices: all")
        }
        // A key of another vendor is a mistake the installer should see, not a key silently ignored; its value
        // is still checked the way its own vendor reads it.
        for e in m where !Self.commonAccountKeys.contains(e.key) && !module.accountKeys.contains(e.key) {
            let owners = vendors.filter { $0.accountKeys.contains(e.key) }
            guard let owner = owners.first else { continue }
            error(e.keyMark, "\"\(e.key)\" is only for \(owners.map(\.name).joined(separator: ", ")) accounts")
            var scratch = ConfigDecoder(file: file, vendors: vendors)
            _ = owner.decodeAccount([e], at: node.mark, common: account, decoder: &scratch)
            for d in scratch.diagnostics where d.mark != node.mark { error(d.mark, d.message, hint: d.hint) }
        }
        let settings = module.decodeAccount(m, at: node.mark, common: account, decoder: &self)
        guard name != nil, baseURL != nil, let settings else { return nil }
        account.vendorSettings = settings
        return account
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
}

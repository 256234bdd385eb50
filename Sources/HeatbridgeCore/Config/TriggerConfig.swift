/// `triggers:` in the config file: decoded into `TriggerRule`s with every mistake reported at its position.
extension ConfigDecoder {
    static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    mutating func decodeTriggers(_ node: ConfigNode, groups: [String: [GroupMember]], accounts: [AccountConfig]) -> [TriggerRule] {
        guard case .sequence(let items, _) = node else {
            if !node.isNull { error(node.mark, "\"triggers\" must be a list, found \(node.kindName)", hint: "start each rule with \"- name: …\"") }
            return []
        }
        var rules: [TriggerRule] = []
        var names: [String: SourceMark] = [:]
        for item in items {
            // Names are checked before the rest, so a duplicate is reported even when either rule has other errors.
            if case .mapping(let entries, _) = item, let n = entries.first(where: { $0.key == "name" }), case .scalar(let name, _, _) = n.value {
                if let first = names[name] {
                    error(item.mark, "duplicate trigger name \"\(name)\"", hint: "first used at line \(first.line)")
                    // Still read, so its own mistakes are reported too; it is not kept.
                    _ = decodeTrigger(item, groups: groups, accounts: accounts)
                    continue
                }
                names[name] = item.mark
            }
            if let r = decodeTrigger(item, groups: groups, accounts: accounts) { rules.append(r) }
        }
        return rules
    }

    mutating func decodeTrigger(_ node: ConfigNode, groups: [String: [GroupMember]], accounts: [AccountConfig]) -> TriggerRule? {
        guard let m = mapping(node, path: "trigger") else { return nil }
        checkKeys(
            m,
            known: [
                "name", "at", "days", "cron", "run_if_within_s", "topic", "path", "equals", "above", "below", "changes",
                "hysteresis", "hold_s", "action",
            ], section: "trigger")
        guard let (name, nameMark) = stringWithMark(m, "name") else {
            if value(m, "name") == nil { error(node.mark, "missing required key \"name\" in trigger", hint: "a short id such as peak-shed") }
            return nil
        }
        if TopicLayout.sanitize(name) != name {
            error(nameMark, "trigger name \"\(name)\" may only contain a-z, 0-9, '_' and '-'", hint: "it appears in results as trigger:<name>")
        }
        let kinds = ["at", "cron", "topic"].filter { value(m, $0) != nil }
        let tests = ["equals", "above", "below", "changes"].filter { value(m, $0) != nil }
        var kind: TriggerRule.Kind?
        if kinds.count != 1 {
            if kinds.isEmpty && !tests.isEmpty {
                error(node.mark, "trigger \"\(name)\": a condition (\(tests[0])) needs a \"topic\"", hint: "the MQTT topic whose payload is tested")
            } else {
                error(
                    node.mark,
                    "trigger \"\(name)\" needs exactly one of \"at\", \"cron\" or \"topic\"\(kinds.isEmpty ? "" : ", found \(kinds.joined(separator: " and "))")"
                )
            }
        } else if kinds[0] == "topic" {
            if let d = value(m, "days") {
                error(d.mark, "trigger \"\(name)\": \"days\" goes with \"at\"; a topic rule fires whenever its condition holds")
            }
            kind = decodeCondition(m, name: name, mark: node.mark, tests: tests)
        } else {
            for t in tests { error(value(m, t)!.mark, "trigger \"\(name)\": \"\(t)\" only goes with \"topic\"") }
            kind = decodeTime(m, name: name, isCron: kinds[0] == "cron")
        }
        let runIfWithin = number(m, "run_if_within_s", range: 1...604_800)
        if runIfWithin != nil, kinds.first == "topic" { error(value(m, "run_if_within_s")!.mark, "\"run_if_within_s\" is for time rules") }
        guard let actionNode = value(m, "action") else {
            error(node.mark, "trigger \"\(name)\" needs an \"action\"", hint: "{target: <device>/<node> or group/<name>, capability: …, params: {…}}")
            return nil
        }
        guard let action = decodeAction(actionNode, name: name, groups: groups, accounts: accounts), let kind else { return nil }
        return TriggerRule(name: name, kind: kind, action: action, runIfWithinS: runIfWithin)
    }

    mutating func decodeTime(_ m: Entries, name: String, isCron: Bool) -> TriggerRule.Kind? {
        if value(m, "days") != nil && isCron { error(value(m, "days")!.mark, "\"days\" goes with \"at\"; a cron expression has its own day fields") }
        if isCron {
            guard let (text, mark) = stringWithMark(m, "cron") else { return nil }
            switch CronExpression.parse(text) {
            case .success(let c): return .time(.cron(c))
            case .failure(let e):
                error(mark, "trigger \"\(name)\": \(e.message)", hint: "e.g. \"30 6 * * 1-5\" for 06:30 on weekdays")
                return nil
            }
        }
        guard let (at, mark) = stringWithMark(m, "at") else { return nil }
        guard let minute = WeekSchedule.minutes(at) else {
            error(mark, "trigger \"\(name)\": \"at\" must be a local time HH:MM (00:00…23:59), found \"\(at)\"")
            return nil
        }
        var days = Set(0..<7)
        if let d = value(m, "days") {
            guard case .sequence(let items, _) = d else {
                error(d.mark, "\"days\" must be a list of weekday names (mon … sun)")
                return nil
            }
            days = []
            for item in items {
                guard case .scalar(let s, let mark, _) = item, let i = Self.dayNames.firstIndex(of: s.lowercased().prefix(3).description),
                    s.count >= 3
                else {
                    error(item.mark, "unknown weekday \"\(itemText(item))\"", hint: "mon, tue, wed, thu, fri, sat, sun")
                    continue
                }
                _ = mark
                days.insert(i)
            }
            if days.isEmpty { return nil }
        }
        return .time(.daily(minute: minute, days: days))
    }

    func itemText(_ n: ConfigNode) -> String {
        if case .scalar(let s, _, _) = n { return s }
        return n.kindName
    }

    mutating func decodeCondition(_ m: Entries, name: String, mark: SourceMark, tests: [String]) -> TriggerRule.Kind? {
        guard let (topic, topicMark) = stringWithMark(m, "topic") else { return nil }
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        if topic.isEmpty
            || levels.enumerated().contains(where: { i, l in (l.contains("#") && (l != "#" || i != levels.count - 1)) || (l.contains("+") && l != "+")
            })
        {
            error(topicMark, "bad topic filter \"\(topic)\"", hint: "'+' stands for one whole level, '#' only as the last level")
            return nil
        }
        guard tests.count == 1 else {
            error(
                mark,
                "trigger \"\(name)\" needs exactly one of \"equals\", \"above\", \"below\" or \"changes\"\(tests.isEmpty ? "" : ", found \(tests.joined(separator: " and "))")"
            )
            return nil
        }
        var test: TopicCondition.Test
        switch tests[0] {
        case "equals": test = .equals(jsonValue(value(m, "equals")!))
        case "above":
            guard let v = number(m, "above", range: -1e12...1e12) else { return nil }
            test = .above(v)
        case "below":
            guard let v = number(m, "below", range: -1e12...1e12) else { return nil }
            test = .below(v)
        default:
            guard let (c, cm) = stringWithMark(m, "changes"), c == "true" else {
                if let (_, cm) = stringWithMark(m, "changes") { error(cm, "\"changes\" can only be true") }
                return nil
            }
            _ = cm
            test = .changes
        }
        let hysteresis = number(m, "hysteresis", range: 0...1e12) ?? 0
        if hysteresis > 0, tests[0] == "equals" || tests[0] == "changes" {
            error(value(m, "hysteresis")!.mark, "\"hysteresis\" only goes with \"above\" or \"below\"")
        }
        let path = string(m, "path").map { $0.split(separator: ".").map(String.init) } ?? []
        return .condition(
            TopicCondition(
                topic: topic, path: path, test: test, hysteresis: hysteresis,
                holdS: number(m, "hold_s", range: 0...86_400) ?? 0))
    }

    mutating func decodeAction(_ node: ConfigNode, name: String, groups: [String: [GroupMember]], accounts: [AccountConfig]) -> TriggerAction? {
        guard let m = mapping(node, path: "action") else { return nil }
        checkKeys(m, known: ["target", "capability", "params", "valid_for_s"], section: "action")
        guard let (target, mark) = stringWithMark(m, "target") else {
            if value(m, "target") == nil { error(node.mark, "trigger \"\(name)\": action needs \"target\"", hint: "<device>/<node> or group/<name>") }
            return nil
        }
        guard let (capability, capMark) = stringWithMark(m, "capability") else {
            if value(m, "capability") == nil { error(node.mark, "trigger \"\(name)\": action needs \"capability\"", hint: "e.g. derogation, charge") }
            return nil
        }
        if TopicLayout.sanitize(capability) != capability { error(capMark, "bad capability \"\(capability)\"", hint: "as in the topic, e.g. charge") }
        let parts = target.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, parts.allSatisfy({ TopicLayout.sanitize($0) == $0 }) else {
            error(mark, "bad target \"\(target)\"", hint: "<device>/<node> as in the topics, or group/<name>")
            return nil
        }
        if parts[0] == "group" {
            if groups[parts[1]] == nil {
                error(
                    mark, "unknown target group \"\(parts[1])\"",
                    hint: groups.isEmpty ? "define it under groups:" : "groups: \(groups.keys.sorted().joined(separator: ", "))")
            }
        } else if let why = unknownDevice(parts[0], accounts: accounts) {
            error(mark, "unknown target device \"\(parts[0])\": \(why)")
        }
        var params: [String: JSONValue] = [:]
        if let p = value(m, "params") {
            guard case .object(let o) = jsonValue(p) else {
                error(p.mark, "\"params\" must be a mapping, e.g. {delta: -2, duration_min: 120}")
                return nil
            }
            params = o
        }
        // The same validators as an MQTT command's, as far as they need no device state: for a group, each
        // member's node with its vendor's rules.
        let nodes: [(device: String, node: String)] =
            parts[0] == "group"
            ? (groups[parts[1]] ?? []).map { ($0.device, $0.node) } : [(parts[0], parts[1])]
        var body = params
        body["valid_for_s"] = nil
        for (device, member) in nodes {
            guard let module = vendors.first(where: { device.hasPrefix($0.deviceIdPrefix) }) else { continue }
            // A default the bridge keeps is set by the bridge itself (checked when it runs), not by the vendor.
            if module.localDefaults(of: member).contains(where: { $0.setting == capability }) { continue }
            var own = body
            var leaseError: CommandRejection?
            if module.isLeasable(node: member, capability: capability) {
                do { _ = try LeaseRequest.take(&own) } catch { leaseError = error }
            }
            guard let r = leaseError ?? module.checkAction(node: member, capability: capability, params: own) else { continue }
            let which = parts[0] == "group" ? "group \"\(parts[1])\" member \(device)/\(member): " : ""
            let at =
                r.code == .invalidPayload || r.code == .outOfRange
                ? (value(m, "params")?.mark ?? node.mark) : (r.code == .unsupported ? capMark : mark)
            error(at, "trigger \"\(name)\": \(which)\(r.message) (\(r.code))")
            break
        }
        return TriggerAction(
            device: parts[0], node: parts[1], capability: capability, params: params,
            validForS: number(m, "valid_for_s", range: 1...604_800))
    }

    /// Why a target device cannot be one of the configured accounts' devices; nil when it can.
    func unknownDevice(_ device: String, accounts: [AccountConfig]) -> String? {
        guard let module = vendors.first(where: { device.hasPrefix($0.deviceIdPrefix) }) else {
            let prefixes = vendors.map(\.deviceIdPrefix)
            let list = prefixes.count > 1 ? prefixes.dropLast().joined(separator: ", ") + " or " + prefixes.last! : prefixes.joined()
            return "device ids start with \(list)"
        }
        let own = accounts.filter { $0.vendor == module.name }
        guard !own.isEmpty else { return "no \(module.name) account is configured" }
        return module.outOfScope(String(device.dropFirst(module.deviceIdPrefix.count)), accounts: own)
    }

    /// A YAML value as JSON: plain scalars become numbers, booleans or null when they read as such.
    func jsonValue(_ n: ConfigNode) -> JSONValue {
        switch n {
        case .scalar(let s, _, let plain):
            guard plain else { return .string(s) }
            if n.isNull { return .null }
            if s == "true" { return .bool(true) }
            if s == "false" { return .bool(false) }
            if let d = Double(s), d.isFinite { return .number(d) }
            return .string(s)
        case .mapping(let entries, _):
            var o: [String: JSONValue] = [:]
            for e in entries { o[e.key] = jsonValue(e.value) }
            return .object(o)
        case .sequence(let items, _):
            return .array(items.map(jsonValue))
        }
    }
}

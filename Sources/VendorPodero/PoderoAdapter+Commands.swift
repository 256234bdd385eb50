import HeatbridgeCore

/// The heat pump node's capabilities, one handler each (`handlers`, the only place they are listed): each changes
/// preferences with a partial `PUT` of only the fields it names, and is read back by comparing those fields.
extension PoderoAdapter {
    typealias Handler = CapabilityHandler<PoderoAdapter>

    static let handlers = CapabilityTable<PoderoAdapter>([
        preference(
            "optimization", validate: { i throws(CommandRejection) in try validateOptimization(i.body, i.state) }, restoreKeys: ["active", "level"],
            body: { _, p in fields(p, ["active": F.optimizationActive, "level": F.optimizationLevel]) },
            message: { p, _ in
                [
                    p["active"]?.boolValue.map { $0 ? "smart optimisation on" : "smart optimisation off" },
                    p["level"]?.stringValue.map { "level \($0)" },
                ].compactMap { $0 }.joined(separator: ", ")
            }),
        preference(
            "comfort", validate: { i throws(CommandRejection) in try validateComfort(i.body, i.state) },
            // The comfort band's ends are room setpoints for the installer's limits.
            facts: { p in CommandFacts(setpoints: ["min", "max"].compactMap { k in p[k]?.doubleValue.map { .init(k, $0) } }) },
            restoreKeys: ["min", "max"],
            body: { _, p in fields(p, ["min": F.comfortMin, "max": F.comfortMax]) },
            message: { p, _ in degrees("comfort", p) }),
        preference(
            "dhw", validate: { i throws(CommandRejection) in try validateDhw(i.body, i.state) }, restoreKeys: ["standard", "minimum"],
            body: { _, p in fields(p, ["standard": F.dhwStandard, "minimum": F.dhwMinimum]) },
            message: { p, _ in degrees("dhw", p) }),
        preference(
            "away", validate: { i throws(CommandRejection) in try validateAway(i.body, now: i.now ?? 0) }, restoreKeys: nil,
            body: { a, p in
                if p["action"]?.stringValue == "stop" { return [F.awayEnabled: false] }
                var b: [String: JSONValue] = [
                    F.awayEnabled: true, F.awayStart: p["start"] ?? .string(Timestamp.iso8601(a.clock.now())),
                    F.awayEnd: p["end"] ?? .null,
                ]
                if let v = p["minimum"] { b[F.awayMinimum] = v }
                if let v = p["minimum_dhw"] { b[F.awayMinimumDhw] = v }
                return b
            },
            // A start computed at send time cannot be compared afterwards; the flag and the end can.
            unverifiable: { p in p["start"] == nil ? [F.awayStart] : [] },
            message: { p, _ in p["action"] != nil ? "away mode off" : "away mode until \(p["end"]?.stringValue ?? "?")" },
            // Its start and end are times, checked against when it runs.
            checkedAtConfig: { _ in false }),
        preference(
            "pause", validate: { i throws(CommandRejection) in try validatePause(i.body, now: i.now ?? 0) }, restoreKeys: nil,
            body: { a, p in
                if p["action"]?.stringValue == "stop" { return [F.pauseActive: false] }
                // Counted from when the pause is sent: a pause queued while the cloud was away lasts as asked.
                let until = p["duration_min"]?.doubleValue.map { JSONValue.string(Timestamp.iso8601(a.clock.now() + $0 * 60)) }
                return [F.pauseActive: true, F.pauseUntil: until ?? p["until"] ?? .null]
            },
            unverifiable: { p in p["duration_min"] != nil ? [F.pauseUntil] : [] },
            message: { p, body in p["action"] != nil ? "power pause ended" : "power paused until \(body[F.pauseUntil]?.stringValue ?? "?")" },
            // A pause `until` a time is checked when it runs; one for `duration_min` at once.
            checkedAtConfig: { p in p["until"] == nil }),
    ])

    /// A preference change: `body` gives the PUT's fields for validated parameters, `message` the `done` text;
    /// the read-back compares the same fields except those `unverifiable` names (times computed at send time).
    static func preference(
        _ name: String, validate: @escaping Handler.Validate,
        facts: @escaping @Sendable (JSONValue) -> CommandFacts = Handler.noFacts, restoreKeys: [String]?,
        body: @escaping @Sendable (PoderoAdapter, JSONValue) -> [String: JSONValue],
        unverifiable: @escaping @Sendable (JSONValue) -> [String] = { _ in [] },
        message: @escaping @Sendable (JSONValue, [String: JSONValue]) -> String,
        checkedAtConfig: @escaping @Sendable ([String: JSONValue]) -> Bool = { _ in true }
    ) -> Handler {
        var restore: (@Sendable (JSONValue) -> JSONValue?)?
        if let keys = restoreKeys {
            restore = { (node: JSONValue) -> JSONValue? in
                var o: [String: JSONValue] = [:]
                for k in keys {
                    guard let v = node[name]?[k], v != .null else { return nil }
                    o[k] = v
                }
                return .object(o)
            }
        }
        let execute: Handler.Execute = { (a: PoderoAdapter, c: Command, device: DeviceSnapshot, _) async throws(CloudError) -> String? in
            let b = body(a, c.params)
            _ = try await a.client.request("PUT", try a.path(device), body: .object(b))
            return message(c.params, b)
        }
        let confirm: Handler.Confirm = { (a: PoderoAdapter, c: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? in
            let hp = try await a.client.request("GET", try a.path(device))
            var wanted = body(a, c.params)
            for k in unverifiable(c.params) { wanted[k] = nil }
            for (k, v) in wanted {
                let now = hp[k] ?? .null
                if let x = v.stringValue, let tx = Timestamp.parse(x), let y = now.stringValue, let ty = Timestamp.parse(y) {
                    if abs(tx - ty) > 1 { return false }
                } else if now != v {
                    return false
                }
            }
            return true
        }
        return Handler(
            name, validate: validate, facts: facts, restore: restore, execute: execute, confirm: confirm,
            checkedAtConfig: checkedAtConfig)
    }

    /// The PUT fields of the parameters present: parameter → wire field.
    static func fields(_ p: JSONValue, _ map: [String: String]) -> [String: JSONValue] {
        var b: [String: JSONValue] = [:]
        for (param, field) in map { if let v = p[param] { b[field] = v } }
        return b
    }

    static func degrees(_ what: String, _ p: JSONValue) -> String {
        "\(what) set: " + (p.objectValue ?? [:]).keys.sorted().map { "\($0) \(JSONValue.format(p[$0]?.doubleValue ?? 0)) °C" }.joined(separator: ", ")
    }

    // MARK: the adapter's command interface, through the table

    public func capabilities(of node: String) -> Set<String> { node == Self.node ? Self.capabilities : [] }

    public func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        try Self.validate(node: node, capability: capability, body: body, device: device, now: clock.now())
    }

    /// Also what a trigger action is checked with at config time (`PoderoModule.checkAction`).
    static func validate(
        node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot,
        now: EpochSeconds
    ) throws(CommandRejection) -> JSONValue {
        guard node == Self.node, device.nodes[node] != nil else {
            throw CommandRejection(.unknownTarget, "device \"\(device.id)\" has no node \"\(node)\"; nodes: \(Self.node)")
        }
        return try handlers.handler(capability, node: node).validate(ValidationInput(body: body, node: node, device: device, now: now))
    }

    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts {
        Self.handlers[capability]?.facts(params) ?? CommandFacts()
    }

    /// Leasable: the preferences that have no end time of their own (optimisation, comfort band, DHW).
    public func restoreParams(node: String, capability: String, device: DeviceSnapshot) -> JSONValue? {
        guard let state = device.nodes[node], let restore = Self.handlers[capability]?.restore else { return nil }
        return restore(state)
    }

    public func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        guard let h = Self.handlers[command.capability] else {
            throw CloudError(.rejected, message: "\(command.capability) is not a Podero capability")
        }
        return try await h.execute(self, command, device) { _, _ in }
    }

    public func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        guard let h = Self.handlers[command.capability] else { return nil }
        return try await h.confirm(self, command, device)
    }

    func path(_ device: DeviceSnapshot) throws(CloudError) -> String {
        guard let owner = device.attributes["owner_id"]?.stringValue else {
            throw CloudError(.rejected, message: "owner of \(device.id) unknown; wait for the next poll")
        }
        return PoderoWire.Path.heatPump(client.orgId, owner, device.vendorId)
    }

    // MARK: validation

    static func validateOptimization(_ body: [String: JSONValue], _ state: JSONValue) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["active", "level"])
        var out: [String: JSONValue] = [:]
        if let a = try CapabilityValidation.optionalBool(body, "active") { out["active"] = .bool(a) }
        if body["level"] != nil { out["level"] = .string(try CapabilityValidation.oneOf(body, "level", PoderoWire.optimizationLevels)) }
        guard !out.isEmpty else { throw CommandRejection(.invalidPayload, "give \"active\" (true/false) and/or \"level\" (low, mid, max)") }
        return .object(out)
    }

    static func validateComfort(_ body: [String: JSONValue], _ state: JSONValue) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["min", "max"])
        let lo = try CapabilityValidation.optionalTemperature(body, "min", Self.comfortRange)
        let hi = try CapabilityValidation.optionalTemperature(body, "max", Self.comfortRange)
        guard lo != nil || hi != nil else { throw CommandRejection(.invalidPayload, "give \"min\" and/or \"max\" (°C)") }
        try Self.ordered(
            low: ("min", lo ?? state["comfort"]?["min"]?.doubleValue), high: ("max", hi ?? state["comfort"]?["max"]?.doubleValue), strict: true)
        var out: [String: JSONValue] = [:]
        if let lo { out["min"] = .number(lo) }
        if let hi { out["max"] = .number(hi) }
        return .object(out)
    }

    static func validateDhw(_ body: [String: JSONValue], _ state: JSONValue) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["standard", "minimum"])
        let std = try CapabilityValidation.optionalTemperature(body, "standard", Self.dhwRange)
        let min = try CapabilityValidation.optionalTemperature(body, "minimum", Self.dhwRange)
        guard std != nil || min != nil else { throw CommandRejection(.invalidPayload, "give \"standard\" and/or \"minimum\" (°C)") }
        try Self.ordered(
            low: ("minimum", min ?? state["dhw"]?["minimum"]?.doubleValue),
            high: ("standard", std ?? state["dhw"]?["standard"]?.doubleValue), strict: false)
        var out: [String: JSONValue] = [:]
        if let std { out["standard"] = .number(std) }
        if let min { out["minimum"] = .number(min) }
        return .object(out)
    }

    /// `low` must stay below (or, when not strict, at most) `high`; either may be unknown.
    static func ordered(low: (String, Double?), high: (String, Double?), strict: Bool) throws(CommandRejection) {
        guard let l = low.1, let h = high.1 else { return }
        if strict ? l >= h : l > h {
            throw CommandRejection(
                .outOfRange, "\"\(low.0)\" (\(JSONValue.format(l))) must be \(strict ? "below" : "at most") \"\(high.0)\" (\(JSONValue.format(h)))")
        }
    }

    /// A required `{"action":"stop"}` form, or nil when the body is not a stop.
    static func isStop(_ body: [String: JSONValue]) throws(CommandRejection) -> Bool {
        guard let a = body["action"] else { return false }
        guard a.stringValue == "stop" else { throw CommandRejection(.invalidPayload, "\"action\" can only be \"stop\"") }
        guard body.count == 1 else { throw CommandRejection(.invalidPayload, "\"action\":\"stop\" takes no other members") }
        return true
    }

    static func time(_ body: [String: JSONValue], _ key: String) throws(CommandRejection) -> EpochSeconds? {
        guard let v = body[key] else { return nil }
        guard let s = v.stringValue, let t = Timestamp.parse(s) else {
            throw CommandRejection(.invalidPayload, "\"\(key)\" must be an ISO 8601 time with offset, e.g. \"2026-12-24T08:00:00Z\"")
        }
        return t
    }

    static func validateAway(_ body: [String: JSONValue], now: EpochSeconds) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["start", "end", "minimum", "minimum_dhw", "action"])
        if try Self.isStop(body) { return ["action": "stop"] }
        let start = try time(body, "start")
        guard let end = try time(body, "end") else { throw CommandRejection(.invalidPayload, "missing \"end\" (ISO 8601 time)") }
        guard end > now else { throw CommandRejection(.outOfRange, "\"end\" \(Timestamp.iso8601(end)) is in the past") }
        if let start, start >= end { throw CommandRejection(.outOfRange, "\"start\" must be before \"end\"") }
        guard end - (start ?? now) <= Self.maxAwayDays * 86_400 else {
            throw CommandRejection(.outOfRange, "away periods are at most \(Int(Self.maxAwayDays)) days")
        }
        var out: [String: JSONValue] = ["end": .string(Timestamp.iso8601(end))]
        if let start { out["start"] = .string(Timestamp.iso8601(start)) }
        if let m = try CapabilityValidation.optionalTemperature(body, "minimum", Self.awayRange) { out["minimum"] = .number(m) }
        if let m = try CapabilityValidation.optionalTemperature(body, "minimum_dhw", Self.awayDhwRange) { out["minimum_dhw"] = .number(m) }
        return .object(out)
    }

    static func validatePause(_ body: [String: JSONValue], now: EpochSeconds) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["until", "duration_min", "action"])
        if try Self.isStop(body) { return ["action": "stop"] }
        switch (body["until"], body["duration_min"]) {
        case (nil, nil): throw CommandRejection(.invalidPayload, "give \"until\" (ISO 8601 time), \"duration_min\", or \"action\":\"stop\"")
        case (.some, .some): throw CommandRejection(.invalidPayload, "give either \"until\" or \"duration_min\", not both")
        case (.some, nil):
            let until = try time(body, "until")!
            let left = until - now
            guard left > 0 else { throw CommandRejection(.outOfRange, "\"until\" \(Timestamp.iso8601(until)) is in the past") }
            guard left <= Double(Self.maxPauseMinutes) * 60 else {
                throw CommandRejection(
                    .outOfRange, "\"until\" is more than \(Self.maxPauseMinutes / 60) h away; pauses are at most \(Self.maxPauseMinutes) min")
            }
            return ["until": .string(Timestamp.iso8601(until))]
        case (nil, .some(let d)):
            guard let m = d.intValue else { throw CommandRejection(.invalidPayload, "\"duration_min\" must be a whole number of minutes") }
            guard (1...Self.maxPauseMinutes).contains(m) else {
                throw CommandRejection(.outOfRange, "\"duration_min\" must be 1…\(Self.maxPauseMinutes), got \(m)")
            }
            return ["duration_min": .int(m)]
        }
    }
}

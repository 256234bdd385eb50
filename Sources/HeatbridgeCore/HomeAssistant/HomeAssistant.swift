/// Home Assistant MQTT discovery: one retained device-based config per device (`<prefix>/device/<id>/config`)
/// for the capabilities the device really has. Every entity commands through the normal `…/set` topics, so
/// Home Assistant's commands get the normal validation and staged results.
public struct HomeAssistantDiscovery: Sendable {
    /// When false, configs announced earlier are cleared instead of published.
    public let enabled: Bool
    public let prefix: String
    public let topics: TopicLayout
    public let version: String
    /// Buttons offered wherever a node exposes derogation presets.
    public let derogationPresets: [DerogationPreset]

    public init(enabled: Bool, prefix: String, topics: TopicLayout, version: String, derogationPresets: [DerogationPreset] = []) {
        self.derogationPresets = derogationPresets
        self.enabled = enabled
        self.prefix = prefix
        self.topics = topics
        self.version = version
    }

    /// Object ids are unique per bridge: the base topic is part of them.
    var bridgeKey: String { TopicLayout.sanitize(topics.base.replacingSlashes()) }
    public var bridgeDeviceId: String { "heatbridge_\(bridgeKey)" }
    public var statusTopic: String { "\(prefix)/status" }
    public func configTopic(_ objectId: String) -> String { "\(prefix)/device/\(objectId)/config" }
    public var bridgeConfigTopic: String { configTopic("\(bridgeKey)_bridge") }
    public func deviceConfigTopic(_ device: String) -> String { configTopic("\(bridgeKey)_\(device)") }

    var origin: JSONValue { ["name": "heatbridge", "sw": .string(version), "url": "https://github.com/heatbridge/heatbridge"] }

    func availability(device: String?) -> JSONValue {
        var list: [JSONValue] = [["topic": .string(topics.bridgeState), "value_template": "{{ value_json.state }}"]]
        if let device { list.append(["topic": .string(topics.availability(device))]) }
        return .array(list)
    }

    /// The bridge itself: connectivity per account and the outbox depth.
    public func bridgeConfig(accounts: [String]) -> JSONValue {
        var cmps: [String: JSONValue] = [:]
        for a in accounts {
            cmps["heatbridge_bridge_\(a)_connectivity"] = [
                "p": "binary_sensor", "unique_id": .string("heatbridge_bridge_\(a)_connectivity"), "name": .string("Cloud \(a)"),
                "device_class": "connectivity", "state_topic": .string(topics.account(a)),
                "value_template": "{{ 'ON' if value_json.state == 'ready' else 'OFF' }}",
            ]
        }
        cmps["heatbridge_bridge_outbox"] = [
            "p": "sensor", "unique_id": "heatbridge_bridge_outbox", "name": "Commands waiting", "state_topic": .string(topics.bridgeHealth),
            "value_template": "{{ value_json.outbox_depth }}", "state_class": "measurement", "entity_category": "diagnostic",
        ]
        cmps["heatbridge_bridge_last_result"] = [
            "p": "sensor", "unique_id": "heatbridge_bridge_last_result", "name": "Last command result",
            "state_topic": .string(topics.bridgeLastResult),
            "value_template": "{{ value_json.status }}{{ ' ' ~ value_json.code if value_json.code else '' }}",
            "json_attributes_topic": .string(topics.bridgeLastResult), "entity_category": "diagnostic",
        ]
        return Self.withoutNulls([
            "dev": ["ids": [.string(bridgeDeviceId)], "name": "heatbridge", "mf": "heatbridge", "sw": .string(version)],
            "o": origin, "cmps": .object(cmps), "qos": 1,
            "availability": availability(device: nil),
        ])
    }

    /// A bridged device, with one entity per expose of each node (`exposes(node, capabilities)`), plus a number
    /// for each default the bridge keeps for one of the node's capabilities (`localDefaults(node)`).
    public func deviceConfig(
        _ d: DeviceSnapshot, names: FrontEndName, capabilities: (String) -> Set<String>,
        exposes: (String, Set<String>) -> [Expose], localDefaults: (String) -> [LocalDefault] = { _ in [] },
        meter: MeterLayout = MeterLayout(power: false, counters: [])
    ) -> JSONValue {
        var cmps: [String: JSONValue] = [:]
        meterEntities(d.id, meter, into: &cmps)
        for node in d.nodes.keys.sorted() {
            let caps = capabilities(node)
            let entity = EntityContext(
                state: topics.nodeState(d.id, node), uidPrefix: "heatbridge_\(d.id)_\(node)_",
                commandPrefix: "\(topics.base)/\(d.id)/\(node)/")
            for e in exposes(node, caps) { add(e, entity, into: &cmps) }
            // A default the bridge keeps for a capability of the node: a number the installer sets.
            for d in localDefaults(node) where caps.contains(d.capability) {
                let id = entity.uid(d.entity.id)
                cmps[id] = [
                    "p": "number", "unique_id": .string(id), "name": .string(d.entity.name),
                    "command_topic": entity.set(d.setting), "command_template": .string("{\"\(d.settingMember)\": {{ value | int }}}"),
                    "state_topic": .string(entity.state), "value_template": .string("{{ value_json.\(d.stateMember).\(d.stateKey) }}"),
                    "min": .int(d.entity.min), "max": .int(d.range.upperBound), "step": .int(d.entity.step),
                    "unit_of_measurement": .string(d.entity.unit), "entity_category": "config",
                ]
            }
        }
        return Self.withoutNulls([
            "dev": [
                "ids": [.string("heatbridge_\(d.id)")], "name": .string(names.name),
                "mf": .string(names.manufacturer), "mdl": .string(d.model?.isEmpty == false ? d.model : nil),
                "via_device": .string(bridgeDeviceId),
            ],
            "o": origin, "cmps": .object(cmps), "qos": 1,
            "availability": availability(device: d.id), "availability_mode": "all",
        ])
    }

    /// The device's meter (`<device>/state` → `meter`): power (W, measurement), each energy counter (kWh, energy,
    /// total_increasing: what the energy dashboard takes as it is), the day's efficiency. The templates read with
    /// `.get`, so a state without the meter yet renders `None` (unknown) instead of a template error.
    func meterEntities(_ device: String, _ m: MeterLayout, into cmps: inout [String: JSONValue]) {
        guard !m.isEmpty else { return }
        let state = JSONValue.string(topics.deviceState(device))
        func uid(_ e: String) -> String { "heatbridge_\(device)_meter_\(e)" }
        func put(_ e: String, _ o: [String: JSONValue]) {
            var o = o
            o["p"] = "sensor"
            o["unique_id"] = .string(uid(e))
            o["state_topic"] = state
            cmps[uid(e)] = .object(o)
        }
        if m.power {
            put(
                "power",
                [
                    "name": "Power", "value_template": "{{ value_json.get('meter', {}).get('power_w') }}", "unit_of_measurement": "W",
                    "device_class": "power", "state_class": "measurement",
                ])
        }
        for k in m.counters.sorted() {
            put(
                "energy_\(k.id)",
                [
                    "name": .string(Self.meterName(k)), "unit_of_measurement": "kWh", "device_class": "energy",
                    "state_class": "total_increasing",
                    "value_template": .string("{{ value_json.get('meter', {}).get('energy', {}).get('\(k.id)', {}).get('kwh') }}"),
                ])
        }
        if m.hasEfficiency {
            put(
                "efficiency_today",
                [
                    "name": "Efficiency today", "state_class": "measurement", "icon": "mdi:heat-pump",
                    "value_template": "{{ value_json.get('meter', {}).get('efficiency_today') }}",
                ])
        }
    }

    /// "Electricity used", "Heat supplied, hot water", …
    static func meterName(_ k: MeterKey) -> String {
        let what = k.direction == .electricity ? "Electricity used" : "Heat supplied"
        let use: [EnergyUse: String] = [.heating: "heating", .dhw: "hot water", .cooling: "cooling", .pool: "pool"]
        return use[k.use].map { "\(what), \($0)" } ?? what
    }

    /// Home Assistant validates discovery strictly: a `null` where it wants a string ("string value is None
    /// at 'model'", a device whose model is not known yet) rejects the whole device. Every key without a value
    /// is left out instead, at any depth.
    static func withoutNulls(_ v: JSONValue) -> JSONValue {
        switch v {
        // (`nil` would be read as JSON null here: JSONValue is ExpressibleByNilLiteral.)
        case .object(let o): return .object(o.filter { $0.value != .null }.mapValues(withoutNulls))
        case .array(let a): return .array(a.map(withoutNulls))
        default: return v
        }
    }

    /// The topics and ids of one node's entities.
    struct EntityContext {
        var state: String
        var uidPrefix: String
        var commandPrefix: String
        /// `<device>_<node>_` as a Home Assistant entity id wants it (lowercase letters, digits, underscores).
        var entityPrefix: String {
            String(uidPrefix.dropFirst("heatbridge_".count).map { $0.isLetter || $0.isNumber ? Character($0.lowercased()) : "_" })
        }
        func uid(_ entity: String) -> String { uidPrefix + entity }
        func set(_ capability: String) -> JSONValue { .string(commandPrefix + capability + "/set") }
    }

    /// One expose as the Home Assistant component that shows it.
    func add(_ e: Expose, _ n: EntityContext, into cmps: inout [String: JSONValue]) {
        func value(_ field: String) -> JSONValue { .string("{{ value_json.\(field) }}") }
        func onOff(_ field: String) -> JSONValue { .string("{{ 'ON' if value_json.\(field) else 'OFF' }}") }
        func put(_ id: String, _ kind: String, _ name: String, _ fields: [String: JSONValue]) {
            var o = fields
            o["p"] = .string(kind)
            o["unique_id"] = .string(n.uid(id))
            o["name"] = .string(name)
            cmps[n.uid(id)] = .object(o)
        }
        switch e {
        case .sensor(let s):
            var o: [String: JSONValue] = ["state_topic": .string(n.state), "value_template": value(s.field)]
            if let c = s.deviceClass { o["device_class"] = .string(c) }
            if let u = s.unit { o["unit_of_measurement"] = .string(u) }
            if let c = s.stateClass { o["state_class"] = .string(c.rawValue) }
            if let c = s.category { o["entity_category"] = .string(c.rawValue) }
            put(s.id, "sensor", s.name, o)
        case .binary(let id, let name, let field, let deviceClass):
            var o: [String: JSONValue] = ["state_topic": .string(n.state), "value_template": onOff(field)]
            if let deviceClass { o["device_class"] = .string(deviceClass) }
            put(id, "binary_sensor", name, o)
        case .thermostat(let t):
            var o: [String: JSONValue] = [
                "current_temperature_topic": .string(n.state), "current_temperature_template": value(t.currentField),
                "temperature_state_topic": .string(n.state),
                "temperature_state_template": target(t.targetField, programMode: t.programMode.map { (t.modes?.field ?? "operation_mode", $0) }),
                "min_temp": .number(t.min), "max_temp": .number(t.max), "temp_step": .number(t.step), "temperature_unit": "C",
            ]
            if let m = t.modes { modes(m, n, into: &o) }
            if let (capability, param) = t.setTarget {
                o["temperature_command_topic"] = n.set(capability)
                o["temperature_command_template"] = .string("{\"\(param)\": {{ value }}}")
            }
            put(t.id, "climate", t.name, o)
        case .waterHeater(let w):
            var o: [String: JSONValue] = [
                "current_temperature_topic": .string(n.state), "current_temperature_template": value(w.currentField),
                "temperature_unit": "C", "min_temp": .number(w.min), "max_temp": .number(w.max),
            ]
            if let m = w.modes { modes(m, n, into: &o) }
            if let f = w.targetField {
                o["temperature_state_topic"] = .string(n.state)
                o["temperature_state_template"] = target(f, programMode: w.programMode.map { (w.modes?.field ?? "operation_mode", $0) })
            }
            if let s = w.setTarget {
                o["temperature_command_topic"] = n.set(s.capability)
                o["temperature_command_template"] = .string("{\"\(s.param)\": {{ value }}}")
                o["precision"] = 1.0
            }
            if let p = w.power {
                o["power_command_topic"] = n.set(p.capability)
                o["payload_on"] = .string(p.on)
                o["payload_off"] = .string(p.off)
            }
            put(w.id, "water_heater", w.name, o)
        case .choice(let id, let name, let field, let options, let capability, let param, let category):
            var o: [String: JSONValue] = [
                "state_topic": .string(n.state), "value_template": value(field), "options": .array(options.map { .string($0) }),
                "command_topic": n.set(capability), "command_template": .string("{\"\(param)\": \"{{ value }}\"}"),
            ]
            if let category { o["entity_category"] = .string(category.rawValue) }
            put(id, "select", name, o)
        case .toggle(let id, let name, let field, let capability, let on, let off):
            put(
                id, "switch", name,
                [
                    "state_topic": .string(n.state), "value_template": onOff(field), "state_on": "ON", "state_off": "OFF",
                    "command_topic": n.set(capability), "payload_on": .string(on), "payload_off": .string(off),
                ])
        case .action(let id, let name, let capability, let payload, let category):
            var o: [String: JSONValue] = ["command_topic": n.set(capability), "payload_press": .string(payload)]
            if let category { o["entity_category"] = .string(category.rawValue) }
            put(id, "button", name, o)
        case .presets(let capability, let label):
            for (i, p) in derogationPresets.enumerated() {
                // Home Assistant makes the entity id from the name, dropping the sign ("−2 °C" and "+2 °C"
                // both became `…_2_degc…`): name it ourselves, sign spelled out.
                let sign = p.delta < 0 ? "minus_\(-p.delta)" : "plus_\(p.delta)"
                put(
                    "derogation_preset_\(i + 1)", "button", "\(label) \(p.name)",
                    [
                        "command_topic": n.set(capability), "payload_press": .string(#"{"delta": \#(p.delta), "duration_min": \#(p.durationMin)}"#),
                        "default_entity_id": .string("button.\(n.entityPrefix)derogation_\(sign)_for_\(p.durationMin)_min"),
                    ])
            }
        }
    }

    /// The target temperature's template: `field`, or — while the node's mode is its program mode — the level
    /// its week program is in now (`schedule_now.setpoint`). An unknown target renders empty, which Home
    /// Assistant ignores (it would show an invented default rather than "None").
    func target(_ field: String, programMode: (field: String, value: String)?) -> JSONValue {
        guard let (modeField, program) = programMode else {
            return .string("{{ value_json.\(field) if value_json.\(field) is not none else '' }}")
        }
        return .string(
            "{% if value_json.\(modeField) == '\(program)' and value_json.schedule_now is defined and value_json.schedule_now.setpoint is not none %}"
                + "{{ value_json.schedule_now.setpoint }}{% elif value_json.\(field) is not none %}{{ value_json.\(field) }}{% endif %}")
    }

    /// Modes mapped one by one between Home Assistant's names and the device's values.
    func modes(_ m: Expose.Modes, _ n: EntityContext, into o: inout [String: JSONValue]) {
        let toFront = m.pairs.map { "'\($0.device)': '\($0.front)'" }.joined(separator: ", ")
        let toDevice = m.pairs.map { "'\($0.front)': '\($0.device)'" }.joined(separator: ", ")
        o["modes"] = .array(m.pairs.map { .string($0.front) })
        o["mode_state_topic"] = .string(n.state)
        o["mode_state_template"] = .string("{{ {\(toFront)}.get(value_json.\(m.field), '\(m.fallback)') }}")
        o["mode_command_topic"] = n.set(m.capability)
        o["mode_command_template"] = .string("{\"\(m.param)\": \"{{ {\(toDevice)}[value] }}\"}")
    }
}

extension String {
    fileprivate func replacingSlashes() -> String { String(map { $0 == "/" ? "_" : $0 }) }
}

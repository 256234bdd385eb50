/// Home Assistant MQTT discovery: one retained device-based config per device (`<prefix>/device/<id>/config`)
/// for the capabilities the device really has. Every entity commands through the normal `…/set` topics, so
/// Home Assistant's commands get the normal validation and staged results.
public struct HomeAssistantDiscovery: Sendable {
    /// When false, configs announced earlier are cleared instead of published.
    public let enabled: Bool
    public let prefix: String
    public let topics: TopicLayout
    public let version: String
    /// Buttons offered on every HomeSmartlink room.
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
            "state_topic": .string(topics.bridgeLastResult), "value_template": "{{ value_json.status }}{{ ' ' ~ value_json.code if value_json.code else '' }}",
            "json_attributes_topic": .string(topics.bridgeLastResult), "entity_category": "diagnostic",
        ]
        return [
            "dev": ["ids": [.string(bridgeDeviceId)], "name": "heatbridge", "mf": "heatbridge", "sw": .string(version)],
            "o": origin, "cmps": .object(cmps), "qos": 1,
            "availability": availability(device: nil),
        ]
    }

    /// A bridged device, with entities for the nodes and capabilities it has.
    public func deviceConfig(_ d: DeviceSnapshot, vendor: String, capabilities: (String) -> Set<String>) -> JSONValue {
        var cmps: [String: JSONValue] = [:]
        for node in d.nodes.keys.sorted() {
            let caps = capabilities(node)
            let state = topics.nodeState(d.id, node)
            func uid(_ entity: String) -> String { "heatbridge_\(d.id)_\(node)_\(entity)" }
            func set(_ cap: String) -> JSONValue { .string("\(topics.base)/\(d.id)/\(node)/\(cap)/set") }
            if node.hasPrefix("hc") {
                var climate: [String: JSONValue] = [
                    "p": "climate", "unique_id": .string(uid("climate")), "name": .string("Heating circuit \(node.dropFirst(2))"),
                    "current_temperature_topic": .string(state), "current_temperature_template": "{{ value_json.room_temperature }}",
                    "temperature_state_topic": .string(state), "temperature_state_template": "{{ value_json.setpoint }}",
                    "min_temp": 5, "max_temp": 30, "temp_step": 0.5, "temperature_unit": "C",
                ]
                if caps.contains("mode") {
                    // Home Assistant's modes auto/heat/off are the circuit's auto/manual/off.
                    climate["modes"] = ["auto", "heat", "off"]
                    climate["mode_state_topic"] = .string(state)
                    climate["mode_state_template"] = "{{ {'auto': 'auto', 'manual': 'heat', 'off': 'off'}.get(value_json.operation_mode, 'auto') }}"
                    climate["mode_command_topic"] = set("mode")
                    climate["mode_command_template"] = #"{"mode": "{{ {'auto': 'auto', 'heat': 'manual', 'off': 'off'}[value] }}"}"#
                }
                if caps.contains("setpoint") {
                    climate["temperature_command_topic"] = set("setpoint")
                    climate["temperature_command_template"] = #"{"setpoint": {{ value }}}"#
                }
                cmps[uid("climate")] = .object(climate)
                if caps.contains("program"), d.nodes[node]?["time_program"]?.stringValue != nil {
                    cmps[uid("program")] = [
                        "p": "select", "unique_id": .string(uid("program")), "name": .string("Heating circuit \(node.dropFirst(2)) time program"),
                        "state_topic": .string(state), "value_template": "{{ value_json.time_program }}", "options": ["A", "B"],
                        "command_topic": set("program"), "command_template": #"{"program": "{{ value }}"}"#, "entity_category": "config",
                    ]
                }
            }
            if node == "system" && caps.contains("date-time") {
                boschSystem(state: state, node: d.nodes[node] ?? .null, caps: caps, uid: uid, set: set, into: &cmps)
            }
            if node.hasPrefix("dhw") {
                var heater: [String: JSONValue] = [
                    "p": "water_heater", "unique_id": .string(uid("water_heater")), "name": .string("Hot water \(node.dropFirst(3))"),
                    "current_temperature_topic": .string(state), "current_temperature_template": "{{ value_json.temperature }}",
                    "temperature_unit": "C", "min_temp": 30, "max_temp": 65,
                ]
                if caps.contains("mode") {
                    // Only the levels with a Home Assistant counterpart: off, eco (Eco+), performance (Comfort).
                    heater["modes"] = ["off", "eco", "performance"]
                    heater["mode_state_topic"] = .string(state)
                    heater["mode_state_template"] = "{{ {'off': 'off', 'eco': 'eco', 'high': 'performance'}.get(value_json.operation_mode, 'eco') }}"
                    heater["mode_command_topic"] = set("mode")
                    heater["mode_command_template"] = #"{"mode": "{{ {'off': 'off', 'eco': 'eco', 'performance': 'high'}[value] }}"}"#
                }
                cmps[uid("water_heater")] = .object(heater)
                if caps.contains("charge") {
                    cmps[uid("charge")] = [
                        "p": "button", "unique_id": .string(uid("charge")), "name": "Charge hot water now",
                        "command_topic": set("charge"), "payload_press": #"{"action": "start"}"#,
                    ]
                    cmps[uid("charge_duration")] = [
                        "p": "number", "unique_id": .string(uid("charge_duration")), "name": "Hot water charge duration",
                        "command_topic": set("charge-duration"), "command_template": #"{"minutes": {{ value | int }}}"#,
                        "state_topic": .string(state), "value_template": "{{ value_json.charge.default_duration_min }}",
                        "min": 5, "max": .int(CapabilityValidation.maxChargeMinutes), "step": 5, "unit_of_measurement": "min",
                        "entity_category": "config",
                    ]
                    cmps[uid("charging")] = [
                        "p": "binary_sensor", "unique_id": .string(uid("charging")), "name": "Hot water charging",
                        "state_topic": .string(state), "value_template": "{{ 'ON' if value_json.charge.active else 'OFF' }}",
                        "device_class": "running",
                    ]
                }
            }
            if node.hasPrefix("room-") {
                room(state: state, node: node, name: d.nodes[node]?["name"]?.stringValue, caps: caps, uid: uid, set: set, into: &cmps)
            }
            if node == "hp" && caps.contains("optimization") {
                heatPump(state: state, caps: caps, uid: uid, set: set, into: &cmps)
            }
        }
        return [
            "dev": ["ids": [.string("heatbridge_\(d.id)")], "name": .string("\(vendor.capitalized) \(d.vendorId)"),
                    "mf": .string(vendor.capitalized), "mdl": .string(d.model), "via_device": .string(bridgeDeviceId)],
            "o": origin, "cmps": .object(cmps), "qos": 1,
            "availability": availability(device: d.id), "availability_mode": "all",
        ]
    }

    /// A Bosch gateway's system node: silent mode (heat pumps that have one), the gateway clock's offset with
    /// a button that sets it to the box's time, and a button that runs a system detection.
    func boschSystem(state: String, node: JSONValue, caps: Set<String>, uid: (String) -> String, set: (String) -> JSONValue,
                     into cmps: inout [String: JSONValue]) {
        if caps.contains("silent-mode"), node["silent_mode"]?.stringValue != nil {
            cmps[uid("silent_mode")] = [
                "p": "select", "unique_id": .string(uid("silent_mode")), "name": "Silent mode", "state_topic": .string(state),
                "value_template": "{{ value_json.silent_mode }}", "options": ["off", "on", "auto"],
                "command_topic": set("silent-mode"), "command_template": #"{"mode": "{{ value }}"}"#,
            ]
        }
        cmps[uid("clock_offset")] = [
            "p": "sensor", "unique_id": .string(uid("clock_offset")), "name": "Gateway clock offset", "state_topic": .string(state),
            "value_template": "{{ value_json.clock_offset_s }}", "device_class": "duration", "unit_of_measurement": "s",
            "entity_category": "diagnostic",
        ]
        cmps[uid("clock_sync")] = [
            "p": "button", "unique_id": .string(uid("clock_sync")), "name": "Set gateway clock to the box's time",
            "command_topic": set("date-time"), "payload_press": #"{"sync": true}"#, "entity_category": "config",
        ]
        if caps.contains("detect") {
            cmps[uid("detect")] = [
                "p": "button", "unique_id": .string(uid("detect")), "name": "Detect components", "command_topic": set("detect"),
                "payload_press": "{}", "entity_category": "diagnostic",
            ]
        }
    }

    /// A HomeSmartlink room: measured temperature and setpoint, whether a derogation is active, and one
    /// button per installer preset (`homeassistant.derogation_presets`).
    func room(state: String, node: String, name: String?, caps: Set<String>, uid: (String) -> String, set: (String) -> JSONValue,
              into cmps: inout [String: JSONValue]) {
        let label = name.map { $0.isEmpty ? node : $0 } ?? node
        cmps[uid("temperature")] = [
            "p": "sensor", "unique_id": .string(uid("temperature")), "name": .string("\(label) temperature"), "state_topic": .string(state),
            "value_template": "{{ value_json.temperature }}", "device_class": "temperature", "unit_of_measurement": "°C",
            "state_class": "measurement",
        ]
        cmps[uid("setpoint")] = [
            "p": "sensor", "unique_id": .string(uid("setpoint")), "name": .string("\(label) setpoint"), "state_topic": .string(state),
            "value_template": "{{ value_json.setpoint }}", "device_class": "temperature", "unit_of_measurement": "°C",
        ]
        guard caps.contains("derogation") else { return }
        cmps[uid("derogation_active")] = [
            "p": "binary_sensor", "unique_id": .string(uid("derogation_active")), "name": .string("\(label) derogation active"),
            "state_topic": .string(state), "value_template": "{{ 'ON' if value_json.derogation.active else 'OFF' }}",
        ]
        for (i, p) in derogationPresets.enumerated() {
            let id = uid("derogation_preset_\(i + 1)")
            cmps[id] = [
                "p": "button", "unique_id": .string(id), "name": .string("\(label) \(p.name)"), "command_topic": set("derogation"),
                "payload_press": .string(#"{"delta": \#(p.delta), "duration_min": \#(p.durationMin)}"#),
            ]
        }
    }

    /// A Podero heat pump (node `hp`): power and temperatures, smart optimisation as a switch and a level
    /// select, a one-hour power pause and its end as buttons, and whether it is paused.
    func heatPump(state: String, caps: Set<String>, uid: (String) -> String, set: (String) -> JSONValue, into cmps: inout [String: JSONValue]) {
        cmps[uid("power")] = [
            "p": "sensor", "unique_id": .string(uid("power")), "name": "Power", "state_topic": .string(state),
            "value_template": "{{ value_json.power_w }}", "device_class": "power", "unit_of_measurement": "W", "state_class": "measurement",
        ]
        for (key, name) in [("outdoor", "Outdoor temperature"), ("indoor", "Indoor temperature"), ("outlet", "Flow temperature"),
                            ("inlet", "Return temperature"), ("dhw", "Hot water temperature")] {
            // A missing sensor is null in the state; it renders "None", which Home Assistant shows as unknown.
            cmps[uid("temp_\(key)")] = [
                "p": "sensor", "unique_id": .string(uid("temp_\(key)")), "name": .string(name), "state_topic": .string(state),
                "value_template": .string("{{ value_json.temperatures.\(key) }}"), "device_class": "temperature",
                "unit_of_measurement": "°C", "state_class": "measurement",
            ]
        }
        cmps[uid("optimization")] = [
            "p": "switch", "unique_id": .string(uid("optimization")), "name": "Smart optimisation", "state_topic": .string(state),
            "value_template": "{{ 'ON' if value_json.optimization.active else 'OFF' }}", "state_on": "ON", "state_off": "OFF",
            "command_topic": set("optimization"), "payload_on": #"{"active": true}"#, "payload_off": #"{"active": false}"#,
        ]
        cmps[uid("optimization_level")] = [
            "p": "select", "unique_id": .string(uid("optimization_level")), "name": "Optimisation level", "state_topic": .string(state),
            "value_template": "{{ value_json.optimization.level }}", "options": ["Low", "Mid", "Max"],
            "command_topic": set("optimization"), "command_template": #"{"level": "{{ value }}"}"#,
        ]
        if caps.contains("pause") {
            cmps[uid("pause_1h")] = [
                "p": "button", "unique_id": .string(uid("pause_1h")), "name": "Pause 1 h", "command_topic": set("pause"),
                "payload_press": #"{"duration_min": 60}"#,
            ]
            cmps[uid("pause_end")] = [
                "p": "button", "unique_id": .string(uid("pause_end")), "name": "End pause", "command_topic": set("pause"),
                "payload_press": #"{"action": "stop"}"#,
            ]
            cmps[uid("paused")] = [
                "p": "binary_sensor", "unique_id": .string(uid("paused")), "name": "Paused", "state_topic": .string(state),
                "value_template": "{{ 'ON' if value_json.pause.active else 'OFF' }}",
            ]
        }
    }
}

extension String {
    fileprivate func replacingSlashes() -> String { String(map { $0 == "/" ? "_" : $0 }) }
    fileprivate var capitalized: String { prefix(1).uppercased() + dropFirst() }
}

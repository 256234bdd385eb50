import HeatbridgeCore

/// What a Bosch gateway's nodes offer a front end: a thermostat per heating circuit (with its auto-mode
/// program), a water heater per DHW circuit (with charging), and the system node's clock and silent mode.
extension BoschAdapter {
    /// DHW modes as Home Assistant names them ↔ the node's `operation_mode`.
    static let dhwFrontModes: [(front: String, device: String)] = [
        ("off", "off"), ("eco", "eco"), ("low", "low"), ("performance", "high"),
        ("auto", "auto"),
    ]

    /// The brand on the gateway (Buderus, Bosch, …), from the gateway list.
    public func frontEndName(_ device: DeviceSnapshot) -> FrontEndName {
        let brand =
            device.attributes["brand"]?.stringValue.flatMap { $0.isEmpty ? nil : $0.prefix(1).uppercased() + $0.dropFirst().lowercased() } ?? "Bosch"
        return FrontEndName(manufacturer: brand, name: "\(brand) \(device.model ?? "gateway") \(device.vendorId)")
    }

    public func exposes(node: String, state: JSONValue, capabilities caps: Set<String>) -> [Expose] {
        switch BoschNode(node) {
        case .heatingCircuit(let n)?:
            // Home Assistant's modes auto/heat/off are the circuit's auto/manual/off.
            let modes = Expose.Modes(
                field: "operation_mode", pairs: [.init("auto", "auto"), .init("heat", "manual"), .init("off", "off")],
                fallback: "auto", capability: "mode", param: "mode")
            // The target follows the program in auto (its level now) and is set with `target`, which changes that
            // level in auto and the manual setpoint in manual: what Home Assistant shows is what the circuit does.
            var out: [Expose] = [
                .thermostat(
                    .init(
                        id: "climate", name: "Heating circuit \(n)", currentField: "room_temperature", targetField: "setpoint",
                        min: BoschWire.roomSetpointRange.lowerBound, max: BoschWire.roomSetpointRange.upperBound, step: 0.5,
                        modes: caps.contains("mode") ? modes : nil, setTarget: caps.contains("target") ? ("target", "temperature") : nil,
                        programMode: "auto"))
            ]
            if state["flow_temperature"]?.doubleValue != nil {
                out.append(
                    .sensor(
                        .init(
                            id: "flow_temperature", name: "Heating circuit \(n) flow temperature", field: "flow_temperature", unit: "°C",
                            deviceClass: "temperature", measurement: true)))
            }
            if caps.contains("program"), state["time_program"]?.stringValue != nil {
                out.append(
                    .choice(
                        id: "program", name: "Heating circuit \(n) time program", field: "time_program",
                        options: BoschWire.heatingProgramIds, capability: "program", param: "program", category: .config))
            }
            return out
        case .dhwCircuit(let n)?:
            // Every mode one to one: Home Assistant's own names where one means the same (off, eco = Eco+,
            // performance = Comfort), the device's where none does (low = Eco, auto = its own program).
            let modes = Expose.Modes(
                field: "operation_mode", pairs: Self.dhwFrontModes.map { .init($0.front, $0.device) },
                fallback: "auto", capability: "mode", param: "mode")
            var out: [Expose] = [
                .waterHeater(
                    .init(
                        id: "water_heater", name: "Hot water \(n)", currentField: "temperature",
                        min: BoschWire.dhwSetpointRange.lowerBound, max: BoschWire.dhwSetpointRange.upperBound,
                        modes: caps.contains("mode") ? modes : nil, targetField: "target", programMode: "auto",
                        setTarget: caps.contains("target") ? .init(capability: "target", param: "temperature") : nil,
                        power: caps.contains("mode") ? .init(capability: "mode", on: #"{"mode": "auto"}"#, off: #"{"mode": "off"}"#) : nil))
            ]
            if caps.contains("charge") {
                out.append(.action(id: "charge", name: "Charge hot water now", capability: "charge", payload: #"{"action": "start"}"#))
                out.append(.binary(id: "charging", name: "Hot water charging", field: "charge.active", deviceClass: "running"))
            }
            return out
        case .heatSource(let hs)?:
            return Self.heatSourceExposes(state, label: hs.isEmpty ? "Heat pump" : "Heat source \(hs)", meterCovers: hs.isEmpty)
        case .system?:
            var out: [Expose] = Self.pushedSystemExposes(state)
            guard caps.contains("date-time") else { return out }
            if caps.contains("silent-mode"), state["silent_mode"]?.stringValue != nil {
                // Off first, as a front end lists a feature's choices.
                let modes = BoschWire.silentModes.map { $0.lowercased() }
                out.append(
                    .choice(
                        id: "silent_mode", name: "Silent mode", field: "silent_mode",
                        options: modes.filter { $0 == "off" } + modes.filter { $0 != "off" }, capability: "silent-mode", param: "mode"))
            }
            out.append(
                .sensor(
                    .init(
                        id: "clock_offset", name: "Gateway clock offset", field: "clock_offset_s", unit: "s", deviceClass: "duration",
                        category: .diagnostic)))
            out.append(
                .action(
                    id: "clock_sync", name: "Set gateway clock to the box's time", capability: "date-time", payload: #"{"sync": true}"#,
                    category: .config))
            if caps.contains("detect") {
                out.append(.action(id: "detect", name: "Detect components", capability: "detect", payload: "{}", category: .diagnostic))
            }
            return out
        case nil:
            return []
        }
    }
}

extension BoschAdapter {
    /// Energy counters of a heat source: (field, name). The energy dashboard takes each as it is (kWh, energy,
    /// total_increasing); the totals are monotonic (`MonotonicCounter`).
    static let energyFields: [(String, String)] = [
        ("consumed_kwh", "electricity consumed"), ("supplied_kwh", "heat supplied"),
        ("compressor_heating_kwh", "compressor electricity, heating"), ("compressor_dhw_kwh", "compressor electricity, hot water"),
        ("compressor_cooling_kwh", "compressor electricity, cooling"), ("compressor_pool_kwh", "compressor electricity, pool"),
        ("eheater_heating_kwh", "electric heater, heating"), ("eheater_dhw_kwh", "electric heater, hot water"),
    ]

    static let dailyNames: [(String, String, String?)] = [
        ("compressor_starts_heating", "compressor starts yesterday, heating", nil),
        ("compressor_starts_dhw", "compressor starts yesterday, hot water", nil),
        ("compressor_starts_cooling", "compressor starts yesterday, cooling", nil),
        ("compressor_starts_pool", "compressor starts yesterday, pool", nil),
        ("water_pressure_min", "water pressure yesterday, min", "bar"), ("water_pressure_max", "water pressure yesterday, max", "bar"),
        ("water_pressure_mean", "water pressure yesterday, mean", "bar"),
    ]

    /// What push events put in a heat source node, for each value it has: power (W), energy (kWh), running, speed,
    /// and the daily aggregates as diagnostics. The system's own node (`heatpump`) leaves power and energy to the
    /// device's meter (`BoschAdapter+Energy.swift`): one sensor per value in Home Assistant, not two.
    static func heatSourceExposes(_ state: JSONValue, label: String, meterCovers: Bool) -> [Expose] {
        var out: [Expose] = []
        for (part, name) in [("compressor", "compressor"), ("eheater", "electric heater")] {
            if !meterCovers, state[part]?["power_w"]?.doubleValue != nil {
                out.append(
                    .sensor(
                        .init(
                            id: "\(part)_power", name: "\(label) \(name) power", field: "\(part).power_w", unit: "W",
                            deviceClass: "power", measurement: true)))
            }
            if state[part]?["running"]?.boolValue != nil {
                out.append(.binary(id: "\(part)_running", name: "\(label) \(name) running", field: "\(part).running", deviceClass: "running"))
            }
        }
        if state["compressor"]?["speed"]?.doubleValue != nil {
            out.append(.sensor(.init(id: "compressor_speed", name: "\(label) compressor speed", field: "compressor.speed", measurement: true)))
        }
        for (group, suffix) in [("energy", ""), ("energy_lowres", " (low resolution)")] where !meterCovers {
            for (field, name) in energyFields where state[group]?[field]?.doubleValue != nil {
                out.append(
                    .sensor(
                        .init(
                            id: "\(group)_\(field)", name: "\(label) \(name)\(suffix)", field: "\(group).\(field)", unit: "kWh",
                            deviceClass: "energy", stateClass: .totalIncreasing)))
            }
        }
        for (field, name, unit) in dailyNames where state["daily"]?[field]?["value"]?.doubleValue != nil {
            out.append(
                .sensor(
                    .init(
                        id: "daily_\(field)", name: "\(label) \(name)", field: "daily.\(field).value", unit: unit,
                        deviceClass: unit == nil ? nil : "pressure", stateClass: .measurement, category: .diagnostic)))
        }
        return out
    }

    /// The system node's pushed values: outdoor temperature, the fault (a problem sensor and its text).
    static func pushedSystemExposes(_ state: JSONValue) -> [Expose] {
        var out: [Expose] = []
        if state["outdoor_temperature"]?.doubleValue != nil {
            out.append(
                .sensor(
                    .init(
                        id: "outdoor_temperature", name: "Outdoor temperature", field: "outdoor_temperature", unit: "°C",
                        deviceClass: "temperature", measurement: true)))
        }
        if state["fault"]?["active"]?.boolValue != nil {
            out.append(.binary(id: "fault", name: "Fault", field: "fault.active", deviceClass: "problem"))
            out.append(.sensor(.init(id: "fault_text", name: "Fault", field: "fault.summary", category: .diagnostic)))
        }
        return out
    }
}

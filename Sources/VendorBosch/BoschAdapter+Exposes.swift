import HeatbridgeCore

/// What a Bosch gateway's nodes offer a front end: a thermostat per heating circuit (with its auto-mode
/// program), a water heater per DHW circuit (with charging), and the system node's clock and silent mode.
extension BoschAdapter {
    /// DHW modes as Home Assistant names them ↔ the node's `operation_mode`.
    static let dhwFrontModes: [(front: String, device: String)] = [("off", "off"), ("eco", "eco"), ("low", "low"), ("performance", "high"),
                                                                    ("auto", "auto")]

    /// The brand on the gateway (Buderus, Bosch, …), from the gateway list.
    public func frontEndName(_ device: DeviceSnapshot) -> FrontEndName {
        let brand = device.attributes["brand"]?.stringValue.flatMap { $0.isEmpty ? nil : $0.prefix(1).uppercased() + $0.dropFirst().lowercased() } ?? "Bosch"
        return FrontEndName(manufacturer: brand, name: "\(brand) \(device.model ?? "gateway") \(device.vendorId)")
    }

    public func exposes(node: String, state: JSONValue, capabilities caps: Set<String>) -> [Expose] {
        switch BoschNode(node) {
        case .heatingCircuit(let n)?:
            // Home Assistant's modes auto/heat/off are the circuit's auto/manual/off.
            let modes = Expose.Modes(field: "operation_mode", pairs: [.init("auto", "auto"), .init("heat", "manual"), .init("off", "off")],
                                     fallback: "auto", capability: "mode", param: "mode")
            // The target follows the program in auto (its level now) and is set with `target`, which changes that
            // level in auto and the manual setpoint in manual: what Home Assistant shows is what the circuit does.
            var out: [Expose] = [.thermostat(.init(
                id: "climate", name: "Heating circuit \(n)", currentField: "room_temperature", targetField: "setpoint",
                min: BoschWire.roomSetpointRange.lowerBound, max: BoschWire.roomSetpointRange.upperBound, step: 0.5,
                modes: caps.contains("mode") ? modes : nil, setTarget: caps.contains("target") ? ("target", "temperature") : nil,
                programMode: "auto"))]
            if caps.contains("program"), state["time_program"]?.stringValue != nil {
                out.append(.choice(id: "program", name: "Heating circuit \(n) time program", field: "time_program",
                                   options: BoschWire.heatingProgramIds, capability: "program", param: "program", category: .config))
            }
            return out
        case .dhwCircuit(let n)?:
            // Every mode one to one: Home Assistant's own names where one means the same (off, eco = Eco+,
            // performance = Comfort), the device's where none does (low = Eco, auto = its own program).
            let modes = Expose.Modes(field: "operation_mode", pairs: Self.dhwFrontModes.map { .init($0.front, $0.device) },
                                     fallback: "auto", capability: "mode", param: "mode")
            var out: [Expose] = [.waterHeater(.init(
                id: "water_heater", name: "Hot water \(n)", currentField: "temperature",
                min: BoschWire.dhwSetpointRange.lowerBound, max: BoschWire.dhwSetpointRange.upperBound,
                modes: caps.contains("mode") ? modes : nil, targetField: "target", programMode: "auto",
                setTarget: caps.contains("target") ? .init(capability: "target", param: "temperature") : nil,
                power: caps.contains("mode") ? .init(capability: "mode", on: #"{"mode": "auto"}"#, off: #"{"mode": "off"}"#) : nil))]
            if caps.contains("charge") {
                out.append(.action(id: "charge", name: "Charge hot water now", capability: "charge", payload: #"{"action": "start"}"#))
                out.append(.binary(id: "charging", name: "Hot water charging", field: "charge.active", deviceClass: "running"))
            }
            return out
        case .system?:
            guard caps.contains("date-time") else { return [] }
            var out: [Expose] = []
            if caps.contains("silent-mode"), state["silent_mode"]?.stringValue != nil {
                // Off first, as a front end lists a feature's choices.
                let modes = BoschWire.silentModes.map { $0.lowercased() }
                out.append(.choice(id: "silent_mode", name: "Silent mode", field: "silent_mode",
                                   options: modes.filter { $0 == "off" } + modes.filter { $0 != "off" }, capability: "silent-mode", param: "mode"))
            }
            out.append(.sensor(.init(id: "clock_offset", name: "Gateway clock offset", field: "clock_offset_s", unit: "s", deviceClass: "duration",
                                     category: .diagnostic)))
            out.append(.action(id: "clock_sync", name: "Set gateway clock to the box's time", capability: "date-time", payload: #"{"sync": true}"#,
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

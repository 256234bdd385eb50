import HeatbridgeCore

/// What a Bosch gateway's nodes offer a front end: a thermostat per heating circuit (with its auto-mode
/// program), a water heater per DHW circuit (with charging), and the system node's clock and silent mode.
extension BoschAdapter {
    public func exposes(node: String, state: JSONValue, capabilities caps: Set<String>) -> [Expose] {
        switch BoschNode(node) {
        case .heatingCircuit(let n)?:
            // Home Assistant's modes auto/heat/off are the circuit's auto/manual/off.
            let modes = Expose.Modes(field: "operation_mode", pairs: [.init("auto", "auto"), .init("heat", "manual"), .init("off", "off")],
                                     fallback: "auto", capability: "mode", param: "mode")
            var out: [Expose] = [.thermostat(.init(
                id: "climate", name: "Heating circuit \(n)", currentField: "room_temperature", targetField: "setpoint",
                min: BoschWire.roomSetpointRange.lowerBound, max: BoschWire.roomSetpointRange.upperBound, step: 0.5,
                modes: caps.contains("mode") ? modes : nil, setTarget: caps.contains("setpoint") ? ("setpoint", "setpoint") : nil))]
            if caps.contains("program"), state["time_program"]?.stringValue != nil {
                out.append(.choice(id: "program", name: "Heating circuit \(n) time program", field: "time_program",
                                   options: BoschWire.heatingProgramIds, capability: "program", param: "program", category: .config))
            }
            return out
        case .dhwCircuit(let n)?:
            // Only the levels with a Home Assistant counterpart: off, eco (Eco+), performance (Comfort).
            let modes = Expose.Modes(field: "operation_mode", pairs: [.init("off", "off"), .init("eco", "eco"), .init("performance", "high")],
                                     fallback: "eco", capability: "mode", param: "mode")
            var out: [Expose] = [.waterHeater(.init(id: "water_heater", name: "Hot water \(n)", currentField: "temperature", min: 30, max: 65,
                                                    modes: caps.contains("mode") ? modes : nil))]
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

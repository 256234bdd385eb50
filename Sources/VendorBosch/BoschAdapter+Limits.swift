import HeatbridgeCore

/// What Bosch commands and DHW states mean for the installer's limits.
extension BoschAdapter {
    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts {
        var f = CommandFacts()
        if capability == "setpoint", let v = params["setpoint"]?.doubleValue { f.setpoints = [.init("setpoint", v)] }
        // A heating target is a room setpoint whichever setting it lands in (the manual setpoint or a level).
        if capability == "target", !node.hasPrefix(BoschNode.dhwPrefix), let v = params["temperature"]?.doubleValue {
            f.setpoints = [.init("setpoint", v)]
        }
        guard node.hasPrefix(BoschNode.dhwPrefix) else { return f }
        switch capability {
        case "target": f.hotWaterTarget = params["temperature"]?.doubleValue
        case "mode": if params["mode"]?.stringValue?.lowercased() == "off" { f.hotWaterTarget = 0 }
        case "setpoint": f.hotWaterTarget = params["stop"]?.doubleValue
        case "charge": if params["action"]?.stringValue == "stop" { f.hotWaterTarget = 0 }
        default: break
        }
        return f
    }

    /// A DHW circuit heats to the stop temperature of its active level; `off` is 0.
    public func hotWaterTarget(node: String, state: JSONValue) -> Double? {
        guard node.hasPrefix(BoschNode.dhwPrefix) else { return nil }
        guard let mode = state["operation_mode"]?.stringValue else { return .infinity }
        if mode == "off" { return 0 }
        return state["levels"]?[mode]?["stop"]?.doubleValue ?? .infinity
    }
}

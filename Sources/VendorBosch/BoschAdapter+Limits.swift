import HeatbridgeCore

/// What a DHW circuit's state means for the installer's limits (what each command means is its handler's `facts`).
extension BoschAdapter {
    /// A DHW circuit heats to the stop temperature of its active level; `off` is 0.
    public func hotWaterTarget(node: String, state: JSONValue) -> Double? {
        guard node.hasPrefix(BoschNode.dhwPrefix) else { return nil }
        guard let mode = state["operation_mode"]?.stringValue else { return .infinity }
        if mode == "off" { return 0 }
        return state["levels"]?[mode]?["stop"]?.doubleValue ?? .infinity
    }
}

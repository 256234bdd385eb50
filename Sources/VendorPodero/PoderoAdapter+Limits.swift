import HeatbridgeCore

/// What Podero commands mean for the installer's limits: the comfort band's ends are room setpoints.
extension PoderoAdapter {
    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts {
        guard capability == "comfort" else { return CommandFacts() }
        return CommandFacts(setpoints: ["min", "max"].compactMap { k in params[k]?.doubleValue.map { .init(k, $0) } })
    }
}

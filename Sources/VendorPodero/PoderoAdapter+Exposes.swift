import HeatbridgeCore

/// What a Podero heat pump (node `hp`) offers a front end: temperatures, smart optimisation as a switch and a level
/// choice, a one-hour power pause and its end, and whether it is paused. Power and energy are the device's meter
/// (announced by the bridge from `meterLayout`).
extension PoderoAdapter {
    public func exposes(node: String, state: JSONValue, capabilities caps: Set<String>) -> [Expose] {
        guard node == Self.node, caps.contains("optimization") else { return [] }
        var out: [Expose] = []
        for (key, name) in [
            ("outdoor", "Outdoor temperature"), ("indoor", "Indoor temperature"), ("outlet", "Flow temperature"),
            ("inlet", "Return temperature"), ("dhw", "Hot water temperature"),
        ] {
            // A missing sensor is null in the state; a front end shows it as unknown.
            out.append(
                .sensor(
                    .init(
                        id: "temp_\(key)", name: name, field: "temperatures.\(key)", unit: "°C", deviceClass: "temperature",
                        measurement: true)))
        }
        out.append(
            .toggle(
                id: "optimization", name: "Smart optimisation", field: "optimization.active", capability: "optimization",
                on: #"{"active": true}"#, off: #"{"active": false}"#))
        out.append(
            .choice(
                id: "optimization_level", name: "Optimisation level", field: "optimization.level",
                options: PoderoWire.optimizationLevels.map { $0.lowercased() },
                capability: "optimization", param: "level"))
        if caps.contains("pause") {
            out.append(.action(id: "pause_1h", name: "Pause 1 h", capability: "pause", payload: #"{"duration_min": 60}"#))
            out.append(.action(id: "pause_end", name: "End pause", capability: "pause", payload: #"{"action": "stop"}"#))
            out.append(.binary(id: "paused", name: "Paused", field: "pause.active"))
        }
        return out
    }
}

extension PoderoAdapter {
    /// A heat pump by its maker and model with the first block of its UUID (`Vaillant aroTHERM plus 3b1f6c2e`),
    /// not by the whole UUID; made by its manufacturer, bridged through Podero.
    public func frontEndName(_ device: DeviceSnapshot) -> FrontEndName {
        let short = device.vendorId.split(separator: "-").first.map(String.init) ?? device.vendorId
        let maker = device.attributes["manufacturer"]?.stringValue ?? "Podero"
        return FrontEndName(manufacturer: maker, name: "\(device.model ?? "Heat pump") \(short)")
    }
}

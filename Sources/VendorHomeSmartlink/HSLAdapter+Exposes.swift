import HeatbridgeCore

/// What a HomeSmartlink room offers a front end: measured temperature and setpoint, whether a derogation is
/// active, and one action per installer preset of a derogation.
extension HSLAdapter {
    public func exposes(node: String, state: JSONValue, capabilities caps: Set<String>) -> [Expose] {
        guard node.hasPrefix(Self.roomPrefix) else { return [] }
        let label = state["name"]?.stringValue.map { $0.isEmpty ? node : $0 } ?? node
        var out: [Expose] = [
            .sensor(
                .init(
                    id: "temperature", name: "\(label) temperature", field: "temperature", unit: "°C", deviceClass: "temperature",
                    measurement: true)),
            .sensor(.init(id: "setpoint", name: "\(label) setpoint", field: "setpoint", unit: "°C", deviceClass: "temperature")),
        ]
        if caps.contains("derogation") {
            out.append(.binary(id: "derogation_active", name: "\(label) derogation active", field: "derogation.active"))
            out.append(.presets(capability: "derogation", label: label))
        }
        return out
    }
}

extension HSLAdapter {
    /// HomeSmartlink spelled as the vendor spells it; homes are known by their id.
    public func frontEndName(_ device: DeviceSnapshot) -> FrontEndName {
        FrontEndName(manufacturer: "HomeSmartlink", name: "HomeSmartlink home \(device.vendorId)")
    }
}

import HeatbridgeCore

/// Bosch's meter, from what push events put in the `heatpump` node (the system's energy monitor, `hvac.emon.*`):
/// the appliance's own counters, so every value is `measured`. Heat sources of a cascade (`hs<N>`) keep their own
/// values in their nodes; the meter is the system's.
///
/// | meter | from |
/// |---|---|
/// | power | `compressor.power_w` + `eheater.power_w` |
/// | `electricity_total` | `energy.consumed_kwh` (`energy_lowres.…` when only that comes) |
/// | `heat_total` | `energy.supplied_kwh` |
/// | `electricity_<use>` | `compressor_<use>_kwh` + `eheater_<use>_kwh` |
extension BoschAdapter: EnergyMetering {
    static let uses: [EnergyUse] = [.heating, .dhw, .cooling, .pool]

    public func meterLayout(_ device: DeviceSnapshot) -> MeterLayout {
        let readings = meterReadings(device)
        return MeterLayout(power: readings.contains { $0.key == nil }, counters: readings.compactMap(\.key))
    }

    public func meterReadings(_ device: DeviceSnapshot) -> [MeterReading] {
        guard let hp = device.nodes[BoschNode.heatPumpId] else { return [] }
        let at = hp["pushed_at"]?.stringValue.flatMap(Timestamp.parse) ?? 0
        func counter(_ field: String) -> Double? { (hp["energy"]?[field] ?? hp["energy_lowres"]?[field])?.doubleValue }
        func sum(_ values: [Double?]) -> Double? {
            let present = values.compactMap { $0 }
            return present.isEmpty ? nil : present.reduce(0, +)
        }
        var out: [MeterReading] = []
        if let w = sum([hp["compressor"]?["power_w"]?.doubleValue, hp["eheater"]?["power_w"]?.doubleValue]) {
            out.append(.power(w, source: .measured, at: at))
        }
        if let v = counter("consumed_kwh") { out.append(MeterReading(key: .electricityTotal, value: .counter(v), source: .measured, at: at)) }
        if let v = counter("supplied_kwh") { out.append(MeterReading(key: .heatTotal, value: .counter(v), source: .measured, at: at)) }
        for use in Self.uses {
            if let v = sum([counter("compressor_\(use.rawValue)_kwh"), counter("eheater_\(use.rawValue)_kwh")]) {
                out.append(MeterReading(key: MeterKey(.electricity, use), value: .counter(v), source: .measured, at: at))
            }
        }
        return out
    }
}

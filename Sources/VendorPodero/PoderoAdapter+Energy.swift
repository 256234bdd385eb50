import HeatbridgeCore

/// Podero's energy: the power it samples from the manufacturer's cloud every 5–15 min (`current_power_consumption_w`)
/// and the consumption of each day from `/statistics` (`resolution=1DAY`, `consumption.total` in Wh [pub]).
/// Both are the cloud's figures, not an electricity meter's: the power is the heat pump's own report (measured),
/// the day amounts are Podero's sums of those samples (estimated). Podero reports no heat supplied, so there is
/// no efficiency.
extension PoderoAdapter: EnergyStatistics {
    static let layout = MeterLayout(power: true, counters: [.electricityTotal])

    public func meterLayout(_ device: DeviceSnapshot) -> MeterLayout { Self.layout }

    public func meterReadings(_ device: DeviceSnapshot) -> [MeterReading] {
        guard let hp = device.nodes[Self.node], let w = hp["power_w"]?.doubleValue else { return [] }
        let at = hp["state_updated_at"]?.stringValue.flatMap(Timestamp.parse) ?? clock.now()
        return [.power(w, source: .measured, at: at)]
    }

    /// Once an hour: the last days as the cloud has them now (today's so far, yesterday's perhaps revised).
    public var statisticsIntervalS: Double { 3600 }

    public func readEnergyStatistics(_ device: DeviceSnapshot) async throws(CloudError) -> [MeterReading] {
        guard let owner = device.attributes["owner_id"]?.stringValue else { return [] }
        let path =
            PoderoWire.Path.statistics(client.orgId, owner, device.vendorId)
            + PoderoWire.Statistics.query(resolutions: ["1DAY"], keywords: [PoderoWire.Statistics.consumption])
        let answer = try await client.request("GET", path)
        return Self.dayReadings(answer, now: clock.now())
    }

    /// Each `1DAY` row with a period and a consumption → one period reading in kWh. A row without them is left out
    /// (a day the cloud has no figure for yet is a gap, not a zero).
    static func dayReadings(_ answer: JSONValue, now: EpochSeconds) -> [MeterReading] {
        typealias S = PoderoWire.Statistics
        let unit = answer[S.metadata]?["units"]?[S.consumption]?.stringValue?.lowercased() ?? "wh"
        let divisor = unit == "kwh" ? 1.0 : 1000
        let at = answer[S.metadata]?["requested_at"]?.stringValue.flatMap(Timestamp.parse) ?? now
        return (answer[S.data]?.arrayValue ?? []).compactMap { row -> MeterReading? in
            guard (row[S.resolution]?.stringValue ?? "1DAY") == "1DAY",
                let start = row[S.period]?[S.startPeriod]?.stringValue.flatMap(Timestamp.parse),
                let end = row[S.period]?[S.endPeriod]?.stringValue.flatMap(Timestamp.parse), end > start,
                let wh = row[S.consumption]?[S.total]?.doubleValue, wh.isFinite, wh >= 0
            else { return nil }
            return MeterReading(
                key: .electricityTotal, value: .period(start: start, end: end, kwh: wh / divisor), source: .estimated, at: min(at, now))
        }
    }
}

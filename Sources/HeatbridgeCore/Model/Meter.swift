/// The neutral meter: what a heat pump draws now and what it used and supplied, whatever the vendor. Vendors
/// turn their own fields into `MeterReading`s; `EnergyBook` turns readings into totals that only go up and
/// hourly buckets; the device's state carries it as `meter` (README, "Energy").

/// Which way energy flows: electricity the heat pump used, heat it supplied.
public enum EnergyDirection: String, Sendable, Equatable, CaseIterable {
    case electricity, heat
}

/// What the energy was for. `total` is the whole appliance; the others are the parts a vendor reports.
public enum EnergyUse: String, Sendable, Equatable, CaseIterable {
    case total, heating, dhw, cooling, pool
}

/// One energy counter of a device: `electricity_total`, `heat_dhw`, … (the id on MQTT and in the store).
public struct MeterKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var direction: EnergyDirection
    public var use: EnergyUse

    public init(_ direction: EnergyDirection, _ use: EnergyUse) {
        self.direction = direction
        self.use = use
    }

    /// `electricity_total`.
    public init?(id: String) {
        guard let sep = id.firstIndex(of: "_"), let d = EnergyDirection(rawValue: String(id[..<sep])),
            let u = EnergyUse(rawValue: String(id[id.index(after: sep)...]))
        else { return nil }
        self.init(d, u)
    }

    public var id: String { direction.rawValue + "_" + use.rawValue }
    public var description: String { id }

    public static func < (a: Self, b: Self) -> Bool {
        (EnergyDirection.allCases.firstIndex(of: a.direction)!, EnergyUse.allCases.firstIndex(of: a.use)!)
            < (EnergyDirection.allCases.firstIndex(of: b.direction)!, EnergyUse.allCases.firstIndex(of: b.use)!)
    }

    public static let electricityTotal = MeterKey(.electricity, .total)
    public static let heatTotal = MeterKey(.heat, .total)
}

/// Where a value comes from: the appliance's own meter, or a cloud's estimate (sampled power, a model).
public enum MeterSource: String, Sendable, Equatable {
    case measured, estimated
}

/// One value a vendor read about a device's energy.
public struct MeterReading: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        /// Power drawn now, in W.
        case power(Double)
        /// A lifetime counter in kWh as the vendor keeps it: it may restart at zero (an appliance reset) or
        /// wobble back a little (rounding); the book keeps the total monotonic.
        case counter(Double)
        /// The energy used in one period (a day), in kWh, as a cloud's statistics report it. The same period may
        /// come again, also with a revised amount; only the difference counts.
        case period(start: EpochSeconds, end: EpochSeconds, kwh: Double)
    }

    /// The counter this reading is for; nil for power.
    public var key: MeterKey?
    public var value: Value
    public var source: MeterSource
    /// When the vendor says the value was measured.
    public var at: EpochSeconds

    public init(key: MeterKey?, value: Value, source: MeterSource, at: EpochSeconds) {
        self.key = key
        self.value = value
        self.source = source
        self.at = at
    }

    public static func power(_ w: Double, source: MeterSource, at: EpochSeconds) -> MeterReading {
        MeterReading(key: nil, value: .power(w), source: source, at: at)
    }
}

/// What meter a device has, known before its first reading: Home Assistant's sensors are announced from it.
public struct MeterLayout: Sendable, Equatable {
    public var power: Bool
    public var counters: [MeterKey]

    public init(power: Bool, counters: [MeterKey]) {
        self.power = power
        self.counters = counters
    }

    public var isEmpty: Bool { !power && counters.isEmpty }
    /// The day's efficiency (heat supplied per kWh of electricity) exists where both totals do.
    public var hasEfficiency: Bool { counters.contains(.electricityTotal) && counters.contains(.heatTotal) }
}

/// A vendor adapter whose devices have a meter.
public protocol EnergyMetering: VendorAdapter {
    /// The meter a device has (may grow once the first events arrive).
    func meterLayout(_ device: DeviceSnapshot) -> MeterLayout
    /// The readings in a device's current state (polled and pushed values merged). Called after every change;
    /// a reading the book already has changes nothing.
    func meterReadings(_ device: DeviceSnapshot) -> [MeterReading]
}

/// A vendor whose cloud reports per-period energy on request (a statistics endpoint): read at the lowest
/// priority, every `statisticsIntervalS`, inside the account's rate budget.
public protocol EnergyStatistics: EnergyMetering {
    var statisticsIntervalS: Double { get }
    /// Reads the recent periods of one device (`MeterReading.Value.period`).
    func readEnergyStatistics(_ device: DeviceSnapshot) async throws(CloudError) -> [MeterReading]
}

extension EnergyStatistics {
    public var statisticsIntervalS: Double { 3600 }
}

/// One hour's energy of one counter, as the store keeps it (one row per device, counter and hour).
public struct EnergyBucket: Sendable, Equatable {
    public var device: String
    public var meter: String
    /// Hours since 1970-01-01T00:00Z.
    public var hour: Int64
    public var kwh: Double

    public init(device: String, meter: String, hour: Int64, kwh: Double) {
        self.device = device
        self.meter = meter
        self.hour = hour
        self.kwh = kwh
    }

    public var start: EpochSeconds { Double(hour) * 3600 }

    public var json: JSONValue {
        ["meter": .string(meter), "start": .string(Timestamp.iso8601(start)), "kwh": .number(EnergyHistory.round(kwh))]
    }
}

/// The history request (`<device>/energy/history/set`) and `heatbridge energy`: the range, checked.
public enum EnergyHistory {
    /// The pseudo node and capability of the request on the command path.
    public static let node = "energy"
    public static let capability = "history"
    /// How long hourly buckets are kept.
    public static let retentionDays: Int64 = 400
    /// The widest range one request may cover (hours): 31 days, at most 744 rows per counter.
    public static let maxHours: Int64 = 744

    /// `from`/`to` (ISO 8601 UTC, `to` exclusive) → hour range; the default is the last 24 hours.
    public static func range(_ body: [String: JSONValue], now: EpochSeconds) throws(CommandRejection) -> (from: Int64, to: Int64) {
        for k in body.keys where k != "from" && k != "to" && k != "meter" {
            throw CommandRejection(.invalidPayload, "unknown member \"\(k)\"; a history request takes \"from\", \"to\" and \"meter\"")
        }
        func time(_ k: String) throws(CommandRejection) -> EpochSeconds? {
            guard let v = body[k] else { return nil }
            guard let s = v.stringValue, let t = Timestamp.parse(s) ?? Timestamp.day(s).map({ Double($0) * 86_400 }) else {
                throw CommandRejection(.invalidPayload, "\"\(k)\" must be a time like \"2026-12-01T00:00:00Z\" or a day like \"2026-12-01\"")
            }
            return t
        }
        let to = try time("to") ?? (now / 3600).rounded(.up) * 3600
        let from = try time("from") ?? to - 86_400
        return try hours(from: from, to: to)
    }

    public static func hours(from: EpochSeconds, to: EpochSeconds) throws(CommandRejection) -> (from: Int64, to: Int64) {
        let f = Int64((from / 3600).rounded(.down))
        let t = Int64((to / 3600).rounded(.up))
        guard f < t else {
            throw CommandRejection(.outOfRange, "\"from\" (\(Timestamp.iso8601(from))) must be before \"to\" (\(Timestamp.iso8601(to)))")
        }
        guard t - f <= maxHours else {
            throw CommandRejection(.outOfRange, "the range covers \(t - f) hours; at most \(maxHours) (31 days) per request")
        }
        return (f, t)
    }
}

extension EnergyHistory {
    /// The answer to a history request (and `heatbridge energy --json`): per counter one kWh value per hour from
    /// `from` (null for an hour without a bucket), and the sum of each.
    public static func answer(device: String, from: Int64, to: Int64, buckets: [EnergyBucket]) -> JSONValue {
        let n = Int(max(0, to - from))
        var meters: [String: [JSONValue]] = [:]
        var totals: [String: Double] = [:]
        for b in buckets where b.hour >= from && b.hour < to {
            meters[b.meter, default: Array(repeating: .null, count: n)][Int(b.hour - from)] = .number(round(b.kwh))
            totals[b.meter, default: 0] += b.kwh
        }
        return [
            "device": .string(device), "from": .string(Timestamp.iso8601(Double(from) * 3600)),
            "to": .string(Timestamp.iso8601(Double(to) * 3600)), "resolution_s": 3600, "unit": "kWh",
            "meters": .object(meters.mapValues { .array($0) }), "totals": .object(totals.mapValues { .number(round($0)) }),
        ]
    }

    /// kWh to 4 decimals (0.1 Wh): what an hour's bucket is reported with.
    public static func round(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }
}

/// What a validated command means for the installer's safety limits, in neutral terms: the vendor adapter
/// reads its own parameter shapes (`VendorAdapter.facts`), the limits compare numbers.
public struct CommandFacts: Sendable, Equatable {
    /// Room setpoints the command asks for (°C), by the parameter that carries each, e.g. `("setpoint", 21)`
    /// or both ends of a comfort band.
    public var setpoints: [Setpoint] = []
    /// A temporary offset (derogation / load shedding): its size in whole °C and its length in minutes.
    public var offsetDelta: Int?
    public var offsetMinutes: Int?
    /// The temperature the command leaves a hot-water node heating to (0 when it switches it off); nil when
    /// the command does not lower hot water.
    public var hotWaterTarget: Double?

    public struct Setpoint: Sendable, Equatable {
        public var key: String
        public var value: Double
        public init(_ key: String, _ value: Double) {
            self.key = key
            self.value = value
        }
    }

    public init(setpoints: [Setpoint] = [], offsetDelta: Int? = nil, offsetMinutes: Int? = nil, hotWaterTarget: Double? = nil) {
        self.setpoints = setpoints
        self.offsetDelta = offsetDelta
        self.offsetMinutes = offsetMinutes
        self.hotWaterTarget = hotWaterTarget
    }
}

/// The installer's safety limits (`limits:`), checked for every command after its vendor validated it, whether it
/// came from MQTT, Home Assistant or a local trigger; and the legionella watch, which charges hot water that was
/// left off or cold for too long. Returns decisions; the bridge carries them out.
struct LimitsPolicy {
    var limits: SafetyLimits
    /// When each device last had a command accepted (`min_spacing_s`).
    private(set) var lastAcceptedAt: [String: EpochSeconds] = [:]
    /// Per hot-water node (`<device>/<node>`): since when it is off or below the threshold, and whether the
    /// bridge already charged it in this episode. Kept in the store under `legionella/<device>/<node>`.
    private(set) var lowSince: [String: (since: EpochSeconds, charged: Bool)] = [:]

    static let storagePrefix = "legionella/"

    init(limits: SafetyLimits, settings: [String: JSONValue]) {
        self.limits = limits
        for (k, v) in settings where k.hasPrefix(Self.storagePrefix) {
            if let since = v["since"]?.doubleValue {
                lowSince[String(k.dropFirst(Self.storagePrefix.count))] = (since, v["charged"]?.boolValue ?? false)
            }
        }
    }

    /// The rejection a command gets from the limits, or nil when it is within them.
    func check(device: String, node: String, facts: CommandFacts, source: CommandSource, now: EpochSeconds) -> CommandRejection? {
        let l = limits
        func f(_ v: Double) -> String { JSONValue.format(v) }
        for s in facts.setpoints {
            if let hi = l.setpointMax, s.value > hi {
                return CommandRejection(.outOfRange, "\"\(s.key)\" \(f(s.value)) °C is above limits.setpoint.max (\(f(hi)) °C)")
            }
            if let lo = l.setpointMin, s.value < lo {
                return CommandRejection(.outOfRange, "\"\(s.key)\" \(f(s.value)) °C is below limits.setpoint.min (\(f(lo)) °C)")
            }
        }
        if let max = l.derogationMaxDelta, let d = facts.offsetDelta, abs(d) > max {
            return CommandRejection(.safetyLimit, "delta \(d) °C exceeds limits.derogation.max_delta (±\(max) °C)")
        }
        if let max = l.derogationMaxMinutes, let minutes = facts.offsetMinutes, minutes > max {
            return CommandRejection(.safetyLimit, "\(minutes) min exceeds limits.derogation.max_duration_min (\(max) min)")
        }
        if let minT = l.legionellaMinTemperature, let hours = l.legionellaMaxHours, let since = lowSince[device + "/" + node]?.since,
            now - since >= hours * 3600, let target = facts.hotWaterTarget, target < minT
        {
            return CommandRejection(
                .safetyLimit,
                "hot water has been off or below \(f(minT)) °C since \(Timestamp.iso8601(since)); limits.legionella allows \(f(hours)) h")
        }
        // The bridge's own safety actions are never held back by the spacing meant for callers.
        if let spacing = l.minSpacingS, !source.isLimit, let last = lastAcceptedAt[device], now - last < spacing {
            return CommandRejection(
                .safetyLimit, "the last command for \(device) was \(f((now - last).rounded())) s ago; limits.min_spacing_s is \(f(spacing)) s")
        }
        return nil
    }

    mutating func accepted(devices: [String], now: EpochSeconds) {
        for d in devices { lastAcceptedAt[d] = now }
    }

    /// What one successful read of a device means for the legionella watch.
    struct Observation {
        /// Watch entries to persist (nil deletes one), by storage key.
        var saves: [(key: String, value: JSONValue?)] = []
        /// Hot-water nodes the bridge must charge now, with since when they were low.
        var charge: [(node: String, since: EpochSeconds)] = []
    }

    /// After each successful read: tracks since when each hot-water node is low (`hotWater` gives the temperature
    /// each heats to, 0 when off); past `max_hours` a node that can charge is charged once per episode.
    mutating func observe(
        device: String, hotWater: [(node: String, target: Double)], canCharge: (String) -> Bool,
        now: EpochSeconds
    ) -> Observation {
        var o = Observation()
        guard let minT = limits.legionellaMinTemperature, let hours = limits.legionellaMaxHours else { return o }
        for (node, target) in hotWater {
            let key = device + "/" + node
            guard target < minT else {
                if lowSince.removeValue(forKey: key) != nil { o.saves.append((Self.storagePrefix + key, nil)) }
                continue
            }
            var entry = lowSince[key] ?? (now, false)
            if lowSince[key] == nil {
                lowSince[key] = entry
                o.saves.append((Self.storagePrefix + key, ["since": .number(entry.since), "charged": false]))
            }
            if now - entry.since >= hours * 3600, !entry.charged, canCharge(node) {
                entry.charged = true
                lowSince[key] = entry
                o.saves.append((Self.storagePrefix + key, ["since": .number(entry.since), "charged": true]))
                o.charge.append((node, entry.since))
            }
        }
        return o
    }
}

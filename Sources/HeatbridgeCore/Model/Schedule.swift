/// The box's local time, injected so schedule evaluation stays pure and testable. The real one
/// (HeatbridgeSystem.GlibcLocalTime) uses glibc's tz database; FoundationEssentials has no named zones.
public protocol LocalTime: Sendable {
    /// Weekday (0 = Monday … 6 = Sunday), minute of the day and the local calendar day (days since
    /// 1970-01-01 in local time) of the instant `t`.
    func components(_ t: EpochSeconds) -> (weekday: Int, minute: Int, day: Int64)
    /// The instant of local `minute` on local calendar `day`. A time skipped by a DST change maps to the
    /// first instant after the gap; a repeated time maps to its first occurrence.
    func instant(day: Int64, minute: Int) -> EpochSeconds
}

/// A week program in the neutral format of the MQTT contract: switch points per weekday, each naming a
/// level, and the temperature of each level. Bosch switch points and HomeSmartlink comfort ranges map to it.
public struct WeekSchedule: Sendable, Equatable {
    public struct SwitchPoint: Sendable, Equatable {
        /// Minutes after local midnight, 0…1439.
        public var minute: Int
        public var level: String
        public init(minute: Int, level: String) {
            self.minute = minute
            self.level = level
        }
    }

    public static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    /// Index 0 = Monday … 6 = Sunday; each day's points sorted by minute.
    public var days: [[SwitchPoint]]
    public var levels: [String: Double]

    public init(days: [[SwitchPoint]], levels: [String: Double]) {
        precondition(days.count == 7, "a week has seven days")
        self.days = days.map { $0.sorted { $0.minute < $1.minute } }
        self.levels = levels
    }

    /// `{"days":{"mon":[{"at":"06:00","level":"comfort"}…]…},"levels":{…}}` plus `version` (a hash of the
    /// program, so an edit can say which program it was based on).
    public var json: JSONValue {
        var days: [String: JSONValue] = [:]
        for (i, points) in self.days.enumerated() {
            days[Self.dayNames[i]] = .array(points.map { ["at": .string(Self.hhmm($0.minute)), "level": .string($0.level)] })
        }
        var levels: [String: JSONValue] = [:]
        for (k, v) in self.levels { levels[k] = .number(v) }
        let body: JSONValue = ["days": .object(days), "levels": .object(levels)]
        var o = body.objectValue!
        o["version"] = .string(String(fnv1a64(Array(body.serialized.utf8)), radix: 16))
        return .object(o)
    }

    /// Reads the neutral JSON back (the cache stores it so).
    public init?(json: JSONValue) {
        guard let d = json["days"]?.objectValue, let l = json["levels"]?.objectValue else { return nil }
        var days: [[SwitchPoint]] = Array(repeating: [], count: 7)
        for (i, name) in Self.dayNames.enumerated() {
            for p in d[name]?.arrayValue ?? [] {
                guard let at = p["at"]?.stringValue.flatMap(Self.minutes), let level = p["level"]?.stringValue else { return nil }
                days[i].append(SwitchPoint(minute: at, level: level))
            }
        }
        var levels: [String: Double] = [:]
        for (k, v) in l { if let n = v.doubleValue { levels[k] = n } }
        self.init(days: days, levels: levels)
    }

    /// What the program says at `t`: the level in force, its setpoint and the next switch point.
    public func now(at t: EpochSeconds, in tz: any LocalTime) -> (level: String, setpoint: Double?, next: (at: EpochSeconds, level: String)?)? {
        guard days.contains(where: { !$0.isEmpty }) else { return nil }
        let c = tz.components(t)
        // The level in force is the last switch point at or before now, looking back up to a week.
        var current: String?
        for back in 0...7 {
            let weekday = ((c.weekday - back) % 7 + 7) % 7
            let points = days[weekday].filter { back > 0 || tz.instant(day: c.day, minute: $0.minute) <= t }
            if let last = points.last {
                current = last.level
                break
            }
        }
        var next: (EpochSeconds, String)?
        search: for ahead in 0...7 {
            let weekday = (c.weekday + ahead) % 7
            for p in days[weekday] {
                let at = tz.instant(day: c.day + Int64(ahead), minute: p.minute)
                if at > t {
                    next = (at, p.level)
                    break search
                }
            }
        }
        guard let current else { return nil }
        return (current, levels[current], next.map { (at: $0.0, level: $0.1) })
    }

    /// `schedule_now` for node state.
    public func nowJSON(at t: EpochSeconds, in tz: any LocalTime) -> JSONValue {
        guard let n = now(at: t, in: tz) else { return .null }
        return [
            "level": .string(n.level), "setpoint": .number(n.setpoint), "source": "computed",
            "next": n.next.map { ["at": .string(Timestamp.iso8601($0.at)), "level": .string($0.level)] } ?? .null,
        ]
    }

    public static func hhmm(_ minute: Int) -> String {
        let h = minute / 60
        let m = minute % 60
        return (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
    }

    /// `"06:30"` → 390; nil unless HH:MM within a day.
    public static func minutes(_ s: String) -> Int? {
        let parts = s.split(separator: ":")
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let h = Int(parts[0]), let m = Int(parts[1]),
            (0..<24).contains(h), (0..<60).contains(m)
        else { return nil }
        return h * 60 + m
    }
}

/// A fixed UTC offset: for tests, and for boxes configured without a time zone.
public struct FixedOffsetTime: LocalTime {
    public var offsetS: Int64
    public init(offsetS: Int64) { self.offsetS = offsetS }

    public func components(_ t: EpochSeconds) -> (weekday: Int, minute: Int, day: Int64) {
        let local = Int64(t.rounded(.down)) + offsetS
        let day = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let minute = Int((local - day * 86_400) / 60)
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        let weekday = Int(((day % 7) + 7 + 3) % 7)
        return (weekday, minute, day)
    }

    public func instant(day: Int64, minute: Int) -> EpochSeconds {
        EpochSeconds(day * 86_400 + Int64(minute) * 60 - offsetS)
    }
}

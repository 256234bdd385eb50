/// Local triggers (`triggers:` in the config): time rules and topic conditions that issue commands through
/// the normal pipeline, also while the home energy manager or the cloud is away. This file holds the rule
/// model and its pure evaluation (next fire time, condition state); the Bridge runs them.

/// What a trigger does when it fires: one command, as if published on `<base>/<target>/<capability>/set`.
public struct TriggerAction: Sendable, Equatable {
    /// A device id, or `group` for group commands.
    public var device: String
    /// A node, or the group's name.
    public var node: String
    public var capability: String
    public var params: [String: JSONValue]
    /// Overrides the capability's default `valid_for_s`.
    public var validForS: Double?
    public init(device: String, node: String, capability: String, params: [String: JSONValue], validForS: Double? = nil) {
        self.device = device
        self.node = node
        self.capability = capability
        self.params = params
        self.validForS = validForS
    }
    public var target: String { "\(device)/\(node)/\(capability)" }
}

/// `at: "06:30"` on `days:`, or a five-field cron expression, in the box's local time.
public enum TimeSpec: Sendable, Equatable {
    case daily(minute: Int, days: Set<Int>)
    case cron(CronExpression)

    /// The first fire time strictly after `t`.
    public func next(after t: EpochSeconds, in tz: any LocalTime) -> EpochSeconds? {
        switch self {
        case .daily(let minute, let days):
            let today = tz.components(t).day
            for offset in 0...8 {
                let day = today + Int64(offset)
                guard days.contains(Self.weekday(day)) else { continue }
                let at = tz.instant(day: day, minute: minute)
                if at > t { return at }
            }
            return nil
        case .cron(let c):
            return c.next(after: t, in: tz)
        }
    }

    /// The last fire time at or before `t` and after `since` (a time missed while the daemon was down).
    public func last(before t: EpochSeconds, since: EpochSeconds, in tz: any LocalTime) -> EpochSeconds? {
        var found: EpochSeconds?
        var cursor = since
        // Bounded walk forward: a rule fires at most every minute, and a week of downtime is enough to look at.
        for _ in 0..<20_000 {
            guard let n = next(after: cursor, in: tz), n <= t else { break }
            found = n
            cursor = n
        }
        return found
    }

    /// 0 = Monday … 6 = Sunday for a day count since 1970-01-01 (a Thursday).
    static func weekday(_ day: Int64) -> Int { Int(((day % 7) + 7 + 3) % 7) }
}

/// A five-field cron expression (minute hour day-of-month month day-of-week) with lists, ranges and steps.
/// Day of week 0 or 7 is Sunday. As in cron, when both day fields are restricted a day matching either fires.
public struct CronExpression: Sendable, Equatable {
    public var minutes: Set<Int>
    public var hours: Set<Int>
    public var daysOfMonth: Set<Int>
    public var months: Set<Int>
    /// 0 = Monday … 6 = Sunday (converted from cron's Sunday = 0).
    public var weekdays: Set<Int>
    var domRestricted: Bool
    var dowRestricted: Bool

    /// Parses `*/15 6-22 * * 1-5`; the error names the field.
    public static func parse(_ text: String) -> Result<CronExpression, CronError> {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else {
            return .failure(CronError(message: "a cron expression has 5 fields (minute hour day month weekday), found \(fields.count)"))
        }
        let specs: [(String, ClosedRange<Int>)] = [
            ("minute", 0...59), ("hour", 0...23), ("day of month", 1...31), ("month", 1...12), ("day of week", 0...7),
        ]
        var sets: [Set<Int>] = []
        for (i, f) in fields.enumerated() {
            guard let s = field(f, specs[i].1) else {
                return .failure(
                    CronError(
                        message:
                            "bad \(specs[i].0) field \"\(f)\" (allowed \(specs[i].1.lowerBound)-\(specs[i].1.upperBound), *, lists, ranges, /steps)"))
            }
            sets.append(s)
        }
        let dow = Set(sets[4].map { ($0 + 6) % 7 })  // cron 0/7 = Sunday → 6; 1 = Monday → 0
        return .success(
            CronExpression(
                minutes: sets[0], hours: sets[1], daysOfMonth: sets[2], months: sets[3], weekdays: dow,
                domRestricted: fields[2] != "*", dowRestricted: fields[4] != "*"))
    }

    static func field(_ f: String, _ range: ClosedRange<Int>) -> Set<Int>? {
        var out = Set<Int>()
        for part in f.split(separator: ",", omittingEmptySubsequences: false) {
            let stepParts = part.split(separator: "/", omittingEmptySubsequences: false)
            guard stepParts.count <= 2 else { return nil }
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s > 0 else { return nil }
                step = s
            }
            let base = stepParts[0]
            var lo: Int
            var hi: Int
            if base == "*" {
                (lo, hi) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                guard let a = Int(base[..<dash]), let b = Int(base[base.index(after: dash)...]), a <= b else { return nil }
                (lo, hi) = (a, b)
            } else {
                guard let a = Int(base) else { return nil }
                (lo, hi) = (a, stepParts.count == 2 ? range.upperBound : a)
            }
            guard range.contains(lo), range.contains(hi) else { return nil }
            for v in stride(from: lo, through: hi, by: step) { out.insert(v) }
        }
        return out.isEmpty ? nil : out
    }

    public func next(after t: EpochSeconds, in tz: any LocalTime) -> EpochSeconds? {
        let c = tz.components(t)
        for offset in 0...400 {
            let day = c.day + Int64(offset)
            let (_, m, d) = Timestamp.civilFromDays(day)
            guard months.contains(Int(m)) else { continue }
            let domOK = daysOfMonth.contains(Int(d))
            let dowOK = weekdays.contains(TimeSpec.weekday(day))
            let dayOK = domRestricted && dowRestricted ? (domOK || dowOK) : (domOK && dowOK)
            guard dayOK else { continue }
            for h in hours.sorted() {
                for mi in minutes.sorted() {
                    let at = tz.instant(day: day, minute: h * 60 + mi)
                    if at > t { return at }
                }
            }
        }
        return nil
    }
}

public struct CronError: Error, Sendable, Equatable { public var message: String }

/// A condition on an MQTT topic's payload.
public struct TopicCondition: Sendable, Equatable {
    public enum Test: Sendable, Equatable {
        case equals(JSONValue)
        case above(Double)
        case below(Double)
        case changes
    }
    /// MQTT filter; `+` and `#` allowed.
    public var topic: String
    /// Member path into a JSON payload (`a.b.c`); empty means the whole payload.
    public var path: [String]
    public var test: Test
    /// For `above`/`below`: how far back the value must come before the condition counts as false again.
    public var hysteresis: Double
    /// How long the condition must hold before the rule fires.
    public var holdS: Double

    public init(topic: String, path: [String], test: Test, hysteresis: Double = 0, holdS: Double = 0) {
        self.topic = topic
        self.path = path
        self.test = test
        self.hysteresis = hysteresis
        self.holdS = holdS
    }

    /// The value a payload gives for this condition: JSON (then `path`), or the raw text as a string (a number
    /// when it reads as one). nil when the path does not exist.
    public func value(of payload: [UInt8]) -> JSONValue? {
        var v: JSONValue
        if let j = try? JSONValue.parse(payload) {
            v = j
        } else {
            let text = String(decoding: payload, as: UTF8.self)
            v = Double(text).map(JSONValue.number) ?? .string(text)
        }
        for key in path {
            guard let next = v[key] else { return nil }
            v = next
        }
        return v
    }

    /// Whether the condition holds for `value`, given whether it held before (hysteresis).
    public func holds(_ value: JSONValue, wasHeld: Bool) -> Bool {
        func number(_ v: JSONValue) -> Double? { v.doubleValue ?? v.stringValue.flatMap(Double.init) }
        switch test {
        case .equals(let want):
            if value == want { return true }
            if let a = number(value), let b = number(want) { return a == b }
            return value.stringValue != nil && value.stringValue == want.stringValue
        case .above(let x):
            guard let v = number(value) else { return false }
            return wasHeld ? v > x - hysteresis : v > x
        case .below(let x):
            guard let v = number(value) else { return false }
            return wasHeld ? v < x + hysteresis : v < x
        case .changes:
            return true
        }
    }
}

/// One rule from `triggers:`.
public struct TriggerRule: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case time(TimeSpec)
        case condition(TopicCondition)
    }
    public var name: String
    public var kind: Kind
    public var action: TriggerAction
    /// Time rules: a fire time missed while the daemon was down still runs when it is at most this old;
    /// nil skips missed times.
    public var runIfWithinS: Double?

    public init(name: String, kind: Kind, action: TriggerAction, runIfWithinS: Double? = nil) {
        self.name = name
        self.kind = kind
        self.action = action
        self.runIfWithinS = runIfWithinS
    }
}

/// Whether an MQTT topic matches a subscription filter (`+` one level, `#` the rest).
public func mqttTopic(_ topic: String, matches filter: String) -> Bool {
    let t = topic.split(separator: "/", omittingEmptySubsequences: false)
    let f = filter.split(separator: "/", omittingEmptySubsequences: false)
    for (i, level) in f.enumerated() {
        if level == "#" { return true }
        guard i < t.count else { return false }
        if level != "+" && level != t[i] { return false }
    }
    return t.count == f.count
}

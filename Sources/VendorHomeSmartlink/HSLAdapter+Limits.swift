import HeatbridgeCore

/// How long a derogation lasts, for the installer's limits (the handler's facts, with the box's local time).
extension HSLAdapter {
    /// How long a validated derogation lasts, in minutes (its duration, or its explicit window).
    static func derogationMinutes(_ p: JSONValue, _ tz: any LocalTime = FixedOffsetTime(offsetS: 0)) -> Int? {
        if let d = p["duration_min"]?.intValue { return d }
        guard let sd = p["start_day"]?.intValue, let s = p["start"]?.intValue, let ed = p["end_day"]?.intValue, let e = p["end"]?.intValue else {
            return nil
        }
        return Int((tz.instant(day: Int64(ed), minute: e) - tz.instant(day: Int64(sd), minute: s)) / 60)
    }
}

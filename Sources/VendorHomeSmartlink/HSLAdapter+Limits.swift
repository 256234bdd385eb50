import HeatbridgeCore

/// What HomeSmartlink derogations mean for the installer's limits: an offset with a size and a length.
extension HSLAdapter {
    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts {
        guard capability == "derogation" else { return CommandFacts() }
        return CommandFacts(offsetDelta: params["delta"]?.intValue, offsetMinutes: Self.derogationMinutes(params, localTime))
    }

    /// How long a validated derogation lasts, in minutes (its duration, or its explicit window).
    static func derogationMinutes(_ p: JSONValue, _ tz: any LocalTime) -> Int? {
        if let d = p["duration_min"]?.intValue { return d }
        guard let sd = p["start_day"]?.intValue, let s = p["start"]?.intValue, let ed = p["end_day"]?.intValue, let e = p["end"]?.intValue else { return nil }
        return Int((tz.instant(day: Int64(ed), minute: e) - tz.instant(day: Int64(sd), minute: s)) / 60)
    }
}

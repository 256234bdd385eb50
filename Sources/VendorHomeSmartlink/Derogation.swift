import HeatbridgeCore

/// `room-<R>/derogation/set`: validation and the windows a derogation becomes on the wire.
///
/// Payloads: `{"delta":-2,"start":"18:00","end":"20:00","date":"2026-11-22"}` (date defaults to today; add
/// `"end_date"` for a window past midnight) or `{"delta":-2,"duration_min":90}` (from now, on the 5-minute grid
/// of the box's local time). A window across midnight becomes two derogations on consecutive dates, since
/// the API takes start and end as minutes of one date.
public enum DerogationRequest {
    /// Longest derogation heatbridge sends in one command.
    public static let maxMinutes = 1440

    /// One wire derogation: minutes of one local date.
    public struct Window: Sendable, Equatable {
        public var date: String
        public var start: Int
        public var end: Int
        public var from: EpochSeconds
        public var until: EpochSeconds
    }

    static func date(_ day: Int64) -> String { Timestamp.date(day) }
    static func day(_ s: String) -> Int64? { Timestamp.day(s) }

    static func gridTime(_ body: [String: JSONValue], _ key: String) throws(CommandRejection) -> Int? {
        guard let v = body[key] else { return nil }
        guard let s = v.stringValue, let m = WeekSchedule.minutes(s) else {
            throw CommandRejection(.invalidPayload, "\"\(key)\" must be a local time \"HH:MM\"")
        }
        guard m % HSLWire.gridMinutes == 0 else {
            throw CommandRejection(
                .outOfRange,
                "\"\(key)\" \(s) is not on the \(HSLWire.gridMinutes)-minute grid (e.g. \(WeekSchedule.hhmm(m - m % 5)) or \(WeekSchedule.hhmm((m - m % 5 + 5) % 1440)))"
            )
        }
        return m
    }

    /// Checks a derogation body and normalises it to `{"delta","start_day","start","end_day","end"}` (explicit
    /// window, local days and minutes) or `{"delta","duration_min"}` (from when it is sent).
    public static func validate(_ body: [String: JSONValue], now: EpochSeconds, localTime: any LocalTime) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["delta", "start", "end", "date", "end_date", "duration_min"])
        guard let dv = body["delta"] else { throw CommandRejection(.invalidPayload, "missing \"delta\" (whole °C, -5…+5)") }
        guard let delta = dv.intValue else { throw CommandRejection(.invalidPayload, "\"delta\" must be a whole number of °C") }
        guard HSLWire.deltaRange.contains(delta) else {
            throw CommandRejection(.outOfRange, "\"delta\" must be -5…+5 °C, got \(delta)")
        }
        guard delta != 0 else { throw CommandRejection(.outOfRange, "\"delta\" 0 changes nothing") }
        if let d = body["duration_min"] {
            for k in ["start", "end", "date", "end_date"] where body[k] != nil {
                throw CommandRejection(.invalidPayload, "\"duration_min\" starts now; it does not go with \"\(k)\"")
            }
            guard let m = d.intValue else { throw CommandRejection(.invalidPayload, "\"duration_min\" must be a whole number of minutes") }
            guard (HSLWire.gridMinutes...maxMinutes).contains(m) else {
                throw CommandRejection(.outOfRange, "\"duration_min\" must be \(HSLWire.gridMinutes)…\(maxMinutes), got \(m)")
            }
            return ["delta": .int(delta), "duration_min": .int(m)]
        }
        guard let start = try gridTime(body, "start") else {
            throw CommandRejection(.invalidPayload, "give \"start\" and \"end\" (HH:MM) or \"duration_min\"")
        }
        guard let end = try gridTime(body, "end") else { throw CommandRejection(.invalidPayload, "missing \"end\" (HH:MM)") }
        let today = localTime.components(now).day
        var startDay = today
        if let d = body["date"] {
            guard let s = d.stringValue, let day = day(s) else { throw CommandRejection(.invalidPayload, "\"date\" must be YYYY-MM-DD") }
            startDay = day
        }
        var endDay = startDay
        if let d = body["end_date"] {
            guard let s = d.stringValue, let day = day(s) else { throw CommandRejection(.invalidPayload, "\"end_date\" must be YYYY-MM-DD") }
            guard day == startDay || day == startDay + 1 else {
                throw CommandRejection(.outOfRange, "\"end_date\" must be the start date or the day after")
            }
            endDay = day
        }
        let from = localTime.instant(day: startDay, minute: start)
        let until = localTime.instant(day: endDay, minute: end)
        guard until > from else {
            throw CommandRejection(
                .outOfRange,
                endDay == startDay
                    ? "\"end\" \(WeekSchedule.hhmm(end)) must be after \"start\" \(WeekSchedule.hhmm(start)); for a window past midnight add \"end_date\""
                    : "\"end\" must be after \"start\"")
        }
        guard until - from <= Double(maxMinutes) * 60 else {
            throw CommandRejection(.outOfRange, "a derogation lasts at most \(maxMinutes / 60) h")
        }
        guard until > now else {
            throw CommandRejection(.outOfRange, "the window \(date(startDay)) \(WeekSchedule.hhmm(start))–\(WeekSchedule.hhmm(end)) is already over")
        }
        return ["delta": .int(delta), "start_day": .int(Int(startDay)), "start": .int(start), "end_day": .int(Int(endDay)), "end": .int(end)]
    }

    /// The wire windows of normalised parameters, split at local midnight; windows already over are dropped.
    public static func windows(_ p: JSONValue, now: EpochSeconds, localTime: any LocalTime) -> [Window] {
        var startDay: Int64
        var start: Int
        var endDay: Int64
        var end: Int
        if let d = p["duration_min"]?.intValue {
            let c = localTime.components(now)
            startDay = c.day
            // The window has the asked length on the grid: it starts at the grid point the command falls in
            // (at most 4 min 59 s before it arrived: the cloud takes only grid times, and a derogation asked to
            // start now must not start later) and lasts the duration rounded up to the grid. Rounding the end
            // up from the arrival instead made 120 min at 19:11:59 into 19:10–21:15, 125 min.
            start = c.minute - c.minute % HSLWire.gridMinutes
            let g = HSLWire.gridMinutes
            let total = start + (d + g - 1) / g * g
            endDay = startDay + Int64(total / 1440)
            end = total % 1440
        } else {
            guard let sd = p["start_day"]?.intValue, let s = p["start"]?.intValue, let ed = p["end_day"]?.intValue, let e = p["end"]?.intValue else {
                return []
            }
            (startDay, start, endDay, end) = (Int64(sd), s, Int64(ed), e)
        }
        var out: [Window] = []
        if endDay == startDay {
            out.append(
                Window(
                    date: date(startDay), start: start, end: end, from: localTime.instant(day: startDay, minute: start),
                    until: localTime.instant(day: endDay, minute: end)))
        } else {
            out.append(
                Window(
                    date: date(startDay), start: start, end: HSLWire.midnight, from: localTime.instant(day: startDay, minute: start),
                    until: localTime.instant(day: endDay, minute: 0)))
            if end > 0 {
                out.append(
                    Window(
                        date: date(endDay), start: 0, end: end, from: localTime.instant(day: endDay, minute: 0),
                        until: localTime.instant(day: endDay, minute: end)))
            }
        }
        return out.filter { $0.until > now }
    }
}

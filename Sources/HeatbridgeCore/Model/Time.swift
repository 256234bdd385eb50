/// Wall-clock time as seconds since the Unix epoch. Core keeps time as a plain number so it needs no
/// calendar machinery; the executable injects a real clock and tests a fake one.
public typealias EpochSeconds = Double

/// The source of "now" and of waiting, injected so the bridge logic is testable without real time.
public protocol Clock: Sendable {
    /// Seconds since the Unix epoch.
    func now() -> EpochSeconds
    /// Suspends for `seconds` (throws CancellationError when the task is cancelled).
    func sleep(seconds: Double) async throws
    /// Suspends until the clock reads `deadline` (at once when it already has).
    func sleep(until deadline: EpochSeconds) async throws
}

extension Clock {
    /// A real clock's deadline is a wait from now; a test's clock knows the deadline itself, so a time jump
    /// between reading `now()` and sleeping cannot move it.
    public func sleep(until deadline: EpochSeconds) async throws {
        try await sleep(seconds: max(deadline - now(), 0))
    }
}

/// ISO-8601 timestamps as the MQTT contract wants them: UTC with an explicit `Z` offset, seconds precision.
public enum Timestamp {
    /// `2026-11-22T08:15:00Z` for the given epoch seconds.
    public static func iso8601(_ t: EpochSeconds) -> String {
        let secs = Int64(t.rounded(.down))
        var days = secs / 86_400
        var rem = secs % 86_400
        if rem < 0 {
            rem += 86_400
            days -= 1
        }
        let (y, m, d) = civil(fromDays: days)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem % 3600 / 60, 2)):\(pad(rem % 60, 2))Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM` (fractional seconds ignored).
    public static func parse(_ s: String) -> EpochSeconds? {
        let b = Array(s.utf8)
        func num(_ from: Int, _ len: Int) -> Int64? {
            guard from + len <= b.count else { return nil }
            var v: Int64 = 0
            for k in from..<(from + len) {
                guard (0x30...0x39).contains(b[k]) else { return nil }
                v = v * 10 + Int64(b[k] - 0x30)
            }
            return v
        }
        guard b.count >= 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x20, b[13] == 0x3A, b[16] == 0x3A,
            let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2), let h = num(11, 2), let mi = num(14, 2),
            let se = num(17, 2), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, se < 61
        else { return nil }
        var k = 19
        if k < b.count, b[k] == 0x2E {
            k += 1
            while k < b.count, (0x30...0x39).contains(b[k]) { k += 1 }
        }
        guard k < b.count else { return nil }
        var offset: Int64 = 0
        if b[k] == 0x5A {
            guard k + 1 == b.count else { return nil }
        } else if b[k] == 0x2B || b[k] == 0x2D {
            guard k + 6 == b.count, b[k + 3] == 0x3A, let oh = num(k + 1, 2), let om = num(k + 4, 2) else { return nil }
            offset = (oh * 3600 + om * 60) * (b[k] == 0x2B ? 1 : -1)
        } else {
            return nil
        }
        let days = days(fromCivil: y, mo, d)
        return EpochSeconds(days * 86_400 + h * 3600 + mi * 60 + se - offset)
    }

    /// `2026-11-22` → its day count; nil unless a real date in that exact form (2026-02-31 is refused).
    public static func day(_ s: String) -> Int64? {
        let p = s.split(separator: "-", omittingEmptySubsequences: false)
        guard p.count == 3, p[0].count == 4, p[1].count == 2, p[2].count == 2, let y = Int64(p[0]), let m = Int64(p[1]), let d = Int64(p[2]),
            (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        let day = days(fromCivil: y, m, d)
        return date(day) == s ? day : nil
    }

    /// A day count → `2026-11-22`.
    public static func date(_ day: Int64) -> String {
        let (y, m, d) = civil(fromDays: day)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    public static func daysFromCivil(_ y: Int64, _ m: Int64, _ d: Int64) -> Int64 { days(fromCivil: y, m, d) }
    /// The (year, month, day) of a day count since 1970-01-01.
    public static func civilFromDays(_ z: Int64) -> (Int64, Int64, Int64) { civil(fromDays: z) }

    private static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    // Howard Hinnant's civil-from-days / days-from-civil, proleptic Gregorian calendar.
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

import Glibc
import HeatbridgeCore

/// The box's local time from glibc (`TZ`, `/etc/localtime`, `/usr/share/zoneinfo`), DST included.
/// FoundationEssentials has no named time zones on Linux, so this is the daemon's only source of local time.
public struct GlibcLocalTime: LocalTime {
    public init() { tzset() }

    public func components(_ t: EpochSeconds) -> (weekday: Int, minute: Int, day: Int64) {
        var secs = time_t(t.rounded(.down))
        var tm = Glibc.tm()
        localtime_r(&secs, &tm)
        // tm_wday: 0 = Sunday; the schedule's weekday: 0 = Monday.
        let weekday = Int((tm.tm_wday + 6) % 7)
        let day = Timestamp.daysFromCivil(Int64(tm.tm_year) + 1900, Int64(tm.tm_mon) + 1, Int64(tm.tm_mday))
        return (weekday, Int(tm.tm_hour) * 60 + Int(tm.tm_min), day)
    }

    public func instant(day: Int64, minute: Int) -> EpochSeconds {
        let (y, m, d) = Timestamp.civilFromDays(day)
        var tm = Glibc.tm()
        tm.tm_year = Int32(y - 1900)
        tm.tm_mon = Int32(m - 1)
        tm.tm_mday = Int32(d)
        tm.tm_hour = Int32(minute / 60)
        tm.tm_min = Int32(minute % 60)
        tm.tm_isdst = -1  // let glibc decide; a skipped time is normalised forward, a repeated one taken once
        return EpochSeconds(mktime(&tm))
    }
}

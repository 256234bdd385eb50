import Glibc
import HeatbridgeCore
import HeatbridgeSystem
import XCTest

/// Schedule evaluation with glibc's local time, across DST changes (TZ is set per test process).
final class ScheduleTests: XCTestCase {
    let week = WeekSchedule(
        days: (0..<7).map { d in
            d < 5
                ? [.init(minute: 6 * 60, level: "comfort"), .init(minute: 22 * 60, level: "eco")]
                : [.init(minute: 2 * 60 + 30, level: "comfort"), .init(minute: 23 * 60, level: "eco")]
        },
        levels: ["comfort": 21, "eco": 17])

    override func setUp() {
        setenv("TZ", "Europe/Paris", 1)
        tzset()
    }

    override func tearDown() {
        unsetenv("TZ")
        tzset()
    }

    func testWeekdayEvaluationInParis() throws {
        let tz = GlibcLocalTime()
        // Wednesday 2026-11-18 12:00 CET = 11:00Z.
        let noon = try XCTUnwrap(Timestamp.parse("2026-11-18T11:00:00Z"))
        let n = try XCTUnwrap(week.now(at: noon, in: tz))
        XCTAssertEqual(n.level, "comfort")
        XCTAssertEqual(n.setpoint, 21)
        XCTAssertEqual(n.next.map { Timestamp.iso8601($0.at) }, "2026-11-18T21:00:00Z")  // 22:00 CET
        XCTAssertEqual(n.next?.level, "eco")
        // Monday 05:00 CET: still last Sunday's eco; next is 06:00 CET.
        let early = try XCTUnwrap(week.now(at: try XCTUnwrap(Timestamp.parse("2026-11-16T04:00:00Z")), in: tz))
        XCTAssertEqual(early.level, "eco")
        XCTAssertEqual(early.next.map { Timestamp.iso8601($0.at) }, "2026-11-16T05:00:00Z")
    }

    func testSpringForwardSkippedSwitchPointHappensAfterTheGap() throws {
        let tz = GlibcLocalTime()
        // Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST; the 02:30 switch point does not exist that day.
        let before = try XCTUnwrap(Timestamp.parse("2026-03-29T00:30:00Z"))  // 01:30 CET
        let n = try XCTUnwrap(week.now(at: before, in: tz))
        XCTAssertEqual(n.level, "eco")
        XCTAssertEqual(n.next.map { Timestamp.iso8601($0.at) }, "2026-03-29T01:30:00Z", "first instant after the gap (03:30 CEST)")
        let after = try XCTUnwrap(week.now(at: try XCTUnwrap(Timestamp.parse("2026-03-29T02:00:00Z")), in: tz))  // 04:00 CEST
        XCTAssertEqual(after.level, "comfort")
        XCTAssertEqual(after.next.map { Timestamp.iso8601($0.at) }, "2026-03-29T21:00:00Z")  // 23:00 CEST
    }

    func testFallBackRepeatedHourSwitchesOnce() throws {
        let tz = GlibcLocalTime()
        // Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, the switch once (first).
        let n = try XCTUnwrap(week.now(at: try XCTUnwrap(Timestamp.parse("2026-10-24T23:00:00Z")), in: tz))  // 01:00 CEST
        let at = try XCTUnwrap(n.next?.at)
        XCTAssertTrue(
            Timestamp.iso8601(at) == "2026-10-25T00:30:00Z" || Timestamp.iso8601(at) == "2026-10-25T01:30:00Z",
            Timestamp.iso8601(at))
        let later = try XCTUnwrap(week.now(at: at + 3600 * 2, in: tz))
        XCTAssertEqual(later.level, "comfort")
        XCTAssertEqual(later.next?.level, "eco")
    }

    func testFixedOffsetMatchesGlibcUTC() {
        setenv("TZ", "UTC", 1)
        tzset()
        let g = GlibcLocalTime()
        let f = FixedOffsetTime(offsetS: 0)
        for t in stride(from: 1_790_000_000.0, to: 1_790_700_000, by: 37_111) {
            XCTAssertTrue(g.components(t) == f.components(t), "\(t)")
            let c = f.components(t)
            XCTAssertEqual(g.instant(day: c.day, minute: 123), f.instant(day: c.day, minute: 123))
        }
    }

    func testJSONRoundTripAndVersion() throws {
        let j = week.json
        XCTAssertEqual(j["days"]?["mon"]?.arrayValue?.first, ["at": "06:00", "level": "comfort"])
        XCTAssertEqual(WeekSchedule(json: j), week)
        var other = week
        other.levels["eco"] = 16
        XCTAssertNotEqual(other.json["version"], j["version"])
        XCTAssertNil(WeekSchedule(json: ["days": ["mon": [["at": "25:00", "level": "x"]]], "levels": [:]]))
    }
}

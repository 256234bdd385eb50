import XCTest

@testable import HeatbridgeCore

final class TriggerTests: XCTestCase {
    let utc = FixedOffsetTime(offsetS: 0)
    /// 2026-11-23 is a Monday.
    let monday = Timestamp.daysFromCivil(2026, 11, 23)
    func at(_ day: Int64, _ h: Int, _ m: Int) -> EpochSeconds { utc.instant(day: day, minute: h * 60 + m) }

    func testDailyRuleNextAndMissed() {
        let weekdays = TimeSpec.daily(minute: 6 * 60 + 30, days: [0, 1, 2, 3, 4])
        XCTAssertEqual(TimeSpec.weekday(monday), 0)
        XCTAssertEqual(weekdays.next(after: at(monday, 6, 0), in: utc), at(monday, 6, 30))
        XCTAssertEqual(weekdays.next(after: at(monday, 6, 30), in: utc), at(monday + 1, 6, 30), "strictly after")
        XCTAssertEqual(weekdays.next(after: at(monday + 4, 7, 0), in: utc), at(monday + 7, 6, 30), "Friday evening → next Monday")
        XCTAssertEqual(weekdays.last(before: at(monday + 2, 7, 0), since: at(monday, 7, 0), in: utc), at(monday + 2, 6, 30))
        XCTAssertNil(weekdays.last(before: at(monday, 6, 29), since: at(monday, 5, 0), in: utc))
    }

    func testCron() throws {
        let c = try CronExpression.parse("*/15 6-7 * * 1-5").get()
        XCTAssertEqual(c.minutes, [0, 15, 30, 45])
        XCTAssertEqual(c.next(after: at(monday, 7, 50), in: utc), at(monday + 1, 6, 0))
        XCTAssertEqual(c.next(after: at(monday + 4, 7, 46), in: utc), at(monday + 7, 6, 0), "weekend skipped")
        let sunday = try CronExpression.parse("0 3 * * 0").get()
        XCTAssertEqual(sunday.next(after: at(monday, 0, 0), in: utc), at(monday + 6, 3, 0))
        XCTAssertEqual(try CronExpression.parse("0 3 * * 7").get().weekdays, [6], "7 is Sunday too")
        // Both day fields restricted: either matches (cron's rule).
        let either = try CronExpression.parse("0 12 1 * 1").get()
        XCTAssertEqual(either.next(after: at(monday, 13, 0), in: utc), at(monday + 7, 12, 0), "the next Monday comes before the 1st")
        for bad in ["* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * 0 * *"] {
            guard case .failure = CronExpression.parse(bad) else { return XCTFail("accepted \(bad)") }
        }
    }

    func testConditionsWithHysteresis() {
        let above = TopicCondition(topic: "pv/w", path: [], test: .above(2000), hysteresis: 200)
        XCTAssertTrue(above.holds(2100, wasHeld: false))
        XCTAssertFalse(above.holds(1900, wasHeld: false))
        XCTAssertTrue(above.holds(1900, wasHeld: true), "inside the hysteresis band it keeps holding")
        XCTAssertFalse(above.holds(1799, wasHeld: true))
        XCTAssertTrue(above.holds("2500", wasHeld: false), "a numeric string counts as a number")
        let below = TopicCondition(topic: "t", path: [], test: .below(10), hysteresis: 1)
        XCTAssertTrue(below.holds(10.5, wasHeld: true))
        XCTAssertFalse(below.holds(11.5, wasHeld: true))
        let equals = TopicCondition(topic: "tariff/#", path: ["state"], test: .equals("peak"))
        XCTAssertEqual(equals.value(of: Array(#"{"state":"peak","price":0.4}"#.utf8)), "peak")
        XCTAssertNil(equals.value(of: Array("peak".utf8)), "plain text has no member \"state\"")
        XCTAssertNil(equals.value(of: Array(#"{"other":1}"#.utf8)), "a missing path is no value")
        XCTAssertTrue(equals.holds("peak", wasHeld: false))
        XCTAssertEqual(TopicCondition(topic: "x", path: [], test: .changes).value(of: Array("42".utf8)), 42)
    }

    func testTopicFilters() {
        XCTAssertTrue(mqttTopic("tariff/current", matches: "tariff/current"))
        XCTAssertTrue(mqttTopic("tariff/current", matches: "tariff/+"))
        XCTAssertTrue(mqttTopic("tariff/a/b", matches: "tariff/#"))
        XCTAssertTrue(mqttTopic("tariff", matches: "tariff/#"))
        XCTAssertFalse(mqttTopic("tariff/a/b", matches: "tariff/+"))
        XCTAssertFalse(mqttTopic("other/current", matches: "tariff/+"))
    }
}

final class LeaseRequestTests: XCTestCase {
    func take(_ body: [String: JSONValue]) throws(CommandRejection) -> (LeaseRequest?, [String: JSONValue]) {
        var b = body
        let r = try LeaseRequest.take(&b)
        return (r, b)
    }

    func testLeaseMembersAreTakenOutAndChecked() throws {
        let (none, untouched) = try take(["setpoint": 18])
        XCTAssertNil(none)
        XCTAssertEqual(untouched, ["setpoint": 18])
        let (lease, rest) = try take(["setpoint": 18, "duration_min": 90, "renew_within_s": 300])
        XCTAssertEqual(lease?.durationS, 5400)
        XCTAssertEqual(lease?.renewWithinS, 300)
        XCTAssertEqual(rest, ["setpoint": 18], "the vendor never sees the lease members")
        let cases: [([String: JSONValue], ResultCode, String)] = [
            (["duration_min": 5, "duration_s": 60], .invalidPayload, "not both"),
            (["duration_min": 1.5], .invalidPayload, "\"duration_min\" must be a whole number"),
            (["duration_min": 20_000], .outOfRange, "\"duration_min\" must be 1…10080"),
            (["duration_s": 0], .outOfRange, "\"duration_s\" must be 1…604800"),
            (["renew_within_s": 60], .invalidPayload, "needs a \"duration_min\" or \"duration_s\""),
            (["duration_s": 60, "renew_within_s": 0], .outOfRange, "\"renew_within_s\" must be 1…86400"),
        ]
        for (body, code, text) in cases {
            do {
                _ = try take(body)
                XCTFail("accepted \(body)")
            } catch {
                XCTAssertEqual(error.code, code, "\(body)")
                XCTAssertTrue(error.message.contains(text), "\(body): \(error.message)")
            }
        }
    }
}

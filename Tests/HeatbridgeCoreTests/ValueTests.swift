import HeatbridgeCore
import HeatbridgeTesting
import XCTest

final class JSONTests: XCTestCase {
    func testRoundTripAndSortedKeys() throws {
        let v = try JSONValue.parse(#" {"b": [1, 2.5, -3e2, true, null], "a": "x\"y\\z\u00e9\ud83d\ude00\n"} "#)
        XCTAssertEqual(v.serialized, #"{"a":"x\"y\\zé😀\n","b":[1,2.5,-300,true,null]}"#)
        XCTAssertEqual(try JSONValue.parse(v.serialized), v)
    }

    func testErrors() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "01x", "\"\\ud800\"", "{} x", "\"a\u{01}\"", "1e999", "-"] {
            XCTAssertThrowsError(try JSONValue.parse(bad), bad)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        XCTAssertThrowsError(try JSONValue.parse(deep))
    }

    /// An object naming a key twice means one thing to a first-wins reader and another to a last-wins one: refused,
    /// naming the key (escaped, so a key cannot forge a log line), at any depth and with escapes spelling it.
    func testDuplicateKeysAreRefused() {
        for (text, key) in [
            (#"{"id":"a","id":"b"}"#, #""id""#), (#"{"x":{"action":"start","action":"stop"}}"#, #""action""#),
            (#"[{"a":1},{"b":1,"b":2}]"#, #""b""#), (#"{"id":1,"\u0069d":2}"#, #""id""#),
            (#"{"k\n":1,"k\n":2}"#, #""k\n""#),
        ] {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { e in
                XCTAssertEqual((e as? JSONParseError)?.reason, "duplicate key \(key)", text)
            }
        }
        // Keys that differ (case included) are different keys to JSON.
        XCTAssertEqual(try JSONValue.parse(#"{"a":1,"A":2}"#).objectValue?.count, 2)
    }

    /// RFC 8259 numbers (no leading zeros) and the bounds a command is parsed with.
    func testLeadingZerosAndLimits() throws {
        for ok in ["0", "-0", "0.5", "10", "-0e1"] { XCTAssertNoThrow(try JSONValue.parse(ok), ok) }
        for bad in ["030", "-01", "00", "01.5"] {
            XCTAssertThrowsError(try JSONValue.parse(bad), bad) { XCTAssertEqual(($0 as? JSONParseError)?.reason, "leading zero in a number") }
        }
        let limits = JSONLimits(maxDepth: 3, maxMembers: 2, maxStringBytes: 4)
        XCTAssertNoThrow(try JSONValue.parse(#"{"a":[1,"abcd"]}"#, limits: limits))
        for (text, reason) in [
            (#"[[[1]]]"#, "nesting deeper than 3"), (#"{"a":1,"b":2,"c":3}"#, "more than 2 members in one object"),
            ("[1,2,3]", "more than 2 items in one array"), (#"["abcde"]"#, "a string longer than 4 bytes"),
        ] {
            XCTAssertThrowsError(try JSONValue.parse(text, limits: limits), text) {
                let e = $0 as? JSONParseError
                XCTAssertEqual(e?.reason, reason)
                XCTAssertEqual(e?.overLimit, true)
            }
        }
        XCTAssertEqual((try? JSONValue.parse(#"{"a":1,"b":2,"c":3}"#))?.objectValue?.count, 3, "documents are not member-bounded")
    }

    func testIntValue() {
        XCTAssertEqual(JSONValue.number(3).intValue, 3)
        XCTAssertNil(JSONValue.number(2.5).intValue)
        XCTAssertNil(JSONValue.string("3").intValue)
    }
}

final class TimestampTests: XCTestCase {
    func testFormatAndParse() {
        XCTAssertEqual(Timestamp.iso8601(0), "1970-01-01T00:00:00Z")
        XCTAssertEqual(Timestamp.iso8601(1_795_305_600), "2026-11-22T00:00:00Z")
        XCTAssertEqual(Timestamp.iso8601(951_782_400), "2000-02-29T00:00:00Z")
        XCTAssertEqual(Timestamp.parse("2026-11-22T00:00:00Z"), 1_795_305_600)
        XCTAssertEqual(Timestamp.parse("2026-11-22T01:00:00.250+01:00"), 1_795_305_600)
        XCTAssertNil(Timestamp.parse("2026-13-01T00:00:00Z"))
        XCTAssertNil(Timestamp.parse("yesterday"))
    }
}

final class TopicTests: XCTestCase {
    func testParseCommand() {
        let t = TopicLayout(base: "home/hb")
        XCTAssertEqual(t.parseCommand("home/hb/bosch-1/dhw1/charge/set")?.capability, "charge")
        XCTAssertNil(t.parseCommand("home/hb/bosch-1/dhw1/charge/result"))
        XCTAssertNil(t.parseCommand("home/hb/bosch-1/charge/set"))
        XCTAssertNil(t.parseCommand("other/bosch-1/dhw1/charge/set"))
        XCTAssertNil(t.parseCommand("home/hb//dhw1/charge/set"))
        XCTAssertEqual(TopicLayout.sanitize("Bosch 12/3#"), "bosch_12_3_")
    }
}

final class ChargeValidationTests: XCTestCase {
    func charge(_ body: [String: JSONValue]) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.startStop(body, duration: "duration_min", maxMinutes: 240, defaultMinutes: 60)
    }

    func testValidation() throws {
        XCTAssertEqual(try charge(["action": "start"]), ["action": "start", "duration_min": 60])
        XCTAssertEqual(try charge(["action": "stop"]), ["action": "stop"])
        func code(_ b: [String: JSONValue]) -> ResultCode? {
            do {
                _ = try charge(b)
                return nil
            } catch { return error.code }
        }
        XCTAssertEqual(code([:]), .invalidPayload)
        XCTAssertEqual(code(["action": "boil"]), .invalidPayload)
        XCTAssertEqual(code(["action": "start", "duration_min": 0]), .outOfRange)
        XCTAssertEqual(code(["action": "start", "duration_min": 241]), .outOfRange)
        XCTAssertEqual(code(["action": "start", "duration_min": 1.5]), .invalidPayload)
        XCTAssertEqual(code(["action": "stop", "duration_min": 5]), .invalidPayload)
        XCTAssertEqual(code(["action": "start", "temp": 5]), .invalidPayload)
    }
}

final class URLTests: XCTestCase {
    func testParse() {
        let u = ParsedURL.parse("mqtt://10.0.0.2:1884")
        XCTAssertEqual(u?.scheme, "mqtt")
        XCTAssertEqual(u?.host, "10.0.0.2")
        XCTAssertEqual(u?.port, 1884)
        XCTAssertEqual(u?.path, "")
        XCTAssertEqual(ParsedURL.parse("https://api.example/v1/")?.path, "/v1/")
        XCTAssertEqual(ParsedURL.parse("mqtts://[::1]:8883")?.host, "::1")
        XCTAssertNil(ParsedURL.parse("broker:1883"))
        XCTAssertNil(ParsedURL.parse("mqtt://host:99999"))
        XCTAssertNil(ParsedURL.parse("mqtt://user:pw@host"))
    }
}

final class ScheduleValidationTests: XCTestCase {
    let current = WeekSchedule(days: Array(repeating: [.init(minute: 360, level: "comfort")], count: 7), levels: ["comfort": 21, "eco": 17])
    let limits = CapabilityValidation.ScheduleLimits(maxPointsPerDay: 2, gridMinutes: 15)

    func week(_ points: JSONValue) -> [String: JSONValue] {
        var days: [String: JSONValue] = [:]
        for d in WeekSchedule.dayNames { days[d] = points }
        return ["days": .object(days)]
    }

    func code(_ body: [String: JSONValue], current: WeekSchedule?? = .none) -> ResultCode? {
        do {
            _ = try CapabilityValidation.weekSchedule(body, current: current ?? self.current, limits: limits)
            return nil
        } catch { return error.code }
    }

    func testValidation() throws {
        let ok = try CapabilityValidation.weekSchedule(
            week([["at": "06:00", "level": "comfort"], ["at": "22:00", "level": "eco"]]),
            current: current, limits: limits)
        XCTAssertEqual(ok["days"]?["sun"]?.arrayValue?.count, 2)
        XCTAssertEqual(ok["force"], false)
        XCTAssertNil(code(week([])))
        XCTAssertEqual(code(week([["at": "06:10", "level": "comfort"]])), .outOfRange)
        XCTAssertEqual(code(week([["at": "06:00", "level": "boost"]])), .outOfRange)
        XCTAssertEqual(
            code(week([["at": "06:00", "level": "eco"], ["at": "07:00", "level": "eco"], ["at": "08:00", "level": "eco"]])), .outOfRange)
        XCTAssertEqual(code(week([["at": "6:00", "level": "eco"]])), .invalidPayload)
        XCTAssertEqual(code(week([["at": "06:00", "level": "eco"], ["at": "06:00", "level": "comfort"]])), .invalidPayload)
        XCTAssertEqual(code(["days": ["mon": []]]), .invalidPayload)
        XCTAssertEqual(code(["days": ["mon": [], "funday": []]]), .invalidPayload)
        var withLevels = week([])
        withLevels["levels"] = ["comfort": 23, "eco": 17]
        XCTAssertEqual(code(withLevels), .unsupported)
        XCTAssertEqual(code(week([]), current: .some(nil)), .unsupported)
        var forced = week([])
        forced["force"] = "yes"
        XCTAssertEqual(code(forced), .invalidPayload)
    }
}

final class RateBudgetTests: XCTestCase {
    func testBurstThenSustainedRate() async throws {
        let clock = ManualClock()
        let budget = RateBudget(clock: clock)
        let limit = RateBudget.Limit(capacity: 2, perSecond: 0.5)
        let t0 = clock.now()
        try await budget.acquire("a", limit, priority: .command)
        try await budget.acquire("a", limit, priority: .command)
        var waits = await budget.waits
        XCTAssertEqual(waits, 0, "the burst must not wait")
        let third = Task {
            try await budget.acquire("a", limit, priority: .command)
            return clock.now()
        }
        await clock.settle()
        waits = await budget.waits
        XCTAssertEqual(waits, 1, "the third request waits for a token")
        await clock.advance(by: 2)
        let at = try await third.value
        XCTAssertEqual(at - t0, 2, accuracy: 0.01, "a token comes back after 2 s at 0.5/s")
        try await budget.acquire("b", limit)  // another key has its own bucket
        waits = await budget.waits
        XCTAssertEqual(waits, 1)
    }

    /// A new process does not assume the cloud's bucket is full: it starts with two tokens, whatever the burst.
    func testAFreshBudgetStartsWithTwoTokensNotTheWholeBurst() async throws {
        let clock = ManualClock()
        let budget = RateBudget(clock: clock)
        let limit = RateBudget.Limit(capacity: 5, perSecond: 2)
        try await budget.acquire("c", limit, priority: .command)
        try await budget.acquire("c", limit, priority: .command)
        var waits = await budget.waits
        XCTAssertEqual(waits, 0)
        let third = Task { try await budget.acquire("c", limit, priority: .command) }
        await clock.settle()
        waits = await budget.waits
        XCTAssertEqual(waits, 1, "the third request of a fresh process waits, though the burst is 5")
        await clock.advance(by: 0.5)
        try await third.value
        await clock.advance(by: 10)  // refilled to the whole burst
        for _ in 0..<5 { try await budget.acquire("c", limit, priority: .command) }
        waits = await budget.waits
        XCTAssertEqual(waits, 1, "once refilled, the whole burst is there")
    }

    /// Polls leave the last burst token to commands: a command right after a poll burst never waits.
    func testPollsLeaveTheLastTokenToCommands() async throws {
        let clock = ManualClock()
        let budget = RateBudget(clock: clock)
        let limit = RateBudget.Limit(capacity: 2, perSecond: 0.5)
        try await budget.acquire("k", limit, priority: .poll)
        let second = Task { try await budget.acquire("k", limit, priority: .poll) }
        await clock.settle()
        try await budget.acquire("k", limit, priority: .command)  // would hang if the poll had taken it
        let waitsSoFar = await budget.waits
        XCTAssertEqual(waitsSoFar, 1, "only the second poll waited")
        await clock.advance(by: 4)  // two tokens back: the poll may take one and leave one
        try await second.value
    }

    /// With several requests waiting for one key, the token goes to the most urgent.
    func testMostUrgentWaiterGetsTheToken() async throws {
        let clock = ManualClock()
        let budget = RateBudget(clock: clock)
        let limit = RateBudget.Limit(capacity: 2, perSecond: 0.5)
        try await budget.acquire("k", limit, priority: .command)
        try await budget.acquire("k", limit, priority: .command)
        let order = Order()
        let poll = Task {
            try await budget.acquire("k", limit, priority: .sync)
            await order.add("sync")
        }
        await clock.settle()
        let readBack = Task {
            try await budget.acquire("k", limit, priority: .readBack)
            await order.add("read-back")
        }
        await clock.settle()
        await clock.advance(by: 2)  // one token: the read-back, although it came later
        try await readBack.value
        var seen = await order.items
        XCTAssertEqual(seen, ["read-back"])
        await clock.advance(by: 4)
        try await poll.value
        seen = await order.items
        XCTAssertEqual(seen, ["read-back", "sync"])
    }

    func testPriorityIsTaskLocal() async throws {
        XCTAssertEqual(RequestPriority.current, .poll)
        let inside = try await RequestPriority.with(.command) { () async throws(CloudError) in RequestPriority.current }
        XCTAssertEqual(inside, .command)
        XCTAssertEqual(RequestPriority.current, .poll)
    }
}

actor Order {
    var items: [String] = []
    func add(_ s: String) { items.append(s) }
}

final class PollPacingTests: XCTestCase {
    func testSlowsDownWhileNothingChangesAndSpeedsUpAfterACommand() {
        let p = PollPacing(baseS: 60)
        XCTAssertEqual(p.maxS, 240, "default: four times the poll interval")
        XCTAssertEqual(p.interval(unchanged: 0, sinceCommand: nil), 60)
        XCTAssertEqual(p.interval(unchanged: 2, sinceCommand: nil), 60)
        XCTAssertEqual(p.interval(unchanged: 3, sinceCommand: nil), 120)
        XCTAssertEqual(p.interval(unchanged: 6, sinceCommand: nil), 240)
        XCTAssertEqual(p.interval(unchanged: 60, sinceCommand: nil), 240, "never slower than the maximum")
        XCTAssertEqual(p.interval(unchanged: 9, sinceCommand: 30), 15, "fast right after a command")
        XCTAssertEqual(p.interval(unchanged: 0, sinceCommand: 200), 60, "back to normal after the fast window")
        XCTAssertEqual(PollPacing(baseS: 5).interval(unchanged: 0, sinceCommand: 1), 5, "a short interval is not made longer")
        XCTAssertEqual(PollPacing(baseS: 60, maxS: 60).interval(unchanged: 30, sinceCommand: nil), 60, "max = base turns slowing off")
        XCTAssertEqual(PollPacing(baseS: 60, maxS: 10).maxS, 60)
    }
}

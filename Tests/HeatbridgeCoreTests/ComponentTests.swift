import Dispatch
import HeatbridgeTesting
import Synchronization
import XCTest

@testable import HeatbridgeCore

/// Milliseconds of computing on a dispatch queue, awaited: work the clock cannot see.
func workOnAnotherThread() async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            var x: UInt64 = 0
            for i in 0..<3_000_000 { x = x &* 31 &+ UInt64(i) }
            if x == 42 { print("unlikely") }  // keeps the loop from being optimised away
            c.resume()
        }
    }
}

/// The bridge's components on their own: each returns decisions, so each is tested without a bridge.
final class TimerQueueTests: XCTestCase {
    func testFiresInDeadlineOrderAndFollowsRescheduleAndCancel() async {
        let clock = ManualClock()
        let timers = TimerQueue<String>()
        let fired = Mutex<[(String, EpochSeconds)]>([])
        let t0 = clock.now()
        let loop = Task { await timers.run(clock: clock) { key in fired.withLock { $0.append((key, clock.now())) } } }
        timers.schedule("a", at: t0 + 5)
        timers.schedule("b", at: t0 + 2)
        timers.schedule("c", at: t0 + 3)
        timers.schedule("a", at: t0 + 1)  // moved earlier
        timers.cancel("b")
        timers.scheduleEarliest("c", at: t0 + 8)  // later than its deadline: ignored
        await clock.advance(by: 10)
        XCTAssertEqual(fired.withLock { $0.map(\.0) }, ["a", "c"])
        XCTAssertEqual(fired.withLock { $0.map { $0.1 - t0 } }, [1, 3])
        XCTAssertNil(timers.deadline("a"), "a fired timer is gone")
        loop.cancel()
        await loop.value
    }

    /// A driven clock waits for work a timer started, even work that is not on the clock (an HTTP call on
    /// another thread, here some milliseconds of computing on a dispatch queue), before it moves on: ten polls a second apart in ten seconds,
    /// each at its own second. The pause heuristic it replaces saw nothing change for a millisecond and moved
    /// on, so under load a poll's successor was scheduled after a jump and polls were lost.
    func testADrivenClockWaitsForSpawnedWorkBeforeTimeMovesOn() async {
        let clock = ManualClock()
        let timers = TimerQueue<String>()
        let spawner = WorkSpawner()
        final class Log: Sendable { let times = Mutex<[EpochSeconds]>([]) }
        let polls = Log()
        let t0 = clock.now()
        clock.drive(quiesce: { await timers.quiesce(with: spawner.gauge, clock: clock) }, nextDeadline: { timers.nextDeadline })
        let owner = Task {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await timers.run(clock: clock) { _ in
                        spawner.spawn {
                            await workOnAnotherThread()  // as an HTTP call does: not on the clock
                            let at = clock.now()
                            polls.times.withLock { $0.append(at - t0) }
                            try? await clock.sleep(seconds: 0.5)  // asleep on the clock: not running
                            timers.schedule("poll", at: at + 1)
                        }
                    }
                }
                for await work in spawner.work { group.addTask { await work() } }
            }
        }
        timers.schedule("poll", at: t0 + 1)
        await clock.advance(by: 10)
        XCTAssertEqual(polls.times.withLock { $0 }, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        XCTAssertEqual(spawner.gauge.running, 0)
        owner.cancel()
    }

    /// A clock that jumps without waking its sleepers, as the daemon's test clock does.
    final class JumpingClock: HeatbridgeCore.Clock {
        let offset = Mutex(0.0)
        let base = 1_800_000_000.0
        func now() -> EpochSeconds { base + offset.withLock { $0 } }
        func sleep(seconds: Double) async throws { try await Task.sleep(nanoseconds: UInt64(seconds * 1e9)) }
    }

    func testSettleFiresWhatAClockJumpMadeDueWithoutSleepingItOut() async {
        let clock = JumpingClock()
        let timers = TimerQueue<String>()
        let fired = Mutex<[String]>([])
        let loop = Task { await timers.run(clock: clock) { key in fired.withLock { $0.append(key) } } }
        timers.schedule("lease-end", at: clock.now() + 3600)  // the loop sleeps an hour of real time on it
        timers.schedule("later", at: clock.now() + 7200)
        await timers.settle(through: clock.now())
        XCTAssertEqual(fired.withLock { $0 }, [], "nothing is due yet")
        clock.offset.withLock { $0 = 3600 }
        await timers.settle(through: clock.now())
        XCTAssertEqual(fired.withLock { $0 }, ["lease-end"])
        loop.cancel()
        await loop.value
    }
}

final class CommandIntakeTests: XCTestCase {
    let topics = TopicLayout(base: "hb")
    func parse(_ topic: String, _ payload: String, retained: Bool = false) -> CommandIntake.Outcome {
        CommandIntake.parse(MQTTMessage(topic: topic, payload: Array(payload.utf8), retained: retained), topics: topics)
    }

    func testTheContractsFirstRules() {
        let t = Target(device: "d", node: "n", capability: "c")
        XCTAssertEqual(parse("hb/d/n/c/state", "{}"), .notCommand)
        XCTAssertEqual(parse("hb/d/n/c/set", ""), .deletion)
        XCTAssertEqual(parse("hb/d/n/c/set", #"{"id":"4711","x":1}"#), .command(t, id: "4711", body: ["id": "4711", "x": 1]))
        // A number is not an id: refused, echoing it as sent.
        guard case .rejected(_, nil, let numeric, false) = parse("hb/d/n/c/set", #"{"id":4711,"x":1}"#) else { return XCTFail("numeric id accepted") }
        XCTAssertEqual(numeric.code, .invalidPayload)
        XCTAssertEqual(numeric.idAsSent, .number(4711))
        // Duplicate keys: a sender and heatbridge could read the command differently.
        for dup in [#"{"id":"a","id":"b","x":1}"#, #"{"id":"a","action":"start","action":"stop"}"#] {
            guard case .rejected(_, _, let d, false) = parse("hb/d/n/c/set", dup) else { return XCTFail("\(dup) accepted") }
            XCTAssertEqual(d.code, .invalidPayload)
            XCTAssertTrue(d.message.contains("duplicate key"), d.message)
        }
        guard case .rejected(_, nil, let r, false) = parse("hb/d/n/c/set", "[1]") else { return XCTFail("array accepted") }
        XCTAssertEqual(r.code, .invalidPayload)
        guard case .rejected(_, "r", let retained, true) = parse("hb/d/n/c/set", #"{"id":"r"}"#, retained: true) else {
            return XCTFail("retained command not refused")
        }
        XCTAssertEqual(retained.code, .retainedCommand)
        let long = String(repeating: "x", count: CommandIntake.maxIdBytes + 1)
        guard case .rejected(_, nil, let idRejection, false) = parse("hb/d/n/c/set", #"{"id":"\#(long)"}"#) else { return XCTFail("long id") }
        XCTAssertEqual(idRejection.code, .invalidPayload)
        guard case .failure(let v) = CommandIntake.validity(["valid_for_s": 0], default: 600) else { return XCTFail("0 s accepted") }
        XCTAssertEqual(v.code, .outOfRange)
        XCTAssertEqual(try CommandIntake.validity([:], default: 600).get(), 600)
    }
}

extension CommandIntake.Outcome {
    static func == (a: Self, b: Self) -> Bool {
        switch (a, b) {
        case (.notCommand, .notCommand), (.deletion, .deletion): return true
        case (.command(let t1, let i1, let b1), .command(let t2, let i2, let b2)): return t1 == t2 && i1 == i2 && b1 == b2
        case (.rejected(let t1, let i1, let r1, let c1), .rejected(let t2, let i2, let r2, let c2)):
            return t1 == t2 && i1 == i2 && r1 == r2 && c1 == c2
        default: return false
        }
    }
}

final class LimitsPolicyTests: XCTestCase {
    func testSetpointsOffsetsAndSpacing() {
        var l = SafetyLimits()
        l.setpointMax = 24
        l.derogationMaxDelta = 2
        l.minSpacingS = 60
        var p = LimitsPolicy(limits: l, settings: [:])
        XCTAssertEqual(
            p.check(device: "d", node: "n", facts: CommandFacts(setpoints: [.init("setpoint", 25)]), source: .mqtt, now: 0)?.code,
            .outOfRange)
        XCTAssertEqual(p.check(device: "d", node: "n", facts: CommandFacts(offsetDelta: -3), source: .mqtt, now: 0)?.code, .safetyLimit)
        XCTAssertNil(p.check(device: "d", node: "n", facts: CommandFacts(setpoints: [.init("setpoint", 21)]), source: .mqtt, now: 0))
        p.accepted(devices: ["d"], now: 100)
        XCTAssertEqual(p.check(device: "d", node: "n", facts: CommandFacts(), source: .mqtt, now: 130)?.code, .safetyLimit)
        XCTAssertNil(
            p.check(device: "d", node: "n", facts: CommandFacts(), source: .limit("legionella"), now: 130),
            "the bridge's own safety action is not held back by the spacing")
        XCTAssertNil(p.check(device: "d", node: "n", facts: CommandFacts(), source: .mqtt, now: 161))
    }

    func testLegionellaWatchChargesOncePerEpisode() {
        var l = SafetyLimits()
        l.legionellaMinTemperature = 55
        l.legionellaMaxHours = 24
        var p = LimitsPolicy(limits: l, settings: [:])
        let low = [(node: "w", target: 50.0)]
        var o = p.observe(device: "d", hotWater: low, canCharge: { _ in true }, now: 0)
        XCTAssertEqual(o.saves.map(\.key), ["legionella/d/w"])
        XCTAssertTrue(o.charge.isEmpty)
        XCTAssertEqual(
            p.check(device: "d", node: "w", facts: CommandFacts(hotWaterTarget: 0), source: .mqtt, now: 3600), nil,
            "switching off is allowed before max_hours")
        o = p.observe(device: "d", hotWater: low, canCharge: { _ in true }, now: 24 * 3600)
        XCTAssertEqual(o.charge.map(\.node), ["w"])
        XCTAssertEqual(p.check(device: "d", node: "w", facts: CommandFacts(hotWaterTarget: 0), source: .mqtt, now: 24 * 3600)?.code, .safetyLimit)
        o = p.observe(device: "d", hotWater: low, canCharge: { _ in true }, now: 25 * 3600)
        XCTAssertTrue(o.charge.isEmpty, "charged twice in one episode")
        o = p.observe(device: "d", hotWater: [(node: "w", target: 60)], canCharge: { _ in true }, now: 26 * 3600)
        XCTAssertEqual(o.saves.first?.key, "legionella/d/w")
        XCTAssertNil(o.saves.first?.value, "a recovered tank ends the episode")
        // The watch outlives a restart through the settings it saved.
        let restored = LimitsPolicy(limits: l, settings: ["legionella/d/w": ["since": 0, "charged": true]])
        XCTAssertEqual(restored.lowSince["d/w"]?.charged, true)
    }
}

final class LeaseBookTests: XCTestCase {
    func testTimeCountsFromDoneAndAFailedLeaseRestoresNothing() throws {
        var book = LeaseBook(settings: [:])
        let c = Command(
            id: "c1", device: "d", node: "hc1", capability: "setpoint", params: ["setpoint": 23], source: .mqtt,
            receivedAt: 0, validUntil: 600)
        let lease = book.starting(c, request: LeaseRequest(durationS: 3600, renewWithinS: nil), restore: ["setpoint": 20], now: 0, group: nil)
        book.set(lease, key: lease.key)
        guard case .rearm(let done)? = book.commandFinished(c, .done, now: 100) else { return XCTFail("done did not re-arm") }
        XCTAssertEqual(done.until, 3700, "the lease's hour counts from done")
        XCTAssertEqual(LeaseBook.restoreCommand(done)?.body, ["setpoint": 20])
        XCTAssertEqual(LeaseBook.restoreCommand(done)?.source, .lease("c1"))
        book.set(nil, key: lease.key)
        book.set(lease, key: lease.key)
        guard case .drop(let key)? = book.commandFinished(c, .failed, now: 100) else { return XCTFail("a failed lease was kept") }
        XCTAssertEqual(key, "d/hc1/setpoint")
    }
}

final class TriggerEngineTests: XCTestCase {
    let tz = FixedOffsetTime(offsetS: 0)

    func testATimeRuleFiresOnceForItsTime() {
        let rule = TriggerRule(
            name: "morning", kind: .time(.daily(minute: 6 * 60, days: Set(0..<7))),
            action: TriggerAction(device: "d", node: "n", capability: "charge", params: ["action": "start"]))
        var e = TriggerEngine(rules: [])
        let day0: EpochSeconds = 1_800_000_000 - 1_800_000_000.truncatingRemainder(dividingBy: 86_400)
        let start = e.start(rules: [rule], persisted: { _ in nil }, now: day0 + 3600, localTime: tz)
        XCTAssertTrue(start.fires.isEmpty, "a first start counts nothing as missed")
        XCTAssertEqual(start.timers.first?.at, day0 + 6 * 3600)
        let due = e.timerDue("morning", now: day0 + 6 * 3600, localTime: tz)
        XCTAssertEqual(due.fires.map(\.rule.name), ["morning"])
        XCTAssertEqual(due.timers.first?.at, day0 + 30 * 3600, "armed for the next day")
        XCTAssertTrue(e.timerDue("morning", now: day0 + 6 * 3600 + 1, localTime: tz).fires.isEmpty, "fired before its next time")
        XCTAssertEqual(e.timerDue("morning", now: day0 + 30 * 3600, localTime: tz).fires.count, 1, "the next day fires again")
        XCTAssertEqual(TriggerEngine.submission(rule, now: day0).source, .trigger("morning"))
    }

    func testAConditionFiresAfterItsHoldTime() {
        let rule = TriggerRule(
            name: "pv", kind: .condition(TopicCondition(topic: "pv/w", path: [], test: .above(2000), holdS: 60)),
            action: TriggerAction(device: "d", node: "n", capability: "charge", params: ["action": "start"]))
        var e = TriggerEngine(rules: [rule])
        let m = MQTTMessage(topic: "pv/w", payload: Array("2500".utf8))
        let (first, matched) = e.evaluate(m, now: 100)
        XCTAssertTrue(matched)
        XCTAssertTrue(first.fires.isEmpty)
        XCTAssertEqual(first.timers.first?.at, 160)
        XCTAssertEqual(e.timerDue("pv", now: 160, localTime: tz).fires.count, 1)
        XCTAssertTrue(e.evaluate(m, now: 200).outcome.fires.isEmpty, "fired again within one episode")
        XCTAssertFalse(e.evaluate(MQTTMessage(topic: "other", payload: Array("1".utf8)), now: 200).matched)
    }
}

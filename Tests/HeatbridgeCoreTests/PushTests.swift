import HeatbridgeTesting
import XCTest

@testable import HeatbridgeCore

/// Energy counters as a person reads a meter: each test writes down the total it expects.
final class MonotonicCounterTests: XCTestCase {
    func testTheFirstReadingAfterInstallIsTheVendorsLifetimeTotal() {
        let c = MonotonicCounter(first: 12_345.67)
        XCTAssertEqual(c.total, 12_345.67)
    }

    func testRisingReadingsAddTheirDifference() {
        var c = MonotonicCounter(first: 100)
        XCTAssertEqual(c.advance(to: 100.4), .rose(100.4 - 100))
        c.advance(to: 101)
        XCTAssertEqual(c.total, 101, accuracy: 1e-9)
    }

    func testACounterResetToZeroContinuesFromTheTotal() {
        var c = MonotonicCounter(first: 5_000)
        c.advance(to: 5_010)
        XCTAssertEqual(c.advance(to: 0), .reset, "an appliance reset")
        XCTAssertEqual(c.total, 5_010, "no negative energy")
        c.advance(to: 2.5)
        XCTAssertEqual(c.total, 5_012.5, accuracy: 1e-9, "what was used since the reset is added")
    }

    func testASmallStepBackIsNoiseAndIsNotCountedTwiceOnTheWayUp() {
        var c = MonotonicCounter(first: 200)
        XCTAssertEqual(c.advance(to: 199.9), .noise)
        XCTAssertEqual(c.total, 200)
        c.advance(to: 200.1)
        XCTAssertEqual(c.total, 200.1, accuracy: 1e-9, "0.1 kWh, not 0.2")
    }

    func testAResetToAValueAboveZeroIsStillAReset() {
        var c = MonotonicCounter(first: 1_000)
        XCTAssertEqual(c.advance(to: 3), .reset)
        XCTAssertEqual(c.total, 1_003)
    }

    func testNonFiniteAndNegativeReadingsChangeNothingHarmful() {
        var c = MonotonicCounter(first: 10)
        XCTAssertEqual(c.advance(to: .nan), .unchanged)
        XCTAssertEqual(c.total, 10)
    }
}

final class PushBookTests: XCTestCase {
    let now: EpochSeconds = 1_800_000_000

    func event(_ updates: [PushUpdate], at: EpochSeconds? = nil) -> PushEvent {
        PushEvent(vendorId: "1", type: "DATA_POINT", at: at ?? now, updates: updates)
    }

    func power(_ w: Double, at: EpochSeconds) -> PushUpdate {
        PushUpdate(key: "power", at: at, target: .node("heatpump"), path: ["compressor", "power_w"], value: .set(.number(w)))
    }

    func energy(_ kwh: Double, at: EpochSeconds) -> PushUpdate {
        PushUpdate(key: "energy", at: at, target: .node("heatpump"), path: ["energy", "consumed_kwh"], value: .counter(kwh))
    }

    let polled = DeviceSnapshot(id: "d", vendorId: "1", online: true, nodes: ["hc1": ["room_temperature": 20.5, "setpoint": 21]])

    func testAPushedValueAppearsInANewNodeAndOnTopOfThePolledOnes() {
        var b = PushBook()
        XCTAssertEqual(b.apply(event([power(1200, at: now)]), device: "d", account: "a", now: now), .applied(changedOnline: false))
        let flow = PushUpdate(key: "flow", at: now, target: .node("hc1"), path: ["flow_temperature"], value: .set(34.5))
        _ = b.apply(event([flow]), device: "d", account: "a", now: now)
        let s = b.merged(polled)
        XCTAssertEqual(s.nodes["heatpump"]?["compressor"]?["power_w"], 1200)
        XCTAssertEqual(s.nodes["hc1"]?["flow_temperature"], 34.5)
        XCTAssertEqual(s.nodes["hc1"]?["setpoint"], 21, "the polled fields stay")
        XCTAssertEqual(s.nodes["hc1"]?["pushed_at"]?.stringValue, Timestamp.iso8601(now))
    }

    func testTheSameEventTwiceChangesStateOnce() {
        var b = PushBook()
        let e = event([power(1200, at: now)])
        XCTAssertEqual(b.apply(e, device: "d", account: "a", now: now), .applied(changedOnline: false))
        XCTAssertEqual(b.apply(e, device: "d", account: "a", now: now + 1), .duplicate)
        XCTAssertEqual(b.stats["a"]?.duplicates, 1)
        XCTAssertEqual(b.stats["a"]?.applied, 1)
    }

    func testAnOlderEventNeverOverwritesANewerValue() {
        var b = PushBook()
        _ = b.apply(event([power(900, at: now)]), device: "d", account: "a", now: now)
        XCTAssertEqual(b.apply(event([power(3000, at: now - 60)]), device: "d", account: "a", now: now), .stale)
        XCTAssertEqual(b.merged(polled).nodes["heatpump"]?["compressor"]?["power_w"], 900)
        XCTAssertEqual(b.stats["a"]?.stale, 1)
    }

    func testTwoChangesWithinOneSecondAreBothTaken() {
        var b = PushBook()
        _ = b.apply(event([power(900, at: now)]), device: "d", account: "a", now: now)
        XCTAssertEqual(b.apply(event([power(1500, at: now)]), device: "d", account: "a", now: now), .applied(changedOnline: false))
        XCTAssertEqual(b.merged(polled).nodes["heatpump"]?["compressor"]?["power_w"], 1500)
    }

    func testAnEventFromTheFutureIsRejectedWithItsCode() {
        var b = PushBook()
        let out = b.apply(event([power(900, at: now + 3600)], at: now + 3600), device: "d", account: "a", now: now)
        guard case .rejected(let r) = out else { return XCTFail("taken: \(out)") }
        XCTAssertEqual(r.code, .future)
        XCTAssertEqual(b.stats["a"]?.rejected["PUSH_FUTURE_TIMESTAMP"], 1)
        XCTAssertNil(b.merged(polled).nodes["heatpump"])
    }

    func testACounterGoingDownByALittleAndThenResettingGivesTheTotalAPersonExpects() {
        var b = PushBook()
        for (i, kwh) in [1000.0, 1000.5, 1000.3, 1001.0, 0.0, 0.7].enumerated() {
            _ = b.apply(event([energy(kwh, at: now + Double(i) * 60)]), device: "d", account: "a", now: now + Double(i) * 60)
        }
        // 1000 → 1000.5 (+0.5), 1000.3 noise, → 1001 (+0.5), reset to 0, → 0.7 (+0.7) = 1001.7
        XCTAssertEqual(b.merged(polled).nodes["heatpump"]?["energy"]?["consumed_kwh"], 1001.7)
    }

    func testCountersAndOrderSurviveARestartThroughTheRecord() {
        var b = PushBook()
        _ = b.apply(event([energy(500, at: now)]), device: "d", account: "a", now: now)
        _ = b.apply(event([energy(0, at: now + 60)]), device: "d", account: "a", now: now + 60)  // reset: total 500
        let record = b.record("d")!
        var after = PushBook()
        after.restore("d", JSONValue.parse(record.bytes) ?? .null)
        _ = after.apply(event([energy(1.5, at: now + 120)]), device: "d", account: "a", now: now + 120)
        XCTAssertEqual(after.merged(polled).nodes["heatpump"]?["energy"]?["consumed_kwh"], 501.5)
        // The event before the restart again: known, changes nothing.
        XCTAssertEqual(after.apply(event([energy(0, at: now + 60)]), device: "d", account: "a", now: now + 130), .stale)
    }

    func testAPollThatReadsAFieldTakesItOverFromThePushedValue() {
        var b = PushBook()
        let room = PushUpdate(key: "room", at: now, target: .node("hc1"), path: ["room_temperature"], value: .set(19))
        _ = b.apply(event([room]), device: "d", account: "a", now: now)
        XCTAssertEqual(b.merged(polled).nodes["hc1"]?["room_temperature"], 19, "the event is newer than the last poll")
        let s = b.overlay(onPoll: polled)
        XCTAssertEqual(s.nodes["hc1"]?["room_temperature"], 20.5, "the poll is fresher")
        XCTAssertEqual(b.merged(polled).nodes["hc1"]?["room_temperature"], 20.5, "and the overlay forgot it")
    }

    func testConnectivityEventsSetOnlineAndAPollSaysItAgain() {
        var b = PushBook()
        let off = PushUpdate(key: "connectivity", at: now, target: .device, path: ["online"], value: .online(false))
        XCTAssertEqual(b.apply(event([off]), device: "d", account: "a", now: now), .applied(changedOnline: true))
        XCTAssertEqual(b.merged(polled).online, false)
        XCTAssertEqual(b.overlay(onPoll: polled).online, true, "the poll's own answer wins")
    }

    func testLiveWhileEventsArriveSilentAfter() {
        var b = PushBook()
        let p = PushSettings(reconcileIntervalS: 900, silentAfterS: 600)
        XCTAssertEqual(b.state("a", settings: p, now: now), "silent")
        _ = b.apply(event([power(1, at: now)]), device: "d", account: "a", now: now)
        XCTAssertEqual(b.state("a", settings: p, now: now + 599), "live")
        XCTAssertEqual(b.state("a", settings: p, now: now + 601), "silent")
    }
}

extension JSONValue {
    static func parse(_ b: [UInt8]) -> JSONValue? { try? JSONValue.parse(b, limits: .documents) }
}

/// The bridge with pushed events (the scripted adapter's test format).
extension BridgeTests {
    func push(_ device: String, at: EpochSeconds, _ updates: String) {
        mqtt.send("hb/push/fake/\(device)", #"{"device":"\#(device)","at":\#(Int(at)),"updates":[\#(updates)]}"#)
    }

    func testAPushedValueIsPublishedInTheNodesStateAtOnce() {
        _ = start(push: PushSettings())
        eventually("device known") { !mqtt.json("hb/fake-1/hc1/state").isEmpty }
        // The first poll can land before the connect is handled (under load): the subscription comes with the connect.
        eventually("subscribed to the push topics") { mqtt.subscriptions.withLock { $0 }.contains("hb/push/fake/+") }
        let t = clock.now()
        push("1", at: t, #"{"key":"p","node":"heatpump","path":["compressor","power_w"],"value":1800}"#)
        eventually("heat pump node") { mqtt.json("hb/fake-1/heatpump/state").last?["compressor"]?["power_w"] == 1800 }
        push("1", at: t, #"{"key":"p","node":"heatpump","path":["compressor","power_w"],"value":1800}"#)
        push("1", at: t + 1, #"{"key":"p","node":"heatpump","path":["compressor","power_w"],"value":900}"#)
        eventually("second value") { mqtt.json("hb/fake-1/heatpump/state").last?["compressor"]?["power_w"] == 900 }
        XCTAssertEqual(mqtt.json("hb/fake-1/heatpump/state").count, 2, "the repeated event published nothing")
    }

    func testAnEventForADeviceOfAnotherBoxIsDroppedAndCounted() async {
        _ = start(push: PushSettings())
        eventually("device known") { !mqtt.json("hb/fake-1/hc1/state").isEmpty }
        let t = clock.now()
        push("2", at: t, #"{"key":"p","node":"heatpump","path":["compressor","power_w"],"value":1800}"#)
        // A later event for our own device shows the bridge handled the messages in between.
        push("1", at: t, #"{"key":"p","node":"heatpump","path":["compressor","power_w"],"value":700}"#)
        eventually("own event") { mqtt.json("hb/fake-1/heatpump/state").last?["compressor"]?["power_w"] == 700 }
        XCTAssertFalse(mqtt.published.withLock { $0 }.contains { $0.topic.hasPrefix("hb/fake-2") }, "another box's device appeared")
        await clock.advance(by: 61)
        eventually("health counts it") { health()?["accounts"]?["acc"]?["push"]?["rejected"]?["PUSH_UNKNOWN_DEVICE"] == 1 }
        XCTAssertEqual(health()?["accounts"]?["acc"]?["push"]?["applied"], 1)
    }

    func testGarbageOnThePushTopicIsCountedNotApplied() async {
        _ = start(push: PushSettings())
        eventually("device known") { !mqtt.json("hb/fake-1/hc1/state").isEmpty }
        mqtt.send("hb/push/fake/1", "not json {")
        mqtt.send("hb/push/fake/1", #"{"device":"1"}"#)
        push("1", at: clock.now(), #"{"key":"p","node":"heatpump","path":["x"],"value":1}"#)
        eventually("the valid one") { mqtt.json("hb/fake-1/heatpump/state").last?["x"] == 1 }
        await clock.advance(by: 61)
        eventually("counted") { health()?["accounts"]?["acc"]?["push"]?["rejected"]?["PUSH_MALFORMED"] == 1 }
        XCTAssertEqual(health()?["accounts"]?["acc"]?["push"]?["rejected"]?["PUSH_INVALID"], 1)
    }

    func testPollingSlowsToTheReconcileIntervalWhilePushIsLiveAndReturnsWhenSilent() async {
        _ = start(pollIntervalS: 60, maxPollIntervalS: 60, push: PushSettings(reconcileIntervalS: 900, silentAfterS: 1200))
        eventually("first poll") { !mqtt.json("hb/fake-1/hc1/state").isEmpty }
        await clock.quiesce()
        let polls = { self.adapter.priorities.withLock { $0.filter { $0.hasPrefix("fetch") }.count } }
        await clock.advance(by: 61)
        eventually("polls at 60 s without push") { polls() == 2 }
        push("1", at: clock.now(), #"{"key":"p","node":"heatpump","path":["compressor","power_w"],"value":1}"#)
        eventually("pushed") { !mqtt.json("hb/fake-1/heatpump/state").isEmpty }
        eventually("account says live") { mqtt.json("hb/bridge/account/acc").last?["push"] == "live" }
        await clock.advance(by: 61)  // the poll planned before push was live
        let atLive = polls()
        for _ in 0..<8 { await clock.advance(by: 100) }  // 800 s: no poll while live
        XCTAssertEqual(polls(), atLive, "polled while push was live")
        await clock.advance(by: 120)
        eventually("the reconcile poll") { polls() == atLive + 1 }
        // No event for 1200 s: silent, polls every 60 s again.
        for _ in 0..<4 { await clock.advance(by: 100) }
        await clock.advance(by: 61)
        let atSilent = polls()
        await clock.advance(by: 61)
        await clock.advance(by: 61)
        eventually("normal polling again") { polls() >= atSilent + 2 }
    }
}

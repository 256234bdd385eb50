import Foundation
import HeatbridgeCore
import XCTest

/// Leases, limits with the legionella guard, and topic conditions, end to end through the box's own wiring. In
/// process (`InProcessBox`): moved from `TriggerIntegrationTests` with every assertion. The daemon's shifted clock
/// (a test hook there) is the box's manual clock here, and a restart is the box started again on its store. Time
/// rules stay there: they also read the `triggers` CLI's report.
final class AutomationTests: XCTestCase {
    /// Results of commands a trigger issued (`"source":"trigger:<name>"`).
    func firings(_ box: InProcessBox, _ name: String, status: String = "accepted") -> [JSONValue] {
        box.mqtt.published.withLock { $0 }.filter { $0.topic.hasSuffix("/result") }.compactMap { try? JSONValue.parse($0.payload) }
            .filter { $0["source"]?.stringValue == "trigger:\(name)" && $0["status"]?.stringValue == status }
    }

    func testConditionsShedAGroupHoldAgainstFlappingAndDoNotRefireAfterARestart() async throws {
        var box = try InProcessBox(
            pollIntervalS: 30,
            extraSections: """

                groups:
                  heating: [bosch-101000001/hc1, bosch-101000002/hc1]
                triggers:
                  - {name: peak-shed, topic: test/tariff, path: state, equals: peak,
                     action: {target: group/heating, capability: setpoint, params: {setpoint: 18, duration_s: 4}, valid_for_s: 300}}
                  - {name: pv-charge, topic: test/pv_w, above: 2000, hysteresis: 200, hold_s: 2,
                     action: {target: bosch-101000001/dhw1, capability: charge, params: {action: start, duration_min: 20}}}
                """)
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        await box.waitJSON("heatbridge/bosch-101000002/hc1/state")
        await box.waitJSON("heatbridge/bridge/triggers")
        // The tariff goes to peak: the group is shed once, whatever repeats.
        box.publish("test/tariff", #"{"state":"offpeak"}"#, retained: true)
        box.publish("test/tariff", #"{"state":"peak"}"#, retained: true)
        let shed = await box.waitJSON("heatbridge/group/heating/setpoint/result") { $0["source"] == "trigger:peak-shed" && $0["status"] == "done" }
        XCTAssertEqual(shed?["members"]?.objectValue?.keys.sorted(), ["bosch-101000001/hc1", "bosch-101000002/hc1"])
        box.publish("test/tariff", #"{"state":"peak"}"#, retained: true)
        await box.waitJSON("heatbridge/bosch-101000002/hc1/state", timeout: 40) { $0["manual_setpoint"] == 18 && $0["leases"]?["setpoint"] != nil }
        // The shed is a lease: at its end each room gets its own previous setpoint back.
        let gid = try XCTUnwrap(shed?["id"]?.stringValue)
        for gw in ["101000001", "101000002"] {
            let back = await box.waitJSON("heatbridge/bosch-\(gw)/hc1/setpoint/result", timeout: 20) {
                $0["source"]?.stringValue == "lease:\(gid)" && $0["status"] == "done"
            }
            XCTAssertNotNil(back)
            await box.waitLatest("heatbridge/bosch-\(gw)/hc1/state", timeout: 20) { $0["manual_setpoint"] == 20 && $0["leases"] == nil }
        }

        // PV surplus that flaps across the threshold never holds for 2 s: no charge. Each value lasts 0.7 s of
        // the box's clock (less than hold_s, 2.1 s above in all): a hold that is not reset would fire.
        for v in ["2500", "1500", "2600", "1700", "2400", "1500"] {
            box.publish("test/pv_w", v)
            await box.advance(by: 0.7)
        }
        await box.advance(by: 2)
        await box.settle()
        XCTAssertEqual(firings(box, "pv-charge").count, 0, "a flapping value fired")
        // Above the threshold for the hold time: one charge; a dip inside the hysteresis band changes nothing.
        box.publish("test/pv_w", "2300")
        let charged = await box.waitJSON("heatbridge/bosch-101000001/dhw1/charge/result") {
            $0["source"] == "trigger:pv-charge" && $0["status"] == "done"
        }
        XCTAssertNotNil(charged)
        box.publish("test/pv_w", "1900")
        box.publish("test/pv_w", "2600")
        // A dip that wrongly ended the episode would fire again once hold_s (2 s) passed: let it pass.
        await box.advance(by: 2.5)
        await box.settle()
        XCTAssertEqual(firings(box, "pv-charge").count, 1, "\(box.all("heatbridge/bosch-101000001/dhw1/charge/result"))")
        XCTAssertEqual(firings(box, "peak-shed").count, 1)

        // After a restart the retained "peak" arrives again (the broker delivers it on the new subscription): the
        // episode already fired, nothing repeats.
        await box.stop()
        box = try InProcessBox(restarting: box)
        box.start()
        box.publish("test/tariff", #"{"state":"peak"}"#, retained: true)
        await box.waitJSON("heatbridge/bridge/triggers") { $0["triggers"]?.arrayValue?.first?["condition"]?["held"] == true }
        await box.waitJSON("heatbridge/bosch-101000002/hc1/state") { $0["source"] == "cloud" }
        await box.settle()
        XCTAssertEqual(firings(box, "peak-shed").count, 0, "a restart re-fired the condition")
        await box.stopAll()
    }

    func testLimitsRejectWithTheirCodeAndTheLegionellaGuardCharges() async throws {
        var box = try InProcessBox(
            pollIntervalS: 1, homeSmartlink: .init(),
            extraSections: """

                limits:
                  setpoint: {min: 16, max: 23}
                  derogation: {max_delta: 3, max_duration_min: 180}
                  min_spacing_s: 5
                  legionella: {min_temperature: 50, max_hours: 1}
                """)
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let gw = "heatbridge/bosch-101000001"
        await box.waitJSON("heatbridge/hsl-64f1c0a2e9b3/room-1/state")
        await box.waitJSON("\(gw)/hc1/state")
        // Until limits.min_spacing_s is meant to pass, the clock stands still.
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"hot","setpoint":24}"#)
        let hot = await box.waitResult("\(gw)/hc1/setpoint/result", id: "hot", status: "rejected", clockStill: true)
        XCTAssertEqual(hot?["code"], "OUT_OF_RANGE")
        XCTAssertTrue(hot?["message"]?.stringValue?.contains("limits.setpoint.max (23 °C)") ?? false, "\(hot ?? .null)")
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"ok","setpoint":20}"#)
        await box.waitResult("\(gw)/hc1/setpoint/result", id: "ok", status: "done", clockStill: true)
        box.publish("\(gw)/hc1/mode/set", #"{"id":"soon","mode":"manual"}"#)
        let soon = await box.waitResult("\(gw)/hc1/mode/result", id: "soon", status: "rejected", clockStill: true)
        XCTAssertEqual(soon?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(soon?["message"]?.stringValue?.contains("limits.min_spacing_s is 5 s") ?? false, "\(soon ?? .null)")
        let room = "heatbridge/hsl-64f1c0a2e9b3/room-1"
        box.publish("\(room)/derogation/set", #"{"id":"deep","delta":-4,"duration_min":60}"#)
        let deep = await box.waitResult("\(room)/derogation/result", id: "deep", status: "rejected", clockStill: true)
        XCTAssertEqual(deep?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(deep?["message"]?.stringValue?.contains("limits.derogation.max_delta") ?? false, "\(deep ?? .null)")
        // limits.min_spacing_s (5 s) on the box's clock has to pass.
        await box.advance(by: 5)
        box.publish("\(room)/derogation/set", #"{"id":"long","delta":-2,"duration_min":240}"#)
        let long = await box.waitResult("\(room)/derogation/result", id: "long", status: "rejected")
        XCTAssertEqual(long?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(long?["message"]?.stringValue?.contains("limits.derogation.max_duration_min (180 min)") ?? false, "\(long ?? .null)")

        // Hot water switched off: the guard starts counting (and remembers it across the restart below).
        box.publish("\(gw)/dhw1/mode/set", #"{"id":"off","mode":"off"}"#)
        await box.waitResult("\(gw)/dhw1/mode/result", id: "off", status: "done")
        await box.waitJSON("\(gw)/dhw1/state") { $0["operation_mode"] == "off" }
        await box.settle()  // the read that published "off" has been handled, its legionella watch stored
        await box.stop()
        // Two hours later: past max_hours, the bridge charges the water itself, once, and refuses to keep it off.
        box = try InProcessBox(restarting: box, after: 7200)
        box.start()
        let charge = await box.waitJSON("\(gw)/dhw1/charge/result") { $0["source"] == "limit:legionella" && $0["status"] == "done" }
        XCTAssertNotNil(charge)
        await box.waitJSON("\(gw)/dhw1/state") { $0["charge"]?["active"] == true }
        box.publish("\(gw)/dhw1/mode/set", #"{"id":"still-off","mode":"off"}"#)
        let refused = await box.waitResult("\(gw)/dhw1/mode/result", id: "still-off", status: "rejected")
        XCTAssertEqual(refused?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(refused?["message"]?.stringValue?.contains("limits.legionella allows 1 h") ?? false, "\(refused ?? .null)")
        // A second charge would come from a later read of the circuit: two more polls of it, then nothing.
        try await box.waitForRequests("/hvacs/101000001/dhwCircuits/1/charge", count: 2)
        await box.settle()
        let charges = box.json("\(gw)/dhw1/charge/result").filter { $0["source"] == "limit:legionella" && $0["status"] == "accepted" }
        XCTAssertEqual(charges.count, 1, "the guard charges once per episode")
        await box.stopAll()
    }

    func testLeasesRestoreTheirValueSurviveRestartsAndDeadManLeasesLapse() async throws {
        var box = try InProcessBox(pollIntervalS: 1)
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let gw = "heatbridge/bosch-101000001"
        await box.waitJSON("\(gw)/hc1/state") { $0["manual_setpoint"] == 20 }
        // A setpoint for 3 s: the previous 20 °C comes back by itself.
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"l1","setpoint":18,"duration_s":3}"#)
        await box.waitResult("\(gw)/hc1/setpoint/result", id: "l1", status: "done", clockStill: true)
        let leased = await box.waitJSON("\(gw)/hc1/state") { $0["leases"]?["setpoint"] != nil }
        XCTAssertLessThanOrEqual(leased?["leases"]?["setpoint"]?["remaining_s"]?.doubleValue ?? 99, 3)
        XCTAssertEqual(leased?["leases"]?["setpoint"]?["restore"], ["setpoint": 20])
        let restored = await box.waitJSON("\(gw)/hc1/setpoint/result") { $0["source"] == "lease:l1" && $0["status"] == "done" }
        XCTAssertEqual(restored?["id"], "l1-restore")
        await box.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 20 && $0["leases"] == nil }

        // A lease outlives a restart of the box.
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"l2","setpoint":17,"duration_s":6}"#)
        await box.waitResult("\(gw)/hc1/setpoint/result", id: "l2", status: "done", clockStill: true)
        await box.waitJSON("\(gw)/hc1/state") { $0["manual_setpoint"] == 17 && $0["leases"]?["setpoint"] != nil }
        await box.stop()
        box = try InProcessBox(restarting: box)
        box.start()
        let l2End = await box.waitJSON("\(gw)/hc1/setpoint/result", timeout: 20) { $0["source"] == "lease:l2" && $0["status"] == "done" }
        XCTAssertNotNil(l2End)
        await box.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 20 }

        // Dead-man: renewed once within 2 s, then no more: it lapses 2 s after the last renewal, not before.
        box.publish("\(gw)/hc1/mode/set", #"{"id":"d1","mode":"manual","duration_s":60,"renew_within_s":2}"#)
        await box.waitResult("\(gw)/hc1/mode/result", id: "d1", status: "done", clockStill: true)
        await box.advance(by: 1.2)
        box.publish("\(gw)/hc1/mode/set", #"{"id":"d2","mode":"manual","duration_s":60,"renew_within_s":2}"#)
        await box.waitResult("\(gw)/hc1/mode/result", id: "d2", status: "done", clockStill: true)
        func lapses(_ id: String) -> Int {
            box.json("\(gw)/hc1/mode/result").filter { $0["source"]?.stringValue == "lease:\(id)" }.count
        }
        await box.advance(by: 1.5)  // d1's deadline has passed, d2's not yet
        await box.settle()
        XCTAssertEqual(lapses("d1"), 0, "the renewed lease must not end on the first command's deadline")
        XCTAssertEqual(lapses("d2"), 0, "lapsed before the renewal deadline")
        await box.advance(by: 1)
        let lapsed = await box.waitJSON("\(gw)/hc1/mode/result", timeout: 10) { $0["source"] == "lease:d2" && $0["status"] == "done" }
        XCTAssertNotNil(lapsed)
        await box.waitJSON("\(gw)/hc1/state") { $0["operation_mode"] == "auto" }

        // The cloud goes away and comes back while a lease runs: its value is sent again.
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"long","setpoint":19.5,"duration_min":30}"#)
        await box.waitResult("\(gw)/hc1/setpoint/result", id: "long", status: "done")
        try await box.admin("POST", "/admin/down", #"{"down":true}"#)
        await box.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"] == "offline" }
        try await box.admin("POST", "/admin/down", #"{"down":false}"#)
        let reasserted = await box.waitJSON("\(gw)/hc1/setpoint/result", timeout: 30) { $0["source"] == "lease:long" && $0["status"] == "done" }
        XCTAssertTrue(reasserted?["id"]?.stringValue?.hasPrefix("long-reassert-") ?? false, "\(reasserted ?? .null)")
        await box.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 19.5 && $0["leases"]?["setpoint"] != nil }

        // A plain command for a leased target takes over: nothing is restored later.
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"l3","setpoint":19,"duration_s":3}"#)
        await box.waitResult("\(gw)/hc1/setpoint/result", id: "l3", status: "done", clockStill: true)
        box.publish("\(gw)/hc1/setpoint/set", #"{"id":"plain","setpoint":21.5}"#)
        // The budget spaces it from l3's PATCH on the same path (a second or two of the box's clock).
        await box.waitResult("\(gw)/hc1/setpoint/result", id: "plain", status: "done")
        // The replaced lease would have ended 3 s after l3: let that time pass on the box's clock, then check.
        await box.advance(by: 3.5)
        await box.settle()
        XCTAssertEqual(box.json("\(gw)/hc1/setpoint/result").filter { $0["source"] == "lease:l3" }.count, 0)
        await box.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 21.5 && $0["leases"] == nil }
        box.publish("\(gw)/dhw1/charge/set", #"{"id":"bad","action":"start","renew_within_s":5}"#)
        let bad = await box.waitResult("\(gw)/dhw1/charge/result", id: "bad", status: "rejected")
        XCTAssertEqual(bad?["code"], "INVALID_PAYLOAD", "a capability with its own duration takes no lease members")
        await box.stopAll()
    }
}

import Foundation
import HeatbridgeCore
import XCTest

/// Local triggers end to end: the daemon's clock is shifted (test hook) so a rule's time is seconds away.
final class TriggerIntegrationTests: XCTestCase {
    /// Results of commands a trigger issued: `(topic, payload)` with `"source":"trigger:<name>"`.
    func firings(_ c: TestMQTTClient, _ name: String, status: String = "accepted") -> [JSONValue] {
        c.recorder.messages.withLock { $0 }.filter { $0.topic.hasSuffix("/result") }.compactMap { try? JSONValue.parse($0.payload) }
            .filter { $0["source"]?.stringValue == "trigger:\(name)" && $0["status"]?.stringValue == status }
    }

    /// Environment that makes the daemon believe it is `target` (UTC) now.
    func clockAt(_ target: Double) -> [String: String] {
        ["HEATBRIDGE_TEST_HOOKS": "1", "TZ": "UTC", "HEATBRIDGE_TEST_CLOCK_OFFSET_S": String(target - Date().timeIntervalSince1970)]
    }

    func testTimeRulesFireOnceSurviveRestartsAndFollowTheMissedPolicy() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.writeConfig(
            pollIntervalS: 30, timeoutS: 1.5,
            extraSections: """

                triggers:
                  - {name: catch-up, at: "03:00", run_if_within_s: 600,
                     action: {target: bosch-101000001/dhw1, capability: charge, params: {action: start, duration_min: 15}}}
                  - {name: skip-missed, at: "03:00", action: {target: bosch-101000002/dhw1, capability: charge, params: {action: start}}}
                  - {name: live, at: "03:01", action: {target: bosch-101000001/hc1, capability: setpoint, params: {setpoint: 21}}}
                """)
        let c: TestMQTTClient = h.client
        let tomorrow = (Date().timeIntervalSince1970 / 86_400).rounded(.down) * 86_400 + 86_400
        // 1: the daemon runs shortly before 03:00 and stops: the rules' history starts, nothing fires.
        try h.startDaemon(env: clockAt(tomorrow + 3 * 3600 - 10))
        let view = c.waitJSON("heatbridge/bridge/triggers")
        XCTAssertEqual(view?["triggers"]?.arrayValue?.first?["next_fire"]?.stringValue, Timestamp.iso8601(tomorrow + 3 * 3600))
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        XCTAssertEqual(h.stopDaemon(), 0)
        // 2: back at 03:00:55. "catch-up" missed 03:00 by under 600 s: it runs; "skip-missed" does not; "live"
        // fires at 03:01 while the daemon runs.
        try h.startDaemon(env: clockAt(tomorrow + 3 * 3600 + 55))
        let caught = c.waitJSON("heatbridge/bosch-101000001/dhw1/charge/result") { $0["source"] == "trigger:catch-up" && $0["status"] == "done" }
        XCTAssertNotNil(caught)
        XCTAssertNotNil(
            c.waitJSON("heatbridge/bosch-101000001/hc1/setpoint/result", timeout: 20) { $0["source"] == "trigger:live" && $0["status"] == "done" })
        XCTAssertEqual(firings(c, "skip-missed").count, 0, "a missed time without run_if_within_s is skipped")
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"], 15)
        XCTAssertEqual(h.stopDaemon(), 0)
        XCTAssertEqual(firings(c, "catch-up").count, 1)
        XCTAssertEqual(firings(c, "live").count, 1)
        // 3: a restart after the firings fires nothing again (only what this run publishes counts).
        c.clear()
        try h.startDaemon(env: clockAt(tomorrow + 3 * 3600 + 70))
        c.waitJSON("heatbridge/bridge/triggers") {
            $0["triggers"]?.arrayValue?.last?["next_fire"]?.stringValue == Timestamp.iso8601(tomorrow + 86_400 + 3 * 3600 + 60)
        }
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state") { $0["source"] == "cloud" }
        // A wrong firing would be issued once the first polls are done, before the daemon answers the barrier.
        h.barrier()
        XCTAssertEqual(firings(c, "catch-up").count, 0)
        XCTAssertEqual(firings(c, "live").count, 0)
        XCTAssertEqual(firings(c, "skip-missed").count, 0)
        // The operator view and the audit in the store.
        let out = try runProcess(Harness.binary("heatbridge"), ["triggers", "--config", h.configPath, "--json"], env: ["TZ": "UTC"])
        XCTAssertEqual(out.status, 0, out.output)
        let report = try JSONValue.parse(out.output.split(separator: "\n").last.map(String.init) ?? "")
        let recent = report["recent"]?.arrayValue ?? []
        XCTAssertEqual(Set(recent.compactMap { $0["trigger"]?.stringValue }), ["catch-up", "live"])
        XCTAssertTrue(recent.contains { $0["reason"]?.stringValue?.contains("missed at") ?? false }, "\(recent)")
        XCTAssertEqual(report["triggers"]?.arrayValue?.first?["last_fired"]?.stringValue, Timestamp.iso8601(tomorrow + 3 * 3600))
    }

    func testConditionsShedAGroupHoldAgainstFlappingAndDoNotRefireAfterARestart() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.writeConfig(
            pollIntervalS: 30, timeoutS: 1.5,
            extraSections: """

                groups:
                  heating: [bosch-101000001/hc1, bosch-101000002/hc1]
                triggers:
                  - {name: peak-shed, topic: test/tariff, path: state, equals: peak,
                     action: {target: group/heating, capability: setpoint, params: {setpoint: 18, duration_s: 4}, valid_for_s: 300}}
                  - {name: pv-charge, topic: test/pv_w, above: 2000, hysteresis: 200, hold_s: 2,
                     action: {target: bosch-101000001/dhw1, capability: charge, params: {action: start, duration_min: 20}}}
                """)
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000002/hc1/state")
        c.waitJSON("heatbridge/bridge/triggers")
        // The tariff goes to peak: the group is shed once, whatever repeats.
        c.publish("test/tariff", #"{"state":"offpeak"}"#, retain: true)
        c.publish("test/tariff", #"{"state":"peak"}"#, retain: true)
        let shed = c.waitJSON("heatbridge/group/heating/setpoint/result") { $0["source"] == "trigger:peak-shed" && $0["status"] == "done" }
        XCTAssertEqual(shed?["members"]?.objectValue?.keys.sorted(), ["bosch-101000001/hc1", "bosch-101000002/hc1"])
        c.publish("test/tariff", #"{"state":"peak"}"#, retain: true)
        c.waitJSON("heatbridge/bosch-101000002/hc1/state", timeout: 40) { $0["manual_setpoint"] == 18 && $0["leases"]?["setpoint"] != nil }
        // The shed is a lease: at its end each room gets its own previous setpoint back.
        let gid = try XCTUnwrap(shed?["id"]?.stringValue)
        for gw in ["101000001", "101000002"] {
            XCTAssertNotNil(
                c.waitJSON("heatbridge/bosch-\(gw)/hc1/setpoint/result", timeout: 20) {
                    $0["source"]?.stringValue == "lease:\(gid)" && $0["status"] == "done"
                })
            c.waitLatest("heatbridge/bosch-\(gw)/hc1/state", timeout: 20) { $0["manual_setpoint"] == 20 && $0["leases"] == nil }
        }

        // PV surplus that flaps across the threshold never holds for 2 s: no charge. Each value lasts 0.7 s of
        // the daemon's clock (less than hold_s, 2.1 s above in all): a hold that is not reset would fire.
        for v in ["2500", "1500", "2600", "1700", "2400", "1500"] {
            c.publish("test/pv_w", v)
            try h.advanceClock(by: 0.7)
        }
        try h.advanceClock(by: 2)
        h.barrier()
        XCTAssertEqual(firings(c, "pv-charge").count, 0, "a flapping value fired")
        // Above the threshold for the hold time: one charge; a dip inside the hysteresis band changes nothing.
        c.publish("test/pv_w", "2300")
        XCTAssertNotNil(c.waitJSON("heatbridge/bosch-101000001/dhw1/charge/result") { $0["source"] == "trigger:pv-charge" && $0["status"] == "done" })
        c.publish("test/pv_w", "1900")
        c.publish("test/pv_w", "2600")
        // A dip that wrongly ended the episode would fire again once hold_s (2 s) passed: let it pass.
        try h.advanceClock(by: 2.5)
        h.barrier()
        XCTAssertEqual(firings(c, "pv-charge").count, 1)
        XCTAssertEqual(firings(c, "peak-shed").count, 1)

        // After a restart the retained "peak" arrives again: the episode already fired, nothing repeats.
        XCTAssertEqual(h.stopDaemon(), 0)
        c.clear()
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        c.waitJSON("heatbridge/bridge/triggers") { $0["triggers"]?.arrayValue?.first?["condition"]?["held"] == true }
        c.waitJSON("heatbridge/bosch-101000002/hc1/state") { $0["source"] == "cloud" }
        h.barrier()
        XCTAssertEqual(firings(c, "peak-shed").count, 0, "a restart re-fired the condition")
        c.publish("test/tariff", "", retain: true)
    }

    func testLimitsRejectWithTheirCodeAndTheLegionellaGuardCharges() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.writeConfig(
            pollIntervalS: 1, timeoutS: 1.5, extraAccounts: try h.hslAccount(),
            extraSections: """

                limits:
                  setpoint: {min: 16, max: 23}
                  derogation: {max_delta: 3, max_duration_min: 180}
                  min_spacing_s: 5
                  legionella: {min_temperature: 50, max_hours: 1}
                """)
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        let c: TestMQTTClient = h.client
        let gw = "heatbridge/bosch-101000001"
        c.waitJSON("heatbridge/hsl-64f1c0a2e9b3/room-1/state")
        c.waitJSON("\(gw)/hc1/state")
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"hot","setpoint":24}"#)
        let hot = c.waitResult("\(gw)/hc1/setpoint/result", id: "hot", status: "rejected")
        XCTAssertEqual(hot?["code"], "OUT_OF_RANGE")
        XCTAssertTrue(hot?["message"]?.stringValue?.contains("limits.setpoint.max (23 °C)") ?? false, "\(hot ?? .null)")
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"ok","setpoint":20}"#)
        c.waitResult("\(gw)/hc1/setpoint/result", id: "ok", status: "done")
        c.publish("\(gw)/hc1/mode/set", #"{"id":"soon","mode":"manual"}"#)
        let soon = c.waitResult("\(gw)/hc1/mode/result", id: "soon", status: "rejected")
        XCTAssertEqual(soon?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(soon?["message"]?.stringValue?.contains("limits.min_spacing_s is 5 s") ?? false, "\(soon ?? .null)")
        let room = "heatbridge/hsl-64f1c0a2e9b3/room-1"
        c.publish("\(room)/derogation/set", #"{"id":"deep","delta":-4,"duration_min":60}"#)
        let deep = c.waitResult("\(room)/derogation/result", id: "deep", status: "rejected")
        XCTAssertEqual(deep?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(deep?["message"]?.stringValue?.contains("limits.derogation.max_delta") ?? false, "\(deep ?? .null)")
        // limits.min_spacing_s (5 s) on the daemon's clock has to pass.
        try h.advanceClock(by: 5)
        c.publish("\(room)/derogation/set", #"{"id":"long","delta":-2,"duration_min":240}"#)
        let long = c.waitResult("\(room)/derogation/result", id: "long", status: "rejected")
        XCTAssertEqual(long?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(long?["message"]?.stringValue?.contains("limits.derogation.max_duration_min (180 min)") ?? false, "\(long ?? .null)")

        // Hot water switched off: the guard starts counting (and remembers it across the restart below).
        c.publish("\(gw)/dhw1/mode/set", #"{"id":"off","mode":"off"}"#)
        c.waitResult("\(gw)/dhw1/mode/result", id: "off", status: "done")
        c.waitJSON("\(gw)/dhw1/state") { $0["operation_mode"] == "off" }
        h.barrier()  // the read that published "off" has been handled, its legionella watch stored
        XCTAssertEqual(h.stopDaemon(), 0)
        // Two hours later (shifted clock): past max_hours, the bridge charges the water itself, once, and
        // refuses to keep it off.
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1", "HEATBRIDGE_TEST_CLOCK_OFFSET_S": "7200"])
        let charge = c.waitJSON("\(gw)/dhw1/charge/result") { $0["source"] == "limit:legionella" && $0["status"] == "done" }
        XCTAssertNotNil(charge)
        c.waitJSON("\(gw)/dhw1/state") { $0["charge"]?["active"] == true }
        c.publish("\(gw)/dhw1/mode/set", #"{"id":"still-off","mode":"off"}"#)
        let refused = c.waitResult("\(gw)/dhw1/mode/result", id: "still-off", status: "rejected")
        XCTAssertEqual(refused?["code"], "SAFETY_LIMIT")
        XCTAssertTrue(refused?["message"]?.stringValue?.contains("limits.legionella allows 1 h") ?? false, "\(refused ?? .null)")
        // A second charge would come from a later read of the circuit: two more polls of it, then nothing.
        try h.waitForRequests("/hvacs/101000001/dhwCircuits/1/charge", count: 2)
        h.barrier()
        let charges = c.all("\(gw)/dhw1/charge/result").compactMap { try? JSONValue.parse($0.payload) }
            .filter { $0["source"] == "limit:legionella" && $0["status"] == "accepted" }
        XCTAssertEqual(charges.count, 1, "the guard charges once per episode")
    }

    func testLeasesRestoreTheirValueSurviveRestartsAndDeadManLeasesLapse() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        let c: TestMQTTClient = h.client
        let gw = "heatbridge/bosch-101000001"
        c.waitJSON("\(gw)/hc1/state") { $0["manual_setpoint"] == 20 }
        // A setpoint for 3 s: the previous 20 °C comes back by itself.
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"l1","setpoint":18,"duration_s":3}"#)
        c.waitResult("\(gw)/hc1/setpoint/result", id: "l1", status: "done")
        let leased = c.waitJSON("\(gw)/hc1/state") { $0["leases"]?["setpoint"] != nil }
        XCTAssertLessThanOrEqual(leased?["leases"]?["setpoint"]?["remaining_s"]?.doubleValue ?? 99, 3)
        XCTAssertEqual(leased?["leases"]?["setpoint"]?["restore"], ["setpoint": 20])
        let restored = c.waitJSON("\(gw)/hc1/setpoint/result") { $0["source"] == "lease:l1" && $0["status"] == "done" }
        XCTAssertEqual(restored?["id"], "l1-restore")
        c.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 20 && $0["leases"] == nil }

        // A lease outlives a restart of the daemon.
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"l2","setpoint":17,"duration_s":6}"#)
        c.waitResult("\(gw)/hc1/setpoint/result", id: "l2", status: "done")
        c.waitJSON("\(gw)/hc1/state") { $0["manual_setpoint"] == 17 && $0["leases"]?["setpoint"] != nil }
        XCTAssertEqual(h.stopDaemon(), 0)
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        XCTAssertNotNil(c.waitJSON("\(gw)/hc1/setpoint/result", timeout: 20) { $0["source"] == "lease:l2" && $0["status"] == "done" })
        c.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 20 }

        // Dead-man: renewed once within 2 s, then no more: it lapses 2 s after the last renewal, not before.
        c.publish("\(gw)/hc1/mode/set", #"{"id":"d1","mode":"manual","duration_s":60,"renew_within_s":2}"#)
        c.waitResult("\(gw)/hc1/mode/result", id: "d1", status: "done")
        try h.advanceClock(by: 1.2)
        c.publish("\(gw)/hc1/mode/set", #"{"id":"d2","mode":"manual","duration_s":60,"renew_within_s":2}"#)
        c.waitResult("\(gw)/hc1/mode/result", id: "d2", status: "done")
        func lapses(_ id: String) -> Int {
            c.all("\(gw)/hc1/mode/result").compactMap { try? JSONValue.parse($0.payload) }.filter { $0["source"]?.stringValue == "lease:\(id)" }.count
        }
        try h.advanceClock(by: 1.5)  // d1's deadline has passed, d2's not yet
        h.barrier()
        XCTAssertEqual(lapses("d1"), 0, "the renewed lease must not end on the first command's deadline")
        XCTAssertEqual(lapses("d2"), 0, "lapsed before the renewal deadline")
        try h.advanceClock(by: 1)
        XCTAssertNotNil(c.waitJSON("\(gw)/hc1/mode/result", timeout: 10) { $0["source"] == "lease:d2" && $0["status"] == "done" })
        c.waitJSON("\(gw)/hc1/state") { $0["operation_mode"] == "auto" }

        // The cloud goes away and comes back while a lease runs: its value is sent again.
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"long","setpoint":19.5,"duration_min":30}"#)
        c.waitResult("\(gw)/hc1/setpoint/result", id: "long", status: "done")
        try h.admin("POST", "/admin/down", #"{"down":true}"#)
        c.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"] == "offline" }
        try h.admin("POST", "/admin/down", #"{"down":false}"#)
        let reasserted = c.waitJSON("\(gw)/hc1/setpoint/result", timeout: 30) { $0["source"] == "lease:long" && $0["status"] == "done" }
        XCTAssertTrue(reasserted?["id"]?.stringValue?.hasPrefix("long-reassert-") ?? false, "\(reasserted ?? .null)")
        c.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 19.5 && $0["leases"]?["setpoint"] != nil }

        // A plain command for a leased target takes over: nothing is restored later.
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"l3","setpoint":19,"duration_s":3}"#)
        c.waitResult("\(gw)/hc1/setpoint/result", id: "l3", status: "done")
        c.publish("\(gw)/hc1/setpoint/set", #"{"id":"plain","setpoint":21.5}"#)
        c.waitResult("\(gw)/hc1/setpoint/result", id: "plain", status: "done")
        // The replaced lease would have ended 3 s after l3: let that time pass on the daemon's clock, then check.
        try h.advanceClock(by: 3.5)
        h.barrier()
        XCTAssertEqual(
            c.all("\(gw)/hc1/setpoint/result").compactMap { try? JSONValue.parse($0.payload) }.filter { $0["source"] == "lease:l3" }.count, 0)
        c.waitLatest("\(gw)/hc1/state") { $0["manual_setpoint"] == 21.5 && $0["leases"] == nil }
        c.publish("\(gw)/dhw1/charge/set", #"{"id":"bad","action":"start","renew_within_s":5}"#)
        XCTAssertEqual(
            c.waitResult("\(gw)/dhw1/charge/result", id: "bad", status: "rejected")?["code"], "INVALID_PAYLOAD",
            "a capability with its own duration takes no lease members")
    }
}

import HeatbridgeCore
import XCTest

/// Heating-circuit and DHW settings through MQTT, end to end, and their local validation. In process
/// (`InProcessBox`); moved from the integration tests with every assertion, since nothing here needs a real process.
final class BoschControlTests: XCTestCase {
    let dev = "heatbridge/bosch-101000001"

    func testModesAndSetpointsReachTheCloudAndComeBack() async throws {
        let box = try InProcessBox()
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        await box.waitJSON("\(dev)/hc1/state")
        box.publish("\(dev)/hc1/setpoint/set", #"{"id":"sp","setpoint":22.5}"#)
        let sp = await box.waitResult("\(dev)/hc1/setpoint/result", id: "sp", status: "done")
        XCTAssertEqual(sp?["message"]?.stringValue, "manual setpoint set to 22.5 °C; it applies in manual mode")
        box.publish("\(dev)/hc1/mode/set", #"{"id":"m","mode":"manual"}"#)
        await box.waitResult("\(dev)/hc1/mode/result", id: "m", status: "done")
        await box.waitJSON("\(dev)/hc1/state") { $0["operation_mode"]?.stringValue == "manual" && $0["setpoint"]?.doubleValue == 22.5 }
        box.publish("\(dev)/dhw1/mode/set", #"{"id":"dm","mode":"eco"}"#)
        await box.waitResult("\(dev)/dhw1/mode/result", id: "dm", status: "done")
        box.publish("\(dev)/dhw1/setpoint/set", #"{"id":"ds","level":"high","start":48,"stop":56}"#)
        await box.waitResult("\(dev)/dhw1/setpoint/result", id: "ds", status: "done")
        await box.waitJSON("\(dev)/dhw1/state") {
            $0["operation_mode"]?.stringValue == "eco" && $0["levels"]?["high"] == ["start": 48, "stop": 56]
        }
        await box.stopAll()
    }

    /// Auto mode: which time program runs, and the temperatures of its levels.
    func testProgramSelectionAndLevels() async throws {
        let box = try InProcessBox(pollIntervalS: 1)
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let hcRead = await box.waitJSON("\(dev)/hc1/state")
        let hc = try XCTUnwrap(hcRead)
        XCTAssertEqual(hc["time_program"], "A")
        XCTAssertEqual(hc["levels"], ["comfort": 21, "eco": 17])
        box.publish("\(dev)/hc1/program/set", #"{"id":"p1","program":"b"}"#)
        let answer4 = await box.waitResult("\(dev)/hc1/program/result", id: "p1", status: "done")
        XCTAssertEqual(answer4?["message"], "time program B selected")
        await box.waitJSON("\(dev)/hc1/state") { $0["time_program"] == "B" }
        // The published week program follows the selection.
        await box.waitJSON("\(dev)/hc1/schedule") { $0["days"]?["mon"]?.arrayValue?.first?["at"] == "07:00" }
        box.publish("\(dev)/hc1/levels/set", #"{"id":"l1","comfort":22,"eco":16.5}"#)
        let answer5 = await box.waitResult("\(dev)/hc1/levels/result", id: "l1", status: "done")
        XCTAssertEqual(answer5?["message"], "levels set: comfort 22 °C, eco 16.5 °C")
        await box.waitJSON("\(dev)/hc1/state") { $0["levels"] == ["comfort": 22, "eco": 16.5] && $0["setpoint"] == 22 }
        await box.waitJSON("\(dev)/hc1/schedule") { $0["levels"] == ["comfort": 22, "eco": 16.5] }

        try await box.admin("DELETE", "/admin/requests")
        let cases: [(String, String, String, String)] = [
            ("program", #"{"id":"b1","program":"C"}"#, "INVALID_PAYLOAD", "\"program\" must be one of a, b"),
            ("levels", #"{"id":"b2","eco":23}"#, "OUT_OF_RANGE", "\"eco\" (23) must be below \"comfort\" (22)"),
            ("levels", #"{"id":"b3","party":20}"#, "INVALID_PAYLOAD", "unknown level \"party\"; levels: comfort, eco"),
            ("levels", #"{"id":"b4","comfort":40}"#, "OUT_OF_RANGE", "\"comfort\" must be 5…30 °C"),
            ("levels", #"{"id":"b5"}"#, "INVALID_PAYLOAD", "give at least one of comfort, eco"),
        ]
        await box.expectRejections("\(dev)/hc1", cases)
        let writes = (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue != "GET" }
        XCTAssertTrue(writes.isEmpty, "bad input reached the cloud: \(writes)")
        await box.stopAll()
    }

    func testBadInputIsRejectedLocallyNamingTheField() async throws {
        let box = try InProcessBox()
        box.start()
        await box.waitJSON("\(dev)/dhw1/state")
        try await box.admin("DELETE", "/admin/requests")
        let cases: [(String, String, String, String)] = [
            ("hc1/setpoint", #"{"id":"b1","setpoint":35}"#, "OUT_OF_RANGE", "\"setpoint\" must be 5…30 °C"),
            ("hc1/setpoint", #"{"id":"b2","setpoint":21.3}"#, "OUT_OF_RANGE", "0.5 °C steps"),
            ("hc1/setpoint", #"{"id":"b3","setpoint":"warm"}"#, "INVALID_PAYLOAD", "\"setpoint\" must be a number"),
            ("hc1/mode", #"{"id":"b4","mode":"turbo"}"#, "INVALID_PAYLOAD", "\"mode\" must be one of off, auto, manual"),
            ("dhw1/mode", #"{"id":"b5","mode":"boil"}"#, "INVALID_PAYLOAD", "\"mode\" must be one of"),
            ("dhw1/setpoint", #"{"id":"b6","level":"high","start":56,"stop":50}"#, "OUT_OF_RANGE", "\"start\" (56) must be below \"stop\" (50)"),
            ("dhw1/setpoint", #"{"id":"b7","level":"high","start":40,"stop":90}"#, "OUT_OF_RANGE", "\"stop\" must be 30…65 °C"),
            ("dhw1/setpoint", #"{"id":"b8","level":"max","start":40,"stop":50}"#, "INVALID_PAYLOAD", "\"level\" must be one of eco, low, high"),
        ]
        await box.expectRejections("\(dev)", cases)
        let writes = (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue != "GET" }
        XCTAssertTrue(writes.isEmpty, "bad input reached the cloud: \(writes)")
        await box.stopAll()
    }

    func testSilentModeAndHolidayModes() async throws {
        let box = try InProcessBox()
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let sysRead = await box.waitJSON("\(dev)/system/state")
        let sys = try XCTUnwrap(sysRead)
        XCTAssertEqual(sys["silent_mode"], "off")
        XCTAssertEqual(sys["holidays"], [])
        box.publish("\(dev)/system/silent-mode/set", #"{"id":"s","mode":"auto"}"#)
        await box.waitResult("\(dev)/system/silent-mode/result", id: "s", status: "done")
        box.publish(
            "\(dev)/system/holiday/set",
            #"{"id":"h1","action":"create","start":"2026-12-20","end":"2027-01-03","assigned_to":["hc1","dhw1"],"hc_mode":"eco","dhw_mode":"off"}"#)
        let created = await box.waitResult("\(dev)/system/holiday/result", id: "h1", status: "done")
        XCTAssertEqual(created?["message"], "holiday mode hm1 2026-12-20…2027-01-03 for hc1, dhw1")
        let after = await box.waitJSON("\(dev)/system/state") { $0["silent_mode"] == "auto" && ($0["holidays"]?.arrayValue?.count ?? 0) == 1 }
        XCTAssertEqual(after?["holidays"]?.arrayValue?.first?["hc_mode"], "eco")
        // Bad input is refused before any call, naming the field.
        try await box.admin("DELETE", "/admin/requests")
        let cases: [(String, String, String, String)] = [
            (
                "holiday", #"{"id":"b1","action":"create","start":"2027-01-03","end":"2026-12-20"}"#, "OUT_OF_RANGE",
                "\"end\" 2026-12-20 is before \"start\" 2027-01-03"
            ),
            (
                "holiday", #"{"id":"b2","action":"create","start":"2026-13-01","end":"2027-01-03"}"#, "INVALID_PAYLOAD",
                "\"start\" must be a date YYYY-MM-DD"
            ),
            (
                "holiday", #"{"id":"b3","action":"create","start":"2026-12-20","end":"2027-01-03","assigned_to":["hc7"]}"#, "UNKNOWN_TARGET",
                "no circuit \"hc7\""
            ),
            (
                "holiday", #"{"id":"b4","action":"create","start":"2026-12-20","end":"2027-01-03","hc_mode":"party"}"#, "INVALID_PAYLOAD",
                "\"hc_mode\" must be one of"
            ),
            ("holiday", #"{"id":"b5","action":"delete","holiday_id":"hm9"}"#, "UNKNOWN_TARGET", "no holiday mode \"hm9\""),
            ("silent-mode", #"{"id":"b6","mode":"loud"}"#, "INVALID_PAYLOAD", "\"mode\" must be one of on, off, auto"),
        ]
        await box.expectRejections("\(dev)/system", cases)
        let writes = (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue != "GET" }
        XCTAssertTrue(writes.isEmpty, "bad input reached the cloud: \(writes)")
        box.publish("\(dev)/system/holiday/set", #"{"id":"h2","action":"delete","holiday_id":"hm1"}"#)
        await box.waitJSON("\(dev)/system/holiday/result") { $0["status"] == "done" && $0["message"] == "holiday mode hm1 deleted" }
        await box.waitJSON("\(dev)/system/state") { $0["holidays"] == [] && $0["silent_mode"] == "auto" }
        await box.stopAll()
    }

    func testHeatCurveIsReadAndWritten() async throws {
        let box = try InProcessBox()
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let hcRead = await box.waitJSON("\(dev)/hc1/state") { $0["heat_curve"] != nil }
        let hc = try XCTUnwrap(hcRead)
        XCTAssertEqual(hc["heat_curve"]?["max_flow"], 55)
        XCTAssertEqual(hc["heat_curve"]?["room_influence_k"], 3)
        XCTAssertEqual(hc["distribution"], "floor")
        try await box.admin("DELETE", "/admin/requests")
        let cases: [(String, String, String, String)] = [
            ("heat-curve", #"{"id":"c1","min_flow":60}"#, "OUT_OF_RANGE", "\"min_flow\" (60) must be below \"max_flow\" (55)"),
            ("heat-curve", #"{"id":"c2","max_flow":120}"#, "OUT_OF_RANGE", "\"max_flow\" must be 10…90 °C"),
            ("heat-curve", #"{"id":"c3","basepoint":50}"#, "OUT_OF_RANGE", "\"basepoint\" (50) must be below \"endpoint\" (45)"),
            ("heat-curve", #"{"id":"c4","slope":1.2}"#, "INVALID_PAYLOAD", "unknown member \"slope\""),
            ("heat-curve", #"{"id":"c5","control_type":"isrc"}"#, "INVALID_PAYLOAD", "\"control_type\" must be one of wdcoptimized, wdcsimplified"),
            ("heat-curve", #"{"id":"c6"}"#, "INVALID_PAYLOAD", "give at least one of"),
        ]
        await box.expectRejections("\(dev)/hc1", cases)
        let requestsSoFar = try await box.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertTrue(
            requestsSoFar.allSatisfy { $0["method"]?.stringValue == "GET" }, "bad input reached the cloud")
        box.publish("\(dev)/hc1/heat-curve/set", #"{"id":"ok","max_flow":50,"room_influence_k":2.5}"#)
        await box.waitResult("\(dev)/hc1/heat-curve/result", id: "ok", status: "done")
        await box.waitJSON("\(dev)/hc1/state") {
            $0["heat_curve"]?["max_flow"] == 50 && $0["heat_curve"]?["room_influence_k"] == 2.5 && $0["heat_curve"]?["min_flow"] == 25
        }
        let patch = (try await box.admin("GET", "/admin/requests").arrayValue ?? []).first { $0["method"]?.stringValue == "PATCH" }
        XCTAssertEqual(
            try JSONValue.parse(patch?["body"]?.stringValue ?? ""), ["maxFlowTemperature": 50, "roomInfluenceTemperature": 2.5],
            "only the changed fields are sent, the room term in Kelvin")
        await box.stopAll()
    }
}

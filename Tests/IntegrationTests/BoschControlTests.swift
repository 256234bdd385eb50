import Foundation
import HeatbridgeCore
import XCTest

/// Heating-circuit and DHW settings through MQTT, end to end, and their local validation.
final class BoschControlTests: XCTestCase {
    let dev = "heatbridge/bosch-101000001"

    func testModesAndSetpointsReachTheCloudAndComeBack() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(dev)/hc1/state")
        c.publish("\(dev)/hc1/setpoint/set", #"{"id":"sp","setpoint":22.5}"#)
        let sp = c.waitResult("\(dev)/hc1/setpoint/result", id: "sp", status: "done")
        XCTAssertEqual(sp?["message"]?.stringValue, "manual setpoint set to 22.5 °C; it applies in manual mode")
        c.publish("\(dev)/hc1/mode/set", #"{"id":"m","mode":"manual"}"#)
        c.waitResult("\(dev)/hc1/mode/result", id: "m", status: "done")
        c.waitJSON("\(dev)/hc1/state") { $0["operation_mode"]?.stringValue == "manual" && $0["setpoint"]?.doubleValue == 22.5 }
        c.publish("\(dev)/dhw1/mode/set", #"{"id":"dm","mode":"eco"}"#)
        c.waitResult("\(dev)/dhw1/mode/result", id: "dm", status: "done")
        c.publish("\(dev)/dhw1/setpoint/set", #"{"id":"ds","level":"high","start":48,"stop":56}"#)
        c.waitResult("\(dev)/dhw1/setpoint/result", id: "ds", status: "done")
        c.waitJSON("\(dev)/dhw1/state") {
            $0["operation_mode"]?.stringValue == "eco" && $0["levels"]?["high"] == ["start": 48, "stop": 56]
        }
    }

    func testBadInputIsRejectedLocallyNamingTheField() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(dev)/dhw1/state")
        try h.admin("DELETE", "/admin/requests")
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
        for (target, payload, code, text) in cases {
            c.publish("\(dev)/\(target)/set", payload)
            let id = (try JSONValue.parse(payload))["id"]!.stringValue!
            let r = c.waitResult("\(dev)/\(target)/result", id: id, status: "rejected")
            XCTAssertEqual(r?["code"]?.stringValue, code, payload)
            XCTAssertTrue(r?["message"]?.stringValue?.contains(text) ?? false, "\(payload): \(r?["message"]?.stringValue ?? "")")
        }
        let writes = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue != "GET" }
        XCTAssertTrue(writes.isEmpty, "bad input reached the cloud: \(writes)")
    }
}

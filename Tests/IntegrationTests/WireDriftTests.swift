import Foundation
import HeatbridgeCore
import XCTest

/// A real cloud that answers differently from the wire definition (most Bosch shapes are INFERRED): the daemon
/// reads what it can, names the request and field, and degrades only the part it belongs to (#18 item 1).
final class WireDriftTests: XCTestCase {
    func fault(_ h: Harness, path: String, body: JSONValue) throws {
        let f: JSONValue = ["vendor": "bosch", "method": "GET", "path": .string(path), "status": 200, "body": .string(body.serialized)]
        try h.injectFault(f.serialized)
    }

    func testAnAnswerThatDiffersDegradesOnlyItsPart() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let gw = "heatbridge/bosch-101000001"
        c.waitJSON("\(gw)/hc1/state")
        // hc1: a number sent as a string, an unknown enum value, a field of the wrong type, a field the
        // definition does not have. dhw1: a list where an object belongs.
        try fault(h, path: "/hvacs/101000001/heatingCircuits/1", body: [
            "id": "1", "operationMode": "TURBO", "currentSetPointTemperature": 21, "roomTemperature": "20.5",
            "manualModeSettings": ["setPointTemperature": true],
            "autoModeSettings": ["timeProgramId": "A", "temperatureLevels": ["comfort": 21, "eco": 17]],
            "overridingModes": [], "someNewField": ["x": 1],
        ])
        try fault(h, path: "/hvacs/101000001/dhwCircuits/1", body: [])
        let hc = try XCTUnwrap(c.waitJSON("\(gw)/hc1/state", timeout: 20) { $0["error"] != .null && $0["error"] != nil })
        XCTAssertEqual(hc["room_temperature"]?.doubleValue, 20.5, "a number sent as a string is read")
        XCTAssertEqual(hc["operation_mode"]?.stringValue, "turbo", "an unknown enum value is kept as its string")
        XCTAssertEqual(hc["manual_setpoint"], .null, "the field of the wrong type is null")
        XCTAssertEqual(hc["setpoint"]?.doubleValue, 21, "the rest of the node is still published")
        XCTAssertEqual(hc["error"]?["code"]?.stringValue, "BAD_RESPONSE")
        let fields = hc["error"]?["fields"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(fields.contains("GET /hvacs/101000001/heatingCircuits/1 manualModeSettings.setPointTemperature"), "\(fields)")
        XCTAssertTrue(fields.contains("GET /hvacs/101000001/heatingCircuits/1 roomTemperature"), "\(fields)")
        XCTAssertTrue(hc["error"]?["message"]?.stringValue?.contains("a number sent as a string") == true, "\(hc)")
        let dhw = try XCTUnwrap(c.waitJSON("\(gw)/dhw1/state", timeout: 20) { $0["error"] != .null && $0["error"] != nil })
        XCTAssertEqual(dhw["error"]?["code"]?.stringValue, "BAD_RESPONSE")
        XCTAssertTrue(dhw["error"]?["message"]?.stringValue?.contains("GET /hvacs/101000001/dhwCircuits/1") == true, "\(dhw)")
        // Only those parts: the gateway, its system node, the other gateway and the account are fine.
        h.barrier()
        XCTAssertEqual(c.latest("\(gw)/state")?["error"], .null)
        XCTAssertEqual(c.latest("\(gw)/system/state")?["error"] ?? .null, .null)
        XCTAssertEqual(c.latest("heatbridge/bosch-101000002/hc1/state")?["error"] ?? .null, .null)
        XCTAssertEqual(c.latest("heatbridge/bridge/account/bosch-test")?["state"]?.stringValue, "ready")
        // The cloud back to the definition: the errors go.
        try h.admin("DELETE", "/admin/faults")
        c.waitJSON("\(gw)/hc1/state", timeout: 20) { $0["error"] == nil && $0["operation_mode"] == "auto" }
        c.waitJSON("\(gw)/dhw1/state", timeout: 20) { $0["error"] == nil && $0["operation_mode"] != nil }
    }
}

import Foundation
import HeatbridgeCore
import XCTest

/// The MQTT contract's rules about ids and MQTT v5 request/response, against the real daemon and broker.
final class ContractTests: XCTestCase {
    let charge = "heatbridge/bosch-101000001/dhw1/charge"

    func chargePatches(_ h: Harness) throws -> [JSONValue] {
        (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["method"]?.stringValue == "PATCH" && ($0["path"]?.stringValue ?? "").contains("charge")
        }
    }

    /// Ids are strings, echoed as sent; each message gets exactly one first answer; a command repeating an id
    /// with other parameters is `DUPLICATE_ID` (in either order), and the same command again is answered with
    /// its current result without running twice.
    func testIdsAreStringsAndEveryMessageGetsOneFirstAnswer() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.admin("DELETE", "/admin/requests")

        // A numeric id is refused, and the rejection carries it exactly as sent (a number).
        c.publish("\(charge)/set", #"{"id":4711,"action":"start"}"#)
        let numeric = c.waitJSON("\(charge)/result") { $0["id"] == .number(4711) }
        XCTAssertEqual(numeric?["status"]?.stringValue, "rejected")
        XCTAssertEqual(numeric?["code"]?.stringValue, "INVALID_PAYLOAD")
        XCTAssertTrue(numeric?["message"]?.stringValue?.contains(#""4711""#) == true, "\(String(describing: numeric))")

        // Run once; the same command again gets its current result (done), and is not sent again.
        c.publish("\(charge)/set", #"{"id":"same","action":"start","duration_min":21}"#)
        c.waitResult("\(charge)/result", id: "same", status: "done")
        c.clear()
        c.publish("\(charge)/set", #"{"id":"same","action":"start","duration_min":21}"#)
        let again = c.waitResult("\(charge)/result", id: "same", status: "done")
        XCTAssertNotNil(again)
        XCTAssertEqual(c.statuses("\(charge)/result", id: "same"), ["done"], "a repeat is answered with the current result only")

        // The id again with other parameters: refused DUPLICATE_ID, first and only answer.
        c.clear()
        c.publish("\(charge)/set", #"{"id":"same","action":"start","duration_min":55}"#)
        let dup = c.waitResult("\(charge)/result", id: "same", status: "rejected")
        XCTAssertEqual(dup?["code"]?.stringValue, "DUPLICATE_ID")
        XCTAssertEqual(c.statuses("\(charge)/result", id: "same"), ["rejected"])

        // Back to back, the second before the first has ended: the first runs, the second is refused.
        c.clear()
        c.publish("\(charge)/set", #"{"id":"pair","action":"start","duration_min":22}"#)
        c.publish("\(charge)/set", #"{"id":"pair","action":"stop"}"#)
        c.waitResult("\(charge)/result", id: "pair", status: "done")
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "pair", status: "rejected")?["code"]?.stringValue, "DUPLICATE_ID")
        h.barrier()
        XCTAssertEqual(c.statuses("\(charge)/result", id: "pair").filter { $0 == "accepted" || $0 == "rejected" }.sorted(), ["accepted", "rejected"],
                       "each of the two messages gets exactly one first answer")
        // Two charges reached the cloud: "same" once and "pair" once.
        let patches = try chargePatches(h)
        XCTAssertEqual(patches.count, 2, "\(patches)")
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 22)
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["active"]?.boolValue, true)
    }
}

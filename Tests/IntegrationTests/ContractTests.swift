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

        // Run once; the same command again is answered `repeated` with its current result (done) under
        // `current` — never a second first answer — and is not sent again.
        c.publish("\(charge)/set", #"{"id":"same","action":"start","duration_min":21}"#)
        c.waitResult("\(charge)/result", id: "same", status: "done")
        c.clear()
        c.publish("\(charge)/set", #"{"id":"same","action":"start","duration_min":21}"#)
        let again = c.waitResult("\(charge)/result", id: "same", status: "repeated")
        XCTAssertEqual(again?["current"]?["status"], "done")
        XCTAssertEqual(c.statuses("\(charge)/result", id: "same"), ["repeated"], "a repeat is answered `repeated` only")

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
        XCTAssertEqual(
            c.statuses("\(charge)/result", id: "pair").filter { $0 == "accepted" || $0 == "rejected" }.sorted(), ["accepted", "rejected"],
            "each of the two messages gets exactly one first answer")
        // Two charges reached the cloud: "same" once and "pair" once.
        let patches = try chargePatches(h)
        XCTAssertEqual(patches.count, 2, "\(patches)")
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 22)
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["active"]?.boolValue, true)
    }

    /// MQTT v5 request/response (DESIGN.md): a command with a Response Topic gets every result there too, with
    /// its Correlation Data, also across a restart; user properties change nothing; a response topic inside
    /// the bridge's own namespace is refused (it would let a client forge device state).
    func testV5ResponseTopicGetsEveryResultWithTheCorrelationData() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.subscribe("ems/replies/#")
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        let corr: [UInt8] = [0xca, 0xfe, 0x00, 0x01]
        func replies(_ id: String) -> [MQTTMessage] {
            c.all("ems/replies/box").filter { (try? JSONValue.parse($0.payload))?["id"]?.stringValue == id }
        }
        func status(_ m: MQTTMessage) -> String { (try? JSONValue.parse(m.payload))?["status"]?.stringValue ?? "?" }

        c.publishRequest(
            "\(charge)/set", #"{"id":"v5-1","action":"start","duration_min":25}"#, responseTopic: "ems/replies/box",
            correlationData: corr, userProperties: [("trace", "t-1"), ("tenant", "x")])
        c.waitResult("ems/replies/box", id: "v5-1", status: "done")
        XCTAssertEqual(replies("v5-1").map(status), ["accepted", "done"])
        XCTAssertEqual(replies("v5-1").map(\.correlationData), [corr, corr])
        XCTAssertEqual(c.statuses("\(charge)/result", id: "v5-1"), ["accepted", "done"], "the result topic still gets every result")
        XCTAssertTrue(c.all("\(charge)/result").allSatisfy { $0.correlationData == nil }, "correlation data only on the response topic")

        // A rejection goes there too.
        c.publishRequest("\(charge)/set", #"{"id":"v5-2","action":"boil"}"#, responseTopic: "ems/replies/box", correlationData: [9])
        XCTAssertEqual(c.waitResult("ems/replies/box", id: "v5-2", status: "rejected")?["code"]?.stringValue, "INVALID_PAYLOAD")
        XCTAssertEqual(replies("v5-2").first?.correlationData, [9])

        // A response topic under the bridge's own topics is refused, and nothing is published there.
        let forged = "heatbridge/bosch-101000001/dhw1/state"
        c.publishRequest("\(charge)/set", #"{"id":"v5-bad","action":"stop"}"#, responseTopic: forged, correlationData: nil)
        let bad = c.waitResult("\(charge)/result", id: "v5-bad", status: "rejected")
        XCTAssertEqual(bad?["code"]?.stringValue, "INVALID_PAYLOAD")
        XCTAssertTrue(bad?["message"]?.stringValue?.contains("response topic") == true, "\(String(describing: bad))")
        c.publishRequest("\(charge)/set", #"{"id":"v5-wild","action":"stop"}"#, responseTopic: "ems/+/x", correlationData: nil)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "v5-wild", status: "rejected")?["code"]?.stringValue, "INVALID_PAYLOAD")
        h.barrier()
        XCTAssertFalse(c.all(forged).contains { (try? JSONValue.parse($0.payload))?["id"]?.stringValue == "v5-bad" })

        // Across a restart: queued while the cloud is down, finished by the next daemon, still answered there.
        try h.admin("POST", "/admin/down", #"{"down":true}"#)
        c.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "offline" }
        c.publishRequest(
            "\(charge)/set", #"{"id":"v5-3","action":"start","duration_min":26,"valid_for_s":600}"#,
            responseTopic: "ems/replies/box", correlationData: corr)
        c.waitResult("ems/replies/box", id: "v5-3", status: "queued")
        XCTAssertEqual(h.stopDaemon(), 0)
        try h.admin("POST", "/admin/down", #"{"down":false}"#)
        try h.startDaemon()
        c.waitResult("ems/replies/box", id: "v5-3", status: "done", timeout: 30)
        XCTAssertEqual(replies("v5-3").map(status), ["accepted", "queued", "done"])
        XCTAssertEqual(Set(replies("v5-3").map(\.correlationData)), [corr])
    }
}

import Foundation
import HeatbridgeCore
import XCTest

/// Week-program edits over MQTT: written to the cloud, queued while it is away, refused on conflict.
final class ScheduleEditTests: XCTestCase {
    let node = "heatbridge/bosch-101000001/hc1"

    /// The default program with Monday's comfort start moved to `mondayStart`.
    func edit(mondayStart: String, version: String?, force: Bool = false, id: String) -> String {
        var days: [String: JSONValue] = [:]
        for (i, d) in WeekSchedule.dayNames.enumerated() {
            let start = d == "mon" ? mondayStart : (i < 5 ? "06:00" : "07:30")
            days[d] = [["at": .string(start), "level": "comfort"], ["at": i < 5 ? "22:00" : "23:00", "level": "eco"]]
        }
        var o: [String: JSONValue] = ["id": .string(id), "days": .object(days)]
        if let version { o["version"] = .string(version) }
        if force { o["force"] = true }
        return JSONValue.object(o).serialized
    }

    func testEditIsWrittenAndReadBack() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let v1 = try XCTUnwrap(c.waitJSON("\(node)/schedule")?["version"]?.stringValue)
        c.publish("\(node)/schedule/set", edit(mondayStart: "05:30", version: v1, id: "e1"))
        let done = c.waitResult("\(node)/schedule/result", id: "e1", status: "done")
        XCTAssertTrue(done?["message"]?.stringValue?.contains("written") ?? false)
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["programs"]?["1/A"]?.arrayValue?.first?["time"]?.intValue, 330)
        let updated = c.waitJSON("\(node)/schedule") { $0["version"]?.stringValue != v1 }
        XCTAssertEqual(updated?["days"]?["mon"]?.arrayValue?.first?["at"]?.stringValue, "05:30")
        // Invalid edits are refused before any cloud call.
        c.publish("\(node)/schedule/set", edit(mondayStart: "05:37", version: nil, id: "e2"))
        XCTAssertEqual(c.waitResult("\(node)/schedule/result", id: "e2", status: "rejected")?["code"]?.stringValue, "OUT_OF_RANGE")
        c.publish("\(node)/schedule/set", #"{"id":"e3","days":{"mon":[]}}"#)
        XCTAssertEqual(c.waitResult("\(node)/schedule/result", id: "e3", status: "rejected")?["code"]?.stringValue, "INVALID_PAYLOAD")
        // A heating program is not a DHW program: its levels do not exist there.
        c.publish("heatbridge/bosch-101000001/dhw1/schedule/set", edit(mondayStart: "05:30", version: nil, id: "e4"))
        let e4 = c.waitResult("heatbridge/bosch-101000001/dhw1/schedule/result", id: "e4", status: "rejected")
        XCTAssertEqual(e4?["code"]?.stringValue, "OUT_OF_RANGE")
        XCTAssertTrue(
            e4?["message"]?.stringValue?.contains("unknown level \"comfort\"; levels: eco, high, low") ?? false, "\(String(describing: e4))")
        let puts = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PUT" }
        XCTAssertEqual(puts.count, 1)
    }

    /// The DHW program: read into the neutral format with the levels' stop temperatures, written from it.
    func testDhwProgramIsReadAndWritten() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let dhw = "heatbridge/bosch-101000001/dhw1"
        let current = try XCTUnwrap(c.waitJSON("\(dhw)/schedule"))
        XCTAssertEqual(current["levels"], ["eco": 45, "low": 50, "high": 55])
        XCTAssertEqual(current["days"]?["mon"], [["at": "05:30", "level": "high"], ["at": "21:00", "level": "eco"]])
        var days: [String: JSONValue] = [:]
        for d in WeekSchedule.dayNames {
            days[d] =
                d == "sat" || d == "sun"
                ? [["at": "07:00", "level": "high"], ["at": "12:00", "level": "low"], ["at": "21:00", "level": "eco"]]
                : [["at": "05:00", "level": "high"], ["at": "21:00", "level": "eco"]]
        }
        let edit: JSONValue = ["id": "d1", "days": .object(days), "version": current["version"] ?? .null]
        c.publish("\(dhw)/schedule/set", edit.serialized)
        let done = c.waitResult("\(dhw)/schedule/result", id: "d1", status: "done")
        XCTAssertEqual(done?["message"]?.stringValue, "time program A written (16 switch points)")
        let sim = try h.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["programs"]?["dhw1/A"]?.arrayValue ?? []
        XCTAssertEqual(sim.count, 16)
        XCTAssertEqual(sim.first, ["day": "Mo", "time": 300, "level": "high"])
        c.waitJSON("\(dhw)/schedule") { $0["days"]?["sat"]?.arrayValue?.count == 3 }
        // Too many points in a day is refused before any call, naming the day.
        try h.admin("DELETE", "/admin/requests")
        days["tue"] = .array((0..<7).map { ["at": .string("0\($0):00"), "level": "eco"] })
        c.publish("\(dhw)/schedule/set", JSONValue.object(["id": "d2", "days": .object(days)]).serialized)
        let r = c.waitResult("\(dhw)/schedule/result", id: "d2", status: "rejected")
        XCTAssertEqual(r?["code"]?.stringValue, "OUT_OF_RANGE")
        XCTAssertTrue(r?["message"]?.stringValue?.contains("tue: 7 switch points, at most 6 per day") ?? false, "\(String(describing: r))")
        let writes = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PUT" }
        XCTAssertTrue(writes.isEmpty)
    }

    func testEditWhileCloudDownIsQueuedAndConflictsAreRefused() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let v1 = try XCTUnwrap(c.waitJSON("\(node)/schedule")?["version"]?.stringValue)
        try h.admin("POST", "/admin/down", #"{"down":true}"#)
        c.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "offline" }
        c.publish("\(node)/schedule/set", edit(mondayStart: "05:00", version: v1, id: "off-1"))
        c.waitResult("\(node)/schedule/result", id: "off-1", status: "queued")
        // Meanwhile somebody edits the program in the vendor's app.
        let other = (0..<7).flatMap { d in
            [
                ["dayOfWeek": JSONValue.string(["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"][d]), "time": 420, "setpoint": "comfort"] as JSONValue,
                ["dayOfWeek": .string(["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"][d]), "time": 1380, "setpoint": "eco"],
            ]
        }
        try h.admin("POST", "/admin/bosch/gateways/101000001/programs/1/A", JSONValue.object(["id": "A", "switchPoints": .array(other)]).serialized)
        try h.admin("POST", "/admin/down", #"{"down":false}"#)
        let failed = c.waitResult("\(node)/schedule/result", id: "off-1", status: "failed", timeout: 20)
        XCTAssertEqual(failed?["code"]?.stringValue, "CONFLICT")
        XCTAssertEqual(c.statuses("\(node)/schedule/result", id: "off-1"), ["accepted", "queued", "failed"])
        // With force it is written anyway.
        c.publish("\(node)/schedule/set", edit(mondayStart: "05:00", version: v1, force: true, id: "off-2"))
        c.waitResult("\(node)/schedule/result", id: "off-2", status: "done", timeout: 20)
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["programs"]?["1/A"]?.arrayValue?.first?["time"]?.intValue, 300)
    }
}

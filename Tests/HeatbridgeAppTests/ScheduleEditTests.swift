import HeatbridgeCore
import XCTest

/// Week-program edits over MQTT: written to the cloud, queued while it is away, refused on conflict. In process
/// (`InProcessBox`: the daemon's wiring, the simulator without a socket, a manual clock); moved from the
/// integration tests with every assertion, since nothing here needs a real process.
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

    func testEditIsWrittenAndReadBack() async throws {
        let box = try InProcessBox()
        box.start()
        let first = await box.waitJSON("\(node)/schedule")
        let v1 = try XCTUnwrap(first?["version"]?.stringValue)
        box.publish("\(node)/schedule/set", edit(mondayStart: "05:30", version: v1, id: "e1"))
        let done = await box.waitResult("\(node)/schedule/result", id: "e1", status: "done")
        XCTAssertTrue(done?["message"]?.stringValue?.contains("written") ?? false)
        let state = try await box.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["programs"]?["1/A"]?.arrayValue?.first?["time"]?.intValue, 330)
        let updated = await box.waitJSON("\(node)/schedule") { $0["version"]?.stringValue != v1 }
        XCTAssertEqual(updated?["days"]?["mon"]?.arrayValue?.first?["at"]?.stringValue, "05:30")
        // Invalid edits are refused before any cloud call.
        box.publish("\(node)/schedule/set", edit(mondayStart: "05:37", version: nil, id: "e2"))
        let e2 = await box.waitResult("\(node)/schedule/result", id: "e2", status: "rejected")
        XCTAssertEqual(e2?["code"]?.stringValue, "OUT_OF_RANGE")
        box.publish("\(node)/schedule/set", #"{"id":"e3","days":{"mon":[]}}"#)
        let e3 = await box.waitResult("\(node)/schedule/result", id: "e3", status: "rejected")
        XCTAssertEqual(e3?["code"]?.stringValue, "INVALID_PAYLOAD")
        // A heating program is not a DHW program: its levels do not exist there.
        box.publish("heatbridge/bosch-101000001/dhw1/schedule/set", edit(mondayStart: "05:30", version: nil, id: "e4"))
        let e4 = await box.waitResult("heatbridge/bosch-101000001/dhw1/schedule/result", id: "e4", status: "rejected")
        XCTAssertEqual(e4?["code"]?.stringValue, "OUT_OF_RANGE")
        XCTAssertTrue(
            e4?["message"]?.stringValue?.contains("unknown level \"comfort\"; levels: eco, high, low") ?? false, "\(String(describing: e4))")
        let puts = (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PUT" }
        XCTAssertEqual(puts.count, 1)
        await box.stopAll()
    }

    /// The DHW program: read into the neutral format with the levels' stop temperatures, written from it.
    func testDhwProgramIsReadAndWritten() async throws {
        let box = try InProcessBox()
        box.start()
        let dhw = "heatbridge/bosch-101000001/dhw1"
        let read = await box.waitJSON("\(dhw)/schedule")
        let current = try XCTUnwrap(read)
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
        box.publish("\(dhw)/schedule/set", edit.serialized)
        let done = await box.waitResult("\(dhw)/schedule/result", id: "d1", status: "done")
        XCTAssertEqual(done?["message"]?.stringValue, "time program A written (16 switch points)")
        let sim = try await box.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["programs"]?["dhw1/A"]?.arrayValue ?? []
        XCTAssertEqual(sim.count, 16)
        XCTAssertEqual(sim.first, ["day": "Mo", "time": 300, "level": "high"])
        await box.waitJSON("\(dhw)/schedule") { $0["days"]?["sat"]?.arrayValue?.count == 3 }
        // Too many points in a day is refused before any call, naming the day.
        try await box.admin("DELETE", "/admin/requests")
        days["tue"] = .array((0..<7).map { ["at": .string("0\($0):00"), "level": "eco"] })
        box.publish("\(dhw)/schedule/set", JSONValue.object(["id": "d2", "days": .object(days)]).serialized)
        let r = await box.waitResult("\(dhw)/schedule/result", id: "d2", status: "rejected")
        XCTAssertEqual(r?["code"]?.stringValue, "OUT_OF_RANGE")
        XCTAssertTrue(r?["message"]?.stringValue?.contains("tue: 7 switch points, at most 6 per day") ?? false, "\(String(describing: r))")
        let writes = (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PUT" }
        XCTAssertTrue(writes.isEmpty)
        await box.stopAll()
    }

    func testEditWhileCloudDownIsQueuedAndConflictsAreRefused() async throws {
        let box = try InProcessBox(pollIntervalS: 1)
        box.start()
        let first = await box.waitJSON("\(node)/schedule")
        let v1 = try XCTUnwrap(first?["version"]?.stringValue)
        try await box.admin("POST", "/admin/down", #"{"down":true}"#)
        await box.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "offline" }
        box.publish("\(node)/schedule/set", edit(mondayStart: "05:00", version: v1, id: "off-1"))
        await box.waitResult("\(node)/schedule/result", id: "off-1", status: "queued")
        // Meanwhile somebody edits the program in the vendor's app.
        let other = (0..<7).flatMap { d in
            [
                ["dayOfWeek": JSONValue.string(["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"][d]), "time": 420, "setpoint": "comfort"] as JSONValue,
                ["dayOfWeek": .string(["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"][d]), "time": 1380, "setpoint": "eco"],
            ]
        }
        try await box.admin(
            "POST", "/admin/bosch/gateways/101000001/programs/1/A", JSONValue.object(["id": "A", "switchPoints": .array(other)]).serialized)
        try await box.admin("POST", "/admin/down", #"{"down":false}"#)
        let failed = await box.waitResult("\(node)/schedule/result", id: "off-1", status: "failed")
        XCTAssertEqual(failed?["code"]?.stringValue, "CONFLICT")
        XCTAssertEqual(box.statuses("\(node)/schedule/result", id: "off-1"), ["accepted", "queued", "failed"])
        // With force it is written anyway.
        box.publish("\(node)/schedule/set", edit(mondayStart: "05:00", version: v1, force: true, id: "off-2"))
        await box.waitResult("\(node)/schedule/result", id: "off-2", status: "done")
        let state = try await box.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["programs"]?["1/A"]?.arrayValue?.first?["time"]?.intValue, 300)
        await box.stopAll()
    }
}

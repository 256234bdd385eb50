import Foundation
import HeatbridgeCore
import HeatbridgeSimulator
import XCTest

/// The HomeSmartlink account end to end through the box's own wiring: rooms and schedules, derogations with their
/// acknowledgement, groups, diagnosis, bad input and a rotated secret. In process (`InProcessBox`): moved from
/// `HomeSmartlinkTests` with every assertion; the installer's CLI commands stay there.
final class HomeSmartlinkBoxTests: XCTestCase {
    let dev = "heatbridge/hsl-64f1c0a2e9b3"

    func box(_ account: InProcessBox.HomeSmartlinkAccount = .init(), extraSections: String = "") throws -> InProcessBox {
        try InProcessBox(pollIntervalS: 30, homeSmartlink: account, extraSections: extraSections)
    }

    func hslRequests(_ box: InProcessBox, path: String) async throws -> [JSONValue] {
        (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["vendor"]?.stringValue == "homesmartlink" && $0["path"]?.stringValue == path
        }
    }

    func testRoomsAndSchedulesArePublished() async throws {
        let box = try box()
        box.start()
        let deviceRead = await box.waitJSON("\(dev)/state")
        let device = try XCTUnwrap(deviceRead)
        XCTAssertEqual(device["nodes"], ["room-1", "room-2", "room-3", "system"])
        XCTAssertEqual(device["gateway"]?["version"], "3.1.7")
        XCTAssertEqual(device["online"], true)
        let livingRead = await box.waitJSON("\(dev)/room-1/state")
        let living = try XCTUnwrap(livingRead)
        XCTAssertEqual(living["name"], "Living room")
        XCTAssertEqual(living["heaters"]?.arrayValue?.count, 2)
        XCTAssertEqual(living["setpoint"], 20)
        XCTAssertEqual(living["temperature"], 20.3, "pv is a string on the wire and a number on MQTT (mean of 20.5 and 20)")
        let bathRead = await box.waitJSON("\(dev)/room-3/state")
        let bath = try XCTUnwrap(bathRead)
        XCTAssertEqual(bath["heaters"]?.arrayValue?.map { $0["online"] }, [false, true], "the offline heater is listed")
        XCTAssertEqual(bath["heaters"]?.arrayValue?.first?["temperature"], .null)
        let scheduleRead = await box.waitJSON("\(dev)/room-2/schedule")
        let schedule = try XCTUnwrap(scheduleRead)
        XCTAssertEqual(
            schedule["days"]?["mon"],
            [
                ["at": "06:00", "level": "comfort"], ["at": "08:30", "level": "eco"],
                ["at": "17:00", "level": "comfort"], ["at": "22:00", "level": "eco"],
            ])
        XCTAssertEqual(schedule["days"]?["sun"], [["at": "08:00", "level": "comfort"], ["at": "23:00", "level": "eco"]])
        let room2 = await box.waitJSON("\(dev)/room-2/state")
        XCTAssertNotNil(room2?["schedule_now"]?["level"]?.stringValue)
        // The simulator answers /config with the doc's "reponse" spelling: the rooms above came through it.
        let configReads = try await hslRequests(box, path: "/partners/1/config")
        XCTAssertFalse(configReads.isEmpty)
        await box.stopAll()
    }

    func testDerogationGoesThroughProgressToDoneAndShowsOnReadBack() async throws {
        let box = try box()
        box.start()
        await box.waitJSON("\(dev)/room-1/state")
        // Past local midnight the window is two calls (one per day), each acknowledged.
        let (minutes, calls) = Self.window(about: 90, at: box.clock.now())
        box.publish("\(dev)/room-1/derogation/set", #"{"id":"d1","delta":-2,"duration_min":\#(minutes)}"#)
        let done = await box.waitResult("\(dev)/room-1/derogation/result", id: "d1", status: "done")
        XCTAssertTrue(done?["message"]?.stringValue?.contains("acknowledged by \(calls) of \(calls)") ?? false, "\(done ?? .null)")
        XCTAssertEqual(box.statuses("\(dev)/room-1/derogation/result", id: "d1").filter { $0 != "progress" }, ["accepted", "done"])
        let progress = box.json("\(dev)/room-1/derogation/result").filter { $0["status"] == "progress" }
        XCTAssertEqual(progress.last?["progress"]?["requested"]?.intValue, calls)
        XCTAssertEqual(progress.last?["progress"]?["received"]?.intValue, calls)
        // The cloud lowers the room's setpoint during the window: read back on the next poll.
        await box.waitJSON("\(dev)/room-1/state", timeout: 40) {
            $0["setpoint"] == 18 && $0["derogation"]?["active"] == true && $0["derogation"]?["delta"] == -2
        }
        let sent = try await hslRequests(box, path: "/partners/1/derogations")
        let call = try XCTUnwrap(sent.first)
        let item = try JSONValue.parse(call["body"]?.stringValue ?? "")["derogations"]?.arrayValue?.first
        XCTAssertEqual(item?["roomId"], 1)
        XCTAssertEqual(item?["delta"], -2)
        XCTAssertEqual((item?["startTime"]?.intValue ?? 1) % 5, 0)
        XCTAssertEqual((item?["endTime"]?.intValue ?? 1) % 5, 0)
        await box.stopAll()
    }

    func testWindowAcrossMidnightBecomesTwoCalls() async throws {
        let box = try box()
        box.start()
        await box.waitJSON("\(dev)/room-2/state")
        // Tomorrow 23:00 to the day after 01:00, in the box's local time.
        var t = time_t(box.clock.now()) + 86_400
        var tm = tm()
        localtime_r(&t, &tm)
        let day = String(format: "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)
        t += 86_400
        localtime_r(&t, &tm)
        let next = String(format: "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday)
        box.publish(
            "\(dev)/room-2/derogation/set",
            "{\"id\":\"night\",\"delta\":-1,\"start\":\"23:00\",\"end\":\"01:00\",\"date\":\"\(day)\",\"end_date\":\"\(next)\"}")
        let done = await box.waitResult("\(dev)/room-2/derogation/result", id: "night", status: "done")
        XCTAssertNotNil(done)
        let calls = try await hslRequests(box, path: "/partners/1/derogations").compactMap {
            try? JSONValue.parse($0["body"]?.stringValue ?? "")["derogations"]?.arrayValue?.first
        }
        XCTAssertEqual(calls.count, 2)
        XCTAssertEqual(calls.map { $0["date"]?.stringValue ?? "" }, [day, next])
        XCTAssertEqual(calls.map { $0["startTime"]?.intValue ?? -1 }, [1380, 0])
        XCTAssertEqual(calls.map { $0["endTime"]?.intValue ?? -1 }, [1440, 60])
        // Both triggers were followed.
        let reports = try await hslRequests(box, path: "/partners/1/report")
        XCTAssertGreaterThanOrEqual(Set(reports.compactMap { $0["body"]?.stringValue }).count, 2)
        await box.stopAll()
    }

    func testAHomeThatNeverAcknowledgesFailsNotAcknowledged() async throws {
        let box = try box(.init(reportTimeoutS: 3))
        try await box.admin("POST", "/admin/homesmartlink", #"{"never_ack":["64f1c0a2e9b3"]}"#)
        box.start()
        await box.waitJSON("\(dev)/room-1/state")
        let (minutes, calls) = Self.window(about: 60, at: box.clock.now())
        box.publish("\(dev)/room-1/derogation/set", #"{"id":"shed","delta":-3,"duration_min":\#(minutes)}"#)
        let failed = await box.waitResult("\(dev)/room-1/derogation/result", id: "shed", status: "failed")
        XCTAssertEqual(failed?["code"], "NOT_ACKNOWLEDGED")
        XCTAssertTrue(failed?["message"]?.stringValue?.contains("64f1c0a2e9b3") ?? false, "\(failed ?? .null)")
        XCTAssertTrue(failed?["message"]?.stringValue?.contains("0 of \(calls) received") ?? false, "\(failed ?? .null)")
        XCTAssertTrue(box.statuses("\(dev)/room-1/derogation/result", id: "shed").contains("progress"))
        await box.stopAll()
    }

    func testBadDerogationsAreRejectedLocallyNamingTheField() async throws {
        let box = try box()
        box.start()
        await box.waitJSON("\(dev)/room-2/state")
        try await box.admin("DELETE", "/admin/requests")
        let cases: [(String, String, String, String)] = [
            ("room-2", #"{"id":"r1","delta":6,"duration_min":30}"#, "OUT_OF_RANGE", "\"delta\" must be -5…+5 °C, got 6"),
            ("room-2", #"{"id":"r2","delta":1.5,"duration_min":30}"#, "INVALID_PAYLOAD", "\"delta\" must be a whole number"),
            ("room-2", #"{"id":"r3","delta":-1,"start":"18:03","end":"19:00"}"#, "OUT_OF_RANGE", "\"start\" 18:03 is not on the 5-minute grid"),
            ("room-2", #"{"id":"r4","delta":-1,"start":"20:00","end":"18:00"}"#, "OUT_OF_RANGE", "\"end\" 18:00 must be after \"start\" 20:00"),
            ("room-9", #"{"id":"r5","delta":-1,"duration_min":30}"#, "UNKNOWN_TARGET", "has no room \"room-9\""),
            ("room-2", #"{"id":"r6","delta":-1,"duration_min":2000}"#, "OUT_OF_RANGE", "\"duration_min\" must be 5…1440"),
            (
                "room-2", #"{"id":"r7","delta":-1,"start":"18:00","end":"19:00","date":"2026-02-31"}"#, "INVALID_PAYLOAD",
                "\"date\" must be YYYY-MM-DD"
            ),
            ("room-2", #"{"id":"r8","delta":-1,"start":"18:00","end":"19:00","date":"2020-01-01"}"#, "OUT_OF_RANGE", "already over"),
            ("room-2", #"{"id":"r9","delta":-1}"#, "INVALID_PAYLOAD", "give \"start\" and \"end\" (HH:MM) or \"duration_min\""),
        ]
        await box.expectRejections("\(dev)", cases.map { ("\($0.0)/derogation", $0.1, $0.2, $0.3) })
        let sent = try await hslRequests(box, path: "/partners/1/derogations")
        XCTAssertTrue(sent.isEmpty, "bad input reached the cloud")
        await box.stopAll()
    }

    func testWrongCredentialsMeanAuthRequiredAndAuthFailed() async throws {
        let box = try box(.init(pollIntervalS: 30))
        box.start()
        await box.waitJSON("\(dev)/room-1/state")
        // The partner's secret is rotated on the cloud side; the next call fails.
        try await box.admin("POST", "/admin/homesmartlink", #"{"client_secret":"rotated"}"#)
        box.publish("\(dev)/room-1/derogation/set", #"{"id":"a1","delta":-1,"duration_min":30}"#)
        let failed = await box.waitResult("\(dev)/room-1/derogation/result", id: "a1", status: "failed")
        XCTAssertEqual(failed?["code"], "AUTH_FAILED")
        await box.waitJSON("heatbridge/bridge/account/hsl-test") { $0["state"]?.stringValue == "auth_required" }
        XCTAssertFalse(box.log.text.isEmpty, "the box logged nothing")
        XCTAssertFalse(box.log.text.contains("hsl-demo-secret"), "the secret reached the log")
        await box.stopAll()
    }

    func testDiagnosisIsRequestedAndItsResultPublishedWhenReady() async throws {
        let box = try box()
        try await box.admin("POST", "/admin/homesmartlink", #"{"diagnosis_delay_s":3}"#)
        box.start()
        await box.waitJSON("\(dev)/system/state")
        box.publish("\(dev)/system/diagnosis/set", #"{"id":"diag"}"#)
        let done = await box.waitResult("\(dev)/system/diagnosis/result", id: "diag", status: "done")
        XCTAssertTrue(done?["message"]?.stringValue?.contains("diagnosis requested (message msg-") ?? false, "\(done ?? .null)")
        await box.waitJSON("\(dev)/system/state") { $0["diagnosis"]?["state"] == "pending" }
        let ready = await box.waitJSON("\(dev)/system/state") { $0["diagnosis"]?["state"] == "ready" }
        XCTAssertEqual(ready?["diagnosis"]?["result"]?["acknowledge"], true)
        XCTAssertNotNil(ready?["diagnosis"]?["result"]?["deviceStatus"]?.arrayValue)
        box.publish("\(dev)/system/diagnosis/set", #"{"id":"bad","now":true}"#)
        let bad = await box.waitResult("\(dev)/system/diagnosis/result", id: "bad", status: "rejected")
        XCTAssertEqual(bad?["code"], "INVALID_PAYLOAD")
        await box.stopAll()
    }

    func testGroupDerogationIsOneCallPerWindowAndReportsEachMember() async throws {
        let second = "64f1c0a2e9c7"
        let box = try box(
            .init(reportTimeoutS: 3, homes: ["64f1c0a2e9b3", second]),
            extraSections: """

                groups:
                  evening-peak: [hsl-64f1c0a2e9b3/room-1, hsl-64f1c0a2e9b3/room-2, hsl-\(second)/room-1]
                  wrong: [hsl-64f1c0a2e9b3/room-1, hsl-64f1c0a2e9b3/room-9]
                """)
        try await box.admin("POST", "/admin/homesmartlink", "{\"add_home\":\"\(second)\"}")
        box.start()
        await box.waitJSON("heatbridge/hsl-\(second)/room-1/state")
        // A window past local midnight is two calls (one per day): whether it is depends on the time of the run.
        let (g1Minutes, g1Calls) = Self.window(about: 120, at: box.clock.now())
        box.publish("heatbridge/group/evening-peak/derogation/set", #"{"id":"g1","delta":-2,"duration_min":\#(g1Minutes)}"#)
        let done = await box.waitResult("heatbridge/group/evening-peak/derogation/result", id: "g1", status: "done")
        XCTAssertEqual(
            done?["members"]?.objectValue?.keys.sorted(),
            ["hsl-64f1c0a2e9b3/room-1", "hsl-64f1c0a2e9b3/room-2", "hsl-\(second)/room-1"])
        XCTAssertTrue(box.statuses("heatbridge/group/evening-peak/derogation/result", id: "g1").contains("progress"))
        // One API call per window for the three rooms of two homes, all items sharing start and end.
        let calls = try await hslRequests(box, path: "/partners/1/derogations")
        XCTAssertEqual(calls.count, g1Calls)
        let items = try JSONValue.parse(calls.first?["body"]?.stringValue ?? "")["derogations"]?.arrayValue ?? []
        XCTAssertEqual(items.count, 3)
        XCTAssertEqual(Set(items.map { "\($0["startTime"] ?? .null)-\($0["endTime"] ?? .null)" }).count, 1)
        await box.waitJSON("heatbridge/hsl-\(second)/room-1/state", timeout: 40) { $0["setpoint"] == 18 && $0["derogation"]?["active"] == true }
        await box.waitJSON("\(dev)/room-2/state", timeout: 40) { $0["setpoint"] == 16 }

        // The second home never acknowledges: its member fails, the others are done.
        try await box.admin("POST", "/admin/homesmartlink", "{\"never_ack\":[\"\(second)\"]}")
        let (g2Minutes, g2Calls) = Self.window(about: 60, at: box.clock.now())
        box.publish("heatbridge/group/evening-peak/derogation/set", #"{"id":"g2","delta":-1,"duration_min":\#(g2Minutes)}"#)
        let failed = await box.waitResult("heatbridge/group/evening-peak/derogation/result", id: "g2", status: "failed")
        XCTAssertEqual(failed?["code"], "NOT_ACKNOWLEDGED")
        XCTAssertEqual(failed?["members"]?["hsl-\(second)/room-1"]?["code"], "NOT_ACKNOWLEDGED")
        XCTAssertEqual(failed?["members"]?["hsl-64f1c0a2e9b3/room-1"]?["status"], "done")

        // A group naming a room that does not exist is refused before any call, naming the member.
        box.publish("heatbridge/group/wrong/derogation/set", #"{"id":"g3","delta":-1,"duration_min":60}"#)
        let wrong = await box.waitResult("heatbridge/group/wrong/derogation/result", id: "g3", status: "rejected")
        XCTAssertEqual(wrong?["code"], "UNKNOWN_TARGET")
        XCTAssertTrue(wrong?["message"]?.stringValue?.contains("member hsl-64f1c0a2e9b3/room-9") ?? false, "\(wrong ?? .null)")
        box.publish("heatbridge/group/nope/derogation/set", #"{"id":"g4","delta":-1,"duration_min":60}"#)
        let nope = await box.waitResult("heatbridge/group/nope/derogation/result", id: "g4", status: "rejected")
        XCTAssertEqual(nope?["code"], "UNKNOWN_TARGET")
        let all = try await hslRequests(box, path: "/partners/1/derogations")
        XCTAssertEqual(all.count, g1Calls + g2Calls)
        await box.stopAll()
    }

    /// A duration near `minutes` whose window (on the 5-minute grid, from `now` in this machine's local time, the
    /// box's) does not end within ten minutes of midnight, and the derogation calls it takes: two when it runs
    /// past midnight. Computed here with Foundation's calendar, not the adapter's code.
    static func window(about minutes: Int, at now: Double) -> (minutes: Int, calls: Int) {
        let cal = Calendar.current
        let date = Date(timeIntervalSince1970: now)
        let minute = cal.component(.hour, from: date) * 60 + cal.component(.minute, from: date)
        var duration = minutes
        func end(_ d: Int) -> Int {
            let e = minute + d
            return e + (5 - e % 5) % 5
        }
        if abs(end(duration) - 1440) <= 10 { duration -= 30 }
        return (duration, end(duration) > 1440 ? 2 : 1)
    }
}

import Foundation
import HeatbridgeCore
import XCTest

/// The Bosch system node (gateway clock, components and detection), the API's health, and the partner's API
/// keys (rotation by the daemon and by the CLI, listing, deleting) plus webhook test events. A quiet account's
/// backoff runs in process (`HeatbridgeAppTests/PollBackoffTests`).
final class BoschSystemTests: XCTestCase {
    let dev = "heatbridge/bosch-101000001"

    func testGatewayClockIsShownSyncedAndSet() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.admin("POST", "/admin/bosch/gateways/101000001", #"{"clock_offset_s":3600}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let sys = try XCTUnwrap(c.waitJSON("\(dev)/system/state") { $0["clock_offset_s"]?.doubleValue != nil })
        XCTAssertEqual(sys["clock_offset_s"]?.doubleValue ?? 0, 3600, accuracy: 2, "the gateway runs an hour ahead")
        XCTAssertEqual(sys["date_time"]?.stringValue?.count, 19)

        c.publish("\(dev)/system/date-time/set", #"{"id":"t1","sync":true}"#)
        let done = c.waitResult("\(dev)/system/date-time/result", id: "t1", status: "done")
        XCTAssertTrue(done?["message"]?.stringValue?.hasPrefix("gateway clock set to ") ?? false, "\(String(describing: done))")
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["clock_offset_s"]?.doubleValue ?? 99, 0, accuracy: 2)
        // The read-back after the command reads the clock again instead of the hour-old answer.
        c.waitJSON("\(dev)/system/state") { abs($0["clock_offset_s"]?.doubleValue ?? 99) <= 2 }

        c.publish("\(dev)/system/date-time/set", #"{"id":"t2","date_time":"2030-01-01T12:00:00"}"#)
        c.waitResult("\(dev)/system/date-time/result", id: "t2", status: "done")
        XCTAssertGreaterThan(
            try h.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["clock_offset_s"]?.doubleValue ?? 0, 86_400 * 365)

        try h.admin("DELETE", "/admin/requests")
        let bad: [(String, String, String, String)] = [
            ("date-time", #"{"id":"b1","date_time":"2026-11-22 10:00"}"#, "INVALID_PAYLOAD", "\"date_time\" must be local time YYYY-MM-DDTHH:MM:SS"),
            (
                "date-time", #"{"id":"b2","date_time":"2019-05-01T10:00:00"}"#, "OUT_OF_RANGE",
                "\"date_time\" 2019-05-01T10:00:00 is outside 2020…2099"
            ),
            ("date-time", #"{"id":"b3","sync":true,"date_time":"2026-11-22T10:00:00"}"#, "INVALID_PAYLOAD", "either"),
            ("date-time", #"{"id":"b4","zone":"UTC"}"#, "INVALID_PAYLOAD", "zone"),
        ]
        c.expectRejections("\(dev)/system", bad)
        let writes = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue != "GET" }
        XCTAssertTrue(writes.isEmpty, "bad input reached the cloud: \(writes)")
    }

    func testComponentsAreListedAndADetectionFindsNewOnes() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.admin(
            "POST", "/admin/bosch/gateways/101000001",
            #"{"undetected":[{"type":"POOLMODULE","software_version":"1.0.3","serial_number":"PM-1"}]}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let sys = try XCTUnwrap(c.waitJSON("\(dev)/system/state") { $0["components"]?.arrayValue != nil })
        XCTAssertEqual(sys["components"]?.arrayValue?.compactMap { $0["type"]?.stringValue }, ["GATEWAY", "HEATPUMP"])
        XCTAssertEqual(sys["components"]?.arrayValue?.first?["serial_number"], "SN-101000001")
        // Components are synced hourly, not every poll: two more polls ask for them no more.
        try h.waitForRequests("/hvacs/101000001/status", count: 2)
        let reads = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["path"]?.stringValue == "/hvacs/101000001/components" }
        XCTAssertEqual(reads.count, 1, "components were read again within the hour")

        c.publish("\(dev)/system/detect/set", #"{"id":"d1"}"#)
        let done = c.waitResult("\(dev)/system/detect/result", id: "d1", status: "done")
        XCTAssertEqual(done?["message"]?.stringValue, "system detection started; components are read again on the next poll")
        let after = c.waitJSON("\(dev)/system/state") { ($0["components"]?.arrayValue?.count ?? 0) == 3 }
        XCTAssertEqual(after?["components"]?.arrayValue?.last?["type"], "POOLMODULE")
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["detections"]?.intValue, 1)
        // A gateway that is offline cannot be asked to detect: the cloud's 504 becomes DEVICE_OFFLINE.
        try h.admin("POST", "/admin/bosch/gateways/101000001", #"{"online":false}"#)
        let until = Date().addingTimeInterval(15)
        while Date() < until, c.all("\(dev)/availability").last.map({ String(decoding: $0.payload, as: UTF8.self) }) != "offline" { usleep(100_000) }
        c.publish("\(dev)/system/detect/set", #"{"id":"d2"}"#)
        let r = c.waitResult("\(dev)/system/detect/result", id: "d2", status: "failed")
        XCTAssertEqual(r?["code"]?.stringValue, "DEVICE_OFFLINE")
    }

    func testHealthDownTakesTheAccountOfflineAndUpBringsItBack() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"] == "ready" }
        c.waitJSON("\(dev)/dhw1/state")
        try h.admin("POST", "/admin/bosch", #"{"health":"DOWN"}"#)
        let down = c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"] == "offline" }
        XCTAssertEqual(down?["error"]?.stringValue, "Bosch reports the Partner API as DOWN (GET /health)")
        // While Bosch says it is down, a poll costs one request: no gateway is asked.
        try h.admin("DELETE", "/admin/requests")
        try h.waitForRequests("/health", count: 2)
        let paths = Set((try h.admin("GET", "/admin/requests").arrayValue ?? []).compactMap { $0["path"]?.stringValue })
        XCTAssertEqual(paths, ["/health"])
        try h.admin("POST", "/admin/bosch", #"{"health":"UP"}"#)
        c.waitJSON("heatbridge/bridge/account/bosch-test", timeout: 25) { $0["state"] == "ready" }
    }

    /// `rotate_key: true`: 30 days before the key expires the daemon gets a new one, writes it to
    /// api_key_file (0600) before using it, and never logs it; the old key may then be withdrawn.
    func testDaemonRotatesAKeyCloseToExpiry() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        let soon = Timestamp.iso8601(Date().timeIntervalSince1970 + 10 * 86_400).prefix(10).replacingOccurrences(of: "-", with: "")
        let oldKey = "xHCSAPI-soon-\(soon)"
        try h.admin("POST", "/admin/bosch", #"{"api_key":"\#(oldKey)"}"#)
        // A fixed poll rate: the test counts the requests of a 3 s window after the old key is withdrawn.
        try h.writeConfig(pollIntervalS: 1, timeoutS: 1.5, extraAccounts: "\n    rotate_key: true\n    poll_max_interval_s: 1")
        let keyFile = h.dir.appendingPathComponent("bosch.key").path
        try (oldKey + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let account = try XCTUnwrap(
            c.waitJSON("heatbridge/bridge/account/bosch-test", timeout: 20) {
                $0["state"] == "ready" && ($0["key_expires_at"]?.stringValue ?? "") > "2027"
            })
        XCTAssertNil(account["warning"]?.stringValue, "the fresh key is far from expiry")
        let newKey = try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(newKey.hasPrefix("xHCSAPI-sim1-"), "key file holds \(newKey.prefix(12))…")
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["issued_keys"]?.intValue, 1, "rotated more than once")
        // Bosch withdraws the old key: the daemon carries on with the new one.
        try h.admin("POST", "/admin/bosch", #"{"api_key":"xHCSAPI-someoneelse-20300101"}"#)
        try h.admin("DELETE", "/admin/requests")
        try h.waitForRequests("/hvacs/101000001/status", count: 2)
        let answers = (try h.admin("GET", "/admin/requests").arrayValue ?? []).compactMap { $0["status"]?.intValue }
        XCTAssertFalse(answers.isEmpty)
        XCTAssertFalse(answers.contains(401), "the daemon still used the old key")
        let log = h.daemonOutput()
        XCTAssertTrue(log.contains("API key rotated and stored"), log)
        XCTAssertFalse(log.contains(newKey) || log.contains(oldKey), "a key appeared in the log")
        XCTAssertFalse(
            c.recorder.messages.withLock { $0 }.contains {
                let p = String(decoding: $0.payload, as: UTF8.self)
                return p.contains(newKey) || p.contains(oldKey)
            }, "a key appeared on MQTT")
    }

    func testKeysAndWebhookTestFromTheCLI() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        let keyFile = h.dir.appendingPathComponent("bosch.key").path
        let list = try h.cli(["bosch", "keys", "list"])
        XCTAssertEqual(list.status, 0, list.output)
        XCTAssertTrue(list.output.contains("configured key expires 2027-05-22T00:00:00Z"), list.output)
        XCTAssertTrue(list.output.contains("key-0"), list.output)

        for _ in 0..<2 {
            let rotate = try h.cli(["bosch", "keys", "rotate"])
            XCTAssertEqual(rotate.status, 0, rotate.output)
            XCTAssertTrue(rotate.output.contains("written to \(keyFile)"), rotate.output)
            XCTAssertFalse(rotate.output.contains("xHCSAPI"), "the CLI printed a key: \(rotate.output)")
        }
        let stored = try String(contentsOfFile: keyFile, encoding: .utf8)
        XCTAssertTrue(stored.hasPrefix("xHCSAPI-sim2-"), "key file holds \(stored.prefix(12))…")
        let listed = try h.cli(["bosch", "keys", "list"])
        XCTAssertTrue(listed.output.contains("key-1") && listed.output.contains("key-2"), listed.output)
        // The configured key (key-2, the last rotation) is marked; a key it cannot be told from is not deleted
        // without --force (both were made today, so they expire the same day).
        XCTAssertTrue(listed.output.contains("(in use by account bosch-test)"), listed.output)
        let refused = try h.cli(["bosch", "keys", "delete", "key-1"])
        XCTAssertEqual(refused.status, 2, refused.output)
        XCTAssertTrue(refused.output.contains("account bosch-test uses") && refused.output.contains("--force"), refused.output)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["issued_keys"]?.intValue, 2, "deleted without --force")
        let del = try h.cli(["bosch", "keys", "delete", "key-1", "--force"])
        XCTAssertEqual(del.status, 0, del.output)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["issued_keys"]?.intValue, 1)
        let missing = try h.cli(["bosch", "keys", "delete", "key-9"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.output.contains("CLOUD_REJECTED"), missing.output)
        let noId = try h.cli(["bosch", "keys", "delete"])
        XCTAssertEqual(noId.status, 2, noId.output)

        let hook = try h.cli(["bosch", "webhook-test", "--event", "data_point", "--gateway", "101000001"])
        XCTAssertEqual(hook.status, 0, hook.output)
        XCTAssertEqual(
            try h.admin("GET", "/admin/state")["bosch"]?["webhook_simulations"], [["event_type": "DATA_POINT", "gateway_id": "101000001"]])
        try h.admin("DELETE", "/admin/requests")
        let badEvent = try h.cli(["bosch", "webhook-test", "--event", "SOMETHING"])
        XCTAssertEqual(badEvent.status, 2)
        XCTAssertTrue(badEvent.output.contains("valid: CONNECTIVITY_STATUS, APPLIANCE_STATUS"), badEvent.output)
        let badGateway = try h.cli(["bosch", "webhook-test", "--event", "DATA_POINT", "--gateway", "12"])
        XCTAssertEqual(badGateway.status, 2)
        XCTAssertEqual(try h.admin("GET", "/admin/requests").arrayValue?.count, 0, "bad arguments reached the cloud")
    }
}

import Foundation
import HeatbridgeCore
import HeatbridgeSystem
import XCTest

/// The daemon as a separate process against a real mosquitto and the simulator over loopback HTTP.
final class BridgeEndToEndTests: XCTestCase {
    let gw = "bosch-101000001"
    var charge: String { "heatbridge/\(gw)/dhw1/charge" }

    func testPublishesBridgeDeviceAndNodeState() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bridge/state") { $0["state"]?.stringValue == "online" }
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }
        let dev = c.waitJSON("heatbridge/\(gw)/state") { $0["source"]?.stringValue == "cloud" }
        XCTAssertEqual(dev?["vendor"]?.stringValue, "bosch")
        XCTAssertEqual(dev?["online"]?.boolValue, true)
        XCTAssertEqual(dev?["nodes"], ["dhw1", "hc1", "system"])
        XCTAssertNotNil(dev?["updated_at"]?.stringValue.flatMap(Timestamp.parse))
        let hc = c.waitJSON("heatbridge/\(gw)/hc1/state")
        XCTAssertEqual(hc?["setpoint"]?.doubleValue, 21)
        XCTAssertEqual(hc?["operation_mode"]?.stringValue, "auto")
        let program = c.waitJSON("heatbridge/\(gw)/hc1/schedule")
        XCTAssertEqual(program?["days"]?["sat"], [["at": "07:30", "level": "comfort"], ["at": "23:00", "level": "eco"]])
        XCTAssertEqual(program?["levels"], ["comfort": 21, "eco": 17])
        XCTAssertEqual(program?["source"]?.stringValue, "cloud")
        XCTAssertNotNil(hc?["schedule_now"]?["level"]?.stringValue)
        let dhw = c.waitJSON("heatbridge/\(gw)/dhw1/state")
        XCTAssertEqual(dhw?["charge"]?["active"]?.boolValue, false)
        XCTAssertEqual(String(decoding: c.all("heatbridge/\(gw)/availability").last?.payload ?? [], as: UTF8.self), "online")
        let info = c.waitJSON("heatbridge/bridge/info") { $0["devices"]?.arrayValue?.count == 2 }
        XCTAssertEqual(info?["version"]?.stringValue, "0.1.0")
        // Retained topics are published only when their content changes: after more polls, still one each.
        try h.waitForRequests("/hvacs/101000001/status", count: 2)
        h.barrier()
        XCTAssertEqual(c.all("heatbridge/\(gw)/hc1/state").count, 1, "unchanged node state was published again")
        // A late subscriber gets the state from the broker's retained store.
        let late = try TestMQTTClient(port: h.brokerPort)
        defer { late.close() }
        try late.waitConnected()
        late.subscribe("heatbridge/\(gw)/#")
        late.subscribe("heatbridge/bridge/state")
        let retained = late.waitJSON("heatbridge/\(gw)/state")
        XCTAssertNotNil(retained)
        XCTAssertEqual(late.all("heatbridge/\(gw)/state").first?.retained, true)
        late.waitJSON("heatbridge/bridge/state") { $0["state"]?.stringValue == "online" }
        XCTAssertEqual(late.all("heatbridge/bridge/state").first?.retained, true)
        XCTAssertEqual(h.stopDaemon(), 0)
        c.waitJSON("heatbridge/bridge/state") { $0["state"]?.stringValue == "offline" }
    }

    func testChargeIsDoneAndVisibleOnReadBack() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        c.publish("\(charge)/set", #"{"id":"chg-1","action":"start","duration_min":45}"#)
        c.waitResult("\(charge)/result", id: "chg-1", status: "accepted")
        let done = c.waitResult("\(charge)/result", id: "chg-1", status: "done")
        XCTAssertNotNil(done?["ts"]?.stringValue.flatMap(Timestamp.parse))
        XCTAssertEqual(c.statuses("\(charge)/result", id: "chg-1"), ["accepted", "done"])
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["active"]?.boolValue, true)
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 45)
        c.waitJSON("heatbridge/\(gw)/dhw1/state") { $0["charge"]?["active"]?.boolValue == true && $0["charge"]?["duration_min"]?.intValue == 45 }
        // The PATCH carried both headers the Partner API requires.
        let log = try h.admin("GET", "/admin/requests").arrayValue ?? []
        let patch = log.first { $0["method"]?.stringValue == "PATCH" }
        XCTAssertEqual(patch?["had_api_key"]?.boolValue, true)
        XCTAssertEqual(patch?["had_user_id"]?.boolValue, true)
        // And stop.
        c.publish("\(charge)/set", #"{"id":"chg-2","action":"stop"}"#)
        c.waitResult("\(charge)/result", id: "chg-2", status: "done")
        c.waitJSON("heatbridge/\(gw)/dhw1/state") { $0["charge"]?["active"]?.boolValue == false && $0["charge"]?["duration_min"]?.intValue == 45 }
    }

    func testCloudErrorsMapToResultCodes() throws {
        let h = try Harness(timeoutS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        let cases: [(String, String)] = [
            (#"{"method":"PATCH","path_contains":"charge","status":401,"body":"{\"message\":\"Unauthorized\"}","count":1}"#, "AUTH_FAILED"),
            (#"{"method":"PATCH","path_contains":"charge","status":403,"count":1}"#, "FORBIDDEN"),
            (#"{"method":"PATCH","path_contains":"charge","status":451,"count":1}"#, "CONSENT_REQUIRED"),
            (#"{"method":"PATCH","path_contains":"charge","status":504,"count":1}"#, "DEVICE_OFFLINE"),
            (#"{"method":"PATCH","path_contains":"charge","status":400,"count":1}"#, "CLOUD_REJECTED"),
        ]
        for (i, (fault, code)) in cases.enumerated() {
            try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
            try h.injectFault(fault)
            let id = "err-\(i)"
            c.publish("\(charge)/set", "{\"id\":\"\(id)\",\"action\":\"start\"}")
            let r = c.waitResult("\(charge)/result", id: id, status: "failed", timeout: 20)
            XCTAssertEqual(r?["code"]?.stringValue, code, "fault \(fault)")
            // The cloud's request id, for the partner to quote to Bosch support (the injected fault's body has one,
            // except the 401's own body).
            if !fault.contains("401") { XCTAssertEqual(r?["cloud_request_id"]?.stringValue, "sim-fault", "fault \(fault)") }
            // After the previous case left the account down, the command first waits (queued) for it.
            let statuses = c.statuses("\(charge)/result", id: id)
            XCTAssertTrue(statuses == ["accepted", "failed"] || statuses == ["accepted", "queued", "failed"], "\(statuses)")
        }
        // 401 marks the account auth_required until a call succeeds again.
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "auth_required" }
        // 429: queued with retry_at, then retried and done (once the account is up again).
        c.waitLatest("heatbridge/bridge/account/bosch-test", timeout: 20) { $0["state"]?.stringValue == "ready" }
        try h.injectFault(#"{"method":"PATCH","path_contains":"charge","status":429,"retry_after":1,"count":1}"#)
        c.publish("\(charge)/set", #"{"id":"rl-1","action":"start","duration_min":30}"#)
        let queued = c.waitResult("\(charge)/result", id: "rl-1", status: "queued")
        XCTAssertEqual(queued?["code"]?.stringValue, "RATE_LIMITED")
        XCTAssertNotNil(queued?["retry_at"]?.stringValue.flatMap(Timestamp.parse))
        c.waitResult("\(charge)/result", id: "rl-1", status: "done")
        XCTAssertEqual(c.statuses("\(charge)/result", id: "rl-1"), ["accepted", "queued", "done"])
        // No secret ever reaches MQTT or the log.
        let everything = h.client.recorder.messages.withLock { $0.map { String(decoding: $0.payload, as: UTF8.self) } }.joined()
        XCTAssertFalse(everything.contains(Harness.apiKey))
        XCTAssertFalse(h.daemonOutput().contains(Harness.apiKey))
    }

    /// A transient failure (503, 500, a timeout) does not end a command: it waits `queued` with `retry_at` and
    /// is tried again with backoff inside `valid_for_s`; after a timeout (the PATCH may have reached the cloud)
    /// the device is read back first instead of sending it again. Only running out of validity ends it.
    func testTransientCloudErrorsAreRetriedWithinValidity() throws {
        let h = try Harness(timeoutS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        func patches() throws -> [JSONValue] {
            (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PATCH" }
        }
        // 503 (answered, so definitely not applied) and 500: retried, each PATCH sent twice, done.
        for (i, status) in [503, 500].enumerated() {
            try h.admin("DELETE", "/admin/requests")
            try h.injectFault("{\"method\":\"PATCH\",\"path_contains\":\"charge\",\"status\":\(status),\"body\":\"<html>oops\",\"count\":1}")
            let id = "tr-\(i)"
            c.publish("\(charge)/set", "{\"id\":\"\(id)\",\"action\":\"start\",\"duration_min\":\(31 + i),\"valid_for_s\":120}")
            let q = c.waitResult("\(charge)/result", id: id, status: "queued")
            XCTAssertEqual(q?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
            XCTAssertNotNil(q?["retry_at"]?.stringValue.flatMap(Timestamp.parse))
            c.waitResult("\(charge)/result", id: id, status: "done", timeout: 30)
            XCTAssertEqual(c.statuses("\(charge)/result", id: id), ["accepted", "queued", "done"])
            XCTAssertEqual(try patches().map { $0["status"]?.intValue ?? 0 }, [status, 204])
        }
        // A timeout: the simulator applied the PATCH but answered too late. The retry reads back, finds it
        // applied, and does not send it again.
        try h.admin("DELETE", "/admin/requests")
        try h.injectFault(#"{"method":"PATCH","path_contains":"charge","latency_ms":2500,"count":1}"#)
        c.publish("\(charge)/set", #"{"id":"tr-t","action":"start","duration_min":44,"valid_for_s":120}"#)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "tr-t", status: "queued")?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
        let confirmed = c.waitResult("\(charge)/result", id: "tr-t", status: "done", timeout: 30)
        XCTAssertTrue(confirmed?["message"]?.stringValue?.contains("read-back") == true, "\(String(describing: confirmed))")
        XCTAssertEqual(try patches().count, 1, "a command that may have applied was sent again")
        // A cloud that stays down: retried with backoff until valid_for_s runs out, then expired with the reason.
        try h.admin("DELETE", "/admin/requests")
        try h.injectFault(#"{"method":"PATCH","path_contains":"charge","status":503}"#)
        c.publish("\(charge)/set", #"{"id":"tr-x","action":"start","duration_min":50,"valid_for_s":9}"#)
        let end = c.waitResult("\(charge)/result", id: "tr-x", status: "expired", timeout: 30)
        XCTAssertEqual(end?["code"]?.stringValue, "EXPIRED")
        XCTAssertTrue(end?["message"]?.stringValue?.contains("unavailable") == true, "\(String(describing: end))")
        XCTAssertEqual(c.statuses("\(charge)/result", id: "tr-x"), ["accepted", "queued", "expired"])
        // 2 s, 4 s: three tries fit in 9 s of validity (the third due at +6 s), the fourth (+14 s) does not.
        XCTAssertEqual(try patches().count, 3)
        try h.admin("DELETE", "/admin/faults")
    }

    func testBurstOfChargesIsSpacedInsteadOfRateLimited() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        try h.admin("DELETE", "/admin/requests")
        // The charge PATCH allows a burst of 3, then 1 per 2 s (cloud-apis.md §1.6): five charges in a row are
        // spaced by the client-side budget, so the simulator never answers 429 and every one ends done.
        for i in 0..<5 {
            c.publish("\(charge)/set", "{\"id\":\"burst-\(i)\",\"action\":\"start\",\"duration_min\":\(10 + i)}")
            c.waitResult("\(charge)/result", id: "burst-\(i)", status: "done", timeout: 30)
        }
        let histories = (0..<5).map { c.statuses("\(charge)/result", id: "burst-\($0)") }
        XCTAssertTrue(histories.allSatisfy { $0 == ["accepted", "done"] }, "\(histories)")
        let log = try h.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertEqual(log.filter { $0["status"]?.intValue == 429 }.count, 0)
        let patches = log.filter { $0["method"]?.stringValue == "PATCH" }.compactMap { $0["at"]?.doubleValue }
        XCTAssertEqual(patches.count, 5)
        XCTAssertGreaterThanOrEqual((patches.last ?? 0) - (patches.first ?? 0), 3.5, "five PATCHes must span at least two refills")
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 14)
    }

    func testGatewayWithoutContractOrConsentIsReportedPerDevice() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/bosch/gateways/101000002", #"{"contract":false}"#)
        try h.admin("POST", "/admin/bosch/gateways/101000001", #"{"consent":"old"}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let noContract = c.waitJSON("heatbridge/bosch-101000002/state") { $0["error"]?["code"]?.stringValue == "FORBIDDEN" }
        XCTAssertEqual(noContract?["nodes"], [])
        c.waitJSON("heatbridge/\(gw)/state") { $0["error"]?["code"]?.stringValue == "CONSENT_REQUIRED" }
        // The account itself is fine: one gateway's contract is not the account's problem.
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }
        c.publish("\(charge)/set", #"{"id":"consent-1","action":"start"}"#)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "consent-1", status: "rejected")?["code"]?.stringValue, "CONSENT_REQUIRED")
        // Consent renewed: the next poll reads the circuits and commands run.
        try h.admin("POST", "/admin/bosch/gateways/101000001", #"{"consent":"current"}"#)
        c.waitJSON("heatbridge/\(gw)/dhw1/state", timeout: 20)
        c.publish("\(charge)/set", #"{"id":"consent-2","action":"start"}"#)
        c.waitResult("\(charge)/result", id: "consent-2", status: "done")
    }

    /// Polling far faster than the documented limits allow: the client-side budget spaces the requests so the
    /// simulator (limits on) answers no 429 at all, and a command still goes out.
    func testClientSideBudgetKeepsInsideTheDocumentedLimits() throws {
        // Polling every second: twice the sustained 1 request / 2 s allowed per gateway path.
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        let t0 = Date()
        try h.waitForRequests("/hvacs/101000001/status", count: 3)  // polls held back by the budget meanwhile
        c.publish("\(charge)/set", #"{"id":"budget-1","action":"start"}"#)
        c.waitResult("\(charge)/result", id: "budget-1", status: "done", timeout: 20)
        let elapsed = Date().timeIntervalSince(t0) + 2
        let log = try h.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertEqual(log.filter { $0["status"]?.intValue == 429 }.count, 0, "the cloud had to say 429")
        let statusReads = log.filter { $0["path"]?.stringValue == "/hvacs/101000001/status" }.count
        XCTAssertLessThanOrEqual(Double(statusReads), 3 + elapsed * 0.5 + 1, "status read \(statusReads)× in \(Int(elapsed)) s")
        XCTAssertGreaterThan(statusReads, 3, "polling did not go on")
    }

    func testGarbageAndDownCloudDegradeTheAccountWithoutCrashing() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }
        try h.injectFault(#"{"method":"GET","path_contains":"hvacs","malformed":true}"#)
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "degraded" }
        try h.admin("DELETE", "/admin/faults")
        c.waitLatest("heatbridge/bridge/account/bosch-test", timeout: 25) { $0["state"]?.stringValue == "ready" }
        h.stopSim()
        c.waitJSON("heatbridge/bridge/account/bosch-test", timeout: 25) { $0["state"]?.stringValue == "offline" }
        XCTAssertTrue(h.daemon?.isRunning ?? false)
    }

    func testMalformedUnknownAndRetainedCommandsAreRejected() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        c.publish("\(charge)/set", "{not json")
        let bad = c.waitJSON("\(charge)/result") { $0["status"]?.stringValue == "rejected" }
        XCTAssertEqual(bad?["code"]?.stringValue, "INVALID_PAYLOAD")
        XCTAssertNotNil(bad?["id"]?.stringValue, "a generated id")
        c.publish("\(charge)/set", #"{"id":"r-2","action":"boil"}"#)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "r-2", status: "rejected")?["code"]?.stringValue, "INVALID_PAYLOAD")
        c.publish("\(charge)/set", #"{"id":"r-3","action":"start","duration_min":100000}"#)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "r-3", status: "rejected")?["code"]?.stringValue, "OUT_OF_RANGE")
        c.publish("heatbridge/bosch-999999999/dhw1/charge/set", #"{"id":"r-4","action":"start"}"#)
        XCTAssertEqual(
            c.waitResult("heatbridge/bosch-999999999/dhw1/charge/result", id: "r-4", status: "rejected")?["code"]?.stringValue, "UNKNOWN_TARGET")
        c.publish("heatbridge/\(gw)/dhw7/charge/set", #"{"id":"r-5","action":"start"}"#)
        XCTAssertEqual(c.waitResult("heatbridge/\(gw)/dhw7/charge/result", id: "r-5", status: "rejected")?["code"]?.stringValue, "UNKNOWN_TARGET")
        c.publish("heatbridge/\(gw)/hc1/charge/set", #"{"id":"r-6","action":"start"}"#)
        XCTAssertEqual(c.waitResult("heatbridge/\(gw)/hc1/charge/result", id: "r-6", status: "rejected")?["code"]?.stringValue, "UNSUPPORTED")
        // Retained: rejected, cleared with an empty retained publish, never executed.
        try h.admin("DELETE", "/admin/requests")
        c.publish("\(charge)/set", #"{"id":"r-7","action":"start"}"#, retain: true)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "r-7", status: "rejected")?["code"]?.stringValue, "RETAINED_COMMAND")
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !c.all("\(charge)/set").contains(where: { $0.payload.isEmpty }) { usleep(50_000) }
        XCTAssertTrue(c.all("\(charge)/set").contains { $0.payload.isEmpty }, "retained command not cleared")
        let late = try TestMQTTClient(port: h.brokerPort)
        defer { late.close() }
        try late.waitConnected()
        late.subscribe("\(charge)/set")  // a retained message comes with the subscription, before its barrier
        XCTAssertTrue(late.all("\(charge)/set").isEmpty, "broker still holds the retained command")
        let patches = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PATCH" }
        XCTAssertTrue(patches.isEmpty, "a retained command reached the cloud")
        XCTAssertEqual(c.statuses("\(charge)/result", id: "r-7"), ["rejected"])
    }

    func testCommandPublishedWhileDaemonStoppedRunsAfterRestart() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }
        h.barrier()  // the daemon answers on its subscription: the persistent session holds it now
        h.killDaemon()
        c.publish("\(charge)/set", #"{"id":"offline-1","action":"start","duration_min":15}"#)
        c.brokerBarrier()  // the broker has it, queued for the stopped daemon's session
        XCTAssertTrue(c.statuses("\(charge)/result", id: "offline-1").isEmpty)
        try h.startDaemon()
        c.waitResult("\(charge)/result", id: "offline-1", status: "done")
        XCTAssertEqual(c.statuses("\(charge)/result", id: "offline-1"), ["accepted", "done"])
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 15)
    }

    func testRestartWithCloudDownPublishesCachedState() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/hc1/state") { $0["source"]?.stringValue == "cloud" }
        XCTAssertEqual(h.stopDaemon(), 0)
        h.stopSim()
        // A fresh broker has no retained state: everything seen now comes from the daemon's SQLite cache.
        let connects = c.connects
        try h.restartBroker()
        c.clear()
        try c.waitReconnected(after: connects)
        c.subscribe("heatbridge/#")
        try h.startDaemon()
        let hc = c.waitJSON("heatbridge/\(gw)/hc1/state") { $0["source"]?.stringValue == "cache" }
        XCTAssertEqual(hc?["setpoint"]?.doubleValue, 21)
        // The week program comes from the cache too, and schedule_now is computed locally.
        let program = c.waitJSON("heatbridge/\(gw)/hc1/schedule") { $0["source"]?.stringValue == "cache" }
        XCTAssertEqual(program?["days"]?["mon"], [["at": "06:00", "level": "comfort"], ["at": "22:00", "level": "eco"]])
        XCTAssertEqual(hc?["schedule_now"]?["source"]?.stringValue, "computed")
        // The same evaluation here, in this machine's time zone (the daemon's), must agree.
        let expected = WeekSchedule(json: program ?? .null)?.now(at: Date().timeIntervalSince1970, in: GlibcLocalTime())
        XCTAssertNotNil(expected)
        XCTAssertEqual(hc?["schedule_now"]?["level"]?.stringValue, expected?.level)
        XCTAssertEqual(hc?["schedule_now"]?["setpoint"]?.doubleValue, expected?.setpoint)
        XCTAssertEqual(hc?["schedule_now"]?["next"]?["at"]?.stringValue, expected?.next.map { Timestamp.iso8601($0.at) })
        XCTAssertEqual(c.waitJSON("heatbridge/\(gw)/state")?["source"]?.stringValue, "cache")
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "offline" }
        c.waitJSON("heatbridge/bridge/state") { $0["state"]?.stringValue == "online" }
    }

    func testBrokerRestartReconnectsAndRepublishesRetainedTopics() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/\(gw)/dhw1/state")
        let connects = c.connects
        try h.restartBroker()  // persistence off: the new broker knows nothing
        c.clear()
        try c.waitReconnected(after: connects)
        c.subscribe("heatbridge/#")
        c.waitJSON("heatbridge/bridge/state", timeout: 40) { $0["state"]?.stringValue == "online" }
        c.waitJSON("heatbridge/\(gw)/dhw1/state", timeout: 40)
        c.waitJSON("heatbridge/bridge/info", timeout: 40)
        XCTAssertTrue(h.daemonOutput().contains("MQTT connection lost"))
        // Commands work on the new connection.
        c.publish("\(charge)/set", #"{"id":"after-restart","action":"stop"}"#)
        c.waitResult("\(charge)/result", id: "after-restart", status: "done")
    }

    /// The MQTT client after `shutdown()`: a second shutdown, a publish and a subscribe touch no freed handle
    /// (the harness shut its client down twice, in `defer` and in `deinit`, and the test process once died of
    /// heap corruption for it).
    func testMQTTClientShutdownIsIdempotentAndLaterCallsAreRefused() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let c = try TestMQTTClient(port: h.brokerPort)
        try c.waitConnected()
        c.subscribe("probe/#")
        c.publish("probe/a", "before")
        c.brokerBarrier()
        XCTAssertEqual(c.all("probe/a").count, 1, "the client worked before its shutdown")
        c.close()
        c.close()
        XCTAssertFalse(c.mqtt.publish(topic: "probe/a", payload: Array("after".utf8), qos: 1, retain: false))
        c.mqtt.subscribe("probe/b", qos: 1)
        h.client.publish("probe/a", "seen by nobody")
        h.client.brokerBarrier()
        XCTAssertEqual(c.all("probe/a").count, 1, "a shut-down client received a message")
    }
}

import Foundation
import HeatbridgeCore
import HeatbridgeSimulator
import XCTest

/// A command against the cloud's answers: done and read back, every error code, transient errors retried within
/// validity, the client-side budget, per-gateway contract and consent, a cloud that answers garbage or goes away.
/// In process (`InProcessBox`): moved from `BridgeEndToEndTests` with every assertion. None of them needs a real
/// process; the broker restarts, `kill -9` and retained messages stay there.
final class CloudAnswerTests: XCTestCase {
    let gw = "bosch-101000001"
    var charge: String { "heatbridge/\(gw)/dhw1/charge" }

    func testChargeIsDoneAndVisibleOnReadBack() async throws {
        let box = try InProcessBox()
        box.start()
        await box.waitJSON("heatbridge/\(gw)/dhw1/state")
        box.publish("\(charge)/set", #"{"id":"chg-1","action":"start","duration_min":45}"#)
        await box.waitResult("\(charge)/result", id: "chg-1", status: "accepted")
        let done = await box.waitResult("\(charge)/result", id: "chg-1", status: "done")
        XCTAssertNotNil(done?["ts"]?.stringValue.flatMap(Timestamp.parse))
        XCTAssertEqual(box.statuses("\(charge)/result", id: "chg-1"), ["accepted", "done"])
        let state = try await box.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["active"]?.boolValue, true)
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 45)
        await box.waitJSON("heatbridge/\(gw)/dhw1/state") {
            $0["charge"]?["active"]?.boolValue == true && $0["charge"]?["duration_min"]?.intValue == 45
        }
        // The PATCH carried both headers the Partner API requires.
        let log = try await box.admin("GET", "/admin/requests").arrayValue ?? []
        let patch = log.first { $0["method"]?.stringValue == "PATCH" }
        XCTAssertEqual(patch?["had_api_key"]?.boolValue, true)
        XCTAssertEqual(patch?["had_user_id"]?.boolValue, true)
        // And stop.
        box.publish("\(charge)/set", #"{"id":"chg-2","action":"stop"}"#)
        await box.waitResult("\(charge)/result", id: "chg-2", status: "done")
        await box.waitJSON("heatbridge/\(gw)/dhw1/state") {
            $0["charge"]?["active"]?.boolValue == false && $0["charge"]?["duration_min"]?.intValue == 45
        }
        await box.stopAll()
    }

    func testCloudErrorsMapToResultCodes() async throws {
        let box = try InProcessBox(timeoutS: 1)
        box.start()
        await box.waitJSON("heatbridge/\(gw)/dhw1/state")
        let cases: [(String, String)] = [
            (#"{"method":"PATCH","path_contains":"charge","status":401,"body":"{\"message\":\"Unauthorized\"}","count":1}"#, "AUTH_FAILED"),
            (#"{"method":"PATCH","path_contains":"charge","status":403,"count":1}"#, "FORBIDDEN"),
            (#"{"method":"PATCH","path_contains":"charge","status":451,"count":1}"#, "CONSENT_REQUIRED"),
            (#"{"method":"PATCH","path_contains":"charge","status":504,"count":1}"#, "DEVICE_OFFLINE"),
            (#"{"method":"PATCH","path_contains":"charge","status":400,"count":1}"#, "CLOUD_REJECTED"),
        ]
        for (i, (fault, code)) in cases.enumerated() {
            try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
            try await box.injectFault(fault)
            let id = "err-\(i)"
            box.publish("\(charge)/set", "{\"id\":\"\(id)\",\"action\":\"start\"}")
            let r = await box.waitResult("\(charge)/result", id: id, status: "failed", timeout: 20)
            XCTAssertEqual(r?["code"]?.stringValue, code, "fault \(fault)")
            // The cloud's request id, for the partner to quote to Bosch support (the injected fault's body has one,
            // except the 401's own body).
            if !fault.contains("401") { XCTAssertEqual(r?["cloud_request_id"]?.stringValue, "sim-fault", "fault \(fault)") }
            // After the previous case left the account down, the command first waits (queued) for it.
            let statuses = box.statuses("\(charge)/result", id: id)
            XCTAssertTrue(statuses == ["accepted", "failed"] || statuses == ["accepted", "queued", "failed"], "\(statuses)")
        }
        // 401 marks the account auth_required until a call succeeds again.
        await box.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "auth_required" }
        // 429: queued with retry_at, then retried and done (once the account is up again).
        await box.waitLatest("heatbridge/bridge/account/bosch-test", timeout: 20) { $0["state"]?.stringValue == "ready" }
        try await box.injectFault(#"{"method":"PATCH","path_contains":"charge","status":429,"retry_after":1,"count":1}"#)
        box.publish("\(charge)/set", #"{"id":"rl-1","action":"start","duration_min":30}"#)
        let queued = await box.waitResult("\(charge)/result", id: "rl-1", status: "queued")
        XCTAssertEqual(queued?["code"]?.stringValue, "RATE_LIMITED")
        XCTAssertNotNil(queued?["retry_at"]?.stringValue.flatMap(Timestamp.parse))
        await box.waitResult("\(charge)/result", id: "rl-1", status: "done")
        XCTAssertEqual(box.statuses("\(charge)/result", id: "rl-1"), ["accepted", "queued", "done"])
        // No secret ever reaches MQTT or the log.
        let key = BoschCloud.defaultScenario().apiKey
        XCTAssertFalse(box.mqtt.published.withLock { $0.map(\.payload) }.joined().contains(key))
        XCTAssertFalse(box.log.text.isEmpty, "the box logged nothing")
        XCTAssertFalse(box.log.text.contains(key))
        await box.stopAll()
    }

    /// A transient failure (503, 500, a timeout) does not end a command: it waits `queued` with `retry_at` and
    /// is tried again with backoff inside `valid_for_s`; after a timeout (the PATCH may have reached the cloud)
    /// the device is read back first instead of sending it again. Only running out of validity ends it.
    func testTransientCloudErrorsAreRetriedWithinValidity() async throws {
        let box = try InProcessBox(timeoutS: 1)
        box.start()
        await box.waitJSON("heatbridge/\(gw)/dhw1/state")
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        func patches() async throws -> [JSONValue] {
            (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PATCH" }
        }
        // 503 (answered, so definitely not applied) and 500: retried, each PATCH sent twice, done.
        for (i, status) in [503, 500].enumerated() {
            try await box.admin("DELETE", "/admin/requests")
            try await box.injectFault("{\"method\":\"PATCH\",\"path_contains\":\"charge\",\"status\":\(status),\"body\":\"<html>oops\",\"count\":1}")
            let id = "tr-\(i)"
            box.publish("\(charge)/set", "{\"id\":\"\(id)\",\"action\":\"start\",\"duration_min\":\(31 + i),\"valid_for_s\":120}")
            let q = await box.waitResult("\(charge)/result", id: id, status: "queued")
            XCTAssertEqual(q?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
            XCTAssertNotNil(q?["retry_at"]?.stringValue.flatMap(Timestamp.parse))
            await box.waitResult("\(charge)/result", id: id, status: "done", timeout: 30)
            XCTAssertEqual(box.statuses("\(charge)/result", id: id), ["accepted", "queued", "done"])
            let sent = try await patches().map { $0["status"]?.intValue ?? 0 }
            XCTAssertEqual(sent, [status, 204])
        }
        // A timeout: the simulator applied the PATCH but answered too late. The retry reads back, finds it
        // applied, and does not send it again.
        try await box.admin("DELETE", "/admin/requests")
        try await box.injectFault(#"{"method":"PATCH","path_contains":"charge","latency_ms":2500,"count":1}"#)
        box.publish("\(charge)/set", #"{"id":"tr-t","action":"start","duration_min":44,"valid_for_s":120}"#)
        let timedOut = await box.waitResult("\(charge)/result", id: "tr-t", status: "queued")
        XCTAssertEqual(timedOut?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
        let confirmed = await box.waitResult("\(charge)/result", id: "tr-t", status: "done", timeout: 30)
        XCTAssertTrue(confirmed?["message"]?.stringValue?.contains("read-back") == true, "\(String(describing: confirmed))")
        let afterTimeout = try await patches().count
        XCTAssertEqual(afterTimeout, 1, "a command that may have applied was sent again")
        // A cloud that stays down: retried with backoff until valid_for_s runs out, then expired with the reason.
        try await box.admin("DELETE", "/admin/requests")
        try await box.injectFault(#"{"method":"PATCH","path_contains":"charge","status":503}"#)
        box.publish("\(charge)/set", #"{"id":"tr-x","action":"start","duration_min":50,"valid_for_s":9}"#)
        let end = await box.waitResult("\(charge)/result", id: "tr-x", status: "expired", timeout: 30)
        XCTAssertEqual(end?["code"]?.stringValue, "EXPIRED")
        XCTAssertTrue(end?["message"]?.stringValue?.contains("unavailable") == true, "\(String(describing: end))")
        XCTAssertEqual(box.statuses("\(charge)/result", id: "tr-x"), ["accepted", "queued", "expired"])
        // 2 s, 4 s: three tries fit in 9 s of validity (the third due at +6 s), the fourth (+14 s) does not.
        let tries = try await patches().count
        XCTAssertEqual(tries, 3)
        try await box.admin("DELETE", "/admin/faults")
        await box.stopAll()
    }

    func testBurstOfChargesIsSpacedInsteadOfRateLimited() async throws {
        let box = try InProcessBox()
        box.start()
        await box.waitJSON("heatbridge/\(gw)/dhw1/state")
        try await box.admin("DELETE", "/admin/requests")
        // The charge PATCH allows a burst of 3, then 1 per 2 s (cloud-apis.md §1.6): five charges in a row are
        // spaced by the client-side budget, so the simulator never answers 429 and every one ends done.
        for i in 0..<5 {
            box.publish("\(charge)/set", "{\"id\":\"burst-\(i)\",\"action\":\"start\",\"duration_min\":\(10 + i)}")
            await box.waitResult("\(charge)/result", id: "burst-\(i)", status: "done", timeout: 30)
        }
        let histories = (0..<5).map { box.statuses("\(charge)/result", id: "burst-\($0)") }
        XCTAssertTrue(histories.allSatisfy { $0 == ["accepted", "done"] }, "\(histories)")
        let log = try await box.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertEqual(log.filter { $0["status"]?.intValue == 429 }.count, 0)
        let patches = log.filter { $0["method"]?.stringValue == "PATCH" }.compactMap { $0["at"]?.doubleValue }
        XCTAssertEqual(patches.count, 5)
        XCTAssertGreaterThanOrEqual((patches.last ?? 0) - (patches.first ?? 0), 3.5, "five PATCHes must span at least two refills")
        let state = try await box.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 14)
        await box.stopAll()
    }

    func testGatewayWithoutContractOrConsentIsReportedPerDevice() async throws {
        let box = try InProcessBox(pollIntervalS: 1)
        try await box.admin("POST", "/admin/bosch/gateways/101000002", #"{"contract":false}"#)
        try await box.admin("POST", "/admin/bosch/gateways/101000001", #"{"consent":"old"}"#)
        box.start()
        let noContract = await box.waitJSON("heatbridge/bosch-101000002/state") { $0["error"]?["code"]?.stringValue == "FORBIDDEN" }
        XCTAssertEqual(noContract?["nodes"], [])
        await box.waitJSON("heatbridge/\(gw)/state") { $0["error"]?["code"]?.stringValue == "CONSENT_REQUIRED" }
        // The account itself is fine: one gateway's contract is not the account's problem.
        await box.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }
        box.publish("\(charge)/set", #"{"id":"consent-1","action":"start"}"#)
        let refused = await box.waitResult("\(charge)/result", id: "consent-1", status: "rejected")
        XCTAssertEqual(refused?["code"]?.stringValue, "CONSENT_REQUIRED")
        // Consent renewed: the next poll reads the circuits and commands run.
        try await box.admin("POST", "/admin/bosch/gateways/101000001", #"{"consent":"current"}"#)
        await box.waitJSON("heatbridge/\(gw)/dhw1/state", timeout: 20)
        box.publish("\(charge)/set", #"{"id":"consent-2","action":"start"}"#)
        await box.waitResult("\(charge)/result", id: "consent-2", status: "done")
        await box.stopAll()
    }

    /// Polling far faster than the documented limits allow: the client-side budget spaces the requests so the
    /// simulator (limits on) answers no 429 at all, and a command still goes out.
    func testClientSideBudgetKeepsInsideTheDocumentedLimits() async throws {
        // Polling every second: twice the sustained 1 request / 2 s allowed per gateway path.
        let box = try InProcessBox(pollIntervalS: 1)
        box.start()
        await box.waitJSON("heatbridge/\(gw)/dhw1/state")
        let t0 = box.clock.now()
        try await box.waitForRequests("/hvacs/101000001/status", count: 3)  // polls held back by the budget meanwhile
        box.publish("\(charge)/set", #"{"id":"budget-1","action":"start"}"#)
        await box.waitResult("\(charge)/result", id: "budget-1", status: "done", timeout: 20)
        let elapsed = box.clock.now() - t0 + 2
        let log = try await box.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertEqual(log.filter { $0["status"]?.intValue == 429 }.count, 0, "the cloud had to say 429")
        let statusReads = log.filter { $0["path"]?.stringValue == "/hvacs/101000001/status" }.count
        XCTAssertLessThanOrEqual(Double(statusReads), 3 + elapsed * 0.5 + 1, "status read \(statusReads)× in \(Int(elapsed)) s")
        XCTAssertGreaterThan(statusReads, 3, "polling did not go on")
        await box.stopAll()
    }

    func testGarbageAndDownCloudDegradeTheAccountWithoutCrashing() async throws {
        let box = try InProcessBox(pollIntervalS: 1)
        box.start()
        await box.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }
        try await box.injectFault(#"{"method":"GET","path_contains":"hvacs","malformed":true}"#)
        await box.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "degraded" }
        try await box.admin("DELETE", "/admin/faults")
        await box.waitLatest("heatbridge/bridge/account/bosch-test", timeout: 25) { $0["state"]?.stringValue == "ready" }
        box.link.isUp = false  // the simulator stops: every connection is refused
        await box.waitJSON("heatbridge/bridge/account/bosch-test", timeout: 25) { $0["state"]?.stringValue == "offline" }
        // The bridge is alive: it still answers a command (queued for the cloud that is away).
        box.publish("\(charge)/set", #"{"id":"alive","action":"start"}"#)
        await box.waitResult("\(charge)/result", id: "alive", status: "accepted")
        await box.stopAll()
    }
}

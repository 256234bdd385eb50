import Foundation
import HeatbridgeCore
import XCTest

/// The Podero account end to end through the box's own wiring: state, each preference, local validation, tokens
/// and credentials. In process (`InProcessBox`): moved from `PoderoTests` with every assertion; the onboarding and
/// stats CLI commands stay there.
final class PoderoBoxTests: XCTestCase {
    static let hpId = "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"
    let dev = "heatbridge/podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"

    func box(_ account: InProcessBox.PoderoAccount = .init()) throws -> InProcessBox {
        try InProcessBox(pollIntervalS: 30, podero: account)
    }

    func simHeatPump(_ box: InProcessBox) async throws -> JSONValue {
        try await box.admin("GET", "/admin/state")["podero"]?["heat_pumps"]?[Self.hpId] ?? .null
    }

    func requests(_ box: InProcessBox, _ method: String, pathContains: String) async throws -> [JSONValue] {
        (try await box.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["vendor"]?.stringValue == "podero" && $0["method"]?.stringValue == method
                && ($0["path"]?.stringValue?.contains(pathContains) ?? false)
        }
    }

    func testStateIsPublishedAndNotRepublishedWhileItsTimestampStands() async throws {
        let box = try box()
        box.start()
        let first = await box.waitJSON("\(dev)/hp/state")
        XCTAssertEqual(first?["kind"]?.stringValue, "heat_pump")
        XCTAssertEqual(first?["power_w"]?.doubleValue.map { $0 > 0 }, true)
        XCTAssertNotNil(first?["temperatures"]?["outdoor"]?.doubleValue)
        XCTAssertEqual(first?["optimization"]?["level"]?.stringValue, "mid", "one spelling in state and commands")
        let stamp = try XCTUnwrap(first?["state_updated_at"]?.stringValue)
        XCTAssertEqual(box.all("\(dev)/availability").last, "online")
        let device = await box.waitJSON("\(dev)/state")
        XCTAssertEqual(device?["vendor"]?.stringValue, "podero")
        XCTAssertEqual(device?["model"]?.stringValue, "NIBE F2120")

        // Several polls with the cloud's state timestamp unchanged: no new state message.
        let pollsBefore = try await requests(box, "GET", pathContains: "/heat-pumps").count
        try await box.waitForRequests("/heat-pumps", count: 2)
        let pollsAfter = try await requests(box, "GET", pathContains: "/heat-pumps").count
        XCTAssertGreaterThanOrEqual(pollsAfter - pollsBefore, 2, "the box did not poll")
        await box.settle()
        XCTAssertEqual(box.all("\(dev)/hp/state").count, 1, "state re-published without a new cloud timestamp")

        // Podero's refresh moves the state and its timestamp: published again.
        try await box.admin("POST", "/admin/podero", #"{"refresh":true}"#)
        let moved = await box.waitJSON("\(dev)/hp/state") { $0["state_updated_at"]?.stringValue != stamp }
        XCTAssertNotNil(moved)
        XCTAssertEqual(box.all("\(dev)/hp/state").count, 2)
        await box.stopAll()
    }

    func testEachPreferenceChangesTheCloud() async throws {
        let box = try box()
        box.start()
        await box.waitJSON("\(dev)/hp/state")
        let away = Timestamp.iso8601((box.clock.now() + 3 * 86_400).rounded(.down))
        let steps: [(String, String)] = [
            ("optimization", #"{"id":"o","active":false,"level":"max"}"#),
            ("comfort", #"{"id":"c","min":19.5,"max":22}"#),
            ("dhw", #"{"id":"d","standard":50,"minimum":42}"#),
            ("pause", #"{"id":"p","duration_min":60}"#),
        ]
        for (cap, payload) in steps {
            box.publish("\(dev)/hp/\(cap)/set", payload)
            let id = try JSONValue.parse(Array(payload.utf8))["id"]!.stringValue!
            let done = await box.waitResult("\(dev)/hp/\(cap)/result", id: id, status: "done")
            XCTAssertNotNil(done, cap)
        }
        var hp = try await simHeatPump(box)
        XCTAssertEqual(hp["is_smart_optimization_active"], false)
        XCTAssertEqual(hp["optimization_level"], "Max")
        XCTAssertEqual(hp["minimum_temperature_limit"], 19.5)
        XCTAssertEqual(hp["maximum_temperature_limit"], 22)
        XCTAssertEqual(hp["dhw_standard_temperature"], 50)
        XCTAssertEqual(hp["minimum_dhw_temperature_limit"], 42)
        XCTAssertEqual(hp["is_pause_power_active"], true)
        let until = try XCTUnwrap(hp["pause_power_until"]?.stringValue.flatMap(Timestamp.parse))
        XCTAssertEqual(until - box.clock.now(), 3600, accuracy: 30)

        // Partial PUT: only the fields the command names go to the cloud.
        let puts = try await requests(box, "PUT", pathContains: Self.hpId)
        XCTAssertEqual(puts.count, 4)
        let dhwBody = try JSONValue.parse(Array((puts.count > 2 ? puts[2]["body"]?.stringValue ?? "" : "").utf8))
        XCTAssertEqual(dhwBody.objectValue?.keys.sorted(), ["dhw_standard_temperature", "minimum_dhw_temperature_limit"])

        // A pause cannot start while away mode is on: the cloud's 409 becomes CONFLICT with its message.
        box.publish("\(dev)/hp/pause/set", #"{"id":"p-stop","action":"stop"}"#)
        await box.waitResult("\(dev)/hp/pause/result", id: "p-stop", status: "done")
        box.publish("\(dev)/hp/away/set", "{\"id\":\"a\",\"end\":\"\(away)\",\"minimum\":15}")
        await box.waitResult("\(dev)/hp/away/result", id: "a", status: "done")
        hp = try await simHeatPump(box)
        XCTAssertEqual(hp["is_away_mode_enabled"], true)
        XCTAssertEqual(hp["away_mode_end"]?.stringValue, away)
        XCTAssertEqual(hp["away_mode_minimum_temperature_limit"], 15)
        XCTAssertEqual(hp["is_pause_power_active"], false)
        box.publish("\(dev)/hp/pause/set", #"{"id":"p2","duration_min":30}"#)
        let conflict = await box.waitResult("\(dev)/hp/pause/result", id: "p2", status: "failed")
        XCTAssertEqual(conflict?["code"]?.stringValue, "CONFLICT")
        XCTAssertTrue(conflict?["message"]?.stringValue?.contains("not possible while away mode is active") ?? false, "\(conflict ?? .null)")
        box.publish("\(dev)/hp/away/set", #"{"id":"a-stop","action":"stop"}"#)
        await box.waitResult("\(dev)/hp/away/result", id: "a-stop", status: "done")
        let awayOff = try await simHeatPump(box)["is_away_mode_enabled"]
        XCTAssertEqual(awayOff, false)
        // The node state shows what the cloud now holds.
        await box.waitJSON("\(dev)/hp/state", timeout: 40) {
            $0["away"]?["enabled"] == false && $0["optimization"]?["level"] == "max" && $0["dhw"]?["standard"] == 50
        }
        await box.stopAll()
    }

    func testInvalidInputIsRejectedLocallyNamingTheField() async throws {
        let box = try box()
        box.start()
        await box.waitJSON("\(dev)/hp/state")
        let past = Timestamp.iso8601(box.clock.now() - 3600)
        let cases: [(String, String, String, String)] = [
            ("optimization", #"{"id":"b1","level":"Turbo"}"#, "INVALID_PAYLOAD", "\"level\" must be one of low, mid, max"),
            ("optimization", #"{"id":"b2"}"#, "INVALID_PAYLOAD", "\"active\""),
            ("comfort", #"{"id":"b3","min":4}"#, "OUT_OF_RANGE", "\"min\" must be 10…30 °C"),
            ("comfort", #"{"id":"b4","min":22,"max":21}"#, "OUT_OF_RANGE", "\"min\" (22) must be below \"max\" (21)"),
            ("dhw", #"{"id":"b5","standard":80}"#, "OUT_OF_RANGE", "\"standard\" must be 20…65 °C"),
            ("dhw", #"{"id":"b6","minimum":55}"#, "OUT_OF_RANGE", "\"minimum\" (55) must be at most \"standard\" (48)"),
            ("pause", #"{"id":"b7","duration_min":5000}"#, "OUT_OF_RANGE", "\"duration_min\" must be 1…1440"),
            ("pause", "{\"id\":\"b8\",\"until\":\"\(past)\"}", "OUT_OF_RANGE", "is in the past"),
            ("pause", #"{"id":"b9","until":"tomorrow"}"#, "INVALID_PAYLOAD", "\"until\" must be an ISO 8601 time"),
            ("away", #"{"id":"b10","minimum":15}"#, "INVALID_PAYLOAD", "missing \"end\""),
            ("boost", #"{"id":"b11"}"#, "UNSUPPORTED", "supported: away, comfort, dhw, optimization, pause"),
        ]
        try await box.admin("DELETE", "/admin/requests")
        await box.expectRejections("\(dev)/hp", cases)
        let puts = try await requests(box, "PUT", pathContains: "")
        XCTAssertEqual(puts.count, 0, "bad input reached the cloud")
        await box.stopAll()
    }

    func testExpiredTokensAreRenewedTransparently() async throws {
        let box = try box()
        // Short-lived tokens: the box must renew ahead of expiry, and after a revocation (401) once more.
        try await box.admin("POST", "/admin/podero", #"{"token_ttl_s":3}"#)
        box.start()
        await box.waitJSON("\(dev)/hp/state")
        // The first token lives 3 s: wait for the box's renewal ahead of its expiry.
        for _ in 0..<20 {
            if (try await box.admin("GET", "/admin/state")["podero"]?["tokens_issued"]?.intValue ?? 0) >= 2 { break }
            await box.advance(by: 1)
        }
        let renewed = try await box.admin("GET", "/admin/state")["podero"]?["tokens_issued"]?.intValue ?? 0
        XCTAssertGreaterThanOrEqual(renewed, 2, "no renewed token within 20 s of the box's time")
        box.publish("\(dev)/hp/optimization/set", #"{"id":"t1","level":"Low"}"#)
        let t1 = await box.waitResult("\(dev)/hp/optimization/result", id: "t1", status: "done")
        XCTAssertNotNil(t1)
        try await box.admin("POST", "/admin/podero", #"{"token_ttl_s":3600,"expire_tokens":true}"#)
        box.publish("\(dev)/hp/optimization/set", #"{"id":"t2","level":"Max"}"#)
        let t2 = await box.waitResult("\(dev)/hp/optimization/result", id: "t2", status: "done")
        XCTAssertNotNil(t2)
        let issued = try await box.admin("GET", "/admin/state")["podero"]?["tokens_issued"]?.intValue ?? 0
        XCTAssertGreaterThanOrEqual(issued, 3, "tokens were not renewed")
        let level = try await simHeatPump(box)["optimization_level"]
        XCTAssertEqual(level, "Max")
        // The account never left ready, and no command saw an auth error.
        let states = box.json("heatbridge/bridge/account/podero-test").compactMap { $0["state"]?.stringValue }
        XCTAssertFalse(states.contains("auth_required"), "\(states)")
        let unauthorized = try await requests(box, "GET", pathContains: "").filter { $0["status"]?.intValue == 401 }
        XCTAssertLessThanOrEqual(unauthorized.count, 1, "more than the one revoked-token call was refused")
        XCTAssertFalse(box.log.text.isEmpty, "the box logged nothing")
        XCTAssertFalse(box.log.text.contains("simtok"), "an access token reached the log")
        await box.stopAll()
    }

    func testWrongCredentialsMeanAuthRequired() async throws {
        let box = try box(.init(secret: "not-the-secret"))
        box.start()
        let account = await box.waitJSON("heatbridge/bridge/account/podero-test") { $0["state"]?.stringValue == "auth_required" }
        XCTAssertTrue(account?["error"]?.stringValue?.contains("client credentials rejected") ?? false, "\(account ?? .null)")
        XCTAssertFalse(box.log.text.isEmpty, "the box logged nothing")
        XCTAssertFalse(box.log.text.contains("not-the-secret"), "the secret reached the log")
        await box.stopAll()
    }

    func testRevokedSecretHoldsCommandsWithAuthFailed() async throws {
        let box = try box(.init(pollIntervalS: 1))
        box.start()
        await box.waitJSON("\(dev)/hp/state")
        // The partner's application secret is rotated elsewhere and every token revoked.
        try await box.admin("POST", "/admin/podero", #"{"client_secret":"rotated","expire_tokens":true}"#)
        await box.waitJSON("heatbridge/bridge/account/podero-test") { $0["state"]?.stringValue == "auth_required" }
        box.publish("\(dev)/hp/pause/set", #"{"id":"held","duration_min":15}"#)
        let held = await box.waitResult("\(dev)/hp/pause/result", id: "held", status: "queued")
        XCTAssertEqual(held?["code"]?.stringValue, "AUTH_FAILED")
        // Credentials fixed on the cloud side: the account recovers and the held command runs.
        try await box.admin("POST", "/admin/podero", #"{"client_secret":"demo-secret"}"#)
        let done = await box.waitResult("\(dev)/hp/pause/result", id: "held", status: "done", timeout: 30)
        XCTAssertNotNil(done)
        let paused = try await simHeatPump(box)["is_pause_power_active"]
        XCTAssertEqual(paused, true)
        await box.stopAll()
    }
}

import Foundation
import HeatbridgeCore
import XCTest

/// The Podero account end to end: daemon, real broker, simulator over HTTP.
final class PoderoTests: XCTestCase {
    static let hpId = "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"
    let dev = "heatbridge/podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"

    func harness(secret: String = "demo-secret", poll: Double = 1) throws -> Harness {
        let h = try Harness(pollIntervalS: 30)
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, extraAccounts: try h.poderoAccount(secret: secret, pollIntervalS: poll))
        return h
    }

    func simHeatPump(_ h: Harness) throws -> JSONValue {
        try h.admin("GET", "/admin/state")["podero"]?["heat_pumps"]?[Self.hpId] ?? .null
    }

    func requests(_ h: Harness, _ method: String, pathContains: String) throws -> [JSONValue] {
        (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["vendor"]?.stringValue == "podero" && $0["method"]?.stringValue == method
                && ($0["path"]?.stringValue?.contains(pathContains) ?? false)
        }
    }

    func testStateIsPublishedAndNotRepublishedWhileItsTimestampStands() throws {
        let h = try harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let first = c.waitJSON("\(dev)/hp/state")
        XCTAssertEqual(first?["kind"]?.stringValue, "heat_pump")
        XCTAssertEqual(first?["power_w"]?.doubleValue.map { $0 > 0 }, true)
        XCTAssertNotNil(first?["temperatures"]?["outdoor"]?.doubleValue)
        XCTAssertEqual(first?["optimization"]?["level"]?.stringValue, "mid", "one spelling in state and commands")
        let stamp = try XCTUnwrap(first?["state_updated_at"]?.stringValue)
        XCTAssertEqual(c.all("\(dev)/availability").last.map { String(decoding: $0.payload, as: UTF8.self) }, "online")
        let device = c.waitJSON("\(dev)/state")
        XCTAssertEqual(device?["vendor"]?.stringValue, "podero")
        XCTAssertEqual(device?["model"]?.stringValue, "NIBE F2120")

        // Several polls with the cloud's state timestamp unchanged: no new state message.
        let pollsBefore = try requests(h, "GET", pathContains: "/heat-pumps").count
        try h.waitForRequests("/heat-pumps", count: 2)
        XCTAssertGreaterThanOrEqual(try requests(h, "GET", pathContains: "/heat-pumps").count - pollsBefore, 2, "the daemon did not poll")
        XCTAssertEqual(c.all("\(dev)/hp/state").count, 1, "state re-published without a new cloud timestamp")

        // Podero's refresh moves the state and its timestamp: published again.
        try h.admin("POST", "/admin/podero", #"{"refresh":true}"#)
        let moved = c.waitJSON("\(dev)/hp/state") { $0["state_updated_at"]?.stringValue != stamp }
        XCTAssertNotNil(moved)
        XCTAssertEqual(c.all("\(dev)/hp/state").count, 2)
    }

    func testEachPreferenceChangesTheCloud() throws {
        let h = try harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(dev)/hp/state")
        let away = Timestamp.iso8601(Date().timeIntervalSince1970 + 3 * 86_400)
        let steps: [(String, String)] = [
            ("optimization", #"{"id":"o","active":false,"level":"max"}"#),
            ("comfort", #"{"id":"c","min":19.5,"max":22}"#),
            ("dhw", #"{"id":"d","standard":50,"minimum":42}"#),
            ("pause", #"{"id":"p","duration_min":60}"#),
        ]
        for (cap, payload) in steps {
            c.publish("\(dev)/hp/\(cap)/set", payload)
            let id = try JSONValue.parse(payload)["id"]!.stringValue!
            XCTAssertNotNil(c.waitResult("\(dev)/hp/\(cap)/result", id: id, status: "done"), cap)
        }
        var hp = try simHeatPump(h)
        XCTAssertEqual(hp["is_smart_optimization_active"], false)
        XCTAssertEqual(hp["optimization_level"], "Max")
        XCTAssertEqual(hp["minimum_temperature_limit"], 19.5)
        XCTAssertEqual(hp["maximum_temperature_limit"], 22)
        XCTAssertEqual(hp["dhw_standard_temperature"], 50)
        XCTAssertEqual(hp["minimum_dhw_temperature_limit"], 42)
        XCTAssertEqual(hp["is_pause_power_active"], true)
        let until = try XCTUnwrap(hp["pause_power_until"]?.stringValue.flatMap(Timestamp.parse))
        XCTAssertEqual(until - Date().timeIntervalSince1970, 3600, accuracy: 30)

        // Partial PUT: only the fields the command names go to the cloud.
        let puts = try requests(h, "PUT", pathContains: Self.hpId)
        XCTAssertEqual(puts.count, 4)
        let dhwBody = try JSONValue.parse(puts[2]["body"]?.stringValue ?? "")
        XCTAssertEqual(dhwBody.objectValue?.keys.sorted(), ["dhw_standard_temperature", "minimum_dhw_temperature_limit"])

        // A pause cannot start while away mode is on: the cloud's 409 becomes CONFLICT with its message.
        c.publish("\(dev)/hp/pause/set", #"{"id":"p-stop","action":"stop"}"#)
        c.waitResult("\(dev)/hp/pause/result", id: "p-stop", status: "done")
        c.publish("\(dev)/hp/away/set", "{\"id\":\"a\",\"end\":\"\(away)\",\"minimum\":15}")
        c.waitResult("\(dev)/hp/away/result", id: "a", status: "done")
        hp = try simHeatPump(h)
        XCTAssertEqual(hp["is_away_mode_enabled"], true)
        XCTAssertEqual(hp["away_mode_end"]?.stringValue, away)
        XCTAssertEqual(hp["away_mode_minimum_temperature_limit"], 15)
        XCTAssertEqual(hp["is_pause_power_active"], false)
        c.publish("\(dev)/hp/pause/set", #"{"id":"p2","duration_min":30}"#)
        let conflict = c.waitResult("\(dev)/hp/pause/result", id: "p2", status: "failed")
        XCTAssertEqual(conflict?["code"]?.stringValue, "CONFLICT")
        XCTAssertTrue(conflict?["message"]?.stringValue?.contains("not possible while away mode is active") ?? false, "\(conflict ?? .null)")
        c.publish("\(dev)/hp/away/set", #"{"id":"a-stop","action":"stop"}"#)
        c.waitResult("\(dev)/hp/away/result", id: "a-stop", status: "done")
        XCTAssertEqual(try simHeatPump(h)["is_away_mode_enabled"], false)
        // The node state shows what the cloud now holds.
        c.waitJSON("\(dev)/hp/state") { $0["away"]?["enabled"] == false && $0["optimization"]?["level"] == "max" && $0["dhw"]?["standard"] == 50 }
    }

    func testInvalidInputIsRejectedLocallyNamingTheField() throws {
        let h = try harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(dev)/hp/state")
        let past = Timestamp.iso8601(Date().timeIntervalSince1970 - 3600)
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
        try h.admin("DELETE", "/admin/requests")
        c.expectRejections("\(dev)/hp", cases)
        XCTAssertEqual(try requests(h, "PUT", pathContains: "").count, 0, "bad input reached the cloud")
    }

    func testExpiredTokensAreRenewedTransparently() throws {
        let h = try harness()
        defer { h.stopAll() }
        // Short-lived tokens: the daemon must renew ahead of expiry, and after a revocation (401) once more.
        try h.admin("POST", "/admin/podero", #"{"token_ttl_s":3}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(dev)/hp/state")
        // The first token lives 3 s: wait for the daemon's renewal ahead of its expiry.
        try h.waitUntil("a renewed token", timeout: 20) { (try h.admin("GET", "/admin/state")["podero"]?["tokens_issued"]?.intValue ?? 0) >= 2 }
        c.publish("\(dev)/hp/optimization/set", #"{"id":"t1","level":"Low"}"#)
        XCTAssertNotNil(c.waitResult("\(dev)/hp/optimization/result", id: "t1", status: "done"))
        try h.admin("POST", "/admin/podero", #"{"token_ttl_s":3600,"expire_tokens":true}"#)
        c.publish("\(dev)/hp/optimization/set", #"{"id":"t2","level":"Max"}"#)
        XCTAssertNotNil(c.waitResult("\(dev)/hp/optimization/result", id: "t2", status: "done"))
        let issued = try h.admin("GET", "/admin/state")["podero"]?["tokens_issued"]?.intValue ?? 0
        XCTAssertGreaterThanOrEqual(issued, 3, "tokens were not renewed")
        XCTAssertEqual(try simHeatPump(h)["optimization_level"], "Max")
        // The account never left ready, and no command saw an auth error.
        let states = c.all("heatbridge/bridge/account/podero-test").compactMap { try? JSONValue.parse($0.payload)["state"]?.stringValue }
        XCTAssertFalse(states.contains("auth_required"), "\(states)")
        let unauthorized = try requests(h, "GET", pathContains: "").filter { $0["status"]?.intValue == 401 }
        XCTAssertLessThanOrEqual(unauthorized.count, 1, "more than the one revoked-token call was refused")
        XCTAssertFalse(h.daemonOutput().contains("simtok"), "an access token reached the log")
    }

    func testWrongCredentialsMeanAuthRequired() throws {
        let h = try harness(secret: "not-the-secret")
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let account = c.waitJSON("heatbridge/bridge/account/podero-test") { $0["state"]?.stringValue == "auth_required" }
        XCTAssertTrue(account?["error"]?.stringValue?.contains("client credentials rejected") ?? false, "\(account ?? .null)")
        XCTAssertFalse(h.daemonOutput().contains("not-the-secret"), "the secret reached the log")
    }

    func testRevokedSecretHoldsCommandsWithAuthFailed() throws {
        let h = try harness(poll: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(dev)/hp/state")
        // The partner's application secret is rotated elsewhere and every token revoked.
        try h.admin("POST", "/admin/podero", #"{"client_secret":"rotated","expire_tokens":true}"#)
        c.waitJSON("heatbridge/bridge/account/podero-test") { $0["state"]?.stringValue == "auth_required" }
        c.publish("\(dev)/hp/pause/set", #"{"id":"held","duration_min":15}"#)
        let held = c.waitResult("\(dev)/hp/pause/result", id: "held", status: "queued")
        XCTAssertEqual(held?["code"]?.stringValue, "AUTH_FAILED")
        // Credentials fixed on the cloud side: the account recovers and the held command runs.
        try h.admin("POST", "/admin/podero", #"{"client_secret":"demo-secret"}"#)
        XCTAssertNotNil(c.waitResult("\(dev)/hp/pause/result", id: "held", status: "done", timeout: 30))
        XCTAssertEqual(try simHeatPump(h)["is_pause_power_active"], true)
    }

    func testOnboardingAndStatsCommands() throws {
        let h = try harness()
        defer { h.stopAll() }
        let bin = Harness.binary("heatbridge")
        let user = "7d0c2f4e-5b1a-4c3e-9f20-1a2b3c4d5e6f"
        let base = [
            "onboard", "podero", "--config", h.configPath, "--user", user, "--success-url", "https://installer.example/ok",
            "--cancel-url", "https://installer.example/cancel",
        ]
        let ok = try runProcess(bin, base + ["--language", "de", "--price-zone", "DE_LU", "--heat-pumps-only"])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.output.contains("https://connect.podero.com/heat-pumps?onboarding_session_id="), ok.output)
        XCTAssertTrue(ok.output.contains("expires: end of 20"), ok.output)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["sessions"]?.intValue, 1)

        let lang = try runProcess(bin, base + ["--language", "fr", "--price-zone", "DE_LU"])
        XCTAssertEqual(lang.status, 2)
        XCTAssertTrue(lang.output.contains("--language \"fr\" is not supported; valid: sv, de, en, hu, it, et, pl, ro"), lang.output)
        let zone = try runProcess(bin, base + ["--language", "de", "--price-zone", "DE"])
        XCTAssertEqual(zone.status, 2)
        XCTAssertTrue(zone.output.contains("--price-zone \"DE\" is not a Podero price zone (Germany is DE_LU); valid: AT,"), zone.output)
        let uuid = try runProcess(
            bin,
            [
                "onboard", "podero", "--config", h.configPath, "--user", "bob", "--language", "de",
                "--price-zone", "AT", "--success-url", "https://a.example", "--cancel-url", "https://b.example",
            ])
        XCTAssertEqual(uuid.status, 2)
        XCTAssertTrue(uuid.output.contains("--user \"bob\" is not a UUID"), uuid.output)
        // Every bad argument at once, each with what would be valid.
        let all = try runProcess(
            bin,
            [
                "onboard", "podero", "--config", h.configPath, "--user", "bob", "--language", "fr",
                "--price-zone", "DE", "--success-url", "ftp://a.example", "--cancel-url", "https://b.example",
                "--building", "b1",
            ])
        XCTAssertEqual(all.status, 2)
        for part in [
            "--user \"bob\" is not a UUID", "--building \"b1\" is not a UUID", "--language \"fr\" is not supported; valid: sv,",
            "--price-zone \"DE\" is not a Podero price zone (Germany is DE_LU); valid: AT,",
            "--success-url \"ftp://a.example\" is not an http(s) URL",
        ] {
            XCTAssertTrue(all.output.contains(part), "missing \(part) in \(all.output)")
        }
        XCTAssertEqual(all.output.components(separatedBy: "error: ").count - 1, 5, all.output)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["sessions"]?.intValue, 1, "invalid input reached the cloud")

        let stats = try runProcess(bin, ["podero", "stats", "--config", h.configPath, "podero-\(Self.hpId)", "--resolution", "1DAY,1WEEK"])
        XCTAssertEqual(stats.status, 0, stats.output)
        XCTAssertTrue(stats.output.contains("1WEEK"), stats.output)
        XCTAssertTrue(stats.output.contains("consumption 128.8 kWh"), stats.output)
    }
}

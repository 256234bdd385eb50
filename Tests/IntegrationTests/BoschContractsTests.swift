import Foundation
import HeatbridgeCore
import XCTest

/// Bosch contracts, onboarding links and the API key's expiry, through the CLI, the daemon and MQTT.
final class BoschContractsTests: XCTestCase {
    func testContractsAreListedAcceptedClosedAndAcknowledged() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000002/state")
        let list = try h.cli(["contracts", "list"])
        XCTAssertEqual(list.status, 0, list.output)
        XCTAssertTrue(list.output.contains("101000001  ACTIVE"), list.output)
        XCTAssertTrue(list.output.contains("101000003  PENDING"), list.output)

        // Accepting the pending contract brings its gateway onto MQTT.
        let accept = try h.cli(["contracts", "accept", "101000003"])
        XCTAssertEqual(accept.status, 0, accept.output)
        XCTAssertTrue(accept.output.contains("101000003  ACTIVE"), accept.output)
        c.waitJSON("heatbridge/bosch-101000003/state", timeout: 20) { $0["online"] == true }
        let again = try h.cli(["contracts", "reject", "101000003"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.output.contains("CLOUD_REJECTED") && again.output.contains("cannot REJECT a ACTIVE contract"), again.output)

        // The owner closes a contract: the gateway goes offline on MQTT, then its retained topics are cleared.
        try h.admin("POST", "/admin/bosch/contracts/101000002", #"{"status":"CLOSED"}"#)
        let gone = Date().addingTimeInterval(20)
        while Date() < gone, c.all("heatbridge/bosch-101000002/state").last?.payload.isEmpty != true { usleep(100_000) }
        XCTAssertEqual(c.all("heatbridge/bosch-101000002/state").last?.payload.isEmpty, true, "retained state not cleared")
        XCTAssertTrue(c.all("heatbridge/bosch-101000002/availability").contains { String(decoding: $0.payload, as: UTF8.self) == "offline" })
        // `heatbridge status` shows what MQTT shows: the gateway is no longer listed (it said "online" before).
        let status = try JSONValue.parse(try h.cli(["status", "--json"]).output)
        let listed = (status["devices"]?.arrayValue ?? []).compactMap { $0["device"]?.stringValue }
        XCTAssertTrue(listed.contains("bosch-101000001"), "\(listed)")
        XCTAssertFalse(listed.contains("bosch-101000002"), "\(listed)")
        let show = try h.cli(["contracts", "show", "101000002"])
        XCTAssertTrue(show.output.contains("101000002  CLOSED"), show.output)
        let ack = try h.cli(["contracts", "ack", "101000002"])
        XCTAssertEqual(ack.status, 0, ack.output)
        XCTAssertFalse(try h.cli(["contracts", "list"]).output.contains("101000002"))
        let bad = try h.cli(["contracts", "show", "12"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.output.contains("must be 9 digits"), bad.output)
        // A restart does not bring the gone gateway back from the cache.
        XCTAssertEqual(h.stopDaemon(), 0)
        c.clear()
        try h.startDaemon()
        c.waitJSON("heatbridge/bosch-101000001/state") { $0["source"]?.stringValue == "cloud" }
        h.barrier()
        XCTAssertTrue(c.all("heatbridge/bosch-101000002/state").allSatisfy { $0.payload.isEmpty }, "the removed gateway came back from the cache")
    }

    func testOnboardingLinkAndKeyExpiryWarning() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        let ok = try h.cli([
            "onboard", "bosch", "--brand", "buderus", "--redirect-uri", "https://installer.example/done?x=1", "--session-id", "job-42",
        ])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(
            ok.output.contains(
                "https://devices.buderus-connect.de/invite?companyId=C-4711&redirectUri=https%3A%2F%2Finstaller.example%2Fdone%3Fx%3D1&sessionId=job-42"
            ), ok.output)
        let token = try h.cli(["onboard", "bosch", "--brand", "bosch", "--redirect-uri", "https://a.example", "--session-id", "a b&c"])
        XCTAssertEqual(token.status, 2)
        XCTAssertTrue(token.output.contains("--session-id must be a plain token"), token.output)
        let http = try h.cli(["onboard", "bosch", "--brand", "bosch", "--redirect-uri", "http://a.example", "--session-id", "t"])
        XCTAssertEqual(http.status, 2)
        XCTAssertTrue(http.output.contains("--redirect-uri must be an https URL"), http.output)
        let brand = try h.cli(["onboard", "bosch", "--brand", "worcester", "--redirect-uri", "https://a.example", "--session-id", "t"])
        XCTAssertTrue(brand.output.contains("--brand must be one of bosch, buderus, ivt"), brand.output)

        // The simulator's key expires 2027-05-22: three weeks before, the account says so.
        let threeWeeksBefore = Timestamp.daysFromCivil(2027, 5, 1) * 86_400
        try h.startDaemon(env: [
            "HEATBRIDGE_TEST_HOOKS": "1", "HEATBRIDGE_TEST_CLOCK_OFFSET_S": String(Double(threeWeeksBefore) - Date().timeIntervalSince1970),
        ])
        let account = h.client.waitJSON("heatbridge/bridge/account/bosch-test") { $0["warning"] != nil }
        XCTAssertEqual(account?["key_expires_at"], "2027-05-22T00:00:00Z")
        XCTAssertTrue(account?["warning"]?.stringValue?.contains("expires in 21 days") ?? false, "\(account ?? .null)")
        XCTAssertTrue(h.daemonOutput().contains("API key expires soon"))
        XCTAssertFalse(h.daemonOutput().contains("xHCSAPI-demo"), "the key reached the log")
    }
}

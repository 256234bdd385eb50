import Foundation
import HeatbridgeCore
import XCTest

/// Time rules end to end: the daemon's clock is shifted (test hook) so a rule's time is seconds away, across real
/// restarts, with the `triggers` CLI's report. Conditions, limits and leases run in process
/// (`HeatbridgeAppTests/AutomationTests`).
final class TriggerIntegrationTests: XCTestCase {
    /// Results of commands a trigger issued: `(topic, payload)` with `"source":"trigger:<name>"`.
    func firings(_ c: TestMQTTClient, _ name: String, status: String = "accepted") -> [JSONValue] {
        c.recorder.messages.withLock { $0 }.filter { $0.topic.hasSuffix("/result") }.compactMap { try? JSONValue.parse($0.payload) }
            .filter { $0["source"]?.stringValue == "trigger:\(name)" && $0["status"]?.stringValue == status }
    }

    /// Environment that makes the daemon believe it is `target` (UTC) now.
    func clockAt(_ target: Double) -> [String: String] {
        ["HEATBRIDGE_TEST_HOOKS": "1", "TZ": "UTC", "HEATBRIDGE_TEST_CLOCK_OFFSET_S": String(target - Date().timeIntervalSince1970)]
    }

    func testTimeRulesFireOnceSurviveRestartsAndFollowTheMissedPolicy() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.writeConfig(
            pollIntervalS: 30, timeoutS: 1.5,
            extraSections: """

                triggers:
                  - {name: catch-up, at: "03:00", run_if_within_s: 600,
                     action: {target: bosch-101000001/dhw1, capability: charge, params: {action: start, duration_min: 15}}}
                  - {name: skip-missed, at: "03:00", action: {target: bosch-101000002/dhw1, capability: charge, params: {action: start}}}
                  - {name: live, at: "03:01", action: {target: bosch-101000001/hc1, capability: setpoint, params: {setpoint: 21}}}
                """)
        let c: TestMQTTClient = h.client
        let tomorrow = (Date().timeIntervalSince1970 / 86_400).rounded(.down) * 86_400 + 86_400
        // 1: the daemon runs shortly before 03:00 and stops: the rules' history starts, nothing fires.
        try h.startDaemon(env: clockAt(tomorrow + 3 * 3600 - 10))
        let view = c.waitJSON("heatbridge/bridge/triggers")
        XCTAssertEqual(view?["triggers"]?.arrayValue?.first?["next_fire"]?.stringValue, Timestamp.iso8601(tomorrow + 3 * 3600))
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        XCTAssertEqual(h.stopDaemon(), 0)
        // 2: back at 03:00:55. "catch-up" missed 03:00 by under 600 s: it runs; "skip-missed" does not; "live"
        // fires at 03:01 while the daemon runs.
        try h.startDaemon(env: clockAt(tomorrow + 3 * 3600 + 55))
        let caught = c.waitJSON("heatbridge/bosch-101000001/dhw1/charge/result") { $0["source"] == "trigger:catch-up" && $0["status"] == "done" }
        XCTAssertNotNil(caught)
        XCTAssertNotNil(
            c.waitJSON("heatbridge/bosch-101000001/hc1/setpoint/result", timeout: 20) { $0["source"] == "trigger:live" && $0["status"] == "done" })
        XCTAssertEqual(firings(c, "skip-missed").count, 0, "a missed time without run_if_within_s is skipped")
        XCTAssertEqual(try h.admin("GET", "/admin/state")["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"], 15)
        XCTAssertEqual(h.stopDaemon(), 0)
        XCTAssertEqual(firings(c, "catch-up").count, 1)
        XCTAssertEqual(firings(c, "live").count, 1)
        // 3: a restart after the firings fires nothing again (only what this run publishes counts).
        c.clear()
        try h.startDaemon(env: clockAt(tomorrow + 3 * 3600 + 70))
        c.waitJSON("heatbridge/bridge/triggers") {
            $0["triggers"]?.arrayValue?.last?["next_fire"]?.stringValue == Timestamp.iso8601(tomorrow + 86_400 + 3 * 3600 + 60)
        }
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state") { $0["source"] == "cloud" }
        // A wrong firing would be issued once the first polls are done, before the daemon answers the barrier.
        h.barrier()
        XCTAssertEqual(firings(c, "catch-up").count, 0)
        XCTAssertEqual(firings(c, "live").count, 0)
        XCTAssertEqual(firings(c, "skip-missed").count, 0)
        // The operator view and the audit in the store.
        let out = try runProcess(Harness.binary("heatbridge"), ["triggers", "--config", h.configPath, "--json"], env: ["TZ": "UTC"])
        XCTAssertEqual(out.status, 0, out.output)
        let report = try JSONValue.parse(out.output.split(separator: "\n").last.map(String.init) ?? "")
        let recent = report["recent"]?.arrayValue ?? []
        XCTAssertEqual(Set(recent.compactMap { $0["trigger"]?.stringValue }), ["catch-up", "live"])
        XCTAssertTrue(recent.contains { $0["reason"]?.stringValue?.contains("missed at") ?? false }, "\(recent)")
        XCTAssertEqual(report["triggers"]?.arrayValue?.first?["last_fired"]?.stringValue, Timestamp.iso8601(tomorrow + 3 * 3600))
    }
}

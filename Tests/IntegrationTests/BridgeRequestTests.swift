import Foundation
import HeatbridgeCore
import XCTest

/// The bridge request API on the real daemon and broker: `<base>/bridge/request/<name>` answered on
/// `<base>/bridge/response/<name>` (and a v5 response topic), the request's `transaction` echoed.
final class BridgeRequestTests: XCTestCase {
    func testStatusHealthPollConfigAndLogLevelAndTheirErrors() throws {
        let h = try Harness(pollIntervalS: 3600)
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 3600, timeoutS: 5, logLevel: "info", devices: ["101000001"])
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.subscribe("heatbridge/bridge/response/#")
        c.subscribe("ems/#")
        let gw = "heatbridge/bosch-101000001"
        c.waitJSON("\(gw)/dhw1/state", timeout: 30)
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"] == "ready" }
        func ask(_ name: String, _ payload: String, transaction: String, timeout: Double = 10) -> JSONValue? {
            var body = (try? JSONValue.parse(Array(payload.utf8)))?.objectValue ?? [:]
            body["transaction"] = .string(transaction)
            c.publish("heatbridge/bridge/request/\(name)", JSONValue.object(body).serialized)
            return c.waitJSON("heatbridge/bridge/response/\(name)", timeout: timeout) { $0["transaction"]?.stringValue == transaction }
        }

        // status: the accounts, devices and the last commands with every result.
        c.publish("\(gw)/dhw1/charge/set", #"{"id":"seen-on-status","action":"start","duration_min":20}"#)
        XCTAssertNotNil(c.waitResult("\(gw)/dhw1/charge/result", id: "seen-on-status", status: "done", timeout: 20))
        let status = try XCTUnwrap(ask("status", "{}", transaction: "t-status"))
        XCTAssertEqual(status["status"], "ok")
        XCTAssertEqual(status["data"]?["accounts"]?.arrayValue?.first?["name"], "bosch-test")
        XCTAssertEqual(status["data"]?["accounts"]?.arrayValue?.first?["state"], "ready")
        XCTAssertEqual(status["data"]?["devices"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, ["bosch-101000001"])
        XCTAssertEqual(status["data"]?["devices"]?.arrayValue?.first?["stale"], false)
        let command = status["data"]?["commands"]?.arrayValue?.first { $0["id"] == "seen-on-status" }
        XCTAssertEqual(command?["target"], "bosch-101000001/dhw1/charge")
        XCTAssertEqual(command?["results"]?.arrayValue?.compactMap { $0["status"]?.stringValue }, ["accepted", "done"])
        XCTAssertEqual(status["data"]?["commands_ended"]?["done"]?[""], 1)
        XCTAssertEqual(status["data"]?["config_hash"], c.latest("heatbridge/bridge/info")?["config_hash"])

        // health_check, also on an MQTT v5 response topic with the correlation data.
        c.publishRequest("heatbridge/bridge/request/health_check", #"{"transaction":7}"#, responseTopic: "ems/health", correlationData: [4, 2])
        let health = try XCTUnwrap(c.waitJSON("ems/health") { $0["transaction"] == 7 })
        XCTAssertEqual(health["data"]?["healthy"], true)
        XCTAssertEqual(health["data"]?["problems"], .array([]))
        XCTAssertEqual(c.all("ems/health").last?.correlationData, [4, 2])

        // config: the file as loaded, with its hash; the key file's path, never the key.
        let config = try XCTUnwrap(ask("config", "{}", transaction: "t-config"))
        XCTAssertEqual(config["data"]?["hash"], status["data"]?["config_hash"])
        XCTAssertEqual(
            config["data"]?["config"]?["accounts"]?.arrayValue?.first?["api_key_file"]?.stringValue, h.dir.appendingPathComponent("bosch.key").path)
        XCTAssertEqual(config["data"]?["config"]?["accounts"]?.arrayValue?.first?["poll_interval_s"], 3600)
        XCTAssertFalse(config.serialized.contains(Harness.apiKey), "the API key in the config answer")

        // poll: an account now (the simulator sees the read), not again within 10 s; a device; unknown targets.
        let before = try h.admin("GET", "/admin/requests").arrayValue?.filter { $0["path"] == "/hvacs/101000001/status" }.count ?? 0
        let polled = ask("poll", #"{"account":"bosch-test"}"#, transaction: "t-poll")
        XCTAssertEqual(polled?["status"], "ok")
        XCTAssertEqual(polled?["data"]?["accounts"], ["bosch-test"], "the answer names the accounts read")
        h.waitUntil("the requested poll to reach the cloud") {
            ((try? h.admin("GET", "/admin/requests").arrayValue?.filter { $0["path"] == "/hvacs/101000001/status" }.count) ?? 0) > before
        }
        let again = ask("poll", "{}", transaction: "t-poll-2")
        XCTAssertEqual(again?["code"], "RATE_LIMITED")
        XCTAssertGreaterThan(again?["data"]?["retry_after_s"]?.doubleValue ?? 0, 0)
        XCTAssertEqual(ask("poll", #"{"device":"bosch-999"}"#, transaction: "t-poll-3")?["code"], "UNKNOWN_TARGET")
        let unknownAccount = ask("poll", #"{"account":"nope"}"#, transaction: "t-poll-4")
        XCTAssertEqual(unknownAccount?["code"], "UNKNOWN_TARGET")
        XCTAssertEqual(unknownAccount?["error"], "unknown account; accounts: bosch-test")

        // log_level: raised for a bounded time, then back by itself; bad values refused.
        XCTAssertEqual(ask("log_level", #"{"level":"loud"}"#, transaction: "t-l1")?["code"], "INVALID_PAYLOAD")
        XCTAssertEqual(ask("log_level", #"{"level":"debug","duration_s":99999}"#, transaction: "t-l2")?["code"], "OUT_OF_RANGE")
        let raised = try XCTUnwrap(ask("log_level", #"{"level":"debug","duration_s":3}"#, transaction: "t-l3"))
        XCTAssertEqual(raised["data"]?["level"], "debug")
        XCTAssertNotNil(raised["data"]?["until"]?.stringValue)
        XCTAssertEqual(ask("status", "{}", transaction: "t-s2")?["data"]?["log_level"], "debug")
        h.waitUntil("the level back to the config's", timeout: 15) { h.daemonOutput().contains("log level back to the config's") }
        XCTAssertEqual(ask("status", "{}", transaction: "t-s3")?["data"]?["log_level"], "info")

        // Unknown names, bad payloads, retained requests: each a clear error, nothing carried out.
        let unknown = try XCTUnwrap(ask("reboot", "{}", transaction: "t-u"))
        XCTAssertEqual(unknown["code"], "UNKNOWN_REQUEST")
        XCTAssertTrue(unknown["error"]?.stringValue?.contains("status, health_check, poll, config, log_level") ?? false)
        c.publish("heatbridge/bridge/request/status", "not json")
        XCTAssertNotNil(c.waitJSON("heatbridge/bridge/response/status") { $0["code"] == "INVALID_PAYLOAD" })
        c.publish("heatbridge/bridge/request/poll", #"{"transaction":"t-r"}"#, retain: true)
        XCTAssertEqual(c.waitJSON("heatbridge/bridge/response/poll") { $0["transaction"] == "t-r" }?["code"], "RETAINED_REQUEST")
        h.waitUntil("the retained request cleared") { c.all("heatbridge/bridge/request/poll").last?.payload.isEmpty == true }
        c.publish("heatbridge/bridge/request/status", #"{"transaction":"t-big","pad":""# + String(repeating: "x", count: 70_000) + #""}"#)
        XCTAssertNotNil(c.waitJSON("heatbridge/bridge/response/status") { $0["code"] == "PAYLOAD_TOO_LARGE" })
        XCTAssertFalse(h.daemonOutput().contains(Harness.apiKey))
    }
}

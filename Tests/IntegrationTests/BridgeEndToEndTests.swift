import Foundation
import HeatbridgeCore
import HeatbridgeSystem
import XCTest

/// The daemon as a separate process against a real mosquitto and the simulator over loopback HTTP: what only a
/// real broker and a real process show (retained topics, a late subscriber, a restart, `kill -9`, a broker
/// restart). The cloud's answers to commands run in process (`HeatbridgeAppTests/CloudAnswerTests`).
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

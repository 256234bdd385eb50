import Foundation
import HeatbridgeApp
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import XCTest

/// The daemon's wiring, built by the function the daemon calls (`AppServices.build`), run in process: the real
/// config loader and vendor modules, a real SQLite file, the MQTT intake that stores commands before they are
/// acknowledged, the bridge; only the ports are the testing library's (the simulator without a socket, a recording
/// MQTT client, a manual clock). What needs no real process is tested here, in milliseconds.
final class AppServicesTests: XCTestCase {
    /// A command through the daemon's wiring: stored by the intake before it is handled, validated by the Bosch
    /// module's handler, sent to the (simulated) cloud, read back; the inbox row consumed with the first result;
    /// on stop the services end in reverse order with `bridge/state` offline last.
    func testTheDaemonsWiringTakesACommandFromIntakeToTheCloudAndStopsInOrder() async throws {
        let box = try InProcessBox(pollIntervalS: 60, devices: ["101000001"])
        let (services, mqtt) = (box.services, box.mqtt)
        XCTAssertEqual(services.accounts.map(\.name), ["bosch-test"])
        box.start()

        XCTAssertTrue(waitUntil { !mqtt.json("heatbridge/bosch-101000001/dhw1/state").isEmpty }, "the gateway's state")
        XCTAssertEqual(mqtt.json("heatbridge/bridge/state").last?["state"]?.stringValue, "online")
        XCTAssertTrue(mqtt.on("heatbridge/bosch-101000002/state").isEmpty, "a gateway outside the account's devices was published")

        box.publish("heatbridge/bosch-101000001/dhw1/charge/set", #"{"id":"c1","action":"start","duration_min":30}"#)
        XCTAssertTrue(waitUntil { mqtt.json("heatbridge/bosch-101000001/dhw1/charge/result").last?["status"]?.stringValue == "done" }, "done")
        XCTAssertEqual(mqtt.json("heatbridge/bosch-101000001/dhw1/charge/result").map { $0["status"]?.stringValue }, ["accepted", "done"])
        XCTAssertTrue(try services.store.inboxPending().isEmpty, "the intake's inbox row was not consumed with the result")
        await box.advance(by: 2)  // the read-back after a command
        XCTAssertTrue(waitUntil { mqtt.json("heatbridge/bosch-101000001/dhw1/state").last?["charge"]?["active"] == true }, "read back")

        await box.stop()
        XCTAssertEqual(mqtt.json("heatbridge/bridge/state").last?["state"]?.stringValue, "offline", "bridge/state offline is the last word")
        let ended = await Task {
            var n = 0
            for await _ in mqtt.events { n += 1 }
            return n
        }.value
        XCTAssertEqual(ended, 0, "the MQTT client was not shut down after the bridge stopped")
        let stored = try XCTUnwrap(try services.store.priorCommand(id: "c1", since: 0), "the command is not in the store")
        XCTAssertEqual(stored.command.status, .done)
        await box.stopAll()
    }

    /// A broken part is a clear failure with the daemon's exit status: a key file that cannot be read is the
    /// config's fault (78: restarting will not help).
    func testAnUnreadableKeyFailsTheBuildWithTheConfigExitStatus() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hb-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let loaded = try InProcessBox.loadConfig(in: dir)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("bosch.key"))
        let ports = AppPorts(
            transport: InProcessTransport(Simulator(bosch: .defaultScenario())), clock: ManualClock(), localTime: FixedOffsetTime(offsetS: 0),
            makeMQTT: { _ in RecordingMQTT() }, environment: [:], version: "test")
        switch AppServices.build(loaded, ports: ports, logger: .init(label: "test")) {
        case .success: XCTFail("built without its key")
        case .failure(let f):
            XCTAssertEqual(f.exitStatus, 78)
            XCTAssertTrue(f.description.contains("bosch"), f.description)
        }
    }
}

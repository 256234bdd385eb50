import Foundation
import HeatbridgeApp
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeStore
import HeatbridgeTesting
import HeatbridgeVendors
import Synchronization
import XCTest

/// The daemon's wiring, built by the function the daemon calls (`AppServices.build`), run in process: the real
/// config loader and vendor modules, a real SQLite file, the MQTT intake that stores commands before they are
/// acknowledged, the bridge; only the ports are the testing library's (the simulator without a socket, a recording
/// MQTT client, a manual clock). What needs no real process is tested here, in milliseconds.
final class AppServicesTests: XCTestCase {
    struct ConfigRefused: Error { var lines: [String] }

    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hb-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func load(_ sim: Simulator) throws -> LoadedConfig {
        let key = dir.appendingPathComponent("bosch.key")
        try Data(BoschCloud.defaultScenario().apiKey.utf8).write(to: key)
        chmod(key.path, 0o600)
        let yaml = """
            mqtt:
              url: mqtt://127.0.0.1:1
              base_topic: hb
            store:
              path: \(dir.appendingPathComponent("state.db").path)
            http:
              port: 0
            accounts:
              - name: bosch
                vendor: bosch
                base_url: http://sim.test/bosch
                api_key_file: \(key.path)
                user_id: installer
                devices: ["101000001"]
                poll_interval_s: 60
            """
        let path = dir.appendingPathComponent("heatbridge.yaml")
        try Data(yaml.utf8).write(to: path)
        switch ConfigLoader.load(path: path.path, environment: [:], vendors: HeatbridgeVendors.all) {
        case .success(let loaded): return loaded
        case .failure(let errors): throw ConfigRefused(lines: errors.lines())
        }
    }

    func eventually(_ what: String, timeout: Double = 5, file: StaticString = #filePath, line: UInt = #line, _ cond: () -> Bool) {
        if !waitUntil(timeoutS: timeout, cond) { XCTFail("timed out waiting for \(what)", file: file, line: line) }
    }

    /// A command through the daemon's wiring: stored by the intake before it is handled, validated by the Bosch
    /// module's handler, sent to the (simulated) cloud, read back; the inbox row consumed with the first result;
    /// on stop the services end in reverse order with `bridge/state` offline last.
    func testTheDaemonsWiringTakesACommandFromIntakeToTheCloudAndStopsInOrder() async throws {
        let sim = Simulator(bosch: .defaultScenario())
        let clock = ManualClock(start: Date().timeIntervalSince1970)
        let client = Mutex<RecordingMQTT?>(nil)
        let ports = AppPorts(
            transport: InProcessTransport(sim), clock: clock, localTime: FixedOffsetTime(offsetS: 3600),
            makeMQTT: { setup in
                let mqtt = RecordingMQTT(intake: setup.intake)
                client.withLock { $0 = mqtt }
                return mqtt
            }, environment: [:], version: "test")
        let loaded = try load(sim)
        let services: AppServices
        switch AppServices.build(loaded, ports: ports, logger: .init(label: "test")) {
        case .success(let s): services = s
        case .failure(let f): return XCTFail("not built: \(f)")
        }
        let mqtt = try XCTUnwrap(client.withLock { $0 })
        XCTAssertEqual(services.accounts.map(\.name), ["bosch"])
        let bridge = services.bridge
        clock.drive(quiesce: { await bridge.quiesce() }, nextDeadline: { bridge.nextTimer })
        let stop = OneShotSignal()
        let running = Task { await services.run(until: stop) }

        eventually("the gateway's state") { !mqtt.json("hb/bosch-101000001/dhw1/state").isEmpty }
        XCTAssertEqual(mqtt.json("hb/bridge/state").last?["state"]?.stringValue, "online")
        XCTAssertTrue(mqtt.on("hb/bosch-101000002/state").isEmpty, "a gateway outside the account's devices was published")

        mqtt.send("hb/bosch-101000001/dhw1/charge/set", #"{"id":"c1","action":"start","duration_min":30}"#)
        eventually("done") { mqtt.json("hb/bosch-101000001/dhw1/charge/result").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(mqtt.json("hb/bosch-101000001/dhw1/charge/result").map { $0["status"]?.stringValue }, ["accepted", "done"])
        XCTAssertTrue(try services.store.inboxPending().isEmpty, "the intake's inbox row was not consumed with the result")
        await clock.advance(by: 2)  // the read-back after a command
        eventually("read back") { mqtt.json("hb/bosch-101000001/dhw1/state").last?["charge"]?["active"] == true }

        stop.fire()
        await running.value
        XCTAssertEqual(mqtt.json("hb/bridge/state").last?["state"]?.stringValue, "offline", "bridge/state offline is the last word")
        let ended = await Task {
            var n = 0
            for await _ in mqtt.events { n += 1 }
            return n
        }.value
        XCTAssertEqual(ended, 0, "the MQTT client was not shut down after the bridge stopped")
        let stored = try XCTUnwrap(try services.store.priorCommand(id: "c1", since: 0), "the command is not in the store")
        XCTAssertEqual(stored.command.status, .done)
    }

    /// A broken part is a clear failure with the daemon's exit status: a key file that cannot be read is the
    /// config's fault (78: restarting will not help).
    func testAnUnreadableKeyFailsTheBuildWithTheConfigExitStatus() throws {
        let sim = Simulator(bosch: .defaultScenario())
        let loaded = try load(sim)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("bosch.key"))
        let ports = AppPorts(
            transport: InProcessTransport(sim), clock: ManualClock(), localTime: FixedOffsetTime(offsetS: 0),
            makeMQTT: { _ in RecordingMQTT() }, environment: [:], version: "test")
        switch AppServices.build(loaded, ports: ports, logger: .init(label: "test")) {
        case .success: XCTFail("built without its key")
        case .failure(let f):
            XCTAssertEqual(f.exitStatus, 78)
            XCTAssertTrue(f.description.contains("bosch"), f.description)
        }
    }
}

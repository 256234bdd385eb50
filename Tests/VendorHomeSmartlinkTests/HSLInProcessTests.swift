import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeSystem
import HeatbridgeTesting
import VendorHomeSmartlink
import XCTest

/// The HomeSmartlink adapter against the simulated cloud in the same process: the envelope, the misspelled
/// `reponse`, rooms with their heaters, and a derogation that changes the room's setpoint.
final class HSLInProcessTests: XCTestCase {
    func testRoomsAreReadAndADerogationShowsInTheSetpoint() async throws {
        var cloud = HSLCloud.defaultScenario()
        cloud.ackDelayS = 0  // the home acknowledges at once: the first delivery report is complete
        let sim = Simulator(bosch: .defaultScenario(), hsl: cloud)
        let home = try XCTUnwrap(cloud.homes.keys.first)
        let now = Date().timeIntervalSince1970
        let clock = ManualClock(start: now)
        let adapter = HSLAdapter(
            transport: InProcessTransport(sim), baseURL: "http://sim.test/homesmartlink", clientId: cloud.clientId,
            clientSecret: cloud.clientSecret, homes: [home], timeout: 2, clock: clock,
            localTime: GlibcLocalTime(), reportIntervalS: 1)
        let devices = try await adapter.fetchDevices()
        let device = try XCTUnwrap(devices.first)
        XCTAssertEqual(device.online, true)
        XCTAssertEqual(device.nodes["room-1"]?["setpoint"], 20)
        XCTAssertEqual(device.nodes["room-1"]?["heaters"]?.arrayValue?.count, 2)
        let params = try adapter.validate(node: "room-1", capability: "derogation", body: ["delta": -2, "duration_min": 30], device: device)
        let command = Command(
            id: "d1", device: device.id, node: "room-1", capability: "derogation", params: params, source: .mqtt,
            receivedAt: now, validUntil: .infinity)
        let run = Task { try await adapter.execute(command, device: device) }
        for _ in 0..<10 { await clock.advance(by: 1) }  // report reads on the adapter's clock
        let message = try await run.value
        XCTAssertTrue(message?.contains("acknowledged") ?? false, message ?? "no message")
        let after = try await adapter.fetchDevices()
        XCTAssertEqual(after.first?.nodes["room-1"]?["setpoint"], 18, "the simulated cloud did not apply the derogation")
    }
}

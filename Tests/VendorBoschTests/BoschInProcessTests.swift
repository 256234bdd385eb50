import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import VendorBosch
import XCTest

/// The Bosch adapter against the simulated cloud in the same process: the wire definitions both sides share,
/// exercised end to end without a socket.
final class BoschInProcessTests: XCTestCase {
    func adapter(_ sim: Simulator) -> BoschAdapter {
        BoschAdapter(
            transport: InProcessTransport(sim), baseURL: "http://sim.test/bosch", apiKey: BoschCloud.defaultScenario().apiKey,
            userId: "u1", timeout: 2, allowList: nil)
    }

    func testGatewaysAreReadAndAChargeIsSeenOnReadBack() async throws {
        let sim = Simulator(bosch: .defaultScenario())
        let a = adapter(sim)
        let devices = try await a.fetchDevices()
        XCTAssertEqual(devices.map(\.id).sorted(), ["bosch-101000001", "bosch-101000002"])
        let gw = try XCTUnwrap(devices.first { $0.id == "bosch-101000001" })
        XCTAssertEqual(gw.online, true)
        XCTAssertEqual(Set(gw.nodes.keys), ["hc1", "dhw1", "system"])
        XCTAssertEqual(gw.nodes["dhw1"]?["charge"]?["active"], false)
        XCTAssertEqual(gw.schedules["hc1"]?.levels["comfort"], 21)
        let params = try a.validate(node: "dhw1", capability: "charge", body: ["action": "start", "duration_min": 30], device: gw)
        let command = Command(
            id: "c1", device: gw.id, node: "dhw1", capability: "charge", params: params, source: .mqtt,
            receivedAt: 0, validUntil: .infinity)
        _ = try await a.execute(command, device: gw)
        let confirmed = try await a.confirm(command, device: gw)
        XCTAssertEqual(confirmed, true, "the simulated cloud did not take the charge")
        let after = try await a.refresh(gw)
        XCTAssertEqual(after?.nodes["dhw1"]?["charge"]?["active"], true)
    }

    func testAWrongKeyIsAuthFailedAndAnOfflineGatewayIsReportedAsSuch() async throws {
        let sim = Simulator(bosch: .defaultScenario())
        let wrong = BoschAdapter(
            transport: InProcessTransport(sim), baseURL: "http://sim.test/bosch", apiKey: "xHCSAPI-wrong",
            userId: "u1", timeout: 2, allowList: nil)
        do {
            _ = try await wrong.fetchDevices()
            XCTFail("a wrong key was accepted")
        } catch {
            XCTAssertEqual(error.code, .authFailed)
        }
        _ = await sim.handle(method: "POST", path: "/admin/bosch/gateways/101000002", headers: [:], body: Array(#"{"online":false}"#.utf8))
        let devices = try await adapter(sim).fetchDevices()
        XCTAssertEqual(devices.first { $0.id == "bosch-101000002" }?.online, false)
        XCTAssertEqual(devices.first { $0.id == "bosch-101000001" }?.online, true)
    }
}

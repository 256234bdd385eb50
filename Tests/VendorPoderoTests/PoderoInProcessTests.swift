import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import VendorPodero
import XCTest

/// The Podero adapter against the simulated cloud in the same process: token, heat pumps and a partial PUT.
final class PoderoInProcessTests: XCTestCase {
    func testTokenHeatPumpAndAPreferenceRoundTrip() async throws {
        let cloud = PoderoCloud.defaultScenario(now: Date().timeIntervalSince1970)
        let sim = Simulator(bosch: .defaultScenario(), podero: cloud)
        let transport = InProcessTransport(sim)
        let base = "http://sim.test/podero" + PoderoWire.apiPrefix
        let session = PoderoSession(transport: transport, tokenURL: PoderoWire.tokenURL(forBase: base), clientId: cloud.clientId,
                                    clientSecret: cloud.clientSecret, timeout: 2, clock: ManualClock(start: Date().timeIntervalSince1970))
        let client = PoderoClient(transport: transport, baseURL: base, orgId: cloud.orgId, session: session, timeout: 2)
        let adapter = PoderoAdapter(client: client, allowList: nil, clock: ManualClock(start: Date().timeIntervalSince1970))
        let devices = try await adapter.fetchDevices()
        let hp = try XCTUnwrap(devices.first)
        XCTAssertTrue(hp.id.hasPrefix("podero-"))
        XCTAssertNotNil(hp.nodes[PoderoAdapter.node])
        let params = try adapter.validate(node: PoderoAdapter.node, capability: "optimization", body: ["level": "Low"], device: hp)
        let command = Command(id: "p1", device: hp.id, node: PoderoAdapter.node, capability: "optimization", params: params, source: .mqtt,
                              receivedAt: 0, validUntil: .infinity)
        _ = try await adapter.execute(command, device: hp)
        let stored = await sim.handle(method: "GET", path: "/admin/state", headers: [:], body: [])
        let state = try JSONValue.parse(stored.body)
        XCTAssertEqual(state["podero"]?["heat_pumps"]?[hp.vendorId]?[PoderoWire.F.optimizationLevel], "Low")
        XCTAssertEqual(state["podero"]?["tokens_issued"], 1, "one token for the whole exchange")
    }
}

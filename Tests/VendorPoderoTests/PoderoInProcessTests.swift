import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import Synchronization
import VendorPodero
import XCTest

/// The Podero adapter against the simulated cloud in the same process: token, heat pumps and a partial PUT.
final class PoderoInProcessTests: XCTestCase {
    func testTokenHeatPumpAndAPreferenceRoundTrip() async throws {
        let cloud = PoderoCloud.defaultScenario(now: Date().timeIntervalSince1970)
        let sim = Simulator(bosch: .defaultScenario(), podero: cloud)
        let transport = InProcessTransport(sim)
        let base = "http://sim.test/podero" + PoderoWire.apiPrefix
        let session = PoderoSession(
            transport: transport, tokenURL: PoderoWire.tokenURL(forBase: base), clientId: cloud.clientId,
            clientSecret: cloud.clientSecret, timeout: 2, clock: ManualClock(start: Date().timeIntervalSince1970))
        let client = PoderoClient(transport: transport, baseURL: base, orgId: cloud.orgId, session: session, timeout: 2)
        let adapter = PoderoAdapter(client: client, allowList: nil, clock: ManualClock(start: Date().timeIntervalSince1970))
        let devices = try await adapter.fetchDevices()
        let hp = try XCTUnwrap(devices.first)
        XCTAssertTrue(hp.id.hasPrefix("podero-"))
        XCTAssertNotNil(hp.nodes[PoderoAdapter.node])
        let params = try adapter.validate(node: PoderoAdapter.node, capability: "optimization", body: ["level": "Low"], device: hp)
        let command = Command(
            id: "p1", device: hp.id, node: PoderoAdapter.node, capability: "optimization", params: params, source: .mqtt,
            receivedAt: 0, validUntil: .infinity)
        _ = try await adapter.execute(command, device: hp)
        let stored = await sim.handle(method: "GET", path: "/admin/state", headers: [:], body: [])
        let state = try JSONValue.parse(stored.body)
        XCTAssertEqual(state["podero"]?["heat_pumps"]?[hp.vendorId]?[PoderoWire.F.optimizationLevel], "Low")
        XCTAssertEqual(state["podero"]?["tokens_issued"], 1, "one token for the whole exchange")
    }
}

/// A box of a fleet: its own heat pumps by their paths, the organisation's listings at start and then hourly.
final class PoderoFleetTests: XCTestCase {
    final class Paths: HTTPTransport {
        let inner: any HTTPTransport
        let log = Mutex<[String]>([])
        init(_ inner: any HTTPTransport) { self.inner = inner }
        func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
            log.withLock { $0.append(request.method + " " + request.url) }
            return try await inner.send(request)
        }
        func count(_ suffix: String) -> Int { log.withLock { $0.filter { $0.hasPrefix("GET ") && $0.hasSuffix(suffix) }.count } }
    }

    func testOwnHeatPumpsByPathTheListingsHourly() async throws {
        let start = Date().timeIntervalSince1970
        let cloud = PoderoCloud.defaultScenario(now: start)
        let sim = Simulator(bosch: .defaultScenario(), podero: cloud)
        let transport = Paths(InProcessTransport(sim))
        let base = "http://sim.test/podero" + PoderoWire.apiPrefix
        let clock = ManualClock(start: start)
        let session = PoderoSession(
            transport: transport, tokenURL: PoderoWire.tokenURL(forBase: base), clientId: cloud.clientId,
            clientSecret: cloud.clientSecret, timeout: 2, clock: clock)
        let client = PoderoClient(transport: transport, baseURL: base, orgId: cloud.orgId, session: session, timeout: 2)
        let hp = "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"
        let adapter = PoderoAdapter(
            client: client, allowList: [hp, "not-ours"], clock: clock,
            companyWide: CompanyWideReads(clock: clock, boxes: 1, perSecond: 1, random: { 0.5 }))
        func poll() async throws -> [DeviceSnapshot] {
            if let at = await adapter.nextBackgroundRead(), at <= clock.now() { await adapter.backgroundRead() }
            return try await adapter.fetchDevices()
        }
        let first = try await poll()
        XCTAssertEqual(first.map(\.vendorId), [hp], "a heat pump the organisation does not list is left out")
        XCTAssertEqual(transport.count("/users"), 1)
        XCTAssertEqual(transport.count("/heat-pumps"), 1, "the owner's list, read once to learn the owner")
        for _ in 0..<3 {
            await clock.advance(by: 300)
            let again = try await poll()
            XCTAssertEqual(again.map(\.vendorId), [hp])
            XCTAssertNotNil(again.first?.nodes[PoderoAdapter.node])
        }
        XCTAssertEqual(transport.count("/users"), 1, "the organisation's users were listed again within the hour")
        XCTAssertEqual(transport.count("/heat-pumps/\(hp)"), 4, "the own heat pump is read by its path on every poll (the listing came first)")
        await clock.advance(by: 3600)
        _ = try await poll()
        XCTAssertEqual(transport.count("/users"), 2, "the hourly listing")
    }
}

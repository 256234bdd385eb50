import Foundation
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import VendorPodero
import XCTest

/// The adapter against every recorded set in `Tests/Fixtures/podero/<name>/` (as `heatbridge probe --save`
/// writes them), served by a simulator whose organisation is empty: only the token comes from it.
final class PoderoFixtureTests: XCTestCase {
    static let root = FixtureSets.root("podero", testFile: #filePath)

    func testEveryRecordedSetIsReadWithoutDrift() async throws {
        let sets = try FixtureSets.load(Self.root)
        XCTAssertFalse(sets.isEmpty)
        for (name, files) in sets {
            var cloud = PoderoCloud.defaultScenario(now: Date().timeIntervalSince1970)
            let org = try XCTUnwrap(
                files.compactMap { try? JSONValue.parse($0)["request"]?.stringValue }
                    .compactMap { $0.split(separator: "/").dropFirst().first == "org" ? String($0.split(separator: "/")[2]) : nil }.first)
            cloud.orgId = org
            cloud.users = []
            cloud.heatPumps = [:]
            let sim = Simulator(bosch: .defaultScenario(), podero: cloud)
            let loaded = await sim.loadFixtures(files)
            XCTAssertEqual(loaded, files.count, name)
            let transport = InProcessTransport(sim)
            let base = "http://sim.test/podero" + PoderoWire.apiPrefix
            let clock = ManualClock(start: Date().timeIntervalSince1970)
            let session = PoderoSession(
                transport: transport, tokenURL: PoderoWire.tokenURL(forBase: base), clientId: cloud.clientId,
                clientSecret: cloud.clientSecret, timeout: 2, clock: clock)
            let adapter = PoderoAdapter(
                client: PoderoClient(transport: transport, baseURL: base, orgId: org, session: session, timeout: 2),
                allowList: nil, clock: clock)
            let devices = try await adapter.fetchDevices()
            XCTAssertFalse(devices.isEmpty, "\(name): no heat pump read from the recording")
            for d in devices {
                XCTAssertNil(d.error, "\(name) \(d.id)")
                XCTAssertNotEqual(d.nodes[PoderoAdapter.node]?["power_w"] ?? .null, .null, "\(name) \(d.id): state not read")
            }
            let drift = await adapter.probe().filter(\.drifted)
            XCTAssertEqual(drift.map(\.request), [], "\(name): \(drift.map(\.findings))")
        }
    }
}

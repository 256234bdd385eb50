import Foundation
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeSystem
import HeatbridgeTesting
import VendorHomeSmartlink
import XCTest

/// The adapter against every recorded set in `Tests/Fixtures/homesmartlink/<name>/`, served by a simulator
/// with no homes of its own: each home's device list comes from the recording.
final class HSLFixtureTests: XCTestCase {
    static let root = FixtureSets.root("homesmartlink", testFile: #filePath)

    func testEveryRecordedSetIsReadWithoutDrift() async throws {
        let sets = try FixtureSets.load(Self.root)
        XCTAssertFalse(sets.isEmpty)
        for (name, files) in sets {
            let fixtures = files.compactMap { try? JSONValue.parse($0) }
            // The homes recorded ("POST /partners/1/config {homeId: …}") and the client the answers are for.
            let homes = fixtures.compactMap { $0["request"]?.stringValue?.split(separator: " ").last.map { String($0.dropLast()) } }
            let client = try XCTUnwrap(fixtures.compactMap { $0["body"]?["authorisation"]?["client"]?.stringValue }.first)
            var cloud = HSLCloud.defaultScenario()
            cloud.homes = [:]
            cloud.clientId = client
            let sim = Simulator(bosch: .defaultScenario(), hsl: cloud)
            let loaded = await sim.loadFixtures(files)
            XCTAssertEqual(loaded, files.count, name)
            let adapter = HSLAdapter(
                transport: InProcessTransport(sim), baseURL: "http://sim.test/homesmartlink", clientId: client,
                clientSecret: cloud.clientSecret, homes: homes, timeout: 2, clock: ManualClock(start: Date().timeIntervalSince1970),
                localTime: GlibcLocalTime(), reportIntervalS: 1)
            let devices = try await adapter.fetchDevices()
            XCTAssertEqual(Set(devices.map(\.vendorId)), Set(homes), name)
            for d in devices {
                XCTAssertNil(d.error, "\(name) \(d.id)")
                XCTAssertFalse(d.nodes.keys.filter { $0.hasPrefix("room-") }.isEmpty, "\(name) \(d.id): no rooms")
            }
            let drift = await adapter.probe().filter(\.drifted)
            XCTAssertEqual(drift.map(\.request), [], "\(name): \(drift.map(\.findings))")
        }
    }
}

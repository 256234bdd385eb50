import Foundation
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import VendorBosch
import XCTest

/// The adapter against every recorded fixture set in `Tests/Fixtures/bosch/<name>/` (`heatbridge probe --save`
/// writes them; one set recorded from the simulator ships, and a partner's recording of a real account drops
/// in beside it). Served by a simulator with no gateways of its own, so every answer comes from the recording.
final class BoschFixtureTests: XCTestCase {
    static let root = FixtureSets.root("bosch", testFile: #filePath)

    func testEveryRecordedSetIsReadWithoutAnError() async throws {
        let sets = try FixtureSets.load(Self.root)
        XCTAssertFalse(sets.isEmpty, "no fixture set in \(Self.root.path)")
        for (name, files) in sets {
            let key = "xHCSAPI-fixture-20990101"
            let sim = Simulator(bosch: BoschCloud(apiKey: key, rateLimitEnabled: false, gateways: []))
            let loaded = await sim.loadFixtures(files)
            XCTAssertEqual(loaded, files.count, "\(name): unreadable fixture files")
            // The gateways the recording has answers for (the listing names the partner's whole fleet).
            let recorded = Set(
                files.compactMap { try? JSONValue.parse($0)["request"]?.stringValue }
                    .compactMap { r -> String? in
                        let p = r.split(separator: "/")
                        return p.count == 4 && p[1] == "hvacs" && p[3] == "status" ? String(p[2]) : nil
                    })
            XCTAssertFalse(recorded.isEmpty, "\(name): no gateway status recorded")
            let a = BoschAdapter(
                transport: InProcessTransport(sim), baseURL: "http://sim.test/bosch", apiKey: key, userId: "u1", timeout: 2,
                allowList: Array(recorded))
            let devices = try await a.fetchDevices()
            XCTAssertEqual(Set(devices.map(\.vendorId)), recorded, name)
            for d in devices {
                XCTAssertNil(d.error, "\(name) \(d.id): \(String(describing: d.error))")
                XCTAssertFalse(d.nodes.isEmpty, "\(name) \(d.id): no nodes")
                for (node, state) in d.nodes { XCTAssertEqual(state["error"] ?? .null, .null, "\(name) \(d.id)/\(node): \(state)") }
            }
            // And the probe finds no drift in it.
            let drift = await a.probe().filter(\.drifted)
            XCTAssertEqual(drift.map(\.request), [], "\(name): \(drift.map(\.findings))")
        }
    }
}

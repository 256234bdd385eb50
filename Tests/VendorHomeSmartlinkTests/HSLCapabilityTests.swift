import HeatbridgeCore
import HeatbridgeTesting
import XCTest

@testable import VendorHomeSmartlink

/// The capability tables: a room's derogation (alone or in a group, never sent twice in doubt) and the home's
/// diagnosis, each one complete handler; what names a capability names a registered one.
final class HSLCapabilityTests: XCTestCase {
    let adapter = HSLAdapter(
        transport: ScriptedTransport { _ in .success(HTTPResponse(status: 500)) }, baseURL: "https://h.test", clientId: "me",
        clientSecret: "s", homes: ["h1"], timeout: 1, clock: ManualClock(), localTime: FixedOffsetTime(offsetS: 3600))

    func testTablesAndWhatEachHandlerPromises() {
        XCTAssertEqual(HSLAdapter.room.names, ["derogation"])
        XCTAssertEqual(HSLAdapter.system.names, ["diagnosis"])
        XCTAssertEqual(adapter.capabilities(of: "room-3"), ["derogation"])
        XCTAssertEqual(adapter.capabilities(of: "system"), ["diagnosis"])
        XCTAssertTrue(adapter.capabilities(of: "boiler").isEmpty)
        // A derogation that may have reached the cloud is never sent again; a diagnosis may be.
        XCTAssertFalse(
            adapter.resendWhenUnconfirmed(
                Command(
                    id: "d", device: "hsl-h1", node: "room-3", capability: "derogation", params: [:],
                    source: .mqtt, receivedAt: 0, validUntil: 1)))
        XCTAssertTrue(
            adapter.resendWhenUnconfirmed(
                Command(
                    id: "g", device: "hsl-h1", node: "system", capability: "diagnosis", params: [:],
                    source: .mqtt, receivedAt: 0, validUntil: 1)))
        XCTAssertNotNil(HSLAdapter.room["derogation"]?.executeGroup)
        XCTAssertNil(HSLAdapter.system["diagnosis"]?.executeGroup)
        XCTAssertNil(HSLAdapter.room["derogation"]?.restore, "a derogation has its own end: not leasable")
    }

    func testFactsAndTheConfigCheckGoThroughTheHandlers() {
        let f = adapter.facts(node: "room-3", capability: "derogation", params: ["delta": -2, "duration_min": 90])
        XCTAssertEqual(f.offsetDelta, -2)
        XCTAssertEqual(f.offsetMinutes, 90)
        XCTAssertNil(adapter.facts(node: "system", capability: "diagnosis", params: [:]).offsetDelta)
        let module = HSLModule()
        XCTAssertNil(module.checkAction(node: "room-3", capability: "derogation", params: ["delta": -2, "duration_min": 30]))
        XCTAssertEqual(module.checkAction(node: "room-3", capability: "diagnosis", params: [:])?.code, .unsupported)
        XCTAssertEqual(module.checkAction(node: "system", capability: "diagnosis", params: ["x": 1])?.code, .invalidPayload)
        XCTAssertEqual(module.checkAction(node: "boiler", capability: "derogation", params: [:])?.code, .unknownTarget)
    }

    func testEveryEntityCommandsARegisteredCapability() {
        for node in ["room-3", "system"] {
            var used: Set<String> = []
            for e in adapter.exposes(node: node, state: ["name": "Kitchen", "temperature": 20], capabilities: adapter.capabilities(of: node)) {
                switch e {
                case .toggle(_, _, _, let c, _, _), .choice(_, _, _, _, let c, _, _), .action(_, _, let c, _, _), .presets(let c, _): used.insert(c)
                default: break
                }
            }
            XCTAssertTrue(used.isSubset(of: adapter.capabilities(of: node)), "\(node): \(used)")
        }
    }
}

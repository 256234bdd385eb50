import HeatbridgeCore
import HeatbridgeTesting
import XCTest

@testable import VendorPodero

/// The capability table: every capability of the heat pump node is one complete handler, and everything that names
/// a capability (Home Assistant's entities, leases, trigger checks) names a registered one.
final class PoderoCapabilityTests: XCTestCase {
    let state: JSONValue = [
        "optimization": ["active": true, "level": "mid"], "comfort": ["min": 19, "max": 21.5],
        "dhw": ["standard": 48, "minimum": 40],
    ]

    func input(_ body: [String: JSONValue]) -> ValidationInput {
        ValidationInput(
            body: body, node: PoderoAdapter.node,
            device: DeviceSnapshot(id: "podero-x", vendorId: "x", online: true, nodes: [PoderoAdapter.node: state]), now: 1_800_000_000)
    }

    func testEveryCapabilityIsRegisteredOnce() {
        XCTAssertEqual(PoderoAdapter.handlers.names, ["optimization", "comfort", "dhw", "away", "pause"])
        for (name, h) in PoderoAdapter.handlers.handlers { XCTAssertEqual(h.name, name) }
    }

    func testEveryHandlerRefusesAnUnknownMember() {
        for (name, h) in PoderoAdapter.handlers.handlers {
            XCTAssertThrowsError(try h.validate(input(["bogus": 1])), name) {
                XCTAssertEqual(($0 as? CommandRejection)?.code, .invalidPayload, name)
            }
        }
    }

    func testWhatALeaseRestoresValidatesAsACommand() throws {
        let module = PoderoModule()
        for (name, h) in PoderoAdapter.handlers.handlers {
            XCTAssertEqual(module.isLeasable(node: PoderoAdapter.node, capability: name), h.restore != nil, name)
            guard let restore = h.restore else { continue }
            let params = try XCTUnwrap(restore(state), name)
            XCTAssertNoThrow(try h.validate(input(params.objectValue ?? [:])), name)
        }
    }

    func testEveryEntityCommandsARegisteredCapability() {
        let adapter = PoderoAdapter(
            client: PoderoClient(
                transport: ScriptedTransport { _ in .success(HTTPResponse(status: 500)) },
                baseURL: "https://x", orgId: "o", session: nil, timeout: 1),
            allowList: nil, clock: ManualClock())
        let exposes = adapter.exposes(node: PoderoAdapter.node, state: state, capabilities: adapter.capabilities(of: PoderoAdapter.node))
        var used: Set<String> = []
        for e in exposes {
            switch e {
            case .toggle(_, _, _, let c, _, _), .choice(_, _, _, _, let c, _, _), .action(_, _, let c, _, _): used.insert(c)
            default: break
            }
        }
        XCTAssertFalse(used.isEmpty)
        XCTAssertTrue(used.isSubset(of: PoderoAdapter.handlers.names), "\(used.subtracting(PoderoAdapter.handlers.names))")
    }

    func testAnUnregisteredCapabilityIsUnsupported() {
        let d = DeviceSnapshot(id: "podero-x", vendorId: "x", online: true, nodes: [PoderoAdapter.node: state])
        XCTAssertThrowsError(try PoderoAdapter.validate(node: PoderoAdapter.node, capability: "boost", body: [:], device: d, now: 0)) {
            XCTAssertEqual(($0 as? CommandRejection)?.code, .unsupported)
            XCTAssertTrue(($0 as? CommandRejection)?.message.contains("supported: away, comfort, dhw, optimization, pause") == true)
        }
    }
}

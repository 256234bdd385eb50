import HeatbridgeCore
import HeatbridgeTesting
import XCTest

@testable import VendorBosch

/// The capability tables: every capability of every Bosch node kind is one complete handler, and everything that
/// names a capability (Home Assistant's entities, leases, trigger checks) names a registered one.
final class BoschCapabilityTests: XCTestCase {
    let device = DeviceSnapshot(
        id: "bosch-1", vendorId: "1", model: "CS7001iAW", online: true,
        nodes: [
            "hc1": [
                "operation_mode": "manual", "setpoint": 21, "manual_setpoint": 21, "time_program": "A",
                "levels": ["eco": 17, "comfort": 21], "overriding_modes": [],
                "heat_curve": ["control_type": "wdcoptimized", "min_flow": 25, "max_flow": 45, "basepoint": 25, "endpoint": 45],
            ],
            "dhw1": [
                "operation_mode": "high", "temperature": 48,
                "levels": ["eco": ["start": 40, "stop": 45], "high": ["start": 45, "stop": 55]],
                "charge": ["active": false, "remaining_min": 0],
            ],
            "system": ["silent_mode": "off", "holidays": [], "date_time": "2026-12-05T08:00:00"],
        ])
    let tables = ["hc1": BoschAdapter.heatingCircuit, "dhw1": BoschAdapter.dhwCircuit, "system": BoschAdapter.system]

    func testEachNodeKindHasItsCapabilitiesOnce() {
        XCTAssertEqual(BoschAdapter.heatingCircuit.names, ["schedule", "mode", "setpoint", "heat-curve", "program", "levels", "target"])
        XCTAssertEqual(BoschAdapter.dhwCircuit.names, ["charge", "mode", "setpoint", "schedule", "target"])
        XCTAssertEqual(BoschAdapter.system.names, ["silent-mode", "holiday", "date-time", "detect"])
        for (node, table) in tables {
            for (name, h) in table.handlers { XCTAssertEqual(h.name, name, node) }
        }
        XCTAssertNil(BoschAdapter.table("heatpump"), "heat sources take no commands")
    }

    func testEveryHandlerRefusesAnUnknownMember() {
        for (node, table) in tables {
            for (name, h) in table.handlers {
                let body: [String: JSONValue] = name == "holiday" ? ["action": "delete", "holiday_id": "hm1", "bogus": 1] : ["bogus": 1]
                XCTAssertThrowsError(try h.validate(ValidationInput(body: body, node: node, device: device)), "\(node) \(name)") {
                    XCTAssertEqual(($0 as? CommandRejection)?.code, .invalidPayload, "\(node) \(name): \($0)")
                }
            }
        }
    }

    func testWhatALeaseRestoresValidatesAsACommand() throws {
        let module = BoschModule()
        var leasable: [String] = []
        for (node, table) in tables {
            for (name, h) in table.handlers {
                XCTAssertEqual(module.isLeasable(node: node, capability: name), h.restore != nil, "\(node) \(name)")
                guard let restore = h.restore else { continue }
                leasable.append("\(node) \(name)")
                let params = try XCTUnwrap(restore(device.nodes[node]!), "\(node) \(name)")
                XCTAssertNoThrow(try h.validate(ValidationInput(body: params.objectValue ?? [:], node: node, device: device)), "\(node) \(name)")
            }
        }
        XCTAssertEqual(Set(leasable), ["hc1 mode", "hc1 setpoint", "dhw1 mode"])
    }

    /// The defaults the bridge keeps and the hot water charge the legionella limit starts are declared on handlers
    /// (Core names no capability): each belongs to a registered capability, its setting is not one, and what the
    /// bridge fills in or sends validates as a command of that capability.
    func testLocalDefaultsAndTheHotWaterChargeBelongToTheirHandlers() throws {
        let module = BoschModule()
        var declared: [String] = []
        for (node, table) in tables {
            XCTAssertEqual(module.localDefaults(of: node).map(\.setting), table.localDefaults.map(\.setting), node)
            for d in table.localDefaults {
                declared.append("\(node) \(d.capability) \(d.member) via \(d.setting)")
                let h = try XCTUnwrap(table[d.capability], "\(node): \(d.capability) is not registered")
                XCTAssertEqual(h.localDefault?.setting, d.setting)
                XCTAssertNil(table[d.setting], "\(node): the setting \(d.setting) is also a capability")
                XCTAssertTrue(d.range.contains(d.initial), "\(node) \(d.setting)")
                var body: [String: JSONValue] = [:]
                if let w = d.onlyWhen { body[w.member] = .string(w.value) }
                XCTAssertTrue(d.applies(to: body))
                for value in [d.range.lowerBound, d.initial, d.range.upperBound] {
                    body[d.member] = .int(value)
                    XCTAssertNoThrow(try h.validate(ValidationInput(body: body, node: node, device: device)), "\(node) \(d.member) \(value)")
                }
                XCTAssertFalse(d.applies(to: body), "a command that names the member keeps it")
            }
            if let charge = table.hotWaterCharge {
                let h = try XCTUnwrap(table[charge.capability])
                XCTAssertNoThrow(try h.validate(ValidationInput(body: charge.params, node: node, device: device)), node)
            }
        }
        XCTAssertEqual(declared, ["dhw1 charge duration_min via charge-duration"])
        XCTAssertEqual(BoschAdapter.dhwCircuit.hotWaterCharge?.capability, "charge")
        XCTAssertNil(BoschAdapter.heatingCircuit.hotWaterCharge)
    }

    func testEveryEntityCommandsARegisteredCapability() {
        let adapter = BoschAdapter(
            transport: ScriptedTransport { _ in .success(HTTPResponse(status: 500)) }, baseURL: "https://x", apiKey: "k",
            userId: "u", timeout: 1, allowList: nil)
        for (node, table) in tables {
            var used: Set<String> = []
            for e in adapter.exposes(node: node, state: device.nodes[node]!, capabilities: adapter.capabilities(of: node)) {
                switch e {
                case .toggle(_, _, _, let c, _, _), .choice(_, _, _, _, let c, _, _), .action(_, _, let c, _, _): used.insert(c)
                default: break
                }
            }
            XCTAssertTrue(used.isSubset(of: table.names), "\(node): \(used.subtracting(table.names))")
        }
    }

    func testLimitsFactsComeFromTheHandlers() {
        let a = BoschAdapter(
            transport: ScriptedTransport { _ in .success(HTTPResponse(status: 500)) }, baseURL: "https://x", apiKey: "k",
            userId: "u", timeout: 1, allowList: nil)
        XCTAssertEqual(a.facts(node: "hc1", capability: "setpoint", params: ["setpoint": 22]).setpoints.map(\.value), [22])
        XCTAssertEqual(a.facts(node: "hc1", capability: "target", params: ["temperature": 23]).setpoints.map(\.value), [23])
        XCTAssertEqual(a.facts(node: "dhw1", capability: "target", params: ["temperature": 50]).hotWaterTarget, 50)
        XCTAssertEqual(a.facts(node: "dhw1", capability: "mode", params: ["mode": "OFF"]).hotWaterTarget, 0)
        XCTAssertEqual(a.facts(node: "dhw1", capability: "setpoint", params: ["level": "high", "start": 45, "stop": 58]).hotWaterTarget, 58)
        XCTAssertEqual(a.facts(node: "dhw1", capability: "charge", params: ["action": "stop"]).hotWaterTarget, 0)
        XCTAssertNil(a.facts(node: "dhw1", capability: "charge", params: ["action": "start"]).hotWaterTarget)
        XCTAssertTrue(a.facts(node: "system", capability: "holiday", params: [:]).setpoints.isEmpty)
    }

    func testAnUnregisteredCapabilityIsUnsupportedNamingTheRegisteredOnes() {
        XCTAssertThrowsError(try BoschAdapter.validate(ValidationInput(body: [:], node: "dhw1", device: device), capability: "boost")) {
            XCTAssertEqual(($0 as? CommandRejection)?.code, .unsupported)
            XCTAssertEqual(
                ($0 as? CommandRejection)?.message, "\"boost\" is not supported on dhw1; supported: charge, mode, schedule, setpoint, target")
        }
    }
}

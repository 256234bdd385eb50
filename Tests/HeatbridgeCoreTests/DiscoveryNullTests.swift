import HeatbridgeCore
import XCTest

/// Home Assistant rejects a whole discovered device for one `null` where it wants a string (found with a real
/// Home Assistant 2026.11: a fresh box's first Bosch gateway message carried `"mdl": null`).
final class DiscoveryNullTests: XCTestCase {
    func nulls(_ v: JSONValue, at path: String = "") -> [String] {
        switch v {
        case .null: return [path]
        case .object(let o): return o.flatMap { nulls($0.value, at: path + "." + $0.key) }
        case .array(let a): return a.enumerated().flatMap { nulls($0.element, at: path + "[\($0.offset)]") }
        default: return []
        }
    }

    func testADeviceWhoseModelIsNotKnownYetIsAnnouncedWithoutANull() {
        let ha = HomeAssistantDiscovery(enabled: true, prefix: "homeassistant", topics: TopicLayout(base: "hb"), version: "t")
        for model in [nil, "", "WLW186i"] as [String?] {
            let d = DeviceSnapshot(id: "bosch-1", vendorId: "1", model: model, online: nil, nodes: ["dhw1": ["temperature": .null]])
            let config = ha.deviceConfig(
                d, names: FrontEndName(manufacturer: "Bosch", name: "Bosch 1"), capabilities: { _ in ["charge"] },
                exposes: { _, _ in [.sensor(.init(id: "t", name: "T", field: "temperature"))] })
            XCTAssertEqual(nulls(config), [], "model \(model ?? "nil")")
            XCTAssertEqual(config["dev"]?["mdl"]?.stringValue, model?.isEmpty == false ? model : nil)
            XCTAssertEqual(config["dev"]?["name"], "Bosch 1")
        }
        XCTAssertEqual(nulls(ha.bridgeConfig(accounts: ["a"])), [])
    }
}

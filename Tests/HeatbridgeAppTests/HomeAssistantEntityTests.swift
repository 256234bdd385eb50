import Foundation
import HeatbridgeCore
import XCTest

/// The Home Assistant entities as Home Assistant uses them: commands exactly as its templates render them, the
/// state they read back, an offline gateway across a restart. In process (`InProcessBox`): moved from
/// `HomeAssistantTests` with every assertion; discovery against a real broker and a real Home Assistant stays
/// there and in `HomeAssistantRealTests`.
final class HomeAssistantEntityTests: XCTestCase {
    let gw1Config = "homeassistant/device/heatbridge_bosch-101000001/config"

    /// The entities as a real Home Assistant 2026.11 uses them (#17 items 8-12): a water heater with its target
    /// (from the active level, or the program's level in auto), a temperature command that changes that level,
    /// on/off, every DHW mode one to one; a climate whose target in auto follows the program and moves when set;
    /// an offline gateway keeps its entities, also after a restart; brand, model and signed preset ids.
    func testEntitiesBehaveAsHomeAssistantUsesThem() async throws {
        let box = try InProcessBox(pollIntervalS: 1, discovery: true)
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let configRead = await box.waitJSON(gw1Config)
        let config = try XCTUnwrap(configRead)
        let cmps = try XCTUnwrap(config["cmps"]?.objectValue)
        let gw = "heatbridge/bosch-101000001"
        // Names: the gateway's brand (Buderus), model and id.
        XCTAssertEqual(config["dev"]?["mf"]?.stringValue, "Buderus")
        XCTAssertEqual(config["dev"]?["name"]?.stringValue, "Buderus Logatherm WLW186i 101000001")

        let hcRead = await box.waitJSON("\(gw)/hc1/state") { $0["operation_mode"] == "auto" && $0["schedule_now"]?["level"] != nil }
        let hc = try XCTUnwrap(hcRead)
        // Water heater: target temperature announced, with a command, and on/off.
        let wh = try XCTUnwrap(cmps["heatbridge_bosch-101000001_dhw1_water_heater"])
        XCTAssertEqual(wh["temperature_command_topic"]?.stringValue, "\(gw)/dhw1/target/set")
        XCTAssertEqual(wh["temperature_command_template"]?.stringValue, #"{"temperature": {{ value }}}"#)
        XCTAssertNotNil(wh["temperature_state_template"]?.stringValue)
        XCTAssertEqual(wh["power_command_topic"]?.stringValue, "\(gw)/dhw1/mode/set")
        // Every mode one to one, and back.
        XCTAssertEqual(wh["modes"], ["off", "eco", "low", "performance", "auto"])
        XCTAssertEqual(
            wh["mode_command_template"]?.stringValue,
            #"{"mode": "{{ {'off': 'off', 'eco': 'eco', 'low': 'low', 'performance': 'high', 'auto': 'auto'}[value] }}"}"#)
        XCTAssertEqual(
            wh["mode_state_template"]?.stringValue,
            "{{ {'off': 'off', 'eco': 'eco', 'low': 'low', 'high': 'performance', 'auto': 'auto'}.get(value_json.operation_mode, 'auto') }}")
        for (front, device) in [("low", "low"), ("eco", "eco"), ("performance", "high"), ("auto", "auto"), ("off", "off")] {
            box.clear()
            box.publish(wh["mode_command_topic"]!.stringValue!, "{\"mode\": \"\(device)\"}")  // HA's template for `front`
            // The state read back from the cloud: the mode HA shows again is the one chosen.
            let shown = await box.waitJSON("\(gw)/dhw1/state") { $0["operation_mode"]?.stringValue == device }
            XCTAssertNotNil(shown, "HA mode \(front)")
        }
        // Off has no target; on (HA's payload_on) goes back to the program.
        await box.waitJSON("\(gw)/dhw1/state") { $0["operation_mode"] == "off" && $0["target"] == .null }
        box.clear()
        box.publish(wh["power_command_topic"]!.stringValue!, wh["payload_on"]!.stringValue!)
        await box.waitJSON("\(gw)/dhw1/state") { $0["operation_mode"] == "auto" }
        // On a fixed level the target is that level's stop; HA's set_temperature changes it.
        box.clear()
        box.publish(wh["mode_command_topic"]!.stringValue!, #"{"mode": "high"}"#)
        let highRead = await box.waitJSON("\(gw)/dhw1/state") { $0["operation_mode"] == "high" && $0["target"] != .null }
        let high = try XCTUnwrap(highRead)
        XCTAssertEqual(high["target"], high["levels"]?["high"]?["stop"])
        box.publish(wh["temperature_command_topic"]!.stringValue!, #"{"temperature": 57.0}"#)
        await box.waitJSON("\(gw)/dhw1/target/result") { $0["status"] == "done" }
        let afterRead = await box.waitJSON("\(gw)/dhw1/state") { $0["target"]?.doubleValue == 57 }
        let after = try XCTUnwrap(afterRead)
        XCTAssertEqual(after["levels"]?["high"]?["stop"]?.doubleValue, 57)
        XCTAssertLessThan(after["levels"]?["high"]?["start"]?.doubleValue ?? 99, 57)

        // Climate in auto: the target is the program's level now, and HA's set_temperature moves that level.
        let climate = try XCTUnwrap(cmps["heatbridge_bosch-101000001_hc1_climate"])
        XCTAssertEqual(climate["temperature_command_topic"]?.stringValue, "\(gw)/hc1/target/set")
        let level = try XCTUnwrap(hc["schedule_now"]?["level"]?.stringValue)
        box.publish(climate["temperature_command_topic"]!.stringValue!, #"{"temperature": 20.5}"#)
        await box.waitJSON("\(gw)/hc1/target/result") { $0["status"] == "done" }
        let movedRead = await box.waitJSON("\(gw)/hc1/state") { $0["schedule_now"]?["setpoint"]?.doubleValue == 20.5 }
        let moved = try XCTUnwrap(movedRead)
        XCTAssertEqual(moved["levels"]?[level]?.doubleValue, 20.5, "the program's current level (\(level)) took the target")
        XCTAssertEqual(moved["operation_mode"], "auto", "no hidden switch to manual")
        XCTAssertTrue(climate["temperature_state_template"]?.stringValue?.contains("schedule_now.setpoint") == true)
        // In manual the same command is the manual setpoint.
        box.clear()
        box.publish(climate["mode_command_topic"]!.stringValue!, #"{"mode": "manual"}"#)
        await box.waitJSON("\(gw)/hc1/state") { $0["operation_mode"] == "manual" }
        box.publish(climate["temperature_command_topic"]!.stringValue!, #"{"temperature": 19.0}"#)
        await box.waitJSON("\(gw)/hc1/state") { $0["manual_setpoint"]?.doubleValue == 19 && $0["setpoint"]?.doubleValue == 19 }

        // An offline gateway keeps its entities, also when a fresh daemon announces it from the cache.
        try await box.admin("POST", "/admin/bosch/gateways/101000001", #"{"online":false}"#)
        await box.waitJSON("\(gw)/state") { $0["online"] == false }
        await box.stop()
        let restarted = try InProcessBox(restarting: box)
        restarted.start()
        await restarted.waitJSON("\(gw)/state") { $0["online"] == false && $0["source"] == "cloud" }
        await restarted.settle()
        let offline = try XCTUnwrap(restarted.json(gw1Config).last)
        XCTAssertEqual(Set(offline["cmps"]?.objectValue?.keys.map { $0 } ?? []), Set(cmps.keys), "an offline gateway lost entities")
        // A fresh Home Assistant (its birth message) gets them too while the gateway is still offline.
        let before = restarted.all(gw1Config).count
        restarted.publish("homeassistant/status", "online")
        await restarted.waitFor("the configs re-announced") { restarted.all(gw1Config).count > before }
        let again = try XCTUnwrap(restarted.json(gw1Config).last)
        XCTAssertEqual(Set(again["cmps"]?.objectValue?.keys.map { $0 } ?? []), Set(cmps.keys))
        await restarted.stopAll()
    }
}

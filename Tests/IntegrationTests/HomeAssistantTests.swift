import Foundation
import HeatbridgeCore
import XCTest

/// Home Assistant discovery through the real broker, with commands exactly as Home Assistant renders them. How the
/// entities behave when Home Assistant uses them runs in process (`HeatbridgeAppTests/HomeAssistantEntityTests`).
final class HomeAssistantTests: XCTestCase {
    let gw1Config = "homeassistant/device/heatbridge_bosch-101000001/config"
    let gw2Config = "homeassistant/device/heatbridge_bosch-101000002/config"

    func start(_ h: Harness) throws {
        try h.writeConfig(pollIntervalS: 1, timeoutS: 1.5, discovery: true)
        h.client.subscribe("homeassistant/#")
        try h.startDaemon()
    }

    /// Every `*topic` value in a discovery config, with its key.
    func topics(in j: JSONValue, key: String = "") -> [(String, String)] {
        switch j {
        case .object(let o): return o.flatMap { topics(in: $0.value, key: $0.key) }
        case .array(let a): return a.flatMap { topics(in: $0, key: key) }
        case .string(let s) where key.hasSuffix("topic"): return [(key, s)]
        default: return []
        }
    }

    /// Every topic a discovery config names is one the bridge publishes (state) or subscribes to (…/set).
    func assertTopicsReal(_ config: JSONValue, published: Set<String>, except: Set<String> = [], file: StaticString = #filePath, line: UInt = #line) {
        for (key, topic) in topics(in: config) where !except.contains(topic) {
            if key.hasSuffix("command_topic") {
                XCTAssertNotNil(
                    TopicLayout(base: "heatbridge").parseCommand(topic), "\(key): \(topic) is not a command topic", file: file, line: line)
            } else {
                XCTAssertTrue(published.contains(topic), "\(key): nothing is published on \(topic)", file: file, line: line)
            }
        }
    }

    func testConfigsAreCompleteAndEveryReferencedTopicIsReal() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try start(h)
        let c: TestMQTTClient = h.client
        let config = try XCTUnwrap(c.waitJSON(gw1Config))
        XCTAssertEqual(config["dev"]?["ids"], ["heatbridge_bosch-101000001"])
        XCTAssertEqual(config["dev"]?["via_device"]?.stringValue, "heatbridge_heatbridge")
        XCTAssertEqual(config["dev"]?["mf"]?.stringValue, "Buderus", "the gateway's brand")
        XCTAssertEqual(config["o"]?["name"]?.stringValue, "heatbridge")
        XCTAssertEqual(config["o"]?["sw"]?.stringValue, "0.1.0")
        XCTAssertEqual(config["availability_mode"]?.stringValue, "all")
        XCTAssertEqual(
            config["availability"]?.arrayValue?.compactMap { $0["topic"]?.stringValue },
            ["heatbridge/bridge/state", "heatbridge/bosch-101000001/availability"])
        let cmps = try XCTUnwrap(config["cmps"]?.objectValue)
        XCTAssertEqual(
            Set(cmps.values.compactMap { $0["p"]?.stringValue }),
            ["climate", "water_heater", "button", "number", "binary_sensor", "select", "sensor"])
        for (key, cmp) in cmps {
            XCTAssertEqual(cmp["unique_id"]?.stringValue, key)
            XCTAssertTrue(key.hasPrefix("heatbridge_bosch-101000001_"), key)
        }
        let bridge = try XCTUnwrap(c.waitJSON("homeassistant/device/heatbridge_bridge/config"))
        XCTAssertEqual(bridge["dev"]?["ids"], ["heatbridge_heatbridge"])
        // Every topic a config names is one the bridge publishes (state) or subscribes to (…/set).
        c.waitJSON("heatbridge/bridge/health")
        h.barrier()  // everything the daemon published at start has reached the test client
        let published = Set(c.recorder.messages.withLock { $0.map(\.topic) })
        assertTopicsReal(config, published: published)
        assertTopicsReal(bridge, published: published, except: ["heatbridge/bridge/last_result"])

        // Commands exactly as Home Assistant renders its templates.
        let climate = try XCTUnwrap(cmps["heatbridge_bosch-101000001_hc1_climate"])
        XCTAssertEqual(climate["temperature_command_template"]?.stringValue, #"{"temperature": {{ value }}}"#)
        XCTAssertEqual(climate["mode_command_template"]?.stringValue, #"{"mode": "{{ {'auto': 'auto', 'heat': 'manual', 'off': 'off'}[value] }}"}"#)
        c.publish(climate["mode_command_topic"]!.stringValue!, #"{"mode": "manual"}"#)  // HA mode "heat"
        c.waitJSON("heatbridge/bosch-101000001/hc1/mode/result") { $0["status"]?.stringValue == "done" }
        c.publish(climate["temperature_command_topic"]!.stringValue!, #"{"temperature": 21.5}"#)
        c.waitJSON("heatbridge/bosch-101000001/hc1/target/result") { $0["status"]?.stringValue == "done" }
        c.waitJSON("heatbridge/bosch-101000001/hc1/state") { $0["operation_mode"]?.stringValue == "manual" && $0["setpoint"]?.doubleValue == 21.5 }
        let number = try XCTUnwrap(cmps["heatbridge_bosch-101000001_dhw1_charge_duration"])
        c.publish(number["command_topic"]!.stringValue!, #"{"minutes": 45}"#)  // after "{"minutes": {{ value | int }}}" with 45.0
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state") { $0["charge"]?["default_duration_min"]?.intValue == 45 }
        let button = try XCTUnwrap(cmps["heatbridge_bosch-101000001_dhw1_charge"])
        c.publish(button["command_topic"]!.stringValue!, button["payload_press"]!.stringValue!)
        c.waitJSON("heatbridge/bosch-101000001/dhw1/charge/result") { $0["status"]?.stringValue == "done" }
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(
            state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 45,
            "the button's charge used the number's duration")
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state") { $0["charge"]?["active"]?.boolValue == true }
        // The gateway's system entities: silent mode select, clock sync and detection buttons.
        let silent = try XCTUnwrap(cmps["heatbridge_bosch-101000001_system_silent_mode"])
        c.publish(silent["command_topic"]!.stringValue!, #"{"mode": "auto"}"#)  // "{"mode": "{{ value }}"}" with "auto"
        c.waitJSON("heatbridge/bosch-101000001/system/state") { $0["silent_mode"] == "auto" }
        for key in ["system_clock_sync", "system_detect"] {
            let b = try XCTUnwrap(cmps["heatbridge_bosch-101000001_\(key)"])
            c.publish(b["command_topic"]!.stringValue!, b["payload_press"]!.stringValue!)
        }
        c.waitJSON("heatbridge/bosch-101000001/system/date-time/result") { $0["status"] == "done" }
        c.waitJSON("heatbridge/bosch-101000001/system/detect/result") { $0["status"] == "done" }
        let program = try XCTUnwrap(cmps["heatbridge_bosch-101000001_hc1_program"])
        c.publish(program["command_topic"]!.stringValue!, #"{"program": "B"}"#)
        c.waitJSON("heatbridge/bosch-101000001/hc1/state") { $0["time_program"] == "B" }
        // The bridge's "last command result" sensor reads a topic that exists once a command ended.
        let last = c.waitJSON("heatbridge/bridge/last_result") { $0["target"] == "bosch-101000001/dhw1/charge" }
        XCTAssertEqual(last?["status"], "done")
        XCTAssertTrue(topics(in: bridge).contains { $0.1 == "heatbridge/bridge/last_result" })
    }

    func testHomeSmartlinkRoomEntitiesWork() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, discovery: true, extraAccounts: try h.hslAccount())
        // Presets come from the config: replace the default with two of the installer's own.
        var yaml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "  discovery: true",
            with: """
                  discovery: true
                  derogation_presets:
                    - {name: "-2 °C for 2 h", delta: -2, duration_min: 120}
                    - {name: "-1 °C for 30 min", delta: -1, duration_min: 30}
                """)
        try yaml.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        h.client.subscribe("homeassistant/#")
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let dev = "hsl-64f1c0a2e9b3"
        let config = try XCTUnwrap(c.waitJSON("homeassistant/device/heatbridge_\(dev)/config"))
        let cmps = try XCTUnwrap(config["cmps"]?.objectValue)
        XCTAssertEqual(cmps["heatbridge_\(dev)_room-1_temperature"]?["name"], "Living room temperature")
        XCTAssertNotNil(cmps["heatbridge_\(dev)_room-2_setpoint"])
        XCTAssertNotNil(cmps["heatbridge_\(dev)_room-3_derogation_active"])
        let preset = try XCTUnwrap(cmps["heatbridge_\(dev)_room-1_derogation_preset_2"])
        XCTAssertEqual(preset["name"], "Living room -1 °C for 30 min")
        XCTAssertNil(cmps["heatbridge_\(dev)_room-1_derogation_preset_3"])
        c.waitJSON("heatbridge/\(dev)/room-1/state")
        let published = Set(c.recorder.messages.withLock { $0.map(\.topic) })
        assertTopicsReal(config, published: published)
        // The button's payload exactly as Home Assistant sends it.
        c.publish(preset["command_topic"]!.stringValue!, preset["payload_press"]!.stringValue!)
        c.waitJSON("heatbridge/\(dev)/room-1/derogation/result") { $0["status"]?.stringValue == "done" }
        c.waitJSON("heatbridge/\(dev)/room-1/state") { $0["derogation"]?["active"] == true && $0["setpoint"] == 19 }
    }

    func testPoderoHeatPumpEntitiesWork() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, discovery: true, extraAccounts: try h.poderoAccount())
        h.client.subscribe("homeassistant/#")
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let dev = "podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"
        let config = try XCTUnwrap(c.waitJSON("homeassistant/device/heatbridge_\(dev)/config"))
        XCTAssertEqual(
            config["availability"]?.arrayValue?.compactMap { $0["topic"]?.stringValue },
            ["heatbridge/bridge/state", "heatbridge/\(dev)/availability"])
        let cmps = try XCTUnwrap(config["cmps"]?.objectValue)
        XCTAssertEqual(Set(cmps.values.compactMap { $0["p"]?.stringValue }), ["sensor", "switch", "select", "button", "binary_sensor"])
        // Power (and energy) are the device's meter, read from the device state, not a sensor of the node.
        XCTAssertNil(cmps["heatbridge_\(dev)_hp_power"])
        XCTAssertEqual(cmps["heatbridge_\(dev)_meter_power"]?["unit_of_measurement"], "W")
        XCTAssertEqual(cmps["heatbridge_\(dev)_meter_power"]?["state_topic"]?.stringValue, "heatbridge/\(dev)/state")
        c.waitJSON("heatbridge/\(dev)/hp/state")
        let published = Set(c.recorder.messages.withLock { $0.map(\.topic) })
        assertTopicsReal(config, published: published)
        // Payloads exactly as Home Assistant sends them: switch off, select "Low" through its template, pause button.
        let sw = try XCTUnwrap(cmps["heatbridge_\(dev)_hp_optimization"])
        c.publish(sw["command_topic"]!.stringValue!, sw["payload_off"]!.stringValue!)
        c.waitJSON("heatbridge/\(dev)/hp/optimization/result") { $0["status"]?.stringValue == "done" }
        let select = try XCTUnwrap(cmps["heatbridge_\(dev)_hp_optimization_level"])
        XCTAssertEqual(select["command_template"]?.stringValue, #"{"level": "{{ value }}"}"#)
        XCTAssertEqual(select["options"], ["low", "mid", "max"])
        c.publish(select["command_topic"]!.stringValue!, #"{"level": "low"}"#)
        let button = try XCTUnwrap(cmps["heatbridge_\(dev)_hp_pause_1h"])
        c.publish(button["command_topic"]!.stringValue!, button["payload_press"]!.stringValue!)
        c.waitJSON("heatbridge/\(dev)/hp/pause/result") { $0["status"]?.stringValue == "done" }
        c.waitJSON("heatbridge/\(dev)/hp/state") {
            $0["optimization"]?["active"] == false && $0["optimization"]?["level"] == "low" && $0["pause"]?["active"] == true
        }
        let hp = try h.admin("GET", "/admin/state")["podero"]?["heat_pumps"]?["3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"]
        XCTAssertEqual(hp?["is_smart_optimization_active"], false)
        XCTAssertEqual(hp?["optimization_level"], "Low")
        XCTAssertEqual(hp?["is_pause_power_active"], true)
    }

    func testBirthMessageRemovalOfflineAndSwitchingOff() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try start(h)
        let c: TestMQTTClient = h.client
        c.waitJSON(gw2Config)
        // Home Assistant restarts: its birth message makes the bridge announce everything again.
        let before = c.all(gw1Config).count
        c.publish("homeassistant/status", "online")
        let deadline = Date().addingTimeInterval(6)
        while Date() < deadline, c.all(gw1Config).count == before { usleep(50_000) }
        XCTAssertGreaterThan(c.all(gw1Config).count, before, "no re-publish after homeassistant/status online")
        // The cloud reports gateway 1 offline: its availability goes offline (and so do its entities).
        try h.admin("POST", "/admin/bosch/gateways/101000001", #"{"online":false}"#)
        let d1 = Date().addingTimeInterval(10)
        while Date() < d1, String(decoding: c.all("heatbridge/bosch-101000001/availability").last?.payload ?? [], as: UTF8.self) != "offline" {
            usleep(50_000)
        }
        XCTAssertEqual(String(decoding: c.all("heatbridge/bosch-101000001/availability").last?.payload ?? [], as: UTF8.self), "offline")
        // Gateway 2 leaves the config: after two polls without it, its config and state are cleared.
        try h.writeConfig(pollIntervalS: 1, timeoutS: 1.5, discovery: true, devices: ["101000001"])
        h.signalDaemon(SIGHUP)
        let d2 = Date().addingTimeInterval(15)
        // The config is cleared before the device's state topics: wait for both, not only the first.
        while Date() < d2,
            c.all(gw2Config).last?.payload.isEmpty != true
                || c.all("heatbridge/bosch-101000002/state").last?.payload.isEmpty != true
        { usleep(50_000) }
        XCTAssertEqual(c.all(gw2Config).last?.payload.isEmpty, true, "removed device's config not cleared")
        XCTAssertEqual(c.all("heatbridge/bosch-101000002/state").last?.payload.isEmpty, true)
        // Discovery switched off (needs a restart): what was announced is taken back.
        XCTAssertEqual(h.stopDaemon(), 0)
        try h.writeConfig(pollIntervalS: 1, timeoutS: 1.5, discovery: false)
        try h.startDaemon()
        let d3 = Date().addingTimeInterval(15)
        // Both are cleared, in whichever order the daemon gets to them: wait for both.
        while Date() < d3,
            c.all(gw1Config).last?.payload.isEmpty != true
                || c.all("homeassistant/device/heatbridge_bridge/config").last?.payload.isEmpty != true
        { usleep(50_000) }
        XCTAssertEqual(c.all(gw1Config).last?.payload.isEmpty, true, "configs not cleared when discovery was switched off")
        XCTAssertEqual(c.all("homeassistant/device/heatbridge_bridge/config").last?.payload.isEmpty, true)
    }

    func testNamesOfHomeSmartlinkAndPoderoDevicesAndSignedPresetIds() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let extra = try h.hslAccount() + "\n" + h.poderoAccount()
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, discovery: true, extraAccounts: extra)
        var yaml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        yaml = yaml.replacingOccurrences(
            of: "  discovery: true",
            with: """
                  discovery: true
                  derogation_presets:
                    - {name: "-2 °C for 2 h", delta: -2, duration_min: 120}
                    - {name: "+2 °C for 2 h", delta: 2, duration_min: 120}
                """)
        try yaml.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        h.client.subscribe("homeassistant/#")
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let hsl = try XCTUnwrap(c.waitJSON("homeassistant/device/heatbridge_hsl-64f1c0a2e9b3/config"))
        XCTAssertEqual(hsl["dev"]?["mf"]?.stringValue, "HomeSmartlink")
        let minus = hsl["cmps"]?["heatbridge_hsl-64f1c0a2e9b3_room-1_derogation_preset_1"]
        let plus = hsl["cmps"]?["heatbridge_hsl-64f1c0a2e9b3_room-1_derogation_preset_2"]
        XCTAssertEqual(minus?["default_entity_id"]?.stringValue, "button.hsl_64f1c0a2e9b3_room_1_derogation_minus_2_for_120_min")
        XCTAssertEqual(plus?["default_entity_id"]?.stringValue, "button.hsl_64f1c0a2e9b3_room_1_derogation_plus_2_for_120_min")
        let podero = try XCTUnwrap(c.waitJSON("homeassistant/device/heatbridge_podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b/config"))
        let name = try XCTUnwrap(podero["dev"]?["name"]?.stringValue)
        XCTAssertTrue(name.hasSuffix(" 3b1f6c2e"), name)
        XCTAssertFalse(name.contains("8d4a-4e0b"), "named by the whole UUID: \(name)")
        let state = try XCTUnwrap(c.waitJSON("heatbridge/podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b/state"))
        XCTAssertEqual(podero["dev"]?["mf"], state["manufacturer"])
        XCTAssertTrue(name.hasPrefix(state["model"]?.stringValue ?? "?"), "\(name) vs \(String(describing: state["model"]))")
    }
}

import Foundation
import HeatbridgeCore
import XCTest

/// Energy end to end: the real daemon, a real broker, the simulator over HTTP, the store on disk. Podero's power and
/// day statistics, Bosch's pushed counters (events published onto the box's broker as the receiver delivers them),
/// the history request over MQTT (v5 response topic too) against `heatbridge energy`, and bad requests.
final class EnergyTests: XCTestCase {
    let podero = "heatbridge/podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"
    let bosch = "heatbridge/bosch-101000001"
    let hsl = "heatbridge/hsl-64f1c0a2e9b3"

    func harness() throws -> Harness {
        let h = try Harness(pollIntervalS: 30)
        try h.writeConfig(
            pollIntervalS: 30, timeoutS: 2, discovery: true, devices: ["101000001"],
            extraAccounts: "\n    push: true" + (try h.poderoAccount(pollIntervalS: 5)) + (try h.hslAccount(pollIntervalS: 30)))
        return h
    }

    func event(_ key: String, _ value: Double, unit: String, at: EpochSeconds) -> String {
        // The envelope as the receiver forwards Bosch's events (`BoschWire.event`, INFERRED shape).
        #"{"eventId":"\#(UUID().uuidString)","eventType":"DATA_POINT","gatewayId":"101000001","timestamp":"\#(Timestamp.iso8601(at))","#
            + #""payload":{"key":"\#(key)","value":\#(JSONValue.format(value)),"unit":"\#(unit)"}}"#
    }

    /// Podero's and Bosch's meters, the energy history request and the `energy` CLI give the same figures.
    /// (Runs in `SideBySideTests`' outage lane: it mostly waits, on its own broker and simulator.)
    func poderoAndBoschMetersTheHistoryRequestAndTheCLIAgree() throws {
        let h = try harness()
        defer { h.stopAll() }
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        let c: TestMQTTClient = h.client
        c.subscribe("homeassistant/#")

        // Podero: power at once (the poll), the days' energy after the first statistics read (20–60 s after the
        // start; the test moves the daemon's clock instead of waiting).
        let first = c.waitJSON("\(podero)/state") { $0["meter"]?["power_w"]?.doubleValue != nil }
        XCTAssertEqual(first?["meter"]?["power_source"], "measured")
        try h.advanceClock(by: 61)
        let withEnergy = try XCTUnwrap(
            c.waitJSON("\(podero)/state", timeout: 20) { $0["meter"]?["energy"]?["electricity_total"]?["kwh"]?.doubleValue != nil })
        let total = try XCTUnwrap(withEnergy["meter"]?["energy"]?["electricity_total"]?["kwh"]?.doubleValue)
        // The simulator's 7 days: 6 whole days of 18.4 + (day % 5) · 0.3 kWh and today so far.
        let today = (Date().timeIntervalSince1970 / 86_400).rounded(.down)
        let whole = (1...6).map { 18.4 + Double(Int64(today) - Int64($0)).truncatingRemainder(dividingBy: 5) * 0.3 }.reduce(0, +)
        XCTAssertGreaterThanOrEqual(total, whole)
        XCTAssertLessThanOrEqual(total, whole + 19.6, "every day counted once")
        XCTAssertEqual(withEnergy["meter"]?["energy"]?["electricity_total"]?["source"], "estimated")
        XCTAssertEqual(try h.admin("GET", "/admin/requests").arrayValue?.filter { $0["path"]?.stringValue?.contains("/statistics") == true }.count, 1)

        // Home Assistant: the meter's sensors as the energy dashboard takes them.
        let config = try XCTUnwrap(c.waitJSON("homeassistant/device/heatbridge_podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b/config"))
        let energy = try XCTUnwrap(config["cmps"]?["heatbridge_podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b_meter_energy_electricity_total"])
        XCTAssertEqual(energy["device_class"], "energy")
        XCTAssertEqual(energy["state_class"], "total_increasing")
        XCTAssertEqual(energy["unit_of_measurement"], "kWh")
        XCTAssertNotNil(config["cmps"]?["heatbridge_podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b_meter_power"])

        // Bosch: pushed counters and power, as the receiver delivers them.
        c.waitJSON("\(bosch)/state")
        let t0 = Date().timeIntervalSince1970 - 3600
        c.publish("heatbridge/push/bosch/101000001", event("hvac.emon.energyConsumptionTotal", 5_000, unit: "kWh", at: t0))
        c.publish("heatbridge/push/bosch/101000001", event("hvac.emon.energySupplyTotal", 18_000, unit: "kWh", at: t0))
        c.publish("heatbridge/push/bosch/101000001", event("hvac.emon.compressor.powerCurrent", 1.8, unit: "kW", at: t0 + 1800))
        c.publish("heatbridge/push/bosch/101000001", event("hvac.emon.energyConsumptionTotal", 5_002, unit: "kWh", at: t0 + 1800))
        c.publish("heatbridge/push/bosch/101000001", event("hvac.emon.energySupplyTotal", 18_008, unit: "kWh", at: t0 + 1800))
        let b = try XCTUnwrap(c.waitJSON("\(bosch)/state") { $0["meter"]?["energy"]?["heat_total"]?["kwh"] == 18_008 })
        XCTAssertEqual(b["meter"]?["energy"]?["electricity_total"]?["kwh"], 5_002)
        XCTAssertEqual(b["meter"]?["power_w"], 1800)
        XCTAssertEqual(b["meter"]?["efficiency_today"]?.doubleValue, 4, "8 kWh of heat for 2 of electricity")
        // An appliance reset: the counter starts over; the total goes on.
        c.publish("heatbridge/push/bosch/101000001", event("hvac.emon.energyConsumptionTotal", 0.5, unit: "kWh", at: t0 + 2400))
        XCTAssertNotNil(c.waitJSON("\(bosch)/state") { $0["meter"]?["energy"]?["electricity_total"]?["kwh"] == 5_002.5 })
        let bc = try XCTUnwrap(
            c.waitJSON("homeassistant/device/heatbridge_bosch-101000001/config") {
                $0["cmps"]?["heatbridge_bosch-101000001_meter_efficiency_today"] != nil
            })
        XCTAssertEqual(bc["cmps"]?["heatbridge_bosch-101000001_meter_energy_heat_total"]?["device_class"], "energy")
        // The config that gained the meter's components is sent once more (Home Assistant may miss additions while it
        // still sets up the device's first components).
        let configTopic = "homeassistant/device/heatbridge_bosch-101000001/config"
        h.waitUntil("the grown config sent a second time", timeout: 20) {
            let all = c.all(configTopic)
            return all.count >= 2 && all.filter { $0.payload == all.last!.payload }.count >= 2
        }

        // The history request: the same buckets on the result topic, the v5 response topic and from the CLI.
        let from = Timestamp.iso8601((today - 7) * 86_400)
        let to = Timestamp.iso8601((Date().timeIntervalSince1970 / 3600).rounded(.up) * 3600)
        c.subscribe("ems/replies")
        c.publishRequest(
            "\(podero)/energy/history/set", #"{"id":"h1","from":"\#(from)","to":"\#(to)"}"#, responseTopic: "ems/replies",
            correlationData: Array("h1".utf8))
        let result = try XCTUnwrap(c.waitResult("\(podero)/energy/history/result", id: "h1", status: "done"))
        let history = try XCTUnwrap(result["history"])
        XCTAssertEqual(
            history["totals"]?["electricity_total"]?.doubleValue ?? 0, total, accuracy: 0.01,
            "the hours add up to the total: the first read brought the days as history")
        XCTAssertEqual(
            history["meters"]?["electricity_total"]?.arrayValue?.count,
            Int(((Date().timeIntervalSince1970 / 3600).rounded(.up) * 3600 - (today - 7) * 86_400) / 3600))
        XCTAssertEqual(c.waitJSON("ems/replies") { $0["status"] == "done" }?["history"], history)
        let cli = try h.cli(["energy", "podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b", "--from", from, "--to", to, "--json"])
        XCTAssertEqual(cli.status, 0, cli.output)
        XCTAssertEqual(try JSONValue.parse(Array(cli.output.utf8)), history, "heatbridge energy and the MQTT history request return the same buckets")
        let csv = try h.cli(["energy", "podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b", "--from", from, "--to", to, "--csv"])
        XCTAssertTrue(csv.output.hasPrefix("hour,electricity_total\n"), csv.output)
        c.publish("\(bosch)/energy/history/set", #"{"id":"h2","meter":"electricity_total"}"#)
        let boschHistory = try XCTUnwrap(c.waitResult("\(bosch)/energy/history/result", id: "h2", status: "done"))
        XCTAssertEqual(
            boschHistory["history"]?["totals"]?["electricity_total"]?.doubleValue ?? 0, 2.5, accuracy: 1e-6,
            "2 kWh before the reset and 0.5 after; the lifetime before install is in no hour")
        XCTAssertNil(boschHistory["history"]?["meters"]?["heat_total"], "only the counter asked for")

        // Bad requests: each rejected with a stable code.
        c.publish("\(podero)/energy/history/set", #"{"id":"b1","from":"2026-12-05T10:00:00Z","to":"2026-12-05T09:00:00Z"}"#)
        XCTAssertEqual(c.waitResult("\(podero)/energy/history/result", id: "b1", status: "rejected")?["code"], "OUT_OF_RANGE")
        c.publish("\(podero)/energy/history/set", #"{"id":"b2","from":"2026-01-01","to":"2026-12-01"}"#)
        XCTAssertEqual(c.waitResult("\(podero)/energy/history/result", id: "b2", status: "rejected")?["code"], "OUT_OF_RANGE")
        c.publish("heatbridge/nobody/energy/history/set", #"{"id":"b3"}"#)
        XCTAssertEqual(c.waitResult("heatbridge/nobody/energy/history/result", id: "b3", status: "rejected")?["code"], "UNKNOWN_TARGET")
        c.waitJSON("\(hsl)/state")
        c.publish("\(hsl)/energy/history/set", #"{"id":"b4"}"#)
        XCTAssertEqual(c.waitResult("\(hsl)/energy/history/result", id: "b4", status: "rejected")?["code"], "NO_METER")
        c.publish("\(podero)/energy/history/set", #"{"id":"b5","meter":"gas_total"}"#)
        XCTAssertEqual(c.waitResult("\(podero)/energy/history/result", id: "b5", status: "rejected")?["code"], "INVALID_PAYLOAD")
        let bad = try h.cli(["energy", "podero-3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b", "--from", "2026-12-05", "--to", "2026-12-01"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.output.contains("OUT_OF_RANGE"), bad.output)

        // A restart: the totals come back from the store, and the statistics read again count no day twice.
        XCTAssertEqual(h.stopDaemon(), 0)
        c.clear()
        try h.startDaemon(env: ["HEATBRIDGE_TEST_HOOKS": "1"])
        let restored = try XCTUnwrap(c.waitJSON("\(podero)/state") { $0["meter"]?["energy"] != nil })
        XCTAssertEqual(restored["meter"]?["energy"]?["electricity_total"]?["kwh"]?.doubleValue ?? 0, total, accuracy: 0.05)
        func statisticsReads() throws -> Int {
            try h.admin("GET", "/admin/requests").arrayValue?.filter { $0["path"]?.stringValue?.contains("/statistics") == true }.count ?? 0
        }
        XCTAssertEqual(try statisticsReads(), 1)
        try h.advanceClock(by: 61)
        try h.waitUntil("the second statistics read") { try statisticsReads() == 2 }
        h.barrier()
        let after = c.latest("\(podero)/state")?["meter"]?["energy"]?["electricity_total"]?["kwh"]?.doubleValue ?? 0
        XCTAssertEqual(after, total, accuracy: 0.05, "the same days read again after a restart: counted once")
        let boschAfter = c.waitJSON("\(bosch)/state") { $0["meter"]?["energy"] != nil }
        XCTAssertEqual(boschAfter?["meter"]?["energy"]?["electricity_total"]?["kwh"], 5_002.5)
    }
}

import HeatbridgeCore
import HeatbridgeTesting
import XCTest

@testable import VendorBosch

/// Bosch webhook events read as the box gets them from the receiver: each data point to its node and field, and
/// every kind of bad input to its code.
final class BoschPushTests: XCTestCase {
    let adapter = BoschAdapter(
        transport: ScriptedTransport { _ in .success(HTTPResponse(status: 500)) }, baseURL: "https://api.test",
        apiKey: "xHCSAPI-k", userId: "u", timeout: 2, allowList: nil)
    let at = "2026-12-04T10:00:00Z"

    func decode(_ text: String) -> Result<PushEvent, PushRejection> { adapter.decodePush(Array(text.utf8)) }

    func dataPoint(_ key: String, _ value: String, unit: String = "") -> String {
        #"{"eventType":"DATA_POINT","gatewayId":"101000001","timestamp":"\#(at)","payload":{"key":"\#(key)","value":\#(value),"unit":"\#(unit)"}}"#
    }

    func update(_ text: String) -> PushUpdate? { try? decode(text).get().updates.first }

    func testEachDocumentedDataPointGoesToItsNodeAndField() {
        let cases: [(String, String, PushUpdate.Target, [String])] = [
            ("hvac.emon.energyConsumptionTotal", "1234.56", .node("heatpump"), ["energy", "consumed_kwh"]),
            ("hvac.emon.energySupplyTotal", "4000.1", .node("heatpump"), ["energy", "supplied_kwh"]),
            ("hvac.emon.compressor.energyConsumptionTotal.centralHeating", "800", .node("heatpump"), ["energy", "compressor_heating_kwh"]),
            (
                "hvac.emon.compressor.energyConsumptionTotal.domesticHotWater.lowRes", "80", .node("heatpump"),
                ["energy_lowres", "compressor_dhw_kwh"]
            ),
            ("hvac.emon.eheater.energyConsumptionTotal.centralHeating.lowRes", "3", .node("heatpump"), ["energy_lowres", "eheater_heating_kwh"]),
            ("hvac.emon.compressor.powerCurrent", "1400", .node("heatpump"), ["compressor", "power_w"]),
            ("hvac.emon.eheater.powerCurrent", "0", .node("heatpump"), ["eheater", "power_w"]),
            ("hvac.compressor.currentSpeed", "42", .node("heatpump"), ["compressor", "speed"]),
            ("hvac.cascade.hs2.emon.compressor.powerCurrent", "900", .node("hs2"), ["compressor", "power_w"]),
            ("hvac.heatingCircuit.hc1.flowTemperature", "34.5", .node("hc1"), ["flow_temperature"]),
            ("hvac.heatingCircuit.hc2.roomTemperature", "20.5", .node("hc2"), ["room_temperature"]),
            ("hvac.domesticHotWater.dhw1.cylinderTemperature", "48", .node("dhw1"), ["temperature"]),
            ("hvac.domesticHotWater.dhw1.chargeStatus", #""START""#, .node("dhw1"), ["charge", "active"]),
            ("hvac.system.outdoorTemperature", "-3.5", .node("system"), ["outdoor_temperature"]),
            ("hvac.system.sensor.tc1", "30", .node("system"), ["sensors", "tc1"]),
            ("hvac.energyManagement.operationStatus", #""ACTIVE""#, .node("system"), ["energy_management"]),
        ]
        for (key, value, target, path) in cases {
            let u = update(dataPoint(key, value))
            XCTAssertEqual(u?.target, target, key)
            XCTAssertEqual(u?.path, path, key)
            XCTAssertEqual(u?.at, Timestamp.parse(at), key)
        }
        XCTAssertEqual(update(dataPoint("hvac.emon.energyConsumptionTotal", "1234.56", unit: "kWh"))?.value, .counter(1234.56))
        XCTAssertEqual(update(dataPoint("hvac.domesticHotWater.dhw1.chargeStatus", #""STOP""#))?.value, .set(false))
        XCTAssertEqual(update(dataPoint("hvac.emon.compressor.powerCurrent", "1.4", unit: "kW"))?.value, .set(1400))
    }

    func testTheCompressorStatusAlsoSaysWhetherItRuns() throws {
        let e = try decode(dataPoint("hvac.emon.compressor.operationStatus", #""HEATING""#)).get()
        XCTAssertEqual(e.updates.map(\.path), [["compressor", "status"], ["compressor", "running"]])
        XCTAssertEqual(e.updates.last?.value, .set(true))
        let idle = try decode(dataPoint("hvac.emon.compressor.operationStatus", #""IDLE""#)).get()
        XCTAssertEqual(idle.updates.last?.value, .set(false))
    }

    func testAnUnknownDataPointIsKeptUnderVendorAndNamed() throws {
        let e = try decode(dataPoint("hvac.heatSource.newThing", "7")).get()
        XCTAssertEqual(e.unknown, ["hvac.heatSource.newThing"])
        XCTAssertEqual(e.updates.first?.target, .device)
        XCTAssertEqual(e.updates.first?.path, ["vendor", "hvac.heatSource.newThing"])
    }

    func testAnUnknownEventTypeIsKeptAndNamed() throws {
        let e = try decode(#"{"eventType":"FIRMWARE_UPDATE","gatewayId":"101000001","timestamp":"\#(at)","payload":{"version":"2"}}"#).get()
        XCTAssertEqual(e.unknown, ["event type FIRMWARE_UPDATE"])
        XCTAssertEqual(e.updates.first?.path, ["vendor", "events", "FIRMWARE_UPDATE"])
    }

    func testWrongTypesAreRepairedOrDroppedAndSaidSo() throws {
        let s = try decode(dataPoint("hvac.emon.compressor.powerCurrent", #""1200""#)).get()
        XCTAssertEqual(s.updates.first?.value, .set(1200))
        XCTAssertEqual(s.issues.count, 1)
        guard case .failure(let o) = decode(dataPoint("hvac.emon.compressor.powerCurrent", #"{"w":1}"#)) else { return XCTFail("taken") }
        XCTAssertEqual(o.code, .invalid, "an object where a number belongs is not a value")
        XCTAssertTrue(o.message.contains("expected a number"), o.message)
        guard case .failure(let negative) = decode(dataPoint("hvac.emon.energyConsumptionTotal", "-5")) else { return XCTFail("taken") }
        XCTAssertTrue(negative.message.contains("negative counter"), negative.message)
    }

    func testBadEventsGetTheirCode() {
        func code(_ text: String) -> PushRejection.Code? {
            if case .failure(let r) = decode(text) { return r.code }
            return nil
        }
        XCTAssertEqual(code("garbage"), .malformed)
        XCTAssertEqual(code("[1,2]"), .malformed)
        XCTAssertEqual(code(String(repeating: " ", count: BoschWire.maxEventBytes + 1) + "{}"), .malformed)
        XCTAssertEqual(code(#"{"eventType":"DATA_POINT","timestamp":"\#(at)"}"#), .invalid, "no gateway")
        XCTAssertEqual(code(#"{"eventType":"DATA_POINT","gatewayId":"../x","timestamp":"\#(at)"}"#), .invalid)
        XCTAssertEqual(code(#"{"eventType":"DATA_POINT","gatewayId":"101000001"}"#), .invalid, "no time")
        XCTAssertEqual(code(#"{"gatewayId":"101000001","timestamp":"\#(at)"}"#), .invalid, "no type")
        XCTAssertEqual(code(#"{"eventType":"CONTRACT_STATUS","gatewayId":"101000001","timestamp":"\#(at)","payload":{}}"#), .notForBox)
        XCTAssertEqual(
            code(#"{"eventType":"CONNECTIVITY_STATUS","gatewayId":"101000001","timestamp":"\#(at)","payload":{"status":"MAYBE"}}"#), .invalid)
        XCTAssertEqual(
            code(#"{"eventType":"DATA_POINT","gatewayId":"101000001","gatewayId":"101000002","timestamp":"\#(at)"}"#), .malformed,
            "a key named twice")
    }

    func testConnectivityAndApplianceStatus() throws {
        let off = try decode(#"{"eventType":"CONNECTIVITY_STATUS","gatewayId":"101000001","createdAt":"\#(at)","payload":{"status":"OFFLINE"}}"#)
            .get()
        XCTAssertEqual(off.updates.first?.value, .online(false))
        let fault = try decode(
            #"""
            {"eventType":"APPLIANCE_STATUS","gatewayId":"101000001","createdAt":"\#(at)","payload":{"applianceStatus":"ERROR",
             "faultClass":4,"causeCode":"5243","descriptions":[{"language":"de","text":"Störung"},{"language":"en","text":"Flow sensor fault"}]}}
            """#
        ).get()
        guard case .set(let f)? = fault.updates.first?.value else { return XCTFail("no fault") }
        XCTAssertEqual(f["active"], true)
        XCTAssertEqual(f["class"], 4)
        XCTAssertEqual(f["cause_code"], 5243)
        XCTAssertEqual(f["text"], "Flow sensor fault")
        XCTAssertEqual(f["summary"], "class 4, cause 5243: Flow sensor fault")
        XCTAssertEqual(Set(fault.updates.map(\.target)), [.device, .node("system")])
    }

    func testDailyAggregatesKeepTheirDay() throws {
        let e = try decode(
            #"""
            {"eventType":"DAILY_AGGREGATE","gatewayId":"101000001","timestamp":"2026-12-04T00:05:00Z","payload":{"date":"2026-12-03",
             "aggregates":[{"key":"hvac.compressor.centralHeating.numberOfStarts","value":14},{"key":"hvac.centralHeating.waterPressure.min","value":1.4}]}}
            """#
        ).get()
        XCTAssertEqual(e.updates.map(\.path), [["daily", "water_pressure_min"], ["daily", "compressor_starts_heating"]])
        XCTAssertEqual(e.updates.last?.value, .set(["value": 14, "day": "2026-12-03"]))
    }

    /// The heat pump's energy sensors (the device's meter) as Home Assistant's energy dashboard takes them: kWh,
    /// device class energy, state class total_increasing; power in W as a measurement; no null anywhere; and one
    /// sensor per value (the node announces no second power or energy sensor of its own).
    func testTheHeatPumpNodeAnnouncesSensorsTheEnergyDashboardAccepts() {
        let state: JSONValue = [
            "compressor": ["power_w": 1400, "running": true, "status": "heating"],
            "energy": ["consumed_kwh": 1234.5, "supplied_kwh": 4000],
        ]
        let ha = HomeAssistantDiscovery(enabled: true, prefix: "homeassistant", topics: TopicLayout(base: "hb"), version: "t")
        let d = DeviceSnapshot(id: "bosch-101000001", vendorId: "101000001", online: true, nodes: ["heatpump": state])
        let config = ha.deviceConfig(
            d, names: adapter.frontEndName(d), capabilities: adapter.capabilities(of:),
            exposes: { node, caps in adapter.exposes(node: node, state: d.nodes[node] ?? [:], capabilities: caps) },
            meter: adapter.meterLayout(d))
        let cmps = config["cmps"]?.objectValue ?? [:]
        let energy = cmps.values.filter { $0["device_class"] == "energy" }
        XCTAssertEqual(energy.count, 2)
        XCTAssertEqual(
            Set(energy.compactMap { $0["unique_id"]?.stringValue }),
            ["heatbridge_bosch-101000001_meter_energy_electricity_total", "heatbridge_bosch-101000001_meter_energy_heat_total"])
        XCTAssertEqual(Set(energy.compactMap { $0["state_topic"]?.stringValue }), ["hb/bosch-101000001/state"])
        for e in energy {
            XCTAssertEqual(e["unit_of_measurement"], "kWh")
            XCTAssertEqual(e["state_class"], "total_increasing")
            XCTAssertEqual(e["p"], "sensor")
        }
        let power = cmps.values.first { $0["device_class"] == "power" }
        XCTAssertEqual(power?["unit_of_measurement"], "W")
        XCTAssertEqual(power?["state_class"], "measurement")
        XCTAssertEqual(power?["value_template"], "{{ value_json.get('meter', {}).get('power_w') }}")
        XCTAssertEqual(cmps.values.filter { $0["device_class"] == "power" }.count, 1)
        XCTAssertNotNil(cmps["heatbridge_bosch-101000001_meter_efficiency_today"], "both totals: the day's efficiency")
        XCTAssertNotNil(cmps.values.first { $0["device_class"] == "running" && $0["p"] == "binary_sensor" })
        XCTAssertEqual(adapter.capabilities(of: "heatpump"), [], "a heat source takes no commands")
        XCTAssertFalse(config.serialized.contains("null"))
    }
}

/// The Bosch meter from what events put in the `heatpump` node.
final class BoschMeterTests: XCTestCase {
    let adapter = BoschAdapter(
        transport: ScriptedTransport { _ in .success(HTTPResponse(status: 500)) }, baseURL: "https://api.test",
        apiKey: "xHCSAPI-k", userId: "u", timeout: 2, allowList: nil)

    func testCountersPowerAndUsesAddTheCompressorAndTheElectricHeater() {
        let hp: JSONValue = [
            "pushed_at": "2026-12-05T10:00:00Z",
            "compressor": ["power_w": 1400], "eheater": ["power_w": 3000],
            "energy": ["consumed_kwh": 5000, "supplied_kwh": 18_000, "compressor_dhw_kwh": 700, "eheater_dhw_kwh": 12.5],
            "energy_lowres": ["consumed_kwh": 4999, "compressor_heating_kwh": 3000],
        ]
        let d = DeviceSnapshot(id: "bosch-1", vendorId: "1", online: true, nodes: ["heatpump": hp, "hs1": ["energy": ["consumed_kwh": 1]]])
        let r = adapter.meterReadings(d)
        let at = Timestamp.parse("2026-12-05T10:00:00Z")!
        XCTAssertEqual(r.first { $0.key == nil }, MeterReading.power(4400, source: .measured, at: at))
        func counter(_ k: MeterKey) -> MeterReading.Value? { r.first { $0.key == k }?.value }
        XCTAssertEqual(counter(.electricityTotal), .counter(5000), "the high-resolution counter first")
        XCTAssertEqual(counter(.heatTotal), .counter(18_000))
        XCTAssertEqual(counter(MeterKey(.electricity, .dhw)), .counter(712.5))
        XCTAssertEqual(counter(MeterKey(.electricity, .heating)), .counter(3000), "the low-resolution one when only that comes")
        XCTAssertNil(counter(MeterKey(.electricity, .cooling)))
        XCTAssertEqual(
            adapter.meterLayout(d),
            MeterLayout(power: true, counters: [.electricityTotal, .heatTotal, MeterKey(.electricity, .heating), MeterKey(.electricity, .dhw)]))
    }

    func testAGatewayWithoutEventsHasNoMeter() {
        let d = DeviceSnapshot(id: "bosch-1", vendorId: "1", online: true, nodes: ["hc1": ["setpoint": 21]])
        XCTAssertEqual(adapter.meterReadings(d), [MeterReading]())
        XCTAssertTrue(adapter.meterLayout(d).isEmpty)
    }
}

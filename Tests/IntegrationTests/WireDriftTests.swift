import Foundation
import HeatbridgeCore
import XCTest

/// A real cloud that answers differently from the wire definition (most Bosch shapes are INFERRED): the daemon
/// reads what it can, names the request and field, and degrades only the part it belongs to (#18 item 1).
final class WireDriftTests: XCTestCase {
    func fault(_ h: Harness, path: String, body: JSONValue) throws {
        let f: JSONValue = ["vendor": "bosch", "method": "GET", "path": .string(path), "status": 200, "body": .string(body.serialized)]
        try h.injectFault(f.serialized)
    }

    func testAnAnswerThatDiffersDegradesOnlyItsPart() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let gw = "heatbridge/bosch-101000001"
        c.waitJSON("\(gw)/hc1/state")
        // hc1: a number sent as a string, an unknown enum value, a field of the wrong type, a field the
        // definition does not have. dhw1: a list where an object belongs.
        try fault(
            h, path: "/hvacs/101000001/heatingCircuits/1",
            body: [
                "id": "1", "operationMode": "TURBO", "currentSetPointTemperature": 21, "roomTemperature": "20.5",
                "manualModeSettings": ["setPointTemperature": true],
                "autoModeSettings": ["timeProgramId": "A", "temperatureLevels": ["comfort": 21, "eco": 17]],
                "overridingModes": [], "someNewField": ["x": 1],
            ])
        try fault(h, path: "/hvacs/101000001/dhwCircuits/1", body: [])
        let hc = try XCTUnwrap(c.waitJSON("\(gw)/hc1/state", timeout: 20) { $0["error"] != .null && $0["error"] != nil })
        XCTAssertEqual(hc["room_temperature"]?.doubleValue, 20.5, "a number sent as a string is read")
        XCTAssertEqual(hc["operation_mode"]?.stringValue, "turbo", "an unknown enum value is kept as its string")
        XCTAssertEqual(hc["manual_setpoint"], .null, "the field of the wrong type is null")
        XCTAssertEqual(hc["setpoint"]?.doubleValue, 21, "the rest of the node is still published")
        XCTAssertEqual(hc["vendor"]?["someNewField"], ["x": 1], "an unknown field is kept, as sent, under vendor")
        XCTAssertEqual(hc["error"]?["code"]?.stringValue, "BAD_RESPONSE")
        let fields = hc["error"]?["fields"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(fields.contains("GET /hvacs/101000001/heatingCircuits/1 manualModeSettings.setPointTemperature"), "\(fields)")
        XCTAssertTrue(fields.contains("GET /hvacs/101000001/heatingCircuits/1 roomTemperature"), "\(fields)")
        XCTAssertTrue(hc["error"]?["message"]?.stringValue?.contains("a number sent as a string") == true, "\(hc)")
        let dhw = try XCTUnwrap(c.waitJSON("\(gw)/dhw1/state", timeout: 20) { $0["error"] != .null && $0["error"] != nil })
        XCTAssertEqual(dhw["error"]?["code"]?.stringValue, "BAD_RESPONSE")
        XCTAssertTrue(dhw["error"]?["message"]?.stringValue?.contains("GET /hvacs/101000001/dhwCircuits/1") == true, "\(dhw)")
        // Only those parts: the gateway, its system node, the other gateway and the account are fine.
        h.barrier()
        XCTAssertEqual(c.latest("\(gw)/state")?["error"], .null)
        XCTAssertEqual(c.latest("\(gw)/system/state")?["error"] ?? .null, .null)
        XCTAssertEqual(c.latest("heatbridge/bosch-101000002/hc1/state")?["error"] ?? .null, .null)
        XCTAssertEqual(c.latest("heatbridge/bridge/account/bosch-test")?["state"]?.stringValue, "ready")
        // The cloud back to the definition: the errors go.
        try h.admin("DELETE", "/admin/faults")
        c.waitJSON("\(gw)/hc1/state", timeout: 20) { $0["error"] == nil && $0["vendor"] == nil && $0["operation_mode"] == "auto" }
        c.waitJSON("\(gw)/dhw1/state", timeout: 20) { $0["error"] == nil && $0["operation_mode"] != nil }
    }

    /// `heatbridge probe` (#18 item 2, Bosch): no drift against the simulator; each difference of a mutated
    /// answer reported with its request and field, exit 1; `--save` fixtures without the seeded secrets,
    /// e-mail addresses, names, addresses, serial numbers or the account's key and user id.
    func testProbeReportsDriftAndSavesRedactedFixtures() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        let clean = try h.cli(["probe", "bosch-test"])
        XCTAssertEqual(clean.status, 0, clean.output)
        XCTAssertTrue(clean.output.contains("no drift"), clean.output)
        try h.admin("DELETE", "/admin/requests")

        try fault(
            h, path: "/hvacs/101000001/heatingCircuits/1",
            body: [
                "id": "1", "operationMode": "TURBO", "currentSetPointTemperature": "21", "roomTemp": 20.5,
                "autoModeSettings": ["timeProgramId": "A", "temperatureLevels": ["comfort": 21, "eco": 17]], "overridingModes": [],
                "brandNewField": true,
            ])
        try fault(h, path: "/hvacs/101000001/dhwCircuits/1", body: [])
        let secrets = ["SN-SEEDED-4711", "anna.muster@example.org", "Anna Muster", "Hauptstrasse 12"]
        try fault(
            h, path: "/hvacs/101000001/components",
            body: [
                [
                    "id": "gateway", "type": "GATEWAY", "serialNumber": .string(secrets[0]), "ownerEmail": .string(secrets[1]),
                    "ownerName": .string(secrets[2]), "installationAddress": ["street": .string(secrets[3])],
                ]
            ])
        let fixtures = h.dir.appendingPathComponent("fixtures").path
        let drift = try h.cli(["probe", "bosch-test", "--json", "--save", fixtures])
        XCTAssertEqual(drift.status, 1, drift.output)
        let report = try JSONValue.parse(drift.output.split(separator: "\n").last.map(String.init) ?? "")
        func findings(_ request: String) -> [(String, String)] {
            (report["answers"]?.arrayValue ?? []).filter { $0["request"]?.stringValue == request }
                .flatMap { $0["findings"]?.arrayValue ?? [] }.map { ($0["kind"]?.stringValue ?? "", $0["field"]?.stringValue ?? "") }
        }
        let hc = findings("GET /hvacs/101000001/heatingCircuits/1")
        for expected in [
            ("extra", "roomTemp"), ("missing", "roomTemperature"), ("extra", "brandNewField"), ("type", "currentSetPointTemperature"),
            ("enum", "operationMode"),
        ] {
            XCTAssertTrue(hc.contains { $0 == expected }, "\(expected) not in \(hc)")
        }
        let dhw = findings("GET /hvacs/101000001/dhwCircuits/1")
        XCTAssertTrue(dhw.contains { $0.0 == "unreadable" }, "\(dhw)")
        XCTAssertTrue(findings("GET /hvacs/101000001/components").contains { $0 == ("extra", "0.ownerEmail") })
        XCTAssertGreaterThanOrEqual(report["drifted"]?.intValue ?? 0, 3)
        // Nothing the box must keep to itself is in the fixtures, yet they are the answers (placeholders, stable).
        let files = try FileManager.default.contentsOfDirectory(atPath: fixtures)
        XCTAssertGreaterThan(files.count, 10)
        let all = try files.map { try String(contentsOfFile: fixtures + "/" + $0, encoding: .utf8) }.joined(separator: "\n")
        for s in secrets + [Harness.apiKey, "it-user"] { XCTAssertFalse(all.contains(s), "\(s) is in the fixtures") }
        XCTAssertTrue(all.contains("<serialnumber:"), "serial numbers are replaced, not dropped")
        XCTAssertTrue(all.contains("\"operationMode\":\"TURBO\""), "the drifted answer itself is kept")
        let mode = try FileManager.default.attributesOfItem(atPath: fixtures + "/" + files[0])[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
    }

    /// The round trip (#18 item 3, Bosch): `probe --save` against the simulator → `heatbridge-sim --fixtures` →
    /// the daemon publishes the same node states as against the live simulator. The fixture simulator is told
    /// the gateway went offline meanwhile: the recorded answers, not the simulated ones, are what it serves.
    func testProbeFixturesServedBackGiveTheSameNodeStates() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        let fixtures = h.dir.appendingPathComponent("recorded").path
        let saved = try h.cli(["probe", "bosch-test", "--save", fixtures])
        XCTAssertEqual(saved.status, 0, saved.output)
        let c: TestMQTTClient = h.client
        let nodes = ["hc1", "dhw1", "system"]
        var serials: [String: [JSONValue]] = [:]
        func states() -> [String: JSONValue] {
            var out: [String: JSONValue] = [:]
            for n in nodes {
                guard var o = c.waitJSON("heatbridge/bosch-101000001/\(n)/state", timeout: 20, { $0["source"] == "cloud" })?.objectValue else {
                    continue
                }
                // What depends on when it was read, not on the answers.
                for k in ["updated_at", "source", "stale", "age_s", "schedule_now", "date_time", "clock_offset_s"] { o[k] = nil }
                // Serial numbers are what the recording replaces (placeholders): compared apart.
                if let list = o["components"]?.arrayValue {
                    serials[n, default: []] += list.map { $0["serial_number"] ?? .null }
                    o["components"] = .array(
                        list.map {
                            var x = $0.objectValue ?? [:]
                            x["serial_number"] = nil
                            return .object(x)
                        })
                }
                out[n] = .object(o)
            }
            return out
        }
        try h.startDaemon()
        let live = states()
        XCTAssertEqual(live.count, 3)
        XCTAssertEqual(serials["system"]?.first, "SN-101000001")
        serials = [:]
        XCTAssertEqual(h.stopDaemon(), 0)
        h.stopSim()
        try h.startSim(extra: ["--fixtures", fixtures])
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.admin("POST", "/admin/bosch/gateways/101000001", #"{"online":false}"#)
        c.clear()
        try h.startDaemon()
        let replayed = states()
        XCTAssertEqual(replayed, live)
        XCTAssertEqual(serials["system"]?.first?.stringValue?.hasPrefix("<serialnumber:"), true, "\(serials)")
        let served = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["path"]?.stringValue == "/hvacs/101000001/status" }
        XCTAssertFalse(served.isEmpty, "the daemon did not read the recorded status")
        XCTAssertEqual(
            c.latest("heatbridge/bosch-101000001/state")?["online"], true, "the simulated (offline) answer was served, not the recorded one")
    }

    /// The Podero probe: its heat-pump object against `PoderoWire`'s fields as shapes; a box's fixtures keep
    /// only its own heat pumps and their owner, never the rest of the organisation's listing.
    func testPoderoProbeReportsDriftInTheHeatPumpObject() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, extraAccounts: try h.poderoAccount(devices: "[\"3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b\"]"))
        let clean = try h.cli(["probe", "podero-test", "--json"])
        XCTAssertEqual(clean.status, 0, clean.output)
        let report = try JSONValue.parse(clean.output.split(separator: "\n").last.map(String.init) ?? "")
        let requests = (report["answers"]?.arrayValue ?? []).compactMap { $0["request"]?.stringValue }
        let one = try XCTUnwrap(requests.first { $0.hasSuffix("/heat-pumps/3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b") }, "\(requests)")
        let f: JSONValue = [
            "vendor": "podero", "method": "GET", "path": .string("/api/partners/v2.0" + one.dropFirst(4)), "status": 200,
            "body": .string(
                JSONValue.object([
                    "id": "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b", "current_power_consumption_w": "1450",
                    "current_mode": "turbo", "brand_new_field": 1, "connection_status": 3,
                ]).serialized),
        ]
        try h.injectFault(f.serialized)
        let drift = try h.cli(["probe", "podero-test", "--json"])
        XCTAssertEqual(drift.status, 1, drift.output)
        let found = (try JSONValue.parse(drift.output.split(separator: "\n").last.map(String.init) ?? "")["answers"]?.arrayValue ?? [])
            .filter { $0["request"]?.stringValue == one }.flatMap { $0["findings"]?.arrayValue ?? [] }
            .map { ($0["kind"]?.stringValue ?? "", $0["field"]?.stringValue ?? "") }
        for expected in [
            ("type", "current_power_consumption_w"), ("enum", "current_mode"), ("extra", "brand_new_field"), ("type", "connection_status"),
            ("missing", "optimization_level"),
        ] {
            XCTAssertTrue(found.contains { $0 == expected }, "\(expected) not in \(found)")
        }
    }

    /// The HomeSmartlink probe: a home's device list against the DeviceDTO fields (the doc's required ones are
    /// drift when absent, the online-only ones a note).
    func testHomeSmartlinkProbeReportsDriftInTheDeviceList() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, extraAccounts: try h.hslAccount())
        let clean = try h.cli(["probe", "hsl-test"])
        XCTAssertEqual(clean.status, 0, clean.output)
        let body: JSONValue = [
            "authorisation": ["type": "BASIC", "client": "hsl-demo"],
            "reponse": [["header": "H1", "roomId": "1", "softwareVersion": 42, "category": "Toaster", "online": true, "pv": 20.5]],
        ]
        let f: JSONValue = [
            "vendor": "homesmartlink", "method": "POST", "path": "/partners/1/config", "status": 200, "body": .string(body.serialized),
        ]
        try h.injectFault(f.serialized)
        let drift = try h.cli(["probe", "hsl-test", "--json"])
        XCTAssertEqual(drift.status, 1, drift.output)
        let found = (try JSONValue.parse(drift.output.split(separator: "\n").last.map(String.init) ?? "")["answers"]?.arrayValue ?? [])
            .flatMap { $0["findings"]?.arrayValue ?? [] }.map {
                ($0["kind"]?.stringValue ?? "", $0["field"]?.stringValue ?? "", $0["drift"]?.boolValue ?? false)
            }
        for expected in [
            ("type", "response.0.roomId", true), ("enum", "response.0.category", true), ("type", "response.0.pv", true),
            ("missing", "response.0.roomName", true), ("missing", "response.0.mode", false),
        ] {
            XCTAssertTrue(found.contains { $0 == expected }, "\(expected) not in \(found)")
        }
    }
}

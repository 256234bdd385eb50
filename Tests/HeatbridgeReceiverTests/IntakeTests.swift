import HeatbridgeCore
import HeatbridgeStore
import XCTest

@testable import HeatbridgeReceiver

/// The receiver's routing and its spool, on a real SQLite file.
final class IntakeTests: XCTestCase {
    let map = ScopeMap.parse(
        """
        # boxes.map as relay-ca writes it
        box-1 "bosch:101000001 hsl:64f1c0a2e9b3";
        box-2 "bosch:101000002 podero:u/hp";
        box-3 "bosch:101000009";
        box-4 "bosch:101000009";
        bad line
        """)

    var intake: Intake {
        Intake(scope: map, topicTemplate: "partner/boxes/{box}/heatbridge/push/bosch/{gateway}", partnerTopic: "partner/contracts/{gateway}")
    }

    func event(_ gw: String, type: String = "DATA_POINT", value: Int = 1) -> String {
        #"{"eventType":"\#(type)","gatewayId":"\#(gw)","timestamp":"2026-12-04T10:00:00Z","payload":{"key":"hvac.emon.compressor.powerCurrent","value":\#(value)}}"#
    }

    func testTheScopeMapIsTheRelaysOwnAndAGatewayOfTwoBoxesGoesToNone() {
        XCTAssertEqual(map.boxOf, ["101000001": "box-1", "101000002": "box-2"])
        XCTAssertEqual(map.problems.count, 2, "\(map.problems)")
    }

    func testEachEventGoesToItsBoxsTopicContractsToThePartnerAndTheRestNowhere() throws {
        let routed = try intake.route(
            Array("[\(event("101000001")),\(event("101000002")),\(event("101000009")),\(event("101000001", type: "CONTRACT_STATUS"))]".utf8)
        ).get()
        XCTAssertEqual(routed.map(\.route), [.box("box-1"), .box("box-2"), .noBox, .partner])
        XCTAssertEqual(
            routed.map(\.item.topic),
            [
                "partner/boxes/box-1/heatbridge/push/bosch/101000001", "partner/boxes/box-2/heatbridge/push/bosch/101000002",
                "", "partner/contracts/101000001",
            ])
    }

    func testOneBadEventRefusesTheWholeRequest() {
        for body in [
            "garbage", "[]", "[\(event("101000001")), {\"eventType\":\"DATA_POINT\"}]", #"{"a":1,"a":2}"#, "42",
            "[" + Array(repeating: event("101000001"), count: Intake.maxEventsPerRequest + 1).joined(separator: ",") + "]",
        ] {
            guard case .failure(let r) = intake.route(Array(body.utf8)) else { return XCTFail("taken: \(body.prefix(60))") }
            XCTAssertTrue([400, 413].contains(r.status))
            XCTAssertFalse(r.message.contains("DATA_POINT"), "a refusal quotes nothing of the body")
        }
    }

    func testTheSpoolDropsARepeatHoweverItIsSpacedAndKeepsOrder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let spool = try EventSpool(path: dir.appendingPathComponent("s.db").path)
        let a = try intake.route(Array(event("101000001").utf8)).get()
        let spaced = try intake.route(Array(event("101000001").replacingOccurrences(of: ",", with: " , ").utf8)).get()
        let b = try intake.route(Array(event("101000001", value: 2).utf8)).get()
        XCTAssertEqual(try spool.add(a.map(\.item), now: 1000), [true])
        XCTAssertEqual(try spool.add(spaced.map(\.item) + b.map(\.item), now: 1001), [false, true])
        let pending = try spool.pending(after: 0, limit: 10)
        XCTAssertEqual(pending.count, 2)
        XCTAssertLessThan(pending[0].seq, pending[1].seq)
        try spool.delivered([pending[0].seq])
        XCTAssertEqual(try spool.depth(), 1)
        // Past the window the same event is new again (Bosch does not repeat that late).
        try spool.pruneSeen(before: 1002)
        XCTAssertEqual(try spool.add(a.map(\.item), now: 90_000), [true])
        // An event for no box is remembered but not stored for sending.
        let none = try intake.route(Array(event("101000009").utf8)).get()
        XCTAssertEqual(try spool.add(none.map(\.item), now: 90_001), [true])
        XCTAssertEqual(try spool.add(none.map(\.item), now: 90_002), [false])
        XCTAssertEqual(try spool.depth(), 2)
    }

    func testTheConfigSaysWhatIsWrongWhere() {
        guard case .failure(let errors) = ReceiverConfig.parse("listen: nowhere\ntopic: partner/#\nmqtt:\n  port: 99999\nextra: 1\n", file: "r.yaml")
        else {
            return XCTFail("accepted")
        }
        let ds = errors.diagnostics
        let text = ds.map(\.description).joined(separator: "\n")
        XCTAssertTrue(text.contains("r.yaml:1"), text)
        XCTAssertTrue(text.contains("HOST:PORT"), text)
        XCTAssertTrue(text.contains("{gateway}"), text)
        XCTAssertTrue(text.contains("extra"), text)
        XCTAssertEqual(ds.count, 4, text)
        let ok = try? ReceiverConfig.parse("listen: 0.0.0.0:9000\npartner_topic: null\n", file: "r.yaml").get()
        XCTAssertEqual(ok?.listenPort, 9000)
        XCTAssertNil(ok?.partnerTopic)
    }
}

extension IntakeTests {
    /// The shipped, commented config reads as it says.
    func testTheShippedConfigIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("etc/heatbridge-receiver/receiver.yaml").path
        let c = try ReceiverConfig.parse(try String(contentsOfFile: path, encoding: .utf8), file: path).get()
        XCTAssertEqual(c.listenPort, 8091)
        XCTAssertEqual(c.topicTemplate, "partner/boxes/{box}/heatbridge/push/bosch/{gateway}")
        XCTAssertTrue(c.mqttTLS)
        XCTAssertEqual(c.tokenFile, "$CREDENTIALS_DIRECTORY/token")
    }
}

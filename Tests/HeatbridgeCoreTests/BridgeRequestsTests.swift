import HeatbridgeCore
import XCTest

final class BridgeRequestsTests: XCTestCase {
    func parse(_ payload: String, name: String = "status", retained: Bool = false) -> Result<BridgeRequests.Parsed, BridgeRequests.Failure> {
        BridgeRequests.parse(
            MQTTMessage(topic: "hb/bridge/request/\(name)", payload: Array(payload.utf8), retained: retained), name: name,
            maxPayloadBytes: 200)
    }

    func code(_ r: Result<BridgeRequests.Parsed, BridgeRequests.Failure>) -> String? {
        if case .failure(let f) = r { return f.code.rawValue }
        return nil
    }

    func testParsingEchoesShortTransactionsAndRefusesWhatItCannotCarryOut() throws {
        guard case .success(let ok) = parse(#"{"transaction":"abc","account":"x"}"#, name: "poll") else { return XCTFail() }
        XCTAssertEqual(ok.transaction, "abc")
        XCTAssertEqual(ok.body, ["account": "x"])
        guard case .success(let empty) = parse("") else { return XCTFail() }
        XCTAssertNil(empty.transaction)
        guard case .success(let long) = parse(#"{"transaction":"\#(String(repeating: "t", count: 129))"}"#, name: "status") else {
            return XCTFail()
        }
        XCTAssertNil(long.transaction, "a transaction past 128 characters is not echoed")
        XCTAssertEqual(code(parse("[1]")), "INVALID_PAYLOAD")
        XCTAssertEqual(code(parse("{", name: "poll")), "INVALID_PAYLOAD")
        XCTAssertEqual(code(parse(String(repeating: " ", count: 201))), "PAYLOAD_TOO_LARGE")
        XCTAssertEqual(code(parse("{}", retained: true)), "RETAINED_REQUEST")
        XCTAssertEqual(code(parse("{}", name: "reboot")), "UNKNOWN_REQUEST")
        XCTAssertEqual(BridgeRequests.responseName("health_check"), "health_check")
        XCTAssertEqual(BridgeRequests.responseName("x\u{1}y"), "invalid")
        XCTAssertEqual(BridgeRequests.responseName(String(repeating: "a", count: 65)), "invalid")
    }

    func testLogLevelIsBoundedInTime() {
        guard case .success(let d) = BridgeRequests.logLevel(["level": "debug"]) else { return XCTFail() }
        XCTAssertEqual(d.level, "debug")
        XCTAssertEqual(d.durationS, 600)
        guard case .success(let reset) = BridgeRequests.logLevel(["level": .null]) else { return XCTFail() }
        XCTAssertNil(reset.level)
        if case .success = BridgeRequests.logLevel(["level": "debug", "duration_s": 3601]) { XCTFail("over an hour taken") }
        if case .success = BridgeRequests.logLevel(["level": "verbose"]) { XCTFail("an unknown level taken") }
    }

    func testTheConfigDocumentRedactsSecretsAndURLPasswords() {
        let m = SourceMark(line: 1, column: 1)
        let node = ConfigNode.mapping(
            [
                (
                    key: "mqtt", keyMark: m,
                    value: .mapping(
                        [
                            (key: "url", keyMark: m, value: .scalar("mqtts://box:hunter2@broker.example:8883", m, plain: true)),
                            (key: "password_file", keyMark: m, value: .scalar("/etc/heatbridge/mqtt.pass", m, plain: true)),
                            (key: "password", keyMark: m, value: .scalar("hunter2", m, plain: true)),
                            (key: "keepalive_s", keyMark: m, value: .scalar("30", m, plain: true)),
                            (key: "tls", keyMark: m, value: .scalar("true", m, plain: true)),
                            (key: "client_id", keyMark: m, value: .scalar("30", m, plain: false)),
                        ], m)
                )
            ], m)
        let doc = node.redactedJSON
        XCTAssertEqual(doc["mqtt"]?["url"], "mqtts://<redacted>@broker.example:8883")
        XCTAssertEqual(doc["mqtt"]?["password_file"], "/etc/heatbridge/mqtt.pass")
        XCTAssertEqual(doc["mqtt"]?["password"], "<redacted>")
        XCTAssertEqual(doc["mqtt"]?["keepalive_s"], 30)
        XCTAssertEqual(doc["mqtt"]?["tls"], true)
        XCTAssertEqual(doc["mqtt"]?["client_id"], "30", "a quoted scalar stays a string")
        XCTAssertFalse(doc.serialized.contains("hunter2"))
    }
}

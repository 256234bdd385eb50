import Foundation
import VendorBosch
import XCTest

@testable import HeatbridgeSimulator

/// The Bosch fake must enforce what cloud-apis.md §1 documents, or the daemon's tests prove nothing.
final class BoschCloudTests: XCTestCase {
    let key = ["x-api-key": "xHCSAPI-demo-20270522"]
    let rc = ["x-api-key": "xHCSAPI-demo-20270522", "x-user-id": "u"]

    func testAuthHeadersAndContractConsentOffline() {
        var cloud = BoschCloud.defaultScenario()
        cloud.rateLimitEnabled = false
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs", headers: [:], body: [], now: 0).status, 401)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs", headers: ["x-api-key": "wrong"], body: [], now: 0).status, 401)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs", headers: key, body: [], now: 0).status, 200)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/101000001/heatingCircuits/1", headers: key, body: [], now: 0).status, 400)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/101000001/heatingCircuits/1", headers: rc, body: [], now: 0).status, 200)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/12/status", headers: key, body: [], now: 0).status, 400)
        cloud.gateways["101000001"]!.consentCurrent = false
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/101000001/dhwCircuits/1", headers: rc, body: [], now: 0).status, 451)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/101000001/status", headers: key, body: [], now: 0).status, 200)
        cloud.gateways["101000002"]!.online = false
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/101000002/dhwCircuits/1", headers: rc, body: [], now: 0).status, 504)
        let status = cloud.handle(method: "GET", path: "/hvacs/101000002/status", headers: key, body: [], now: 0)
        XCTAssertEqual(BoschWire.decode(BoschWire.GatewayStatus.self, status.body)?.status, "OFFLINE")
        cloud.gateways["101000002"]!.contract = false
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs/101000002/status", headers: key, body: [], now: 0).status, 403)
    }

    func testChargeChangesStateAndEnds() {
        var cloud = BoschCloud.defaultScenario()
        cloud.rateLimitEnabled = false
        let path = "/hvacs/101000001/dhwCircuits/1/charge"
        let start = BoschWire.encode(BoschWire.DhwCharge(chargeStatus: "START", chargeDuration: 30))
        XCTAssertEqual(cloud.handle(method: "PATCH", path: path, headers: rc, body: start, now: 1000).status, 204)
        var read = BoschWire.decode(BoschWire.DhwCharge.self, cloud.handle(method: "GET", path: path, headers: rc, body: [], now: 1600).body)
        XCTAssertEqual(read?.chargeStatus, "START")
        XCTAssertEqual(read?.chargeRemainingTime, 20)
        read = BoschWire.decode(BoschWire.DhwCharge.self, cloud.handle(method: "GET", path: path, headers: rc, body: [], now: 1000 + 31 * 60).body)
        XCTAssertEqual(read?.chargeStatus, "STOP")
        XCTAssertEqual(cloud.handle(method: "PATCH", path: path, headers: rc, body: Array("{}".utf8), now: 0).status, 400)
        let tooLong = BoschWire.encode(BoschWire.DhwCharge(chargeStatus: "START", chargeDuration: 999))
        XCTAssertEqual(cloud.handle(method: "PATCH", path: path, headers: rc, body: tooLong, now: 0).status, 400)
    }

    func testDocumentedRateLimits() {
        var cloud = BoschCloud.defaultScenario()
        // With a gateway id: burst 3, then 1 per 2 s, per (endpoint, path).
        let p = "/hvacs/101000001/status"
        for _ in 0..<3 { XCTAssertEqual(cloud.handle(method: "GET", path: p, headers: key, body: [], now: 100).status, 200) }
        let limited = cloud.handle(method: "GET", path: p, headers: key, body: [], now: 100)
        XCTAssertEqual(limited.status, 429)
        XCTAssertEqual(limited.headers["retry-after"], "2")
        XCTAssertEqual(
            cloud.handle(method: "GET", path: "/hvacs/101000002/status", headers: key, body: [], now: 100).status, 200, "other path, own bucket")
        XCTAssertEqual(cloud.handle(method: "GET", path: p, headers: key, body: [], now: 102).status, 200)
        // Without a gateway id: burst 5, 2 per second.
        for _ in 0..<5 { XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs", headers: key, body: [], now: 200).status, 200) }
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs", headers: key, body: [], now: 200).status, 429)
        XCTAssertEqual(cloud.handle(method: "GET", path: "/hvacs", headers: key, body: [], now: 200.5).status, 200)
    }

    func testScenarioFile() throws {
        let path = "/tmp/hb-scenario-\(UInt32.random(in: 0...UInt32.max)).yaml"
        let text = """
            bosch:
              api_key: xHCSAPI-test
              rate_limit: false
              gateways:
                - {id: "101000007", brand: ivt, contract: false}
                - {id: "101000008", consent: old, online: false}
            """
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        let cloud = try Scenario.load(path: path).bosch
        XCTAssertEqual(cloud.apiKey, "xHCSAPI-test")
        XCTAssertFalse(cloud.rateLimitEnabled)
        XCTAssertEqual(cloud.gateways.keys.sorted(), ["101000007", "101000008"])
        XCTAssertFalse(cloud.gateways["101000007"]!.contract)
        XCTAssertFalse(cloud.gateways["101000008"]!.consentCurrent)
        XCTAssertFalse(cloud.gateways["101000008"]!.online)
        XCTAssertThrowsError(try Scenario.load(path: "/nonexistent.yaml"))
    }
}

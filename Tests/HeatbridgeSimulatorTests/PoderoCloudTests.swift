import HeatbridgeCore
import VendorPodero
import XCTest

@testable import HeatbridgeSimulator

/// The Podero fake must behave as cloud-apis.md §3 describes, or the daemon's tests prove nothing.
final class PoderoCloudTests: XCTestCase {
    let api = PoderoWire.apiPrefix
    let hp = "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"
    let user = "7d0c2f4e-5b1a-4c3e-9f20-1a2b3c4d5e6f"

    func token(_ cloud: inout PoderoCloud, now: Double, secret: String = "demo-secret") -> (Int, String?) {
        let r = cloud.handle(
            method: "POST", path: PoderoWire.tokenPath,
            headers: ["authorization": Base64.basicAuthorization(user: "demo-client", password: secret)],
            body: Array(#"{"grant_type":"client_credentials"}"#.utf8), now: now)
        return (r.status, (try? JSONValue.parse(r.body))?["access_token"]?.stringValue)
    }

    func testTokensExpireAndGuardEveryCall() throws {
        var cloud = PoderoCloud.defaultScenario()
        cloud.tokenTTL = 100
        XCTAssertEqual(token(&cloud, now: 1000, secret: "wrong").0, 401)
        let (status, tok) = token(&cloud, now: 1000)
        XCTAssertEqual(status, 200)
        let t = try XCTUnwrap(tok)
        let users = "\(api)/org/org-demo/users"
        XCTAssertEqual(cloud.handle(method: "GET", path: users, headers: [:], body: [], now: 1001).status, 401)
        XCTAssertEqual(cloud.handle(method: "GET", path: users, headers: ["authorization": "Bearer \(t)"], body: [], now: 1050).status, 200)
        XCTAssertEqual(cloud.handle(method: "GET", path: users, headers: ["authorization": "Bearer \(t)"], body: [], now: 1101).status, 401)
        XCTAssertEqual(
            cloud.handle(
                method: "GET", path: "\(api)/org/other/users", headers: ["authorization": "Bearer \(token(&cloud, now: 1200).1!)"],
                body: [], now: 1200
            ).status, 403)
    }

    func testStateMovesOnlyOnItsCadence() throws {
        var cloud = PoderoCloud.defaultScenario()
        cloud.stateCadenceS = 600
        let auth = ["authorization": "Bearer \(token(&cloud, now: 1000).1!)"]
        func stamp(_ now: Double) -> String? {
            let r = cloud.handle(method: "GET", path: "\(api)/org/org-demo/users/\(user)/heat-pumps", headers: auth, body: [], now: now)
            return (try? JSONValue.parse(r.body))?.arrayValue?.first?["current_state_last_updated_at"]?.stringValue
        }
        let first = stamp(1001)
        XCTAssertEqual(stamp(1500), first)
        XCTAssertNotEqual(stamp(1700), first)
    }

    func testPartialPutValidationAndConflict() throws {
        var cloud = PoderoCloud.defaultScenario()
        let auth = ["authorization": "Bearer \(token(&cloud, now: 1000).1!)"]
        let path = "\(api)/org/org-demo/users/\(user)/heat-pumps/\(hp)"
        func put(_ body: String) -> BoschCloud.Reply { cloud.handle(method: "PUT", path: path, headers: auth, body: Array(body.utf8), now: 1001) }
        XCTAssertEqual(put(#"{"optimization_level":"Max"}"#).status, 200)
        XCTAssertEqual(cloud.heatPumps[hp]?.object["optimization_level"], "Max")
        XCTAssertEqual(cloud.heatPumps[hp]?.object["dhw_standard_temperature"], 48, "fields not sent stay as they were")
        let bad = put(#"{"optimization_level":"Turbo"}"#)
        XCTAssertEqual(bad.status, 422)
        XCTAssertEqual(PoderoWire.errorDetail(bad.body), "optimization_level: Input should be 'Low', 'Mid' or 'Max'")
        XCTAssertEqual(put(#"{"minimum_temperature_limit":23}"#).status, 422)
        XCTAssertEqual(put(#"{"is_away_mode_enabled":true,"away_mode_end":"2030-01-01T00:00:00Z"}"#).status, 200)
        let conflict = put(#"{"is_pause_power_active":true}"#)
        XCTAssertEqual(conflict.status, 409)
        XCTAssertEqual(PoderoWire.errorDetail(conflict.body), "Power pause is not possible while away mode is active")
    }

    func testOnboardingSessionsValidateTheirEnums() throws {
        var cloud = PoderoCloud.defaultScenario()
        let auth = ["authorization": "Bearer \(token(&cloud, now: 86_400 * 20_000).1!)"]
        func create(_ lang: String, _ zone: String) -> BoschCloud.Reply {
            let body = PoderoAdapter.onboardingBody(
                user: user, language: lang, priceZone: zone, successURL: "https://a", cancelURL: "https://b",
                building: nil, optimize: true)
            return cloud.handle(method: "POST", path: "\(api)/device-onboarding", headers: auth, body: body.bytes, now: 86_400 * 20_000 + 10)
        }
        XCTAssertEqual(create("fr", "AT").status, 422)
        XCTAssertEqual(create("de", "DE").status, 422)
        let ok = create("de", "DE_LU")
        XCTAssertEqual(ok.status, 201)
        let s = try JSONValue.parse(ok.body)
        XCTAssertEqual(s["expiration_date"], "2024-10-05", "end of the next day")
        XCTAssertTrue(s["authentication_url"]?.stringValue?.hasPrefix("https://connect.podero.com?onboarding_session_id=") ?? false)
    }
}

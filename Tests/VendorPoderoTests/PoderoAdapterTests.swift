import HeatbridgeCore
import HeatbridgeTesting
import Synchronization
import XCTest

@testable import VendorPodero

/// A clock that stands still unless the test moves it, whose sleeps return at once (the session tests only ask whether a token is still fresh).
final class StandingClock: Clock {
    let t = Mutex<Double>(1_800_000_000)
    func now() -> EpochSeconds { t.withLock { $0 } }
    func advance(_ s: Double) { t.withLock { $0 += s } }
    func sleep(seconds: Double) async throws { try await Task.sleep(nanoseconds: 1_000_000) }
}

final class PoderoAdapterTests: XCTestCase {
    static let heatPump: JSONValue = [
        "id": "hp1", "connection_status": "ok", "lifecycle_state": "authenticated",
        "device_model": ["manufacturer": "NIBE", "model": "F2120", "device_type": ["short_name": "hp_atw"]],
        "current_power_consumption_w": 900, "current_mode": "low", "dhw_actual_temperature": 46.5, "outdoor_temperature": "4.5",
        "inlet_temperature": "n/a",
        "minimum_temperature_limit": 19, "maximum_temperature_limit": 21.5,
        "dhw_standard_temperature": 48, "minimum_dhw_temperature_limit": 40,
        "current_state_last_updated_at": "2026-11-22T08:00:00Z",
        "actions": [["code": "reauthenticate", "resolution_link": "https://connect.podero.com/x", "secret_ish": "nope"]],
    ]

    /// Token endpoint plus a small API; `apiStatus` lets a test refuse API calls.
    static func transport(
        apiStatus: @escaping @Sendable (HTTPRequest) -> Int = { _ in 200 }, tokenStatus: Int = 200,
        expiresIn: Double = 36_000
    ) -> ScriptedTransport {
        let issued = Mutex(0)
        return ScriptedTransport { r in
            if r.url == "https://p.test/oauth2/token/" {
                guard tokenStatus == 200 else { return .success(HTTPResponse(status: tokenStatus, body: Array(#"{"error":"invalid_client"}"#.utf8))) }
                let n = issued.withLock {
                    $0 += 1
                    return $0
                }
                return .success(
                    HTTPResponse(status: 200, body: Array(#"{"access_token":"tok\#(n)","expires_in":\#(Int(expiresIn)),"token_type":"Bearer"}"#.utf8))
                )
            }
            let status = apiStatus(r)
            if status != 200 { return .success(HTTPResponse(status: status, body: Array(#"{"detail":"nope from cloud"}"#.utf8))) }
            if r.url.hasSuffix("/org/o1/users") {
                return .success(HTTPResponse(status: 200, body: Array(#"[{"id":"u1"},{"id":"u2","deleted_at":"2026-01-01T00:00:00Z"}]"#.utf8)))
            }
            if r.url.hasSuffix("/org/o1/users/u1/heat-pumps") { return .success(HTTPResponse(status: 200, body: JSONValue.array([heatPump]).bytes)) }
            return .success(HTTPResponse(status: 200, body: Array("{}".utf8)))
        }
    }

    func adapter(_ t: ScriptedTransport, clock: StandingClock = StandingClock(), persistence: TokenPersistence = .none) -> (
        PoderoAdapter, PoderoSession
    ) {
        let session = PoderoSession(
            transport: t, tokenURL: PoderoWire.tokenURL(forBase: "https://p.test/api/partners/v2.0"), clientId: "cid",
            clientSecret: "s3cret", timeout: 2, clock: clock, persistence: persistence)
        let client = PoderoClient(transport: t, baseURL: "https://p.test/api/partners/v2.0", orgId: "o1", session: session, timeout: 2)
        return (PoderoAdapter(client: client, allowList: nil, clock: clock), session)
    }

    /// Behind a relay: no token request, no Authorization header, and a 401 is not retried with a new token
    /// (the box has none to renew) but reported as the relay refusing the certificate.
    func testBehindARelayNoTokenIsAskedAndA401NamesTheCertificate() async {
        let t = ScriptedTransport { _ in
            .success(
                HTTPResponse(
                    status: 401, body: Array(#"{"detail":"relay: a valid box certificate is required (FAILED:certificate has expired)"}"#.utf8)))
        }
        let client = PoderoClient(transport: t, baseURL: "https://relay.test/podero/api/partners/v2.0", orgId: "o1", session: nil, timeout: 2)
        do {
            _ = try await client.request("GET", PoderoWire.Path.users("o1"))
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.code, .authFailed)
            XCTAssertTrue(error.message.hasPrefix(CloudError.relayRefusedBox), error.message)
            XCTAssertTrue(error.message.contains("certificate has expired"), error.message)
        }
        let sent = t.requests.withLock { $0 }
        XCTAssertEqual(sent.map(\.url), ["https://relay.test/podero/api/partners/v2.0/org/o1/users"], "one request, no token endpoint")
        XCTAssertNil(sent.first?.headers.first { $0.0 == "Authorization" })
    }

    func testTokenURLIsDerivedFromTheBase() {
        XCTAssertEqual(PoderoWire.tokenURL(forBase: "https://app.podero.com/api/partners/v2.0"), "https://app.podero.com/oauth2/token/")
        XCTAssertEqual(PoderoWire.tokenURL(forBase: "http://127.0.0.1:8480/podero/api/partners/v2.0"), "http://127.0.0.1:8480/podero/oauth2/token/")
    }

    func testDevicesMapToHeatPumpNodes() async throws {
        let t = Self.transport()
        let (a, _) = adapter(t)
        let devices = try await a.fetchDevices()
        XCTAssertEqual(devices.map(\.id), ["podero-hp1"])
        let d = devices[0]
        XCTAssertEqual(d.online, true)
        XCTAssertEqual(d.model, "NIBE F2120")
        XCTAssertEqual(d.attributes["owner_id"], "u1")
        XCTAssertEqual(d.attributes["action_needed"], true)
        // Only code and link of a user action are carried over.
        XCTAssertEqual(d.attributes["actions"], [["code": "reauthenticate", "resolution_link": "https://connect.podero.com/x"]])
        let hp = try XCTUnwrap(d.nodes["hp"])
        XCTAssertEqual(hp["power_w"], 900)
        XCTAssertEqual(hp["temperatures"]?["dhw"], 46.5, "the older field name is read too")
        XCTAssertEqual(hp["temperatures"]?["outdoor"], 4.5, "a number sent as a string is read (#18 item 1)")
        XCTAssertEqual(hp["temperatures"]?["inlet"], .null, "a string that is no number is null, never a string on MQTT")
        XCTAssertEqual(hp["state_updated_at"], "2026-11-22T08:00:00Z")
        // Basic auth on the token call, bearer on the API calls; the deleted user is skipped.
        let reqs = t.requests.withLock { $0 }
        XCTAssertEqual(reqs.first?.headers.first { $0.0 == "Authorization" }?.1, Base64.basicAuthorization(user: "cid", password: "s3cret"))
        XCTAssertEqual(reqs.dropFirst().first?.headers.first { $0.0 == "Authorization" }?.1, "Bearer tok1")
        XCTAssertFalse(reqs.contains { $0.url.contains("/users/u2/") })
    }

    func testTokenIsReusedRenewedBeforeExpiryAndPersisted() async throws {
        let clock = StandingClock()
        let saved = Mutex<[BearerToken]>([])
        let t = Self.transport(expiresIn: 1000)
        let (a, session) = adapter(t, clock: clock, persistence: TokenPersistence(load: { nil }, save: { tok in saved.withLock { $0.append(tok) } }))
        _ = try await a.fetchDevices()
        _ = try await a.fetchDevices()
        var count = await session.tokensIssued
        XCTAssertEqual(count, 1)
        // Renewed ahead of expiry: a tenth of the 1000 s lifetime before it ends.
        clock.advance(905)
        _ = try await a.fetchDevices()
        count = await session.tokensIssued
        XCTAssertEqual(count, 2)
        XCTAssertEqual(saved.withLock { $0.map(\.value) }, ["tok1", "tok2"])
        XCTAssertEqual(saved.withLock { $0.last?.expiresAt }, clock.now() + 900)
    }

    func testConcurrentCallersShareOneTokenRequest() async throws {
        let t = Self.transport()
        let (_, session) = adapter(t)
        async let a = session.bearer()
        async let b = session.bearer()
        async let c = session.bearer()
        let all = try await [a, b, c]
        XCTAssertEqual(Set(all), ["tok1"])
        XCTAssertEqual(t.requests.withLock { $0.filter { $0.url.hasSuffix("/oauth2/token/") }.count }, 1)
    }

    func testAStoredTokenSavesTheTokenCall() async throws {
        let clock = StandingClock()
        let t = Self.transport()
        let stored = BearerToken(value: "stored", expiresAt: clock.now() + 600)
        let (a, _) = adapter(t, clock: clock, persistence: TokenPersistence(load: { stored }, save: { _ in }))
        _ = try await a.fetchDevices()
        let reqs = t.requests.withLock { $0 }
        XCTAssertFalse(reqs.contains { $0.url.hasSuffix("/oauth2/token/") })
        XCTAssertEqual(reqs.first?.headers.first { $0.0 == "Authorization" }?.1, "Bearer stored")
    }

    func testA401RenewsOnceThenFailsAsAuth() async throws {
        // The first API call is refused (revoked token), the retry with a new token succeeds.
        let refusedOnce = Mutex(false)
        let t = Self.transport(apiStatus: { _ in
            refusedOnce.withLock {
                if $0 { return 200 }
                $0 = true
                return 401
            }
        })
        let (a, session) = adapter(t)
        _ = try await a.fetchDevices()
        let count = await session.tokensIssued
        XCTAssertEqual(count, 2)

        // Always 401: one renewal, then AUTH_FAILED (not a loop).
        let t2 = Self.transport(apiStatus: { _ in 401 })
        let (a2, _) = adapter(t2)
        do {
            _ = try await a2.fetchDevices()
            XCTFail("no error")
        } catch {
            XCTAssertEqual(error.code, .authFailed)
            XCTAssertEqual(error.accountState, .authRequired)
        }
        XCTAssertEqual(t2.requests.withLock { $0.count }, 4, "token, call, token, call")

        // Wrong client credentials at the token endpoint.
        let (a3, _) = adapter(Self.transport(tokenStatus: 401))
        do {
            _ = try await a3.fetchDevices()
            XCTFail("no error")
        } catch {
            XCTAssertEqual(error.code, .authFailed)
            XCTAssertFalse(error.message.contains("s3cret"))
        }
    }

    func testCloudErrorsKeepTheCloudsWords() async throws {
        let device = DeviceSnapshot(id: "podero-hp1", vendorId: "hp1", online: true, attributes: ["owner_id": "u1"], nodes: ["hp": Self.heatPump])
        for (status, code) in [(409, ResultCode.conflict), (422, .cloudRejected), (403, .forbidden), (503, .cloudUnavailable), (404, .cloudRejected)]
        {
            let (a, _) = adapter(Self.transport(apiStatus: { $0.method == "PUT" ? status : 200 }))
            let cmd = Command(
                id: "c", device: device.id, node: "hp", capability: "pause", params: ["duration_min": 30], source: "mqtt",
                receivedAt: 0, validUntil: .infinity)
            do {
                _ = try await a.execute(cmd, device: device)
                XCTFail("no error for \(status)")
            } catch {
                XCTAssertEqual(error.code, code, "\(status)")
                XCTAssertTrue(error.message.contains("nope from cloud"), error.message)
            }
        }
        XCTAssertEqual(
            PoderoWire.errorDetail(PoderoWire.validationBody(field: "optimization_level", "Input should be 'Low'")),
            "optimization_level: Input should be 'Low'")
    }

    func testPartialBodiesCarryOnlyTheNamedFields() async throws {
        let clock = StandingClock()
        let t = Self.transport()
        let (a, _) = adapter(t, clock: clock)
        let device = DeviceSnapshot(
            id: "podero-hp1", vendorId: "hp1", online: true, attributes: ["owner_id": "u1"], nodes: ["hp": PoderoAdapterTests.heatPumpNode])
        func run(_ cap: String, _ body: JSONValue) async throws -> JSONValue {
            let params = try a.validate(node: "hp", capability: cap, body: body.objectValue!, device: device)
            let cmd = Command(
                id: "c", device: device.id, node: "hp", capability: cap, params: params, source: "mqtt", receivedAt: 0, validUntil: .infinity)
            _ = try await a.execute(cmd, device: device)
            let put = try XCTUnwrap(t.requests.withLock { $0.last })
            XCTAssertEqual(put.method, "PUT")
            XCTAssertEqual(put.url, "https://p.test/api/partners/v2.0/org/o1/users/u1/heat-pumps/hp1")
            return try JSONValue.parse(put.body ?? [])
        }
        let level = try await run("optimization", ["level": "max"])
        XCTAssertEqual(level, ["optimization_level": "Max"])
        let pause = try await run("pause", ["duration_min": 90])
        XCTAssertEqual(pause, ["is_pause_power_active": true, "pause_power_until": .string(Timestamp.iso8601(clock.now() + 5400))])
        let stop = try await run("pause", ["action": "stop"])
        XCTAssertEqual(stop, ["is_pause_power_active": false])
        let comfort = try await run("comfort", ["max": 22])
        XCTAssertEqual(comfort, ["maximum_temperature_limit": 22])
    }

    static var heatPumpNode: JSONValue {
        PoderoAdapter.snapshot(heatPump, owner: "u1").nodes["hp"]!
    }

    func testBase64() {
        XCTAssertEqual(Base64.encode(Array("cid:s3cret".utf8)), "Y2lkOnMzY3JldA==")
        XCTAssertEqual(Base64.encode(Array("ab".utf8)), "YWI=")
        XCTAssertEqual(Base64.decode("Y2lkOnMzY3JldA==").map { String(decoding: $0, as: UTF8.self) }, "cid:s3cret")
        XCTAssertNil(Base64.decode("not base64!"))
    }
}

import HeatbridgeCore
import HeatbridgeTesting
import XCTest

@testable import VendorHomeSmartlink

final class HSLAdapterTests: XCTestCase {
    /// The box is at UTC+1 (Paris in winter); "today" is 2026-11-22.
    let tz = FixedOffsetTime(offsetS: 3600)
    func at(_ day: Int64, _ minute: Int) -> EpochSeconds { tz.instant(day: day, minute: minute) }
    let today: Int64 = Timestamp.daysFromCivil(2026, 11, 22)

    func testDurationStartsOnTheGridAndEndsOnIt() throws {
        let now = at(today, 14 * 60 + 2) + 30  // 14:02:30 local
        let p = try DerogationRequest.validate(["delta": -2, "duration_min": 90], now: now, localTime: tz)
        let w = DerogationRequest.windows(p, now: now, localTime: tz)
        XCTAssertEqual(w.map(\.start), [14 * 60])  // 14:00: the grid point the command falls in
        XCTAssertEqual(w.map(\.end), [15 * 60 + 30])  // 90 min later: the asked length
        XCTAssertEqual(w.map(\.date), ["2026-11-22"])
        // The issue's case: 120 min at 19:11:59 is 19:10–21:10 (it was 19:10–21:15, 125 min).
        let evening = at(today, 19 * 60 + 11) + 59
        let e = DerogationRequest.windows(
            try DerogationRequest.validate(["delta": -2, "duration_min": 120], now: evening, localTime: tz),
            now: evening, localTime: tz)
        XCTAssertEqual(e.map(\.start), [19 * 60 + 10])
        XCTAssertEqual(e.map(\.end), [21 * 60 + 10])
        XCTAssertEqual(e.map { $0.until - $0.from }, [7200])
        XCTAssertLessThan(evening - e[0].from, 300, "starts before the command by at most what the grid forces")
        // A duration off the grid is rounded up to it: 7 min → 10 min.
        let odd = DerogationRequest.windows(["delta": -1, "duration_min": 7], now: evening, localTime: tz)
        XCTAssertEqual(odd.map { $0.end - $0.start }, [10])
    }

    func testAWindowPastMidnightIsSplitIntoTwoDates() throws {
        let now = at(today, 12 * 60)
        let p = try DerogationRequest.validate(
            ["delta": -1, "start": "22:30", "end": "01:15", "date": "2026-11-22", "end_date": "2026-11-23"],
            now: now, localTime: tz)
        let w = DerogationRequest.windows(p, now: now, localTime: tz)
        XCTAssertEqual(w.map(\.date), ["2026-11-22", "2026-11-23"])
        XCTAssertEqual(w.map(\.start), [1350, 0])
        XCTAssertEqual(w.map(\.end), [1440, 75])
        XCTAssertEqual(w[0].until, w[1].from, "the two halves meet at midnight")
        // A duration crossing midnight splits the same way; one ending exactly at midnight does not.
        let late = at(today, 23 * 60)
        XCTAssertEqual(
            DerogationRequest.windows(["delta": -1, "duration_min": 120], now: late, localTime: tz).map(\.date), ["2026-11-22", "2026-11-23"])
        XCTAssertEqual(DerogationRequest.windows(["delta": -1, "duration_min": 60], now: late, localTime: tz).map(\.end), [1440])
    }

    func testValidationNamesTheField() {
        let now = at(today, 12 * 60)
        let cases: [([String: JSONValue], ResultCode, String)] = [
            (["delta": 6, "duration_min": 30], .outOfRange, "\"delta\" must be -5…+5"),
            (["delta": 0, "duration_min": 30], .outOfRange, "\"delta\" 0"),
            (["delta": "-2", "duration_min": 30], .invalidPayload, "\"delta\" must be a whole number"),
            (["delta": -2, "start": "18:03", "end": "19:00"], .outOfRange, "\"start\" 18:03 is not on the 5-minute grid"),
            (["delta": -2, "start": "18:00", "end": "19:01"], .outOfRange, "\"end\" 19:01"),
            (["delta": -2, "start": "20:00", "end": "18:00"], .outOfRange, "add \"end_date\""),
            (["delta": -2, "start": "6pm", "end": "19:00"], .invalidPayload, "\"start\" must be a local time"),
            (["delta": -2, "start": "18:00", "end": "19:00", "date": "2026-13-01"], .invalidPayload, "\"date\" must be YYYY-MM-DD"),
            (
                ["delta": -2, "start": "18:00", "end": "19:00", "end_date": "2026-11-25"], .outOfRange,
                "\"end_date\" must be the start date or the day after"
            ),
            (["delta": -2, "start": "08:00", "end": "09:00"], .outOfRange, "already over"),
            (["delta": -2, "duration_min": 30, "start": "18:00"], .invalidPayload, "does not go with \"start\""),
            (["delta": -2, "duration_min": 3], .outOfRange, "\"duration_min\" must be 5…1440"),
            (["delta": -2, "duration_min": 30, "room": 1], .invalidPayload, "unknown member \"room\""),
        ]
        for (body, code, text) in cases {
            do {
                _ = try DerogationRequest.validate(body, now: now, localTime: tz)
                XCTFail("accepted \(body)")
            } catch {
                XCTAssertEqual(error.code, code, "\(body)")
                XCTAssertTrue(error.message.contains(text), "\(body): \(error.message)")
            }
        }
    }

    func testEnvelopeIsCheckedAndBothSpellingsRead() {
        func open(_ s: String) -> Result<HSLWire.Envelope, HSLWire.EnvelopeError> { HSLWire.open(Array(s.utf8), clientId: "me") }
        guard case .success(let a) = open(#"{"authorisation":{"type":"BASIC","client":"me"},"reponse":[1]}"#) else { return XCTFail() }
        XCTAssertEqual(a.response, [1])
        guard case .success(let b) = open(#"{"authorisation":{"type":"Basic","client":"me"},"response":{"x":1}}"#) else { return XCTFail() }
        XCTAssertEqual(b.response, ["x": 1])
        guard case .failure(.otherClient) = open(#"{"authorisation":{"type":"BASIC","client":"someone"},"response":[]}"#) else { return XCTFail() }
        guard case .failure(.missingAuthorisation) = open(#"{"response":[]}"#) else { return XCTFail() }
        guard case .failure(.notJSON) = open("<html>") else { return XCTFail() }
        XCTAssertEqual(HSLWire.number("20.5"), 20.5)
        XCTAssertEqual(HSLWire.number("20,5"), 20.5)
        XCTAssertEqual(HSLWire.number(19), 19)
        XCTAssertNil(HSLWire.number("warm"))
    }

    func testScheduleRangesBecomeComfortAndEcoPoints() throws {
        let day: JSONValue = [["start": 360, "end": 510], ["start": 1020, "end": 1440]]
        let s = try XCTUnwrap(HSLAdapter.schedule(.array(Array(repeating: day, count: 7))))
        XCTAssertEqual(s.days[0].map(\.minute), [360, 510, 1020])
        XCTAssertEqual(s.days[0].map(\.level), ["comfort", "eco", "comfort"])
        XCTAssertNil(HSLAdapter.schedule([[]]), "not seven days")
    }

    /// Behind a relay the box has no secret: no Authorization header leaves it, and a 401 is the relay
    /// refusing the box's certificate, not a wrong client secret.
    func testBehindARelayNoAuthorizationIsSentAndA401NamesTheCertificate() async {
        let t = ScriptedTransport { _ in
            .success(
                HTTPResponse(status: 401, body: Array(#"{"message":"relay: a valid box certificate is required (FAILED:certificate revoked)"}"#.utf8))
            )
        }
        let a = HSLAdapter(
            transport: t, baseURL: "https://relay.test/hsl", clientId: "me", clientSecret: nil, homes: ["h1"], timeout: 1,
            clock: ManualClock(), localTime: tz)
        do {
            _ = try await a.fetchDevices()
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.code, .authFailed)
            XCTAssertEqual(error.message, "\(CloudError.relayRefusedBox): relay: a valid box certificate is required (FAILED:certificate revoked)")
        }
        XCTAssertEqual(t.requests.withLock { $0.count }, 1)
        XCTAssertNil(t.requests.withLock { $0.first?.headers.first { $0.0 == "Authorization" } })
    }

    func testAnswersForAnotherClientAreRefused() async {
        let t = ScriptedTransport { _ in
            .success(HTTPResponse(status: 200, body: Array(#"{"authorisation":{"type":"BASIC","client":"partner-4711"},"reponse":[]}"#.utf8)))
        }
        let a = HSLAdapter(
            transport: t, baseURL: "https://h.test", clientId: "me", clientSecret: "s", homes: ["h1"], timeout: 1,
            clock: ManualClock(), localTime: tz)
        do {
            _ = try await a.fetchDevices()
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.code, .badResponse)
            XCTAssertFalse(error.message.contains("partner-4711"), "another partner's id is not repeated")
        }
        XCTAssertEqual(
            t.requests.withLock { $0.first?.headers.first { $0.0 == "Authorization" }?.1 }, Base64.basicAuthorization(user: "me", password: "s"))
    }

    func testAvailabilityFollowsTheGateway() async throws {
        func devices(gateway: String, gatewayDeviceOnline: Bool) -> ScriptedTransport {
            let body = """
                {"authorisation":{"type":"BASIC","client":"me"},"gateway":\(gateway),"reponse":[
                 {"header":"GW","roomId":0,"roomName":"","softwareVersion":1,"category":"Gateway","online":\(gatewayDeviceOnline)},
                 {"header":"H1","roomId":1,"roomName":"Living","softwareVersion":1,"category":"Heater","online":true,"mode":"Manual","sp":20,"pv":"19.5"}]}
                """
            return ScriptedTransport { _ in .success(HTTPResponse(status: 200, body: Array(body.utf8))) }
        }
        func online(_ t: ScriptedTransport) async throws -> Bool? {
            try await HSLAdapter(
                transport: t, baseURL: "https://h.test", clientId: "me", clientSecret: "s", homes: ["h1"], timeout: 1,
                clock: ManualClock(), localTime: tz
            ).fetchDevices().first?.online
        }
        let ok = try await online(devices(gateway: #"{"token":"GW","version":"1"}"#, gatewayDeviceOnline: true))
        XCTAssertEqual(ok, true)
        let gwDown = try await online(devices(gateway: #"{"token":"GW","version":"1"}"#, gatewayDeviceOnline: false))
        XCTAssertEqual(gwDown, false)
        let noGateway = try await online(devices(gateway: "null", gatewayDeviceOnline: true))
        XCTAssertEqual(noGateway, false)
    }
}

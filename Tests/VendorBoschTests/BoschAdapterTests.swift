import HeatbridgeCore
import HeatbridgeTesting
import Synchronization
import VendorBosch
import XCTest

final class BoschAdapterTests: XCTestCase {
    func adapter(_ t: ScriptedTransport) -> BoschAdapter {
        BoschAdapter(transport: t, baseURL: "https://api.test", apiKey: "xHCSAPI-k", userId: "u1", timeout: 2, allowList: nil)
    }

    let device = DeviceSnapshot(id: "bosch-1", vendorId: "101000001", online: true, nodes: ["dhw1": [:], "hc1": [:]])

    func command(_ params: JSONValue) -> Command {
        Command(id: "c", device: "bosch-1", node: "dhw1", capability: "charge", params: params, source: "mqtt", receivedAt: 0, validUntil: 60)
    }

    func testChargeRequestCarriesHeadersAndBody() async throws {
        let t = ScriptedTransport { _ in .success(HTTPResponse(status: 204)) }
        let msg = try await adapter(t).execute(command(["action": "start", "duration_min": 30]), device: device)
        XCTAssertEqual(msg, "charge started for 30 min")
        let r = try XCTUnwrap(t.requests.withLock { $0.first })
        XCTAssertEqual(r.method, "PATCH")
        XCTAssertEqual(r.url, "https://api.test/hvacs/101000001/dhwCircuits/1/charge")
        XCTAssertTrue(r.headers.contains { $0 == ("x-api-key", "xHCSAPI-k") })
        XCTAssertTrue(r.headers.contains { $0 == ("x-user-id", "u1") })
        XCTAssertEqual(try JSONValue.parse(r.body ?? []), ["chargeStatus": "START", "chargeDuration": 30])
    }

    /// Bosch's request id travels with the error (#18 item 4): from the body's `requestId`, else a request-id
    /// header; something that does not look like an id is dropped, never echoed.
    func testTheCloudsRequestIdIsKeptForSupport() {
        let body = BoschAdapter.classify(
            HTTPResponse(status: 400, body: Array(#"{"message":"bad","requestId":"9f2c-77:a"}"#.utf8)),
            method: "PATCH", path: "/x")
        XCTAssertEqual(body.requestId, "9f2c-77:a")
        XCTAssertTrue(body.description.hasSuffix("(request id 9f2c-77:a)"), body.description)
        let header = BoschAdapter.classify(HTTPResponse(status: 503, headers: ["x-request-id": "abc-123"]), method: "GET", path: "/x")
        XCTAssertEqual(header.requestId, "abc-123")
        let forged = BoschAdapter.classify(HTTPResponse(status: 400, body: Array(#"{"requestId":"x\n<0>FORGED"}"#.utf8)), method: "GET", path: "/x")
        XCTAssertNil(forged.requestId)
    }

    func testErrorClassification() async {
        let cases: [(Result<HTTPResponse, HTTPTransportError>, ResultCode)] = [
            (.success(HTTPResponse(status: 401, body: Array(#"{"message":"Unauthorized"}"#.utf8))), .authFailed),
            (.success(HTTPResponse(status: 403)), .forbidden),
            (.success(HTTPResponse(status: 451)), .consentRequired),
            (.success(HTTPResponse(status: 504)), .deviceOffline),
            (.success(HTTPResponse(status: 429, headers: ["retry-after": "7"])), .rateLimited),
            (.success(HTTPResponse(status: 500, body: Array("<html>".utf8))), .cloudUnavailable),
            (.success(HTTPResponse(status: 400)), .cloudRejected),
            (.failure(.timeout), .cloudUnavailable),
            (.failure(.connection("Couldn't connect to server")), .cloudUnavailable),
        ]
        for (answer, expected) in cases {
            let t = ScriptedTransport { _ in answer }
            do {
                _ = try await adapter(t).execute(command(["action": "stop"]), device: device)
                XCTFail("no error for \(answer)")
            } catch {
                XCTAssertEqual(error.code, expected, "\(answer)")
                XCTAssertFalse(error.message.contains("xHCSAPI-k"))
                if case .rateLimited(let after) = error.kind { XCTAssertEqual(after, 7) }
            }
        }
    }

    func testReadsGatewaysAndMapsDeviceErrors() async throws {
        let t = ScriptedTransport.routes([
            "/hvacs": (200, #"[{"gatewayId":"101000001","brand":"ivt"},{"gatewayId":"101000002"}]"#),
            "/hvacs/101000001/status": (200, #"{"status":"ONLINE"}"#),
            "/hvacs/101000001/heatingCircuits": (200, #"[{"id":"1"}]"#),
            "/hvacs/101000001/dhwCircuits": (200, #"[{"id":"1"}]"#),
            "/hvacs/101000001/heatingCircuits/1": (200, #"{"id":"1","operationMode":"MANUAL","currentSetPointTemperature":19.5}"#),
            "/hvacs/101000001/dhwCircuits/1": (200, #"{"id":"1","operationMode":"ECO","actualTemperature":41}"#),
            "/hvacs/101000001/dhwCircuits/1/charge": (200, #"{"chargeStatus":"START","chargeDuration":30,"chargeRemainingTime":12}"#),
            "/hvacs/101000002/status": (403, ""),
        ])
        let devices = try await adapter(t).fetchDevices()
        XCTAssertEqual(devices.map(\.id), ["bosch-101000001", "bosch-101000002"])
        XCTAssertEqual(devices[0].nodes["hc1"]?["operation_mode"], "manual")
        XCTAssertEqual(devices[0].nodes["hc1"]?["setpoint"], 19.5)
        XCTAssertEqual(devices[0].nodes["dhw1"]?["charge"]?["remaining_min"], 12)
        XCTAssertEqual(devices[1].error?.code, .forbidden)
        XCTAssertTrue(devices[1].nodes.isEmpty)
        // Remote-control reads carry x-user-id; the list does not need it.
        let reqs = t.requests.withLock { $0 }
        XCTAssertFalse(reqs.first { $0.url.hasSuffix("/hvacs") }!.headers.contains { $0.0 == "x-user-id" })
        XCTAssertTrue(reqs.first { $0.url.hasSuffix("/heatingCircuits/1") }!.headers.contains { $0.0 == "x-user-id" })
    }

    func testGarbageBodyIsBadResponseAnd429FailsTheAccount() async {
        let garbage = ScriptedTransport { _ in .success(HTTPResponse(status: 200, body: Array("<html>".utf8))) }
        do {
            _ = try await adapter(garbage).fetchDevices()
            XCTFail()
        } catch { XCTAssertEqual(error.code, .badResponse) }
        let limited = ScriptedTransport { _ in .success(HTTPResponse(status: 429)) }
        do {
            _ = try await adapter(limited).fetchDevices()
            XCTFail()
        } catch { XCTAssertEqual(error.accountState, .rateLimited) }
    }

    /// A cloud answer naming a key twice is unreadable (a strict JSON decoder would silently take one), and the
    /// device that answer belongs to says why.
    func testAnAnswerNamingAKeyTwiceIsNotRead() async {
        let (value, issues) = BoschWire.decodeTolerant([BoschWire.Gateway].self, Array(#"[{"gatewayId":"101000001","gatewayId":"101000009"}]"#.utf8))
        XCTAssertNil(value)
        XCTAssertEqual(issues.first?.problem, #"names a key twice (duplicate key "gatewayId")"#)
        let twice = ScriptedTransport { _ in
            .success(HTTPResponse(status: 200, body: Array(#"[{"gatewayId":"101000001","gatewayId":"101000009"}]"#.utf8)))
        }
        do {
            _ = try await adapter(twice).fetchDevices()
            XCTFail("read")
        } catch {
            XCTAssertEqual(error.code, .badResponse)
            XCTAssertTrue(error.message.contains("names a key twice"), error.message)
        }
    }

    func testValidation() {
        let a = adapter(ScriptedTransport { _ in .success(HTTPResponse(status: 204)) })
        func code(_ node: String, _ cap: String, _ body: [String: JSONValue]) -> ResultCode? {
            do {
                _ = try a.validate(node: node, capability: cap, body: body, device: device)
                return nil
            } catch { return error.code }
        }
        XCTAssertNil(code("dhw1", "charge", ["action": "start"]))
        XCTAssertEqual(code("dhw2", "charge", ["action": "start"]), .unknownTarget)
        XCTAssertEqual(code("hc1", "charge", ["action": "start"]), .unsupported)
        XCTAssertEqual(code("dhw1", "charge", ["action": "start", "duration_min": 9999]), .outOfRange)
    }

    func testReadsTheHeatingTimeProgram() async throws {
        let t = ScriptedTransport.routes([
            "/hvacs": (200, #"[{"gatewayId":"101000001"}]"#),
            "/hvacs/101000001/status": (200, #"{"status":"ONLINE"}"#),
            "/hvacs/101000001/heatingCircuits": (200, #"[{"id":"1"},{"id":"2"}]"#),
            "/hvacs/101000001/dhwCircuits": (200, "[]"),
            "/hvacs/101000001/heatingCircuits/1": (
                200, #"{"id":"1","operationMode":"AUTO","autoModeSettings":{"timeProgramId":"A","temperatureLevels":{"comfort":21.5,"eco":16}}}"#
            ),
            "/hvacs/101000001/heatingCircuits/2": (200, #"{"id":"2","operationMode":"AUTO","autoModeSettings":{"timeProgramId":"B"}}"#),
            "/hvacs/101000001/heatingCircuits/1/timePrograms/A": (
                200,
                #"{"id":"A","switchPoints":[{"dayOfWeek":"Mo","time":360,"setpoint":"comfort"},{"dayOfWeek":"Mo","time":1320,"setpoint":"eco"},{"dayOfWeek":"Xx","time":1,"setpoint":"eco"}]}"#
            ),
        ])
        let d = try await adapter(t).fetchDevices()
        let program = try XCTUnwrap(d.first?.schedules["hc1"])
        XCTAssertEqual(program.days[0], [.init(minute: 360, level: "comfort"), .init(minute: 1320, level: "eco")])
        XCTAssertTrue(program.days[1...].allSatisfy(\.isEmpty))
        XCTAssertEqual(program.levels, ["comfort": 21.5, "eco": 16])
        XCTAssertNil(d.first?.schedules["hc2"], "a 404 program is no program, not a failed gateway")
        XCTAssertNil(d.first?.error)
    }

    func testModeChangeUnderAnOverridingModeSaysItIsNotEffective() async throws {
        let t = ScriptedTransport { _ in .success(HTTPResponse(status: 204)) }
        let dev = DeviceSnapshot(
            id: "bosch-1", vendorId: "101000001", online: true,
            nodes: ["hc1": ["operation_mode": "auto", "overriding_modes": ["holiday"]]])
        let a = adapter(t)
        let params = try a.validate(node: "hc1", capability: "mode", body: ["mode": "Manual"], device: dev)
        XCTAssertEqual(params, ["mode": "MANUAL"])
        let cmd = Command(id: "m", device: "bosch-1", node: "hc1", capability: "mode", params: params, source: "mqtt", receivedAt: 0, validUntil: 60)
        let msg = try await a.execute(cmd, device: dev)
        XCTAssertEqual(msg, "operation mode set to manual; not effective while holiday is active")
        let r = try XCTUnwrap(t.requests.withLock { $0.first })
        XCTAssertEqual(r.method, "PATCH")
        XCTAssertEqual(r.url, "https://api.test/hvacs/101000001/heatingCircuits/1")
        XCTAssertEqual(try JSONValue.parse(r.body ?? []), ["operationMode": "MANUAL"])
    }

    func testNotFoundAndOfflineAnswersAreNotAskedAgainEveryPoll() async throws {
        let t = ScriptedTransport.routes([
            "/hvacs": (200, #"[{"gatewayId":"101000001"}]"#),
            "/hvacs/101000001/status": (200, #"{"status":"ONLINE"}"#),
            "/hvacs/101000001/heatingCircuits": (200, #"[{"id":"1"}]"#),
            "/hvacs/101000001/dhwCircuits": (200, "[]"),
            "/hvacs/101000001/heatingCircuits/1": (200, #"{"id":"1","autoModeSettings":{"timeProgramId":"A"}}"#),
        ])
        let clock = ManualClock()
        let a = BoschAdapter(
            transport: t, baseURL: "https://api.test", apiKey: "k", userId: "u", timeout: 2, allowList: nil,
            answerCache: AnswerCache(clock: clock))
        let program = "/hvacs/101000001/heatingCircuits/1/timePrograms/A"
        func asked() -> Int { t.requests.withLock { $0.filter { $0.url.hasSuffix(program) }.count } }
        _ = try await a.fetchDevices()
        _ = try await a.fetchDevices()
        XCTAssertEqual(asked(), 1, "a 404 was asked again on the next poll")
        await clock.advance(by: BoschAdapter.notFoundTTL + 1)
        _ = try await a.fetchDevices()
        XCTAssertEqual(asked(), 2, "after its time the 404 is checked again")
    }

    func testHealthDownTakesTheAccountOfflineWithoutFurtherCalls() async {
        let t = ScriptedTransport.routes(["/health": (200, #"{"status":"DOWN"}"#), "/hvacs": (200, "[]")])
        do {
            _ = try await adapter(t).fetchDevices()
            XCTFail("a DOWN health must fail the poll")
        } catch {
            XCTAssertEqual(error.accountState, .offline)
            XCTAssertTrue(error.message.contains("DOWN"), error.message)
        }
        XCTAssertEqual(t.requests.withLock { $0.map(\.url) }, ["https://api.test/health"])
        // UP (or no /health at all, as in the other tests) lets the poll go on.
        let up = ScriptedTransport.routes(["/health": (200, #"{"status":"UP"}"#), "/hvacs": (200, "[]")])
        let none = try? await adapter(up).fetchDevices()
        XCTAssertEqual(none?.count, 0)
    }

    func testKeyRotationStoresTheNewKeyBeforeUsingIt() async throws {
        let issued = Mutex(0)
        let t = ScriptedTransport { r in
            if r.method == "POST" && r.url.hasSuffix("/api-keys") {
                let n = issued.withLock {
                    $0 += 1
                    return $0
                }
                return .success(
                    HTTPResponse(
                        status: 201, body: Array(#"{"keyId":"k\#(n)","apiKey":"xHCSAPI-new\#(n)-20270601","expiresAt":"2027-06-01T00:00:00Z"}"#.utf8))
                )
            }
            return .success(HTTPResponse(status: 200, body: Array("[]".utf8)))
        }
        let stored = Mutex<[String]>([])
        let failWith = Mutex<String?>("No space left on device")
        let rotation = BoschKey.Rotation(retryS: 3600) { key in
            if let e = failWith.withLock({ $0 }) { return e }
            stored.withLock { $0.append(key) }
            return nil
        }
        let a = BoschAdapter(
            transport: t, baseURL: "https://api.test", apiKey: "xHCSAPI-old-20261201", userId: "u", timeout: 2, allowList: nil,
            rotation: rotation)
        let now = Timestamp.parse("2026-11-22T00:00:00Z")!
        func keyUsed() async throws -> String? {
            _ = try await a.fetchDevices()
            return t.requests.withLock { $0.last?.headers.first { $0.0 == "x-api-key" }?.1 }
        }
        // The store fails (full disk): the old key stays in use and nothing secret is in the reason.
        guard case .failed(let why)? = await a.renewCredential(now: now) else { return XCTFail("rotation was due") }
        XCTAssertTrue(why.contains("No space left"), why)
        XCTAssertFalse(why.contains("xHCSAPI"), "the key must not appear in the reason")
        let afterFailure = try await keyUsed()
        XCTAssertEqual(afterFailure, "xHCSAPI-old-20261201")
        let tooSoon = await a.renewCredential(now: now + 60)
        XCTAssertNil(tooSoon, "a failed rotation is retried after retry_s, not on every poll")
        failWith.withLock { $0 = nil }
        let renewed = await a.renewCredential(now: now + 3601)
        XCTAssertEqual(renewed, .renewed(expires: Timestamp.parse("2027-06-01T00:00:00Z")))
        XCTAssertEqual(stored.withLock { $0 }, ["xHCSAPI-new2-20270601"])
        let afterRotation = try await keyUsed()
        XCTAssertEqual(afterRotation, "xHCSAPI-new2-20270601")
        XCTAssertEqual(a.credentialExpiry(), Timestamp.parse("2027-06-01T00:00:00Z"))
        let notDue = await a.renewCredential(now: now + 7200)
        XCTAssertNil(notDue, "a fresh key is not rotated again")
        // Without rotation configured nothing happens, however close the expiry.
        let plain = BoschAdapter(transport: t, baseURL: "https://api.test", apiKey: "xHCSAPI-old-20261201", userId: "u", timeout: 2, allowList: nil)
        let off = await plain.renewCredential(now: now)
        XCTAssertNil(off)
    }

    /// A holiday entirely in the past is refused naming the field (#17 item 14); one ending today is not.
    func testAHolidayInThePastIsRefused() {
        let clock = ManualClock(start: 1_795_000_000)  // 2026-11-18T…Z
        let a = BoschAdapter(
            transport: ScriptedTransport { _ in .success(HTTPResponse(status: 204)) }, baseURL: "https://api.test",
            apiKey: "xHCSAPI-k", userId: "u1", timeout: 2, allowList: nil, clock: clock)
        var d = device
        d.nodes["system"] = ["holidays": []]
        func check(_ start: String, _ end: String) -> CommandRejection? {
            do {
                _ = try a.validate(
                    node: "system", capability: "holiday", body: ["action": "create", "start": .string(start), "end": .string(end)], device: d)
                return nil
            } catch { return error }
        }
        let past = check("2026-08-01", "2026-08-14")
        XCTAssertEqual(past?.code, .outOfRange)
        XCTAssertTrue(past?.message.contains("\"end\" 2026-08-14 is in the past") == true, "\(String(describing: past))")
        XCTAssertNil(check("2026-11-10", "2026-11-18"), "a holiday ending today still acts today")
        XCTAssertNil(check("2026-12-20", "2027-01-03"))
    }

    func testSystemDhwScheduleAndDateTimeValidation() {
        let a = adapter(ScriptedTransport { _ in .success(HTTPResponse(status: 204)) })
        var d = device
        d.nodes["system"] = ["date_time": "2026-11-22T10:00:00", "silent_mode": .null, "holidays": .null]
        d.schedules["dhw1"] = WeekSchedule(days: Array(repeating: [], count: 7), levels: ["eco": 45, "low": 50, "high": 55])
        func code(_ node: String, _ cap: String, _ body: [String: JSONValue]) -> ResultCode? {
            do {
                _ = try a.validate(node: node, capability: cap, body: body, device: d)
                return nil
            } catch { return error.code }
        }
        XCTAssertNil(code("system", "date-time", ["sync": true]))
        XCTAssertNil(code("system", "date-time", ["date_time": "2026-11-22T10:00:00"]))
        XCTAssertEqual(code("system", "date-time", ["date_time": "2026-11-22T10:00:00Z"]), .invalidPayload, "local time has no zone")
        XCTAssertEqual(code("system", "date-time", ["date_time": "2026-13-01T10:00:00"]), .invalidPayload)
        XCTAssertEqual(code("system", "date-time", ["date_time": "2019-12-31T23:00:00"]), .outOfRange)
        XCTAssertEqual(code("system", "date-time", ["sync": false]), .invalidPayload)
        XCTAssertEqual(code("system", "date-time", ["sync": true, "date_time": "2026-11-22T10:00:00"]), .invalidPayload)
        XCTAssertEqual(code("system", "date-time", [:]), .invalidPayload)
        XCTAssertNil(code("system", "detect", [:]))
        XCTAssertEqual(code("system", "detect", ["now": true]), .invalidPayload)
        let empty: JSONValue = []
        var days: [String: JSONValue] = Dictionary(uniqueKeysWithValues: WeekSchedule.dayNames.map { ($0, empty) })
        days["mon"] = [["at": "05:30", "level": "high"], ["at": "21:00", "level": "eco"]]
        XCTAssertNil(code("dhw1", "schedule", ["days": .object(days)]))
        days["mon"] = [["at": "05:30", "level": "comfort"]]
        XCTAssertEqual(code("dhw1", "schedule", ["days": .object(days)]), .outOfRange, "comfort is not a DHW level")
        days["mon"] = .array((0..<7).map { ["at": .string("0\($0):00"), "level": "eco"] })
        XCTAssertEqual(code("dhw1", "schedule", ["days": .object(days)]), .outOfRange, "7 switch points in a day")
    }

    func testGatewayClockOffsetIsMeasuredAgainstTheBoxLocalTime() async throws {
        let clock = ManualClock()
        let local = FixedOffsetTime(offsetS: 3600)
        // The gateway runs 2 minutes ahead of the box's local time.
        let gatewayTime = BoschAdapter.localDateTime(clock.now() + 120, local)
        let t = ScriptedTransport.routes([
            "/hvacs": (200, #"[{"gatewayId":"101000001"}]"#),
            "/hvacs/101000001/status": (200, #"{"status":"ONLINE"}"#),
            "/hvacs/101000001/heatingCircuits": (200, "[]"),
            "/hvacs/101000001/dhwCircuits": (200, "[]"),
            "/hvacs/101000001/system/dateTime": (200, #"{"dateTime":"\#(gatewayTime)"}"#),
            "/hvacs/101000001/components": (200, #"[{"type":"GATEWAY","softwareVersion":"05.04.00","serialNumber":"SN1"}]"#),
        ])
        let a = BoschAdapter(
            transport: t, baseURL: "https://api.test", apiKey: "k", userId: "u", timeout: 2, allowList: nil,
            answerCache: AnswerCache(clock: clock), clock: clock, localTime: local)
        let system = try await a.fetchDevices().first?.nodes["system"]
        XCTAssertEqual(system?["clock_offset_s"], 120)
        XCTAssertEqual(system?["date_time"]?.stringValue, gatewayTime)
        XCTAssertEqual(system?["components"]?.arrayValue?.first?["type"], "GATEWAY")
        XCTAssertEqual(system?["components"]?.arrayValue?.first?["software_version"], "05.04.00")
        // Clock and components are synced hourly, not every poll; the offset stays what it was measured, polls
        // later (it used to drift by the time since the read: the cached answer was re-stamped on every poll).
        func syncReads() -> Int { t.requests.withLock { $0.filter { $0.url.hasSuffix("/dateTime") || $0.url.hasSuffix("/components") }.count } }
        for _ in 0..<5 {
            await clock.advance(by: 60)
            let again = try await a.fetchDevices().first?.nodes["system"]
            XCTAssertEqual(again?["clock_offset_s"], 120)
        }
        XCTAssertEqual(syncReads(), 2)
        // After the hour the clock is read again (the cache no longer renews itself on every hit).
        await clock.advance(by: BoschAdapter.syncTTL)
        _ = try await a.fetchDevices()
        XCTAssertEqual(syncReads(), 4)
    }
}

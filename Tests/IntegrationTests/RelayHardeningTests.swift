import Foundation
import HeatbridgeCore
import HeatbridgeHTTP
import Synchronization
import XCTest

/// The relay as a thief holding one box's certificate and key would try it (issue #24): one test per finding,
/// each against real nginx with njs and the simulator as the clouds.
extension RelayTests {
    var base: (Relay) -> String { { "https://127.0.0.1:\($0.port)" } }

    func options(_ relay: Relay, _ box: String) -> ConnectionOptions {
        let (cert, key) = relay.box(box)
        return ConnectionOptions(caFile: relay.caFile, clientCertFile: cert, clientKeyFile: key)
    }

    /// One request with the box's own extra headers.
    func send(_ url: String, method: String = "GET", headers: [(String, String)], body: String? = nil, options: ConnectionOptions) -> Result<
        HTTPResponse, HTTPTransportError
    > {
        let t = AccountTransport(CurlTransport(), options: options)
        return blockingSend(t, HTTPRequest(method: method, url: url, headers: headers, body: body.map { Array($0.utf8) }, timeout: 5))
    }

    /// nginx started again, its clock `days` ahead, as a relay host would be that many days on: libfaketime
    /// preloaded into nginx itself (the `faketime` wrapper would stand between the test and nginx's process).
    func restart(_ relay: inout Relay, _ h: Harness, daysAhead days: Int) throws {
        stop(relay)
        let lib = try XCTUnwrap(
            try runShell("ls /usr/lib/*/faketime/libfaketime.so.1").output.split(separator: "\n").first.map(String.init),
            "libfaketime is not installed (Scripts/test installs the faketime package)")
        relay.process = try h.launch(
            "/usr/sbin/nginx", ["-c", relay.conf, "-g", "daemon off;"], log: "nginx.log",
            env: ["LD_PRELOAD": lib, "FAKETIME": "+\(days)d"])
        try h.waitForPort(relay.port, what: "nginx relay (\(days) days ahead)")
    }

    func requests(_ h: Harness) throws -> [JSONValue] { try h.admin("GET", "/admin/requests").arrayValue ?? [] }

    /// F3: the CRL lives 30 days; nginx refuses every box once it is past. The renewal the timer runs (the
    /// rendered unit's own commands) keeps boxes working past that, and `status` warns before anything lapses.
    func testTheRelayRenewsItsCRLAndCertificatesBeforeTheyLapse() throws {
        let h = try Harness()
        defer { h.stopAll() }
        var relay = try startRelay(h, scopes: ["box-1": "bosch:101000001"])
        defer { stop(relay) }
        let box1 = options(relay, "box-1")
        let status = "\(base(relay))/bosch/hvacs/101000001/status"
        XCTAssertEqual(try send(status, options: box1).get().status, 200)

        // 31 days on without a renewal: every box is refused (the finding).
        try restart(&relay, h, daysAhead: 31)
        let lapsed = try send(status, options: box1).get()
        XCTAssertEqual(lapsed.status, 401)
        XCTAssertTrue(String(decoding: lapsed.body, as: UTF8.self).contains("CRL has expired"), String(decoding: lapsed.body, as: UTF8.self))

        // The renewal runs from a systemd timer; the units come rendered with the relay's paths and are valid.
        let units = relay.run.appendingPathComponent("systemd")
        let verify = try runShell("systemd-analyze verify --recursive-errors=no \(units.path)/*.service \(units.path)/*.timer 2>&1")
        XCTAssertEqual(verify.output.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze verify: \(verify.output)")
        let timer = try String(contentsOf: units.appendingPathComponent("heatbridge-relay-renew.timer"), encoding: .utf8)
        XCTAssertTrue(timer.contains("OnCalendar=daily") && timer.contains("Persistent=true"), timer)
        let service = try String(contentsOf: units.appendingPathComponent("heatbridge-relay-renew.service"), encoding: .utf8)
        let renewCommands = service.split(separator: "\n").filter { $0.hasPrefix("ExecStart=") }.map { String($0.dropFirst("ExecStart=".count)) }
        let statusCommand = try XCTUnwrap(service.split(separator: "\n").first { $0.hasPrefix("ExecStartPost=") && $0.contains("relay-ca status") })
            .dropFirst("ExecStartPost=".count)
        XCTAssertEqual(renewCommands.count, 1, service)

        // Day 26 before the timer ran: status warns (and fails, so monitoring sees it) with days left.
        let warned = try runShell("faketime -f +26d \(statusCommand)")
        XCTAssertEqual(warned.status, 1, warned.output)
        XCTAssertTrue(warned.output.contains("crl") && warned.output.contains("WARNING"), warned.output)
        // The timer's run on day 26, then the relay on day 31: the box is served again.
        for command in renewCommands {
            let r = try runShell("faketime -f +26d \(command)")
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("crl: renewed"), r.output)
        }
        try restart(&relay, h, daysAhead: 31)
        XCTAssertEqual(try send(status, options: box1).get().status, 200, "a renewed CRL still refused the box")
        let fine = try runShell("faketime -f +31d \(statusCommand)")
        XCTAssertEqual(fine.status, 0, fine.output)
        XCTAssertTrue(
            fine.output.contains("relay certificate") && fine.output.contains("box CA") && fine.output.contains("1 with a scope"), fine.output)

        // Nine years on: the CAs are re-signed with their own keys a year before they end, the relay
        // certificate re-issued; a box certificate and a box's old relay-ca.crt stay good under them.
        let oldRelayCA = h.dir.appendingPathComponent("old-relay-ca.crt")
        try FileManager.default.copyItem(atPath: relay.caFile, toPath: oldRelayCA.path)
        // A box certificate issued under the old box CA, in the year before its end.
        let issued = try runShell("faketime -f +3000d \(Harness.packageRoot.path)/Scripts/relay-ca issue \(relay.dir.path) box-late bosch:101000009")
        XCTAssertEqual(issued.status, 0, issued.output)
        let renewed = try runShell("faketime -f +3400d \(renewCommands[0])")
        XCTAssertEqual(renewed.status, 0, renewed.output)
        for part in ["relay certificate: re-issued", "box CA: re-signed", "relay CA: re-signed"] {
            XCTAssertTrue(renewed.output.contains(part), renewed.output)
        }
        let dir = relay.dir.path
        let later = Int(Date().timeIntervalSince1970) + 3401 * 86_400
        let chains = try runShell(
            """
            openssl verify -attime \(later) -CAfile \(dir)/box-ca.crt \(dir)/boxes/box-late.crt &&
            openssl verify -attime \(later) -CAfile \(oldRelayCA.path) \(dir)/relay.crt &&
            openssl verify -attime \(later + 400 * 86_400) -CAfile \(dir)/relay-ca.crt \(dir)/relay.crt
            """)
        XCTAssertEqual(chains.status, 0, chains.output)
    }

    /// F2: company-wide answers come from the relay's cache, filtered per box: one box's burst or steady
    /// hammering spends its own ceiling only, never the answers of the others.
    func testOneBoxCannotStarveTheCompanyWidePathsOfTheOthers() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let relay = try startRelay(
            h,
            scopes: [
                "box-1": "bosch:101000001 podero:\(Self.user)/\(Self.heatPump)",
                "box-2": "bosch:101000002 podero:\(Self.user)/another-heat-pump",
            ])
        defer { stop(relay) }
        let box1 = options(relay, "box-1")
        let box2 = options(relay, "box-2")
        let paths = ["/bosch/hvacs", "/bosch/health", "/podero/api/partners/v2.0/org/org-demo/users"]
        try h.admin("DELETE", "/admin/requests")

        // Box 1 bursts 200 requests over the company-wide paths: it meets its own ceiling.
        var burst: [Int: Int] = [:]
        for i in 0..<200 { burst[try send(base(relay) + paths[i % 3], options: box1).get().status, default: 0] += 1 }
        XCTAssertGreaterThan(burst[429] ?? 0, 0, "a burst of 200 did not meet the box's own ceiling: \(burst)")
        // Box 2 right after: every company-wide answer, each cut down to its own devices.
        let gateways = try send(base(relay) + paths[0], options: box2).get()
        XCTAssertEqual(gateways.status, 200)
        XCTAssertEqual(try JSONValue.parse(gateways.body).arrayValue?.compactMap { $0["gatewayId"]?.stringValue }, ["101000002"])
        XCTAssertEqual(try send(base(relay) + paths[1], options: box2).get().status, 200)
        let users = try send(base(relay) + paths[2], options: box2).get()
        XCTAssertEqual(users.status, 200)
        XCTAssertEqual(try JSONValue.parse(users.body).arrayValue?.compactMap { $0["id"]?.stringValue }, [Self.user])

        // Box 1 hammering the gateway list while box 2 asks 20 times: box 2 gets 20 answers of 20.
        let hammer = Hammer()
        let list = base(relay) + paths[0]
        let thread = Thread {
            let t = AccountTransport(CurlTransport(), options: box1)
            while !hammer.stopped {
                _ = blockingSend(t, HTTPRequest(method: "GET", url: list, timeout: 5))
                hammer.count()
            }
        }
        thread.start()
        var answered = 0
        for _ in 0..<20 where (try? send(list, options: box2).get().status) == 200 { answered += 1 }
        let hammered = hammer.stop()
        XCTAssertGreaterThan(hammered, 20, "box 1 was not hammering meanwhile")
        XCTAssertEqual(answered, 20)

        // The cloud saw each company-wide path about once, not once per box request.
        let seen = try requests(h)
        for path in ["/hvacs", "/health", "/api/partners/v2.0/org/org-demo/users"] {
            XCTAssertLessThanOrEqual(seen.filter { $0["path"]?.stringValue == path }.count, 2, "\(path) reached the cloud per box request")
        }
    }

    /// F5: the cloud counts per path; a box naming many paths of its own gateway is held to its per-gateway
    /// ceiling (2/s, burst 20), not its whole 10/s.
    func testPathVariationOnItsOwnGatewayIsHeldToTheBoxCeiling() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        let relay = try startRelay(h, scopes: ["box-1": "bosch:101000001"])
        defer { stop(relay) }
        let box1 = options(relay, "box-1")
        try h.admin("DELETE", "/admin/requests")
        let started = Date()
        var limited = 0
        for n in 0..<60 {
            let r = try send("\(base(relay))/bosch/hvacs/101000001/heatingCircuits/\(n)", options: box1).get()
            if r.status == 429 {
                limited += 1
                XCTAssertEqual(r.headers["retry-after"], "2")
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        let reached = try requests(h).filter { $0["path"]?.stringValue?.hasPrefix("/hvacs/101000001/") ?? false }.count
        XCTAssertGreaterThan(limited, 0)
        XCTAssertLessThanOrEqual(reached, 21 + Int(2 * elapsed), "\(reached) distinct paths reached Bosch in \(elapsed) s")
    }

    /// F1: a token endpoint that compresses whenever asked (without Vary) must not receive a box's
    /// Accept-Encoding: the one cached token would be a body njs cannot read, for every box, for an hour.
    func testATokenEndpointThatCompressesCannotPoisonTheTokenCache() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let relay = try startRelay(h, scopes: ["box-1": "podero:\(Self.user)/\(Self.heatPump)", "box-2": "podero:\(Self.user)/another-heat-pump"])
        defer { stop(relay) }
        try h.admin("POST", "/admin/faults", #"{"vendor":"podero","path_contains":"oauth2/token","gzip":true}"#)
        let pump = "\(base(relay))/podero/api/partners/v2.0/org/org-demo/users/\(Self.user)/heat-pumps/\(Self.heatPump)"
        let first = try send(pump, headers: [("Accept-Encoding", "gzip, deflate")], options: options(relay, "box-1")).get()
        XCTAssertEqual(first.status, 200, String(decoding: first.body, as: UTF8.self))
        XCTAssertEqual(try JSONValue.parse(first.body)["id"]?.stringValue, Self.heatPump)
        let other = try send(
            "\(base(relay))/podero/api/partners/v2.0/org/org-demo/users", headers: [("Accept-Encoding", "gzip")], options: options(relay, "box-2")
        ).get()
        XCTAssertEqual(other.status, 200, String(decoding: other.body, as: UTF8.self))
        let tokens = try requests(h).filter { $0["path"]?.stringValue?.contains("oauth2/token") ?? false }
        XCTAssertEqual(tokens.count, 1)
        XCTAssertFalse(tokens.contains { ($0["headers"]?.arrayValue ?? []).contains("accept-encoding") }, "\(tokens)")
    }

    /// F4: what goes upstream is rebuilt from what was checked, and nothing of the relay comes back.
    func testWhatGoesUpstreamIsRebuiltAndAnswersCarryNoRelayCredential() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let relay = try startRelay(h, scopes: ["box-1": "bosch:101000001 hsl:\(Self.home) podero:\(Self.user)/\(Self.heatPump)"])
        defer { stop(relay) }
        let box1 = options(relay, "box-1")
        let url = base(relay)
        try h.admin("DELETE", "/admin/requests")
        func refused(
            _ method: String, _ path: String, _ body: String?, _ status: Int, _ text: String, file: StaticString = #filePath, line: UInt = #line
        ) throws {
            let r = try send(url + path, method: method, headers: [("Content-Type", "application/json")], body: body, options: box1).get()
            XCTAssertEqual(r.status, status, "\(method) \(path)", file: file, line: line)
            let message = (try? JSONValue.parse(r.body))?["message"]?.stringValue ?? String(decoding: r.body, as: UTF8.self)
            XCTAssertTrue(message.contains(text), message, file: file, line: line)
        }
        // (a) A body two parsers could read differently is refused; a good one goes up serialised anew.
        try refused("POST", "/hsl/partners/1/config", #"{"homeId":"\#(Self.home)","HomeId":"64f1c0a2e9ff"}"#, 400, #"names key "HomeId" twice"#)
        try refused("POST", "/hsl/partners/1/config", #"{"homeId":"64f1c0a2e9ff","homeId":"\#(Self.home)"}"#, 400, #"names key "homeId" twice"#)
        try refused(
            "POST", "/hsl/partners/1/derogations",
            #"{"derogations":[{"homeId":"\#(Self.home)","roomId":1,"roomid":2,"startTime":0,"endTime":5,"delta":-1,"date":"2030-01-02"}]}"#, 400,
            "twice")
        try refused("PATCH", "/bosch/hvacs/101000001/dhwCircuits/1/charge", #"{"chargeDuration":60,"chargeduration":600}"#, 400, "twice")
        let good = try send(url + "/hsl/partners/1/config", method: "POST", headers: [], body: "{ \"homeId\" :\n \"\(Self.home)\" }", options: box1)
            .get()
        XCTAssertEqual(good.status, 200, String(decoding: good.body, as: UTF8.self))
        XCTAssertEqual(try requests(h).last { $0["path"] == "/partners/1/config" }?["body"]?.stringValue, #"{"homeId":"\#(Self.home)"}"#)

        // (b) Path segments outside [A-Za-z0-9_-] never reach a cloud.
        for path in [
            "/bosch/hvacs/101000001/..;/101000002/status", "/bosch/hvacs/101000001/status;x=1", "/bosch/hvacs/101000001/%2e%2e;/x",
            "/podero/api/partners/v2.0/org/org-demo/users/\(Self.user)/heat-pumps/\(Self.heatPump);x",
        ] {
            try refused("GET", path, nil, 400, "path segment")
        }

        // (c) Methods outside each vendor's allow-list stop at the relay.
        for m in ["TRACK", "DEBUG", "PROPFIND", "OPTIONS"] {
            try refused(m, "/bosch/hvacs/101000001/status", nil, 405, "is not forwarded")
            try refused(m, "/podero/api/partners/v2.0/org/org-demo/users/\(Self.user)/heat-pumps/\(Self.heatPump)", nil, 405, "is not forwarded")
            try refused(m, "/hsl/partners/1/config", nil, 403, "is not open to boxes")
        }
        let reachedSoFar = try requests(h)
        XCTAssertEqual(reachedSoFar.count, 1, "only the good HomeSmartlink request may have reached a cloud: \(reachedSoFar)")

        // (d) The box's headers stay at the relay; an upstream that echoes its request is not passed back.
        try h.admin("POST", "/admin/faults", #"{"echo":true}"#)
        let forged: [(String, String)] = [
            ("X-Original-URL", "/hvacs/101000002/status"), ("X-HTTP-Method-Override", "DELETE"),
            ("X-Forwarded-For", "203.0.113.7"), ("Authorization", "Basic Ym94OmJveA=="), ("Cookie", "s=1"),
            ("x-user-id", "someone-else"), ("Accept-Encoding", "gzip"),
        ]
        let credentials = [
            Harness.apiKey, "hsl-demo:\(Self.hslSecret)", Self.hslSecret, Data("hsl-demo:\(Self.hslSecret)".utf8).base64EncodedString(),
        ]
        for (method, path, body) in [
            ("PATCH", "/bosch/hvacs/101000001/dhwCircuits/1/charge", #"{"chargeDuration":60}"#),
            ("POST", "/hsl/partners/1/config", #"{"homeId":"\#(Self.home)"}"#),
        ] {
            let r = try send(url + path, method: method, headers: forged, body: body, options: box1).get()
            let text = String(decoding: r.body, as: UTF8.self)
            XCTAssertEqual(r.status, 502, text)
            XCTAssertTrue(text.contains("reflected a relay credential"), text)
            for secret in credentials {
                XCTAssertFalse(text.contains(secret), "the answer to the box holds a relay credential: \(text)")
                XCTAssertFalse(r.headers.values.contains { $0.contains(secret) }, "\(r.headers)")
            }
            XCTAssertFalse(r.headers.keys.contains { $0.hasPrefix("x-echo-") || $0 == "set-cookie" || $0 == "x-internal-route" }, "\(r.headers)")
        }
        let echoed = try requests(h).suffix(2)
        XCTAssertEqual(echoed.count, 2)
        for request in echoed {
            let names = Set((request["headers"]?.arrayValue ?? []).compactMap(\.stringValue))
            XCTAssertTrue(
                names.isSubset(of: ["host", "connection", "content-length", "content-type", "accept", "x-api-key", "authorization", "x-user-id"]),
                "\(names)")
        }
        // Bosch's audit header names the box, whatever the box claims, and only where the box sent one.
        try h.admin("DELETE", "/admin/faults")
        for claimed in ["someone-else", nil] {
            let audit = try send(url + "/bosch/hvacs/101000001/status", headers: claimed.map { [("x-user-id", $0)] } ?? [], options: box1).get()
            XCTAssertEqual(audit.status, 200, String(decoding: audit.body, as: UTF8.self))
            XCTAssertEqual(try requests(h).last?["user_id"], claimed == nil ? .null : "box-1")
        }
    }
}

/// A second thread's loop, stopped and counted from the test.
final class Hammer: Sendable {
    private let state = Mutex<(stopped: Bool, count: Int)>((false, 0))
    var stopped: Bool { state.withLock { $0.stopped } }
    func count() { state.withLock { $0.count += 1 } }
    func stop() -> Int {
        state.withLock {
            $0.stopped = true
            return $0.count
        }
    }
}

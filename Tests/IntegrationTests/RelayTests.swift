import Foundation
import HeatbridgeCore
import HeatbridgeHTTP
import XCTest

/// A box behind the reference relay (real nginx with njs, certificates from Scripts/relay-ca): it holds no
/// partner key, reaches only its own devices, and the relay keeps the partner's limits for all boxes.
final class RelayTests: XCTestCase {
    struct Relay {
        let dir: URL
        let run: URL
        let port: Int
        var process: Process?
        var conf: String { run.appendingPathComponent("nginx.conf").path }
        func box(_ id: String) -> (cert: String, key: String) {
            (dir.appendingPathComponent("boxes/\(id).crt").path, dir.appendingPathComponent("boxes/\(id).key").path)
        }
        var caFile: String { dir.appendingPathComponent("relay-ca.crt").path }
    }

    func relayCA(_ args: [String]) throws {
        let r = try runProcess(Harness.packageRoot.appendingPathComponent("Scripts/relay-ca").path, args)
        guard r.status == 0 else { throw HarnessError("relay-ca \(args.first ?? "") failed: \(r.output)") }
    }

    func startRelay(_ h: Harness, scopes: [String: String]) throws -> Relay {
        let dir = h.dir.appendingPathComponent("relay")
        let run = h.dir.appendingPathComponent("relay-run")
        try relayCA(["init", dir.path, "127.0.0.1"])
        for (box, scope) in scopes.sorted(by: { $0.key < $1.key }) {
            try relayCA(["issue", dir.path, box] + scope.split(separator: " ").map(String.init))
        }
        // The partner's credentials go to the relay only (stdin, so never on a command line).
        for (vendor, credential) in [
            ("bosch", Harness.apiKey), ("homesmartlink", "hsl-demo:\(Self.hslSecret)"), ("podero", "demo-client:\(Self.poderoSecret)"),
        ] {
            let r = try runShell(
                "printf '%s\\n' \"$CREDENTIAL\" | Scripts/relay-ca secret \"$DIR\" \(vendor)", env: ["CREDENTIAL": credential, "DIR": dir.path])
            guard r.status == 0 else { throw HarnessError("relay-ca secret \(vendor) failed: \(r.output)") }
        }
        let port = try Harness.freePort()
        let sim = "http://127.0.0.1:\(h.simPort)"
        try relayCA([
            "render", dir.path, run.path, "127.0.0.1:\(port)", "--bosch", "\(sim)/bosch", "--homesmartlink", "\(sim)/homesmartlink",
            "--podero", "\(sim)/podero",
        ])
        var relay = Relay(dir: dir, run: run, port: port)
        relay.process = try h.launch("/usr/sbin/nginx", ["-c", relay.conf, "-g", "daemon off;"], log: "nginx.log")
        try h.waitForPort(port, what: "nginx relay")
        return relay
    }

    func stop(_ relay: Relay) {
        guard let p = relay.process, p.isRunning else { return }
        p.terminate()
        p.waitUntilExit()
    }

    /// One request through the relay, waited for on this thread.
    func send(_ url: String, method: String = "GET", body: String? = nil, options: ConnectionOptions) -> Result<HTTPResponse, HTTPTransportError> {
        let t = AccountTransport(CurlTransport(), options: options)
        return blockingSend(t, HTTPRequest(method: method, url: url, body: body.map { Array($0.utf8) }, timeout: 5))
    }

    /// The simulator's client secrets: the relay has them, no box may.
    static let hslSecret = "hsl-demo-secret"
    static let poderoSecret = "demo-secret"

    /// A box's config: its certificate instead of any vendor credential; `accounts` are YAML account entries
    /// (see `boschAccount`, `hslAccount`, `poderoAccount`).
    func writeBoxConfig(_ h: Harness, relay: Relay, box: String, accounts: [String]) throws {
        try """
        mqtt:
          url: mqtt://127.0.0.1:\(h.brokerPort)
          base_topic: heatbridge
          client_id: heatbridge-it
        store:
          path: \(h.dir.appendingPathComponent("state.db").path)
        accounts:
        \(accounts.joined(separator: "\n"))
        log:
          level: debug
        """.write(toFile: h.configPath, atomically: true, encoding: .utf8)
    }

    /// The HTTP keys every account behind the relay has: the relay's URL, its CA, the box's certificate.
    func relayKeys(_ relay: Relay, box: String, path: String) -> String {
        let (cert, key) = relay.box(box)
        return """
                base_url: https://127.0.0.1:\(relay.port)\(path)
                ca_file: \(relay.caFile)
                client_cert_file: \(cert)
                client_key_file: \(key)
            """
    }

    func boschAccount(_ relay: Relay, box: String, devices: [String]) -> String {
        """
          - name: bosch-relay
            vendor: bosch
        \(relayKeys(relay, box: box, path: "/bosch"))
            user_id: it-user
            devices: [\(devices.map { "\"\($0)\"" }.joined(separator: ", "))]
            poll_interval_s: 8
            poll_max_interval_s: 8
            timeout_s: 3
        """
    }

    func writeBoxConfig(_ h: Harness, relay: Relay, box: String, devices: [String]) throws {
        try writeBoxConfig(h, relay: relay, box: box, accounts: [boschAccount(relay, box: box, devices: devices)])
    }

    /// A box behind the relay holds no partner key and reaches its own gateways only; a scope the partner changes
    /// at the relay applies to the box's next connection. (Runs in `SideBySideTests`' outage lane: it mostly waits,
    /// on its own broker, simulator and nginx.)
    func boxThroughTheRelayHoldsNoKeyAndReachesOnlyItsOwnGateway() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        // Box 1 starts with two gateways; the partner then moves 101000002 to box 2 at the relay only.
        var relay = try startRelay(h, scopes: ["box-1": "bosch:101000001 bosch:101000002", "box-2": "bosch:101000002"])
        defer { stop(relay) }
        try writeBoxConfig(h, relay: relay, box: "box-1", devices: ["101000001", "101000002"])
        let check = try h.cli(["check-config", "--config", h.configPath])
        XCTAssertEqual(check.status, 0, check.output)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let gw = "heatbridge/bosch-101000001"
        c.waitJSON("\(gw)/dhw1/state", timeout: 30)
        c.waitJSON("heatbridge/bosch-101000002/dhw1/state", timeout: 30)
        c.waitJSON("heatbridge/bridge/account/bosch-relay") { $0["state"] == "ready" }
        c.publish("\(gw)/dhw1/charge/set", #"{"id":"via-relay","action":"start","duration_min":21}"#)
        XCTAssertNotNil(c.waitResult("\(gw)/dhw1/charge/result", id: "via-relay", status: "done", timeout: 20))

        let (cert1, key1) = relay.box("box-1")
        let box1 = ConnectionOptions(caFile: relay.caFile, clientCertFile: cert1, clientKeyFile: key1)
        let map = relay.dir.appendingPathComponent("boxes.map")
        try String(contentsOf: map, encoding: .utf8).replacingOccurrences(
            of: #"box-1 "bosch:101000001 bosch:101000002";"#, with: #"box-1 "bosch:101000001";"#
        )
        .write(to: map, atomically: true, encoding: .utf8)
        _ = try runProcess("/usr/sbin/nginx", ["-c", relay.conf, "-s", "reload"])
        h.waitUntil("the relay to take the new scope") {
            (try? send("https://127.0.0.1:\(relay.port)/bosch/hvacs/101000002/status", options: box1).get().status) == 403
        }
        // The box's own open connection is served by nginx's old worker until that one finishes it: wait until the
        // box itself has met the new scope. Which it meets first is a race between its reads: a per-gateway read
        // (the device shows the relay's 403) or two gateway lists without 101000002 (the device is removed).
        h.waitUntil("the box to meet the relay's new scope", timeout: 30) {
            guard let last = c.all("heatbridge/bosch-101000002/state").last else { return false }
            return last.payload.isEmpty || (try? JSONValue.parse(last.payload))?["error"]?["code"] == "FORBIDDEN"
        }

        // Either way a command for it ends FORBIDDEN: with the relay's words, or saying the relay no longer lists it.
        c.publish("heatbridge/bosch-101000002/dhw1/charge/set", #"{"id":"out-of-scope","action":"start"}"#)
        let refused = c.waitJSON("heatbridge/bosch-101000002/dhw1/charge/result", timeout: 20) {
            $0["id"] == "out-of-scope" && ["failed", "rejected"].contains($0["status"]?.stringValue ?? "")
        }
        XCTAssertEqual(refused?["code"], "FORBIDDEN")
        let why = refused?["message"]?.stringValue ?? ""
        XCTAssertTrue(
            why.contains("relay: gateway 101000002 is not in the scope of box box-1")
                || why.contains("in account bosch-relay's scope but its cloud no longer lists it"),
            "\(refused ?? .null)")

        // The simulator saw the relay's key on every request, and no command for the gateway box 1 lost.
        func patches(_ gateway: String) throws -> Int {
            (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
                $0["method"] == "PATCH" && ($0["path"]?.stringValue?.contains(gateway) ?? false)
            }.count
        }
        let seen = try h.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertFalse(seen.isEmpty)
        XCTAssertTrue(seen.allSatisfy { $0["had_api_key"] == true }, "a request reached the cloud without the injected key")
        XCTAssertEqual(try patches("101000002"), 0, "a refused command reached the cloud")
        XCTAssertEqual(try patches("101000001"), 1)

        // A request forged with box 1's certificate for box 2's gateway stops at the relay.
        let forged = try send(
            "https://127.0.0.1:\(relay.port)/bosch/hvacs/101000002/dhwCircuits/1/charge", method: "PATCH",
            body: #"{"chargeDuration":60}"#, options: box1
        ).get()
        XCTAssertEqual(forged.status, 403)
        XCTAssertTrue(String(decoding: forged.body, as: UTF8.self).contains("not in the scope of box box-1"))
        XCTAssertEqual(
            try send("https://127.0.0.1:\(relay.port)/bosch/contracts", options: box1).get().status, 403, "company-wide endpoint open to a box")
        // The gateway list a box gets names its own gateways only.
        let list = try JSONValue.parse(try send("https://127.0.0.1:\(relay.port)/bosch/hvacs", options: box1).get().body)
        XCTAssertEqual(list.arrayValue?.compactMap { $0["gatewayId"]?.stringValue }, ["101000001"])
        // No certificate, no answer.
        XCTAssertEqual(
            try send("https://127.0.0.1:\(relay.port)/bosch/hvacs/101000001/status", options: ConnectionOptions(caFile: relay.caFile)).get().status,
            401)
        XCTAssertEqual(try patches("101000002"), 0, "the forged command reached the cloud")

        // Company-wide answers come from the relay's cache: however many boxes ask, the cloud is asked once.
        let (cert2, key2) = relay.box("box-2")
        let box2 = ConnectionOptions(caFile: relay.caFile, clientCertFile: cert2, clientKeyFile: key2)
        try h.admin("DELETE", "/admin/requests")
        var statuses: [Int] = []
        for i in 0..<10 {
            statuses.append(try send("https://127.0.0.1:\(relay.port)/bosch/health", options: i % 2 == 0 ? box1 : box2).get().status)
        }
        XCTAssertEqual(statuses, Array(repeating: 200, count: 10))
        let healthReads = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["path"] == "/health" }.count
        XCTAssertLessThanOrEqual(healthReads, 1, "each box request reached the cloud's shared bucket")

        // The relay away: commands wait as in a cloud outage.
        stop(relay)
        c.waitLatest("heatbridge/bridge/account/bosch-relay", timeout: 30) { $0["state"] == "offline" }
        c.publish("\(gw)/dhw1/charge/set", #"{"id":"relay-down","action":"start","duration_min":22}"#)
        XCTAssertNotNil(c.waitResult("\(gw)/dhw1/charge/result", id: "relay-down", status: "queued"))
        relay.process = try h.launch("/usr/sbin/nginx", ["-c", relay.conf, "-g", "daemon off;"], log: "nginx.log")
        try h.waitForPort(relay.port, what: "nginx relay")
        XCTAssertNotNil(c.waitResult("\(gw)/dhw1/charge/result", id: "relay-down", status: "done", timeout: 40))

        // A revoked box certificate: the account says why instead of retrying blindly.
        try relayCA(["revoke", relay.dir.path, "box-1"])
        _ = try runProcess("/usr/sbin/nginx", ["-c", relay.conf, "-s", "reload"])
        let revoked = c.waitLatest("heatbridge/bridge/account/bosch-relay", timeout: 30) { $0["state"] == "auth_required" }
        XCTAssertTrue(revoked?["error"]?.stringValue?.contains("the relay refused this box (its client certificate)") ?? false, "\(revoked ?? .null)")

        // Nothing on the box knows the partner key: config, store, logs, MQTT.
        XCTAssertEqual(h.stopDaemon(), 0)
        for name in ["heatbridge.yaml", "state.db", "state.db-wal", "daemon.log"] {
            let bytes = (try? Data(contentsOf: h.dir.appendingPathComponent(name))) ?? Data()
            XCTAssertNil(bytes.range(of: Data(Harness.apiKey.utf8)), "\(name) holds the partner key")
        }
        XCTAssertFalse(c.recorder.messages.withLock { $0 }.contains { String(decoding: $0.payload, as: UTF8.self).contains(Harness.apiKey) })
    }

    static let home = "64f1c0a2e9b3"
    static let user = "7d0c2f4e-5b1a-4c3e-9f20-1a2b3c4d5e6f"
    static let heatPump = "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"

    /// HomeSmartlink (home ids in JSON bodies, Basic auth) and Podero (ids in paths, a bearer token the relay
    /// obtains) through the relay: the box holds neither client secret and reaches only its own home and heat
    /// pump; the ids the cloud hands out are bound to the box they were issued to.
    func testHomeSmartlinkAndPoderoThroughTheRelayWithoutTheirClientSecrets() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let relay = try startRelay(
            h,
            scopes: [
                "box-1": "hsl:\(Self.home) podero:\(Self.user)/\(Self.heatPump)",
                "box-2": "hsl:64f1c0a2e9ff podero:\(Self.user)/another-heat-pump",
            ])
        defer { stop(relay) }
        try h.admin("POST", "/admin/homesmartlink", #"{"diagnosis_delay_s":3}"#)
        try writeBoxConfig(
            h, relay: relay, box: "box-1",
            accounts: [
                """
                  - name: hsl-relay
                    vendor: homesmartlink
                \(relayKeys(relay, box: "box-1", path: "/hsl"))
                    client_id: hsl-demo
                    homes: ["\(Self.home)"]
                    poll_interval_s: 1
                    timeout_s: 3
                    report_timeout_s: 20
                    report_interval_s: 0.5
                    diagnosis_check_s: 1
                """,
                """
                  - name: podero-relay
                    vendor: podero
                \(relayKeys(relay, box: "box-1", path: "/podero/api/partners/v2.0"))
                    client_id: demo-client
                    org_id: org-demo
                    devices: ["\(Self.heatPump)"]
                    poll_interval_s: 1
                    timeout_s: 3
                """,
            ])
        let check = try h.cli(["check-config", "--config", h.configPath])
        XCTAssertEqual(check.status, 0, check.output)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let home = "heatbridge/hsl-\(Self.home)"
        let pump = "heatbridge/podero-\(Self.heatPump)"
        c.waitJSON("\(home)/room-1/state", timeout: 30)
        c.waitJSON("\(pump)/hp/state", timeout: 30)
        c.waitJSON("heatbridge/bridge/account/hsl-relay") { $0["state"] == "ready" }
        c.waitJSON("heatbridge/bridge/account/podero-relay") { $0["state"] == "ready" }

        // A derogation: the relay checks the home in the body, signs the trigger ids, and takes them back
        // from this box to follow the delivery report until every home acknowledged.
        let (minutes, calls) = HomeSmartlinkTests.window(about: 60)
        c.publish("\(home)/room-1/derogation/set", #"{"id":"relay-d1","delta":-2,"duration_min":\#(minutes)}"#)
        let done = c.waitResult("\(home)/room-1/derogation/result", id: "relay-d1", status: "done", timeout: 30)
        XCTAssertTrue(done?["message"]?.stringValue?.contains("acknowledged by \(calls) of \(calls)") ?? false, "\(done ?? .null)")
        // A diagnosis: its message id comes back signed and is accepted from this box.
        c.publish("\(home)/system/diagnosis/set", #"{"id":"relay-diag"}"#)
        c.waitResult("\(home)/system/diagnosis/result", id: "relay-diag", status: "done", timeout: 20)
        c.waitJSON("\(home)/system/state", timeout: 30) { $0["diagnosis"]?["state"] == "ready" }
        // A Podero command with the relay's bearer token.
        c.publish("\(pump)/hp/comfort/set", #"{"id":"relay-c1","min":19.5,"max":22}"#)
        XCTAssertNotNil(c.waitResult("\(pump)/hp/comfort/result", id: "relay-c1", status: "done", timeout: 20))
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["heat_pumps"]?[Self.heatPump]?["minimum_temperature_limit"], 19.5)

        // The simulator checks both credentials; every request of the box came with the relay's, and the relay
        // asked for one Podero token however many requests it made.
        let seen = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            ["homesmartlink", "podero"].contains($0["vendor"]?.stringValue ?? "")
        }
        XCTAssertGreaterThan(seen.count, 10)
        XCTAssertTrue(seen.allSatisfy { $0["had_api_key"] == true }, "a request reached the cloud without the injected credential")
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["tokens_issued"], 1)
        // A token Podero stops accepting is renewed by the relay (one retry), and the box sees nothing of it.
        try h.admin("POST", "/admin/podero", #"{"expire_tokens":true}"#)
        c.publish("\(pump)/hp/comfort/set", #"{"id":"relay-c2","min":19,"max":22}"#)
        XCTAssertNotNil(c.waitResult("\(pump)/hp/comfort/result", id: "relay-c2", status: "done", timeout: 20))
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["tokens_issued"], 2)

        // Forged with the boxes' certificates: nothing outside a box's scope reaches the cloud.
        let (cert1, key1) = relay.box("box-1")
        let (cert2, key2) = relay.box("box-2")
        let box1 = ConnectionOptions(caFile: relay.caFile, clientCertFile: cert1, clientKeyFile: key1)
        let box2 = ConnectionOptions(caFile: relay.caFile, clientCertFile: cert2, clientKeyFile: key2)
        let base = "https://127.0.0.1:\(relay.port)"
        try h.admin("DELETE", "/admin/requests")
        func refused(
            _ method: String, _ path: String, _ body: String?, _ box: ConnectionOptions, _ text: String, file: StaticString = #filePath,
            line: UInt = #line
        ) throws {
            let r = try send(base + path, method: method, body: body, options: box).get()
            XCTAssertEqual(r.status, 403, "\(method) \(path)", file: file, line: line)
            XCTAssertTrue(String(decoding: r.body, as: UTF8.self).contains(text), String(decoding: r.body, as: UTF8.self), file: file, line: line)
        }
        try refused("POST", "/hsl/partners/1/config", #"{"homeId":"64f1c0a2e9ff"}"#, box1, "home 64f1c0a2e9ff is not in the scope of box box-1")
        try refused(
            "POST", "/hsl/partners/1/derogations",
            #"{"derogations":[{"homeId":"\#(Self.home)","roomId":1,"startTime":0,"endTime":5,"delta":-1,"date":"2026-12-02"},{"homeId":"64f1c0a2e9ff","roomId":1,"startTime":0,"endTime":5,"delta":-1,"date":"2026-12-02"}]}"#,
            box1, "home 64f1c0a2e9ff is not in the scope of box box-1")
        try refused("POST", "/hsl/partners/1/invitations", #"{"email":"owner@example.invalid"}"#, box1, "is not open to boxes")
        try refused("GET", "/hsl/partners/1/users?page=1&size=10", nil, box1, "is not open to boxes")
        try refused("POST", "/hsl/partners/1/report", #"{"trigger":"trg-unsigned"}"#, box1, "trigger trg-unsigned was not issued to box box-1")
        try refused(
            "GET", "/podero/api/partners/v2.0/org/org-demo/users/\(Self.user)/heat-pumps/another-heat-pump", nil, box1,
            "heat pump another-heat-pump is not in the scope of box box-1")
        try refused(
            "PUT", "/podero/api/partners/v2.0/org/org-demo/users/\(Self.user)/heat-pumps/\(Self.heatPump)", #"{"minimum_temperature_limit":5}"#, box2,
            "heat pump \(Self.heatPump) is not in the scope of box box-2")
        try refused(
            "GET", "/podero/api/partners/v2.0/org/org-demo/users/someone-else/heat-pumps", nil, box1,
            "user someone-else is not in the scope of box box-1")
        try refused("POST", "/podero/oauth2/token/", #"{"grant_type":"client_credentials"}"#, box1, "is not open to boxes")
        try refused("POST", "/podero/api/partners/v2.0/device-onboarding", "{}", box1, "is not open to boxes")
        // The daemon keeps polling meanwhile; none of the forged requests is among what the cloud saw.
        let reached = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { r in
            let text = (r["path"]?.stringValue ?? "") + " " + (r["body"]?.stringValue ?? "")
            return [
                "64f1c0a2e9ff", "invitations", "partners/1/users", "trg-unsigned", "another-heat-pump", "someone-else", "oauth2", "device-onboarding",
                "\"minimum_temperature_limit\":5",
            ].contains { text.contains($0) } && r["vendor"] != "bosch"
        }
        XCTAssertEqual(reached.count, 0, "a refused request reached the cloud: \(reached)")
        // A trigger the relay signed for box 1 is box 1's only.
        let own = try send(
            base + "/hsl/partners/1/derogations", method: "POST",
            body: #"{"derogations":[{"homeId":"\#(Self.home)","roomId":2,"startTime":0,"endTime":5,"delta":-1,"date":"2030-01-02"}]}"#, options: box1
        ).get()
        XCTAssertEqual(own.status, 200, String(decoding: own.body, as: UTF8.self))
        let trigger = try XCTUnwrap(JSONValue.parse(own.body)["startTrigger"]?.stringValue)
        XCTAssertEqual(
            try send(base + "/hsl/partners/1/report", method: "POST", body: "{\"trigger\":\"\(trigger)\"}", options: box1).get().status, 200)
        try refused("POST", "/hsl/partners/1/report", "{\"trigger\":\"\(trigger)\"}", box2, "was not issued to box box-2")
        // The listings a box gets name its own user and heat pump only.
        let users = try JSONValue.parse(try send(base + "/podero/api/partners/v2.0/org/org-demo/users", options: box1).get().body)
        XCTAssertEqual(users.arrayValue?.compactMap { $0["id"]?.stringValue }, [Self.user])
        let pumps2 = try JSONValue.parse(
            try send(base + "/podero/api/partners/v2.0/org/org-demo/users/\(Self.user)/heat-pumps", options: box2).get().body)
        XCTAssertEqual(pumps2.arrayValue?.count, 0, "box 2 sees a heat pump that is not its own")

        // A box certificate that expired: the accounts say the relay refused the certificate.
        XCTAssertEqual(h.stopDaemon(), 0)
        let expired = relay.dir.appendingPathComponent("boxes/box-1-expired")
        let made = try runShell(
            """
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout \(expired.path).key -out \(expired.path).csr -subj /CN=box-1 2>&1 &&
            openssl ca -config \(relay.dir.path)/ca.cnf -extensions box -batch -notext -startdate 20200101000000Z -enddate 20200102000000Z \
                -in \(expired.path).csr -out \(expired.path).crt 2>&1 && chmod 600 \(expired.path).key
            """)
        XCTAssertEqual(made.status, 0, made.output)
        let config = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: cert1, with: expired.path + ".crt").replacingOccurrences(of: key1, with: expired.path + ".key")
            .write(toFile: h.configPath, atomically: true, encoding: .utf8)
        c.clear()
        try h.startDaemon()
        for account in ["hsl-relay", "podero-relay"] {
            let state = c.waitLatest("heatbridge/bridge/account/\(account)", timeout: 30) { $0["state"] == "auth_required" }
            XCTAssertTrue(state?["error"]?.stringValue?.contains(CloudError.relayRefusedBox) ?? false, "\(state ?? .null)")
            XCTAssertTrue(state?["error"]?.stringValue?.contains("certificate has expired") ?? false, "\(state ?? .null)")
        }

        // Nothing on the box knows either client secret: config, store, logs, MQTT.
        XCTAssertEqual(h.stopDaemon(), 0)
        let basics = ["hsl-demo:\(Self.hslSecret)", "demo-client:\(Self.poderoSecret)"].map { Data($0.utf8).base64EncodedString() }
        for name in ["heatbridge.yaml", "state.db", "state.db-wal", "daemon.log"] {
            let bytes = (try? Data(contentsOf: h.dir.appendingPathComponent(name))) ?? Data()
            for secret in [Self.hslSecret, Self.poderoSecret] + basics {
                XCTAssertNil(bytes.range(of: Data(secret.utf8)), "\(name) holds a partner secret")
            }
        }
        XCTAssertFalse(
            c.recorder.messages.withLock { $0 }.contains { m in
                let text = String(decoding: m.payload, as: UTF8.self)
                return ([Self.hslSecret, Self.poderoSecret] + basics).contains { text.contains($0) }
            })
    }

    func testALooseClientKeyAndAKeyBehindARelayAreConfigErrors() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let relay = try startRelay(h, scopes: ["box-1": "bosch:101000001"])
        defer { stop(relay) }
        try writeBoxConfig(h, relay: relay, box: "box-1", devices: ["101000001"])
        chmod(relay.box("box-1").key, 0o644)
        let loose = try h.cli(["check-config", "--config", h.configPath])
        XCTAssertNotEqual(loose.status, 0)
        XCTAssertTrue(loose.output.contains("client_key_file \(relay.box("box-1").key) is readable by group or others (mode 644)"), loose.output)
        chmod(relay.box("box-1").key, 0o600)
        let keyFile = h.dir.appendingPathComponent("bosch.key").path
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8).replacingOccurrences(
            of: "    user_id: it-user", with: "    user_id: it-user\n    api_key_file: \(keyFile)")
        try text.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        let both = try h.cli(["check-config", "--config", h.configPath])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.output.contains("a bosch account behind a relay (client_cert_file) holds no API key"), both.output)
    }
}

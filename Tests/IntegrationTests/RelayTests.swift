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
        let dir = h.dir.appendingPathComponent("relay"), run = h.dir.appendingPathComponent("relay-run")
        try relayCA(["init", dir.path, "127.0.0.1"])
        for (box, scope) in scopes.sorted(by: { $0.key < $1.key }) { try relayCA(["issue", dir.path, box] + scope.split(separator: " ").map(String.init)) }
        let secrets = dir.appendingPathComponent("secrets.conf")
        try String(contentsOf: secrets, encoding: .utf8).replacingOccurrences(of: "xHCSAPI-fill-me-in", with: Harness.apiKey)
            .write(to: secrets, atomically: true, encoding: .utf8)
        let port = try Harness.freePort()
        try relayCA(["render", dir.path, run.path, "127.0.0.1:\(port)", "http://127.0.0.1:\(h.simPort)", "/bosch"])
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

    func writeBoxConfig(_ h: Harness, relay: Relay, box: String, devices: [String]) throws {
        let (cert, key) = relay.box(box)
        try """
            mqtt:
              url: mqtt://127.0.0.1:\(h.brokerPort)
              base_topic: heatbridge
              client_id: heatbridge-it
            store:
              path: \(h.dir.appendingPathComponent("state.db").path)
            accounts:
              - name: bosch-relay
                vendor: bosch
                base_url: https://127.0.0.1:\(relay.port)/bosch
                ca_file: \(relay.caFile)
                client_cert_file: \(cert)
                client_key_file: \(key)
                user_id: it-user
                devices: [\(devices.map { "\"\($0)\"" }.joined(separator: ", "))]
                poll_interval_s: 2
                timeout_s: 3
            log:
              level: debug
            """.write(toFile: h.configPath, atomically: true, encoding: .utf8)
    }

    func testABoxThroughTheRelayHoldsNoKeyAndReachesOnlyItsOwnGateway() throws {
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
        try String(contentsOf: map, encoding: .utf8).replacingOccurrences(of: #"box-1 "bosch:101000001 bosch:101000002";"#, with: #"box-1 "bosch:101000001";"#)
            .write(to: map, atomically: true, encoding: .utf8)
        _ = try runProcess("/usr/sbin/nginx", ["-c", relay.conf, "-s", "reload"])
        h.waitUntil("the relay to take the new scope") {
            (try? send("https://127.0.0.1:\(relay.port)/bosch/hvacs/101000002/status", options: box1).get().status) == 403
        }
        // The box's own open connection is served by nginx's old worker until that one finishes it: wait until the
        // box itself has been refused (its device shows the relay's 403).
        c.waitJSON("heatbridge/bosch-101000002/state", timeout: 30) { $0["error"]?["code"] == "FORBIDDEN" }

        // The relay's refusal ends a command with FORBIDDEN and the relay's words.
        c.publish("heatbridge/bosch-101000002/dhw1/charge/set", #"{"id":"out-of-scope","action":"start"}"#)
        let refused = c.waitJSON("heatbridge/bosch-101000002/dhw1/charge/result", timeout: 20) {
            $0["id"] == "out-of-scope" && ["failed", "rejected"].contains($0["status"]?.stringValue ?? "")
        }
        XCTAssertEqual(refused?["code"], "FORBIDDEN")
        XCTAssertTrue(refused?["message"]?.stringValue?.contains("relay: gateway 101000002 is not in the scope of box box-1") ?? false, "\(refused ?? .null)")

        // The simulator saw the relay's key on every request, and no command for the gateway box 1 lost.
        func patches(_ gateway: String) throws -> Int {
            (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"] == "PATCH" && ($0["path"]?.stringValue?.contains(gateway) ?? false) }.count
        }
        let seen = try h.admin("GET", "/admin/requests").arrayValue ?? []
        XCTAssertFalse(seen.isEmpty)
        XCTAssertTrue(seen.allSatisfy { $0["had_api_key"] == true }, "a request reached the cloud without the injected key")
        XCTAssertEqual(try patches("101000002"), 0, "a refused command reached the cloud")
        XCTAssertEqual(try patches("101000001"), 1)

        // A request forged with box 1's certificate for box 2's gateway stops at the relay.
        let forged = try send("https://127.0.0.1:\(relay.port)/bosch/hvacs/101000002/dhwCircuits/1/charge", method: "PATCH",
                              body: #"{"chargeDuration":60}"#, options: box1).get()
        XCTAssertEqual(forged.status, 403)
        XCTAssertTrue(String(decoding: forged.body, as: UTF8.self).contains("not in the scope of box box-1"))
        XCTAssertEqual(try send("https://127.0.0.1:\(relay.port)/bosch/contracts", options: box1).get().status, 403, "company-wide endpoint open to a box")
        // The gateway list a box gets names its own gateways only.
        let list = try JSONValue.parse(try send("https://127.0.0.1:\(relay.port)/bosch/hvacs", options: box1).get().body)
        XCTAssertEqual(list.arrayValue?.compactMap { $0["gatewayId"]?.stringValue }, ["101000001"])
        // No certificate, no answer.
        XCTAssertEqual(try send("https://127.0.0.1:\(relay.port)/bosch/hvacs/101000001/status", options: ConnectionOptions(caFile: relay.caFile)).get().status, 401)
        XCTAssertEqual(try patches("101000002"), 0, "the forged command reached the cloud")

        // The partner's company-wide limit holds for all boxes together: two boxes, one bucket.
        let (cert2, key2) = relay.box("box-2")
        let box2 = ConnectionOptions(caFile: relay.caFile, clientCertFile: cert2, clientKeyFile: key2)
        var statuses: [Int] = []
        var retryAfter: String?
        for i in 0..<10 {
            let r = try send("https://127.0.0.1:\(relay.port)/bosch/health", options: i % 2 == 0 ? box1 : box2).get()
            statuses.append(r.status)
            if r.status == 429 { retryAfter = r.headers["retry-after"] }
        }
        XCTAssertTrue(statuses.contains(429), "\(statuses)")
        XCTAssertLessThanOrEqual(statuses.filter { $0 == 200 }.count, 6, "\(statuses)")
        XCTAssertEqual(retryAfter, "2")

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
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8).replacingOccurrences(of: "    user_id: it-user", with: "    user_id: it-user\n    api_key_file: \(keyFile)")
        try text.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        let both = try h.cli(["check-config", "--config", h.configPath])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.output.contains("a bosch account behind a relay (client_cert_file) holds no API key"), both.output)
    }
}

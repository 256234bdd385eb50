import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeVendors
import VendorBosch
import VendorHomeSmartlink
import VendorPodero
import XCTest

final class ConfigTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = "/tmp/hb-config-tests-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(dir, 0o700)
    }

    func write(_ name: String, _ text: String) -> String {
        let path = dir + "/" + name
        let f = fopen(path, "w")!
        fputs(text, f)
        fclose(f)
        return path
    }

    func testValidConfigWithDefaultsAndCredential() throws {
        _ = write("bosch.key", "xHCSAPI-secret\n")
        let path = write(
            "ok.yaml",
            """
            mqtt:
              url: mqtts://broker.local
              username: hb
              password_credential: mqtt-pass
            accounts:
              - name: bosch-main
                vendor: bosch
                base_url: https://api.example/v1/
                api_key_file: \(dir!)/bosch.key
                user_id: installer
                devices: ["101000001"]
                rate_limit: false
            bridge:
              capability_valid_for_s: {charge: 1800}
            """)
        _ = write("mqtt-pass", "pw")
        let loaded = try ConfigLoader.load(path: path, environment: ["CREDENTIALS_DIRECTORY": dir]).get()
        let c = loaded.config
        XCTAssertEqual(c.mqtt.port, 8883)
        XCTAssertTrue(c.mqtt.tls)
        XCTAssertEqual(c.mqtt.baseTopic, "heatbridge")
        XCTAssertEqual(c.accounts.first?.baseURL, "https://api.example/v1")
        XCTAssertEqual(c.accounts.first?.pollIntervalS, 60)
        XCTAssertEqual(c.accounts.first?.devices, ["101000001"])
        XCTAssertEqual(c.accounts.first?.rateLimit, false)
        XCTAssertEqual(c.store.path, "/var/lib/heatbridge/heatbridge.db")
        XCTAssertEqual(c.bridge.validFor("charge"), 1800)
        XCTAssertEqual(c.bridge.validFor("mode"), 600)
        XCTAssertEqual(loaded.hash.count, 16)
        guard case .success(let key) = ConfigLoader.readSecret(c.accounts[0].settings(as: BoschAccountSettings.self)!.apiKey!, environment: [:])
        else { return XCTFail() }
        XCTAssertEqual(key, "xHCSAPI-secret")
    }

    func diagnostics(_ text: String, env: [String: String] = [:]) -> [ConfigDiagnostic] {
        let path = write("c.yaml", text)
        switch ConfigLoader.load(path: path, environment: env) {
        case .success:
            XCTFail("expected errors")
            return []
        case .failure(let e): return e.diagnostics
        }
    }

    func testEveryErrorIsReportedWithPosition() {
        let d = diagnostics(
            """
            mqtt:
              url: mqtt://h:1883
              keepalive_s: 2
              base_topic: "a/#"
            store: [1]
            accounts:
              - name: Bad Name
                vendor: podero
                base_url: ftp://x
              - vendor: bosch
                base_url: https://x
                api_key_credential: k
            extra: 1
            """)
        let lines = d.map { "\($0.mark.line):\($0.mark.column) \($0.message)" }
        XCTAssertTrue(lines.contains { $0.hasPrefix("3:16 \"keepalive_s\" must be within 5") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("4:15 bad base_topic") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("5:8 store must be a mapping") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("7:11 account name \"Bad Name\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("9:15 bad base_url") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("10:5 missing required key \"name\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("10:5 bosch account needs \"user_id\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("12:25 api_key_credential: credential \"k\" needs $CREDENTIALS_DIRECTORY") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("13:1 unknown key \"extra\" in top level") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("7:5 podero account needs \"client_id\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("7:5 podero account needs \"org_id\"") }, "\(lines)")
        // Partner-wide credentials need the box's scope.
        XCTAssertTrue(lines.contains { $0.hasPrefix("7:5 missing required key \"devices\" in podero account") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("10:5 missing required key \"devices\" in bosch account") }, "\(lines)")
        XCTAssertEqual(d.count, 14, "\(lines)")
        // Sorted by position.
        XCTAssertEqual(d.map(\.mark.line), d.map(\.mark.line).sorted())
    }

    func testGroupsAreCheckedMemberByMember() throws {
        let d = diagnostics(
            """
            mqtt:
              url: mqtt://h:1883
            groups:
              peak: [hsl-1/room-1, hsl-1/room-2]
              Bad Name: [hsl-1/room-1]
              broken: [hsl-1, "a/b/c", hsl-1/room-1, hsl-1/room-1]
              empty: []
            """)
        let lines = d.map { "\($0.mark.line):\($0.mark.column) \($0.message)" }
        XCTAssertTrue(lines.contains { $0.hasPrefix("5:3 group name \"Bad Name\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("6:12 bad group member \"hsl-1\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("bad group member \"a/b/c\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("\"hsl-1/room-1\" is listed twice in group \"broken\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("group \"empty\" must be a non-empty list") }, "\(lines)")
        XCTAssertEqual(d.count, 5, "\(lines)")
        _ = write("ok.yaml", "mqtt:\n  url: mqtt://h:1883\ngroups:\n  peak: [hsl-1/room-1, hsl-1/room-2]\n")
        let ok = try ConfigLoader.load(path: dir + "/ok.yaml", environment: [:]).get()
        XCTAssertEqual(ok.config.bridge.groups["peak"], [GroupMember(device: "hsl-1", node: "room-1"), GroupMember(device: "hsl-1", node: "room-2")])
    }

    /// Behind a relay (a client certificate) no vendor holds its partner credential: present → error, absent →
    /// valid; without a relay it stays required.
    func testBehindARelayNoVendorHoldsItsPartnerSecret() throws {
        _ = write("k", "key")
        _ = write("box.crt", "cert")
        let key = write("box.key", "key")
        chmod(key, 0o600)
        let relay = "ca_file: \(dir!)/box.crt, client_cert_file: \(dir!)/box.crt, client_key_file: \(key)"
        let bad = diagnostics(
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: h, vendor: homesmartlink, base_url: "https://relay/hsl", \(relay), client_id: c, client_secret_file: \(dir!)/k, homes: ["64f"]}
              - {name: p, vendor: podero, base_url: "https://relay/podero/api/partners/v2.0", \(relay), client_id: c, client_secret_file: \(dir!)/k, org_id: o, devices: ["hp"]}
              - {name: q, vendor: podero, base_url: "https://relay/podero/api/partners/v2.0", \(relay), client_id: c, org_id: o, devices: ["hp"], token_url: "https://x/oauth2/token/"}
              - {name: n, vendor: homesmartlink, base_url: "https://x", client_id: c, homes: ["64f"]}
              - {name: x, vendor: homesmartlink, base_url: "https://x", proxy: "socks5://p:1080", client_id: c, client_secret_file: \(dir!)/k, homes: ["64f"]}
              - {name: y, vendor: homesmartlink, base_url: "https://x", client_cert_file: \(dir!)/box.crt, client_id: c, homes: ["64f"]}
            """
        ).map(\.message)
        XCTAssertTrue(bad.contains("a homesmartlink account behind a relay (client_cert_file) holds no client secret"), "\(bad)")
        XCTAssertTrue(bad.contains("a podero account behind a relay (client_cert_file) holds no client secret"), "\(bad)")
        XCTAssertTrue(bad.contains("\"token_url\" does not apply behind a relay"), "\(bad)")
        XCTAssertTrue(bad.contains("homesmartlink account needs \"client_secret_file\" or \"client_secret_credential\""), "\(bad)")
        XCTAssertTrue(bad.contains("bad proxy \"socks5://p:1080\""), "\(bad)")
        XCTAssertTrue(bad.contains("\"client_cert_file\" and \"client_key_file\" go together"), "\(bad)")
        XCTAssertEqual(bad.count, 6, "\(bad)")
        let path = write(
            "relay.yaml",
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: h, vendor: homesmartlink, base_url: "https://relay/hsl", \(relay), client_id: c, homes: ["64f"]}
              - {name: p, vendor: podero, base_url: "https://relay/podero/api/partners/v2.0", \(relay), client_id: c, org_id: o, devices: ["hp"]}
            """)
        let ok = try ConfigLoader.load(path: path, environment: [:]).get().config
        XCTAssertNil(ok.accounts[0].settings(as: HSLAccountSettings.self)?.clientSecret)
        XCTAssertNil(ok.accounts[1].settings(as: PoderoAccountSettings.self)?.clientSecret)
        XCTAssertTrue(ok.accounts.allSatisfy { $0.connection.isRelay })

        // The box key as a systemd credential: found in $CREDENTIALS_DIRECTORY, checked like a key file.
        let cred = write(
            "cred.yaml",
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: h, vendor: homesmartlink, base_url: "https://relay/hsl", client_cert_file: \(dir!)/box.crt, client_key_credential: box.key, client_id: c, homes: ["64f"]}
            """)
        let viaCredential = try ConfigLoader.load(path: cred, environment: ["CREDENTIALS_DIRECTORY": dir]).get().config
        XCTAssertEqual(viaCredential.accounts[0].connection.clientKeyFile, key)
        guard case .failure(let noDir) = ConfigLoader.load(path: cred, environment: [:]) else {
            return XCTFail("loaded without $CREDENTIALS_DIRECTORY")
        }
        XCTAssertEqual(noDir.diagnostics.map(\.message), ["client_key_credential: credential \"box.key\" needs $CREDENTIALS_DIRECTORY"])
        chmod(key, 0o640)
        guard case .failure(let loose) = ConfigLoader.load(path: cred, environment: ["CREDENTIALS_DIRECTORY": dir]) else {
            return XCTFail("loose key accepted")
        }
        XCTAssertEqual(loose.diagnostics.map(\.message), ["client_key_file \(key) is readable by group or others (mode 640)"])
    }

    /// A secret typed into the wrong place is not repeated: URL passwords and query values, long values.
    func testSecretsTypedIntoTheConfigAreNotEchoed() throws {
        XCTAssertEqual(ConfigText.redactedURL("mqtt://u:KEY@h:1883"), "mqtt://u:***@h:1883")
        XCTAssertEqual(ConfigText.redactedURL("https://h/api?key=KEY&x=1#f"), "https://h/api?key=***&x=***#f")
        XCTAssertEqual(ConfigText.redactedURL("https://h:443/api"), "https://h:443/api")
        XCTAssertEqual(ConfigText.redactedURL("http://user@proxy:3128"), "http://user@proxy:3128")
        XCTAssertEqual(ConfigText.echo("fast"), "\"fast\"")
        XCTAssertEqual(ConfigText.echo("xHCSAPI-0123456789"), "a 18-character value (not shown: it could be a secret)")
        _ = write("k", "key")
        let secret = "xHCSAPI-TYPED-INTO-THE-WRONG-PLACE"
        let d = diagnostics(
            """
            mqtt:
              url: mqtt://heatbridge:\(secret)@127.0.0.1:1883
              keepalive_s: \(secret)
            accounts:
              - {name: b, vendor: bosch, base_url: "ftp://h/api?key=\(secret)", api_key_file: \(dir!)/k, user_id: u, devices: ["1"], rotate_key: \(secret)}
            """)
        let text = d.map { "\($0.message) \($0.hint ?? "")" }.joined(separator: "\n")
        XCTAssertEqual(d.count, 4, text)
        XCTAssertFalse(text.contains(secret), text)
        XCTAssertTrue(text.contains("the MQTT URL \"mqtt://heatbridge:***@127.0.0.1:1883\" holds a user or password"), text)
        XCTAssertTrue(text.contains("bad base_url \"ftp://h/api?key=***\""), text)
    }

    func testTriggersAreValidatedWithPositions() throws {
        _ = write("k", "key")
        let d = diagnostics(
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: b, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101"]}
            groups:
              peak: [bosch-101/hc1]
            triggers:
              - {name: t1, at: "25:00", action: {target: bosch-101/dhw1, capability: charge, params: {action: start}}}
              - {name: t2, cron: "0 3 * *", action: {target: bosch-101/dhw1, capability: charge, params: {action: start}}}
              - {name: t3, above: 2000, action: {target: bosch-101/dhw1, capability: charge, params: {action: start}}}
              - {name: t4, topic: pv/w, above: 1, action: {target: group/nope, capability: derogation}}
              - {name: t5, at: "06:00", action: {target: bosch-999/dhw1, capability: charge, params: {action: stop}}}
              - {name: t6, at: "06:00", days: [mon, funday], action: {target: hsl-1/room-1, capability: derogation}}
              - {name: t7, topic: "pv/#/w", changes: true, action: {target: group/peak, capability: mode}}
              - {name: t1, at: "06:00", action: {target: bosch-101/dhw1, capability: charge, params: {action: stop}}}
            """)
        let lines = d.map { "\($0.mark.line):\($0.mark.column) \($0.message)" }
        XCTAssertTrue(lines.contains { $0.contains("\"at\" must be a local time HH:MM (00:00…23:59), found \"25:00\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("a cron expression has 5 fields") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("trigger \"t3\": a condition (above) needs a \"topic\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("unknown target group \"nope\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("unknown target device \"bosch-999\": 999 is not in any bosch account's devices") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("unknown weekday \"funday\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("unknown target device \"hsl-1\": no homesmartlink account is configured") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("bad topic filter \"pv/#/w\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("duplicate trigger name \"t1\"") }, "\(lines)")
        XCTAssertTrue(lines.allSatisfy { !$0.hasPrefix("0:") }, "every error has a position: \(lines)")
        // The actions' own parameters too: t6's derogation and t7's mode say nothing.
        XCTAssertTrue(lines.contains { $0.contains("trigger \"t6\": missing \"delta\"") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("trigger \"t7\": group \"peak\" member bosch-101/hc1: missing \"mode\"") }, "\(lines)")
        XCTAssertEqual(d.count, 11, "\(lines)")
    }

    /// Trigger actions go through the validators MQTT commands use, at config time, with positions (#17 item
    /// 13); a rule with a duplicate name still has its own mistakes reported; `days` only goes with `at`.
    func testTriggerActionsAreCheckedLikeCommands() throws {
        _ = write("k", "key")
        _ = write("s", "secret")
        let d = diagnostics(
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: b, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101"]}
              - {name: h, vendor: homesmartlink, base_url: "https://y", client_id: c, client_secret_file: \(dir!)/s, homes: [abc]}
              - {name: p, vendor: podero, base_url: "https://z", client_id: c, client_secret_file: \(dir!)/s, org_id: o, devices: all}
            triggers:
              - {name: a1, at: "06:00", action: {target: bosch-101/dhw1, capability: chrage}}
              - {name: a2, at: "06:00", action: {target: bosch-101/dhw1, capability: charge, params: {action: start, duration_min: 999}}}
              - {name: a3, at: "06:00", action: {target: hsl-abc/room-1, capability: derogation, params: {delta: 9, duration_min: 60}}}
              - {name: a4, at: "06:00", action: {target: podero-x/hp, capability: optimization, params: {level: turbo}}}
              - {name: a5, at: "06:00", action: {target: bosch-101/dwh1, capability: charge}}
              - {name: a6, at: "06:00", action: {target: bosch-101/hc1, capability: setpoint, params: {setpoint: 21, boost: true}}}
              - {name: a7, topic: pv/w, above: 1, days: [mon], action: {target: bosch-101/dhw1, capability: charge, params: {action: start}}}
              - {name: a1, cron: "0 3 * *", action: {target: group/nope, capability: charge}}
              - {name: ok, at: "07:00", action: {target: bosch-101/hc1, capability: target, params: {temperature: 21}}}
              - {name: lease, at: "07:00", action: {target: bosch-101/hc1, capability: setpoint, params: {setpoint: 18, duration_s: 4}}}
              - {name: lease-bad, at: "07:00", action: {target: bosch-101/hc1, capability: mode, params: {mode: off, duration_s: 0}}}
            """)
        let lines = d.map { "\($0.mark.line):\($0.mark.column) \($0.message)" }
        func has(_ text: String, line: Int) -> Bool { d.contains { $0.mark.line == line && $0.message.contains(text) } }
        XCTAssertTrue(has("trigger \"a1\": \"chrage\" is not supported on dhw1; supported: charge", line: 8), "\(lines)")
        XCTAssertTrue(has("trigger \"a2\": \"duration_min\" must be", line: 9), "\(lines)")
        XCTAssertTrue(has("(OUT_OF_RANGE)", line: 9), "\(lines)")
        XCTAssertTrue(has("trigger \"a3\": \"delta\"", line: 10), "\(lines)")
        XCTAssertTrue(has("trigger \"a4\": \"level\" must be one of low, mid, max", line: 11), "\(lines)")
        XCTAssertTrue(has("trigger \"a5\": \"dwh1\" is not a Bosch node", line: 12), "\(lines)")
        XCTAssertTrue(has("trigger \"a6\":", line: 13) && has("boost", line: 13), "\(lines)")
        XCTAssertTrue(has("\"days\" goes with \"at\"", line: 14), "\(lines)")
        // The duplicate a1: named as such, and its bad cron and unknown group reported too.
        XCTAssertTrue(has("duplicate trigger name \"a1\"", line: 15), "\(lines)")
        XCTAssertTrue(has("a cron expression has 5 fields", line: 15), "\(lines)")
        XCTAssertTrue(has("unknown target group \"nope\"", line: 15), "\(lines)")
        XCTAssertFalse(d.contains { $0.mark.line == 16 || $0.mark.line == 17 }, "a valid action (a lease among them) was refused: \(lines)")
        XCTAssertTrue(has("trigger \"lease-bad\": \"duration_s\" must be 1…604800", line: 18), "\(lines)")
        XCTAssertTrue(d.allSatisfy { $0.mark.line > 0 && $0.mark.column > 0 }, "\(lines)")
        XCTAssertEqual(d.count, 11, "\(lines)")
    }

    func testExampleTriggersDecode() throws {
        _ = write("k", "key")
        let path = write(
            "t.yaml",
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: b, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: all}
            triggers:
              - name: morning
                at: "06:30"
                days: [mon, tue, wed, thu, fri]
                run_if_within_s: 900
                action: {target: bosch-101/dhw1, capability: charge, params: {action: start, duration_min: 30}, valid_for_s: 600}
              - name: surplus
                topic: pv/surplus_w
                path: value
                above: 2000
                hysteresis: 200
                hold_s: 300
                action: {target: bosch-101/dhw1, capability: charge, params: {action: start}}
            """)
        let c = try ConfigLoader.load(path: path, environment: [:]).get().config
        XCTAssertEqual(c.bridge.triggers.count, 2)
        XCTAssertEqual(c.bridge.triggers[0].kind, .time(.daily(minute: 390, days: [0, 1, 2, 3, 4])))
        XCTAssertEqual(c.bridge.triggers[0].runIfWithinS, 900)
        XCTAssertEqual(c.bridge.triggers[0].action.params, ["action": "start", "duration_min": 30])
        XCTAssertEqual(c.bridge.triggers[0].action.validForS, 600)
        XCTAssertEqual(
            c.bridge.triggers[1].kind,
            .condition(
                TopicCondition(
                    topic: "pv/surplus_w", path: ["value"], test: .above(2000),
                    hysteresis: 200, holdS: 300)))
    }

    func testHomeAssistantSection() throws {
        let d = diagnostics(
            """
            mqtt: {url: "mqtt://h", base_topic: home}
            homeassistant: {discovery: yes, prefix: home}
            """)
        XCTAssertEqual(
            d.map(\.message),
            [
                "\"discovery\" must be true or false, found \"yes\"",
                "discovery prefix \"home\" overlaps the base topic \"home\"",
            ])
        let ok = try ConfigLoader.load(
            path: write("ha.yaml", "mqtt: {url: \"mqtt://h\"}\nhomeassistant: {discovery: true}\n"),
            environment: [:]
        ).get()
        XCTAssertTrue(ok.config.homeAssistant.discovery)
        XCTAssertEqual(ok.config.homeAssistant.prefix, "homeassistant")
    }

    /// The status page: loopback by default; the LAN only with a token in a file only heatbridge reads.
    func testHTTPListenerNeedsATokenOffLoopback() throws {
        let ok = try ConfigLoader.load(path: write("h0.yaml", "mqtt: {url: \"mqtt://h\"}\n"), environment: [:]).get()
        XCTAssertEqual(ok.config.http.listen, "127.0.0.1")
        XCTAssertEqual(ok.config.http.port, 8787)
        XCTAssertNil(ok.config.http.token)
        XCTAssertEqual(
            diagnostics("mqtt: {url: \"mqtt://h\"}\nhttp: {listen: 0.0.0.0}\n").map(\.message),
            ["listening on 0.0.0.0 needs a token: anyone on the LAN could read the box's status"])
        XCTAssertEqual(
            diagnostics("mqtt: {url: \"mqtt://h\"}\nhttp: {listen: 0.0.0.0, token: abcdefabcdefabcdef}\n").map(\.message),
            ["listening on 0.0.0.0 needs a token: anyone on the LAN could read the box's status", "inline secret \"token\" is not allowed in http"])
        XCTAssertEqual(
            diagnostics("mqtt: {url: \"mqtt://h\"}\nhttp: {listen: lan, port: 99999}\n").map(\.message),
            ["\"listen\" must be an IP address, found \"lan\"", "\"port\" must be within 0…65535, found \"99999\""])
        let open = write("open.token", "0123456789abcdef0123\n")
        chmod(open, 0o644)
        XCTAssertEqual(
            diagnostics("mqtt: {url: \"mqtt://h\"}\nhttp: {listen: 0.0.0.0, token_file: \(open)}\n").map(\.message),
            ["token_file \(open) is readable by others (mode 644)"])
        let short = write("short.token", "abc\n")
        chmod(short, 0o600)
        XCTAssertEqual(
            diagnostics("mqtt: {url: \"mqtt://h\"}\nhttp: {listen: 0.0.0.0, token_file: \(short)}\n").map(\.message),
            ["the HTTP token is 3 characters; at least 16"])
        let good = write("good.token", "0123456789abcdef0123\n")
        chmod(good, 0o600)
        let lan = try ConfigLoader.load(
            path: write("h1.yaml", "mqtt: {url: \"mqtt://h\"}\nhttp: {listen: 0.0.0.0, port: 9100, token_file: \(good)}\n"),
            environment: [:]
        ).get()
        XCTAssertEqual(lan.config.http.port, 9100)
        XCTAssertNotNil(lan.config.http.token)
        XCTAssertEqual(lan.document["http"]?["token_file"]?.stringValue, good, "the config answer names the file, not the token")
        XCTAssertFalse(lan.document.serialized.contains("0123456789abcdef0123"))
        let off = try ConfigLoader.load(path: write("h2.yaml", "mqtt: {url: \"mqtt://h\"}\nhttp: {listen: 0.0.0.0, port: 0}\n"), environment: [:])
            .get()
        XCTAssertEqual(off.config.http.port, 0, "port 0 turns the listener off, and off needs no token")
    }

    func testYAMLSyntaxErrorsAndUnsupportedFeatures() {
        XCTAssertEqual(diagnostics("mqtt:\n  url: 'x\n").first?.mark.line, 3)
        XCTAssertTrue(diagnostics("a: &x 1\nb: *x\n").first?.message.contains("anchors") ?? false)
        XCTAssertTrue(diagnostics("mqtt: {url: mqtt://h}\n---\nmqtt: {}\n").first?.message.contains("one YAML document") ?? false)
        XCTAssertTrue(diagnostics("mqtt: {url: mqtt://h}\nmqtt: {url: mqtt://h}\n").first?.message.contains("duplicate key") ?? false)
        // Nested and in JSON-style flow mappings too: a key given twice is an error, never last-wins.
        let nested = diagnostics("mqtt: {url: mqtt://h}\nstore:\n  path: /a.db\n  path: /b.db\n")
        XCTAssertTrue(nested.contains { $0.message == "duplicate key \"path\"" && $0.mark.line == 4 }, "\(nested.map(\.message))")
        XCTAssertTrue(
            diagnostics(#"{"mqtt": {"url": "mqtt://h", "url": "mqtt://x"}}"# + "\n").contains { $0.message.contains("duplicate key \"url\"") })
        XCTAssertTrue(diagnostics("").first?.message.contains("missing required section \"mqtt\"") ?? false)
    }

    func testSecretProblemsNeverShowTheSecret() {
        _ = write("empty.key", "\n")
        let d = diagnostics(
            """
            mqtt:
              url: mqtt://h
              password_file: \(dir!)/empty.key
            accounts:
              - {name: a, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/nope, api_key_credential: y, user_id: u}
            """)
        XCTAssertTrue(d.contains { $0.message.contains("empty") })
        XCTAssertTrue(d.contains { $0.message.contains("not both") })
    }
}

/// The files the project ships must stay valid.
final class ShippedConfigTests: XCTestCase {
    static let root = String(#filePath.split(separator: "/").dropLast(3).joined(separator: "/"))

    func testExampleConfigIsValidButForItsPlaceholderSecret() {
        let path = "/" + Self.root + "/etc/heatbridge/heatbridge.yaml"
        guard case .failure(let e) = ConfigLoader.load(path: path, environment: [:]) else {
            return XCTFail("the example's secret path should not exist on a build machine")
        }
        XCTAssertEqual(e.diagnostics.count, 1, "\(e.diagnostics)")
        XCTAssertTrue(e.diagnostics.first?.message.hasPrefix("api_key_file: cannot read secret file /etc/heatbridge/secrets/bosch.key") ?? false)
    }

    func testDemoConfigIsValid() throws {
        let root = "/" + Self.root
        XCTAssertEqual(chdir(root), 0)
        let loaded = try ConfigLoader.load(path: root + "/etc/heatbridge/demo.yaml", environment: [:]).get()
        XCTAssertEqual(loaded.config.accounts.map(\.vendor), ["bosch", "podero", "homesmartlink"])
        XCTAssertEqual(loaded.config.accounts.last?.settings(as: HSLAccountSettings.self)?.homes, ["64f1c0a2e9b3"])
        XCTAssertEqual(loaded.config.accounts.last?.settings(as: HSLAccountSettings.self)?.reportIntervalS, 1)
        let podero = loaded.config.accounts[1]
        XCTAssertEqual(podero.settings(as: PoderoAccountSettings.self)?.clientId, "demo-client")
        XCTAssertEqual(podero.settings(as: PoderoAccountSettings.self)?.orgId, "org-demo")
        XCTAssertEqual(podero.pollIntervalS, 30)
    }

    func testPoderoAccountNeedsItsCredentialsAndNeverInline() {
        let yaml = """
            mqtt:
              url: mqtt://127.0.0.1:1883
            accounts:
              - name: p
                vendor: podero
                base_url: https://app.podero.com/api/partners/v2.0
                client_secret: hunter2
            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("podero-\(getpid()).yaml").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard case .failure(let e) = ConfigLoader.load(path: path, environment: [:]) else { return XCTFail("accepted") }
        let messages = e.diagnostics.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("inline secret \"client_secret\" is not allowed") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("podero account needs \"client_id\"") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("podero account needs \"org_id\"") }, "\(messages)")
        XCTAssertFalse(messages.joined().contains("hunter2"), "a secret was echoed")
    }
}

extension ConfigTests {
    func testPollPacingAndKeyRotationKeys() throws {
        _ = write("bosch.key", "xHCSAPI-secret-20270101\n")
        let good = write(
            "rot.yaml",
            """
            mqtt:
              url: mqtt://127.0.0.1:1883
            accounts:
              - name: b
                vendor: bosch
                base_url: https://api.test
                api_key_file: \(dir!)/bosch.key
                user_id: u
                devices: ["101"]
                poll_interval_s: 30
                poll_max_interval_s: 300
                rotate_key: true
            """)
        guard case .success(let l) = ConfigLoader.load(path: good, environment: [:]) else { return XCTFail("refused") }
        XCTAssertEqual(l.config.accounts[0].maxPollIntervalS, 300)
        XCTAssertEqual(l.config.accounts[0].settings(as: BoschAccountSettings.self)?.rotateKey, true)
        let bad = write(
            "rot-bad.yaml",
            """
            mqtt:
              url: mqtt://127.0.0.1:1883
            accounts:
              - name: b
                vendor: bosch
                base_url: https://api.test
                api_key_credential: bosch-key
                user_id: u
                poll_interval_s: 30
                poll_max_interval_s: 10
                rotate_key: true
              - name: p
                vendor: podero
                base_url: https://p.test
                client_id: c
                client_secret_file: \(dir!)/bosch.key
                org_id: o
                rotate_key: yes
            """)
        guard case .failure(let e) = ConfigLoader.load(path: bad, environment: [:]) else { return XCTFail("accepted") }
        let text = e.diagnostics.map(\.description).joined(separator: "\n")
        XCTAssertTrue(text.contains("rot-bad.yaml:10:"), text)
        XCTAssertTrue(text.contains("\"poll_max_interval_s\" (10) must not be below poll_interval_s (30)"), text)
        XCTAssertTrue(text.contains("\"rotate_key\" needs \"api_key_file\""), text)
        XCTAssertTrue(text.contains("\"rotate_key\" must be true or false, found \"yes\""), text)
    }
}

extension ConfigLoader {
    /// The loader with every vendor heatbridge ships, as the daemon and the CLI call it.
    static func load(path: String, environment: [String: String]) -> Result<LoadedConfig, ConfigErrors> {
        load(path: path, environment: environment, vendors: HeatbridgeVendors.all)
    }
}

/// `push:` on an account: only where the cloud pushes, with sane intervals.
extension ConfigTests {
    func testPushSettingsAreCheckedWhereTheyAreWritten() throws {
        _ = write("k", "key")
        let bad = diagnostics(
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: a, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"], push: {reconcile_interval_s: 10}}
              - {name: b, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"], poll_interval_s: 600, push: {reconcile_interval_s: 300}}
              - {name: c, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"], push: {silent_after: 5}}
              - {name: d, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"], push: maybe}
              - {name: e, vendor: homesmartlink, base_url: "https://x", client_id: c, client_secret_file: \(dir!)/k, homes: ["64f"], push: true}
            """)
        let messages = bad.map(\.message)
        XCTAssertTrue(messages.contains { $0.contains("reconcile_interval_s") && $0.contains("60") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("must not be below poll_interval_s") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("silent_after") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("\"push\" must be true, false or a mapping") }, "\(messages)")
        XCTAssertTrue(
            messages.contains { $0.contains("\"push\" is only for accounts whose cloud pushes events (bosch); homesmartlink is polled") },
            "\(messages)")
        XCTAssertEqual(bad.count, 5, "\(messages)")
        XCTAssertTrue(bad.allSatisfy { $0.mark.line >= 4 }, "every error names its line")
        let path = write(
            "push.yaml",
            """
            mqtt:
              url: mqtt://h:1883
            accounts:
              - {name: a, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"], push: true}
              - {name: b, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"], push: {reconcile_interval_s: 1200, silent_after_s: 3600}}
              - {name: c, vendor: bosch, base_url: "https://x", api_key_file: \(dir!)/k, user_id: u, devices: ["101000001"]}
            """)
        let ok = try ConfigLoader.load(path: path, environment: [:]).get().config
        XCTAssertEqual(ok.accounts.map(\.push), [PushSettings(), PushSettings(reconcileIntervalS: 1200, silentAfterS: 3600), nil])
    }
}

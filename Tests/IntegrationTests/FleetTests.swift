import Foundation
import HeatbridgeCore
import XCTest

/// A partner's fleet: many boxes (daemon processes), each with its own gateway, all on one Bosch partner key,
/// against one simulator that enforces the documented company-wide and per-gateway limits; and one box under load
/// (`FleetTests+Soak.swift`). Each scenario's window of real time is its input, so they run side by side with the
/// other real-time windows (`SideBySideTests`), not as tests of their own.
final class FleetTests: XCTestCase {
    struct Box {
        var k: Int
        var gateway: String
        var process: Process
        /// The base topic on its broker.
        var base: String
        var device: String { "bosch-\(gateway)" }
    }

    /// Starts `count` boxes on `h`'s broker and simulator, each publishing under its own base topic.
    /// `brokerPorts`: each box's own local broker (nil: all on `h`'s broker, each under its own base topic).
    func startBoxes(
        _ h: Harness, gateways: [String], pollIntervalS: Double, brokerPorts: [Int]? = nil, statesFleet: Bool = true,
        push: String = ""
    ) throws -> [Box] {
        let key = h.dir.appendingPathComponent("bosch.key")
        try (Harness.apiKey + "\n").write(to: key, atomically: true, encoding: .utf8)
        var boxes: [Box] = []
        for (k, gw) in gateways.enumerated() {
            let config = h.dir.appendingPathComponent("box\(k).yaml")
            try """
            mqtt:
              url: mqtt://127.0.0.1:\(brokerPorts?[k] ?? h.brokerPort)
              base_topic: \(brokerPorts == nil ? "box\(k)" : "heatbridge")
              client_id: box\(k)
            store:
              path: \(h.dir.appendingPathComponent("box\(k).db").path)
            \(statesFleet ? "fleet:\n  boxes: \(gateways.count)" : "")
            accounts:
              - name: bosch
                vendor: bosch
                base_url: http://127.0.0.1:\(h.simPort)/bosch
                api_key_file: \(key.path)
                user_id: box-\(k)
                devices: ["\(gw)"]
                poll_interval_s: \(pollIntervalS)
                poll_max_interval_s: \(pollIntervalS)
                timeout_s: 10\(push)
            log:
              level: notice
            http:
              port: 0
            """.write(to: config, atomically: true, encoding: .utf8)
            let p = try h.launch(Harness.binary("heatbridge"), ["run", "--config", config.path], log: "box\(k).log")
            boxes.append(Box(k: k, gateway: gw, process: p, base: brokerPorts == nil ? "box\(k)" : "heatbridge"))
        }
        return boxes
    }

    /// Resident memory (KiB) and CPU time (s) of a process, from /proc.
    func usage(_ pid: Int32) -> (rssKiB: Int, cpuS: Double) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss =
            status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = fields.count > 12 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
        return (rss, ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// 100 boxes (HEATBRIDGE_FLEET_BOXES) for 90 s at a 20 s poll (HEATBRIDGE_FLEET_LONG=1: 10 minutes at the
    /// default 60 s): no 429, every box ready, each gateway read within its interval, commands done, and no
    /// box publishing another customer's gateway.
    func hundredBoxesOnOnePartnerKeyWithoutA429() throws {
        let env = ProcessInfo.processInfo.environment
        let long = env["HEATBRIDGE_FLEET_LONG"] == "1"
        let count = env["HEATBRIDGE_FLEET_BOXES"].flatMap(Int.init) ?? 100
        let poll: Double = long ? 60 : 20
        let duration: Double = env["HEATBRIDGE_FLEET_S"].flatMap(Double.init) ?? (long ? 600 : 90)
        let gateways = (0..<count).map { String(format: "1020%05d", $0) }
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-\(getpid()).yaml")
        try ("bosch:\n  rate_limit: true\n  gateways:\n" + gateways.map { "    - {id: \"\($0)\", brand: bosch}\n" }.joined())
            .write(to: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scenario) }
        let h = try Harness(simArgs: ["--scenario", scenario.path])
        defer { h.stopAll() }
        let c = try TestMQTTClient(port: h.brokerPort)
        defer { c.close() }
        try c.waitConnected()
        c.subscribe("#")
        let boxes = try startBoxes(h, gateways: gateways, pollIntervalS: poll)
        defer {
            for b in boxes where b.process.isRunning {
                kill(b.process.processIdentifier, SIGKILL)
                b.process.waitUntilExit()
            }
        }
        let started = Date()
        for b in boxes {
            c.waitJSON("\(b.base)/bridge/account/bosch", timeout: 120) { $0["state"] == "ready" }
            c.waitJSON("\(b.base)/\(b.device)/dhw1/state", timeout: 120)
        }
        let readyAfter = Date().timeIntervalSince(started)

        // The window: the status reads of every gateway (collected before the simulator's log of 10,000
        // requests wraps), and one charge on every tenth box.
        var statusReads: [String: Set<Double>] = [:]
        var limitedRequests: Set<String> = []
        func collect() throws {
            for r in try h.admin("GET", "/admin/requests").arrayValue ?? [] {
                if r["status"] == 429 {
                    limitedRequests.insert("\(r["method"]?.stringValue ?? "") \(r["path"]?.stringValue ?? "") at \(r["at"]?.doubleValue ?? 0)")
                }
                guard let path = r["path"]?.stringValue, path.hasSuffix("/status"), let at = r["at"]?.doubleValue else { continue }
                statusReads[String(path.dropFirst("/hvacs/".count).prefix(9)), default: []].insert(at)
            }
        }
        let windowStart = Date().timeIntervalSince1970
        let chargeEvery = max(1, count / 10)
        var sent: [(Box, String)] = []
        while Date().timeIntervalSince1970 - windowStart < duration {
            let i = sent.count * chargeEvery
            if i < count {
                let b = boxes[i]
                let id = "fleet-\(i)"
                c.publish("\(b.base)/\(b.device)/dhw1/charge/set", #"{"id":"\#(id)","action":"start","duration_min":30}"#)
                sent.append((b, id))
            }
            Thread.sleep(forTimeInterval: min(10, duration / 10))  // the window's pacing: the test's input
            try collect()
        }
        try collect()
        let windowEnd = Date().timeIntervalSince1970
        for (b, id) in sent {
            XCTAssertNotNil(c.waitResult("\(b.base)/\(b.device)/dhw1/charge/result", id: id, status: "done", timeout: 60), "box \(b.k)")
        }

        let stats = try h.admin("GET", "/admin/stats")
        let total = (stats.objectValue ?? [:]).filter { $0.key.hasPrefix("bosch ") }.values.compactMap(\.intValue).reduce(0, +)
        let limited = stats["bosch 429"]?.intValue ?? 0  // the simulator counts only the statuses it answered
        XCTAssertGreaterThan(total, count * 10, "the boxes were not polling")
        XCTAssertEqual(limited, 0, "answers 429 out of \(total): \(limitedRequests.sorted().prefix(8))")
        var late: [String] = []
        for b in boxes {
            XCTAssertEqual(c.all("\(b.base)/bridge/account/bosch").last.flatMap { try? JSONValue.parse($0.payload) }?["state"], "ready", "box \(b.k)")
            // Each gateway is read at least once per poll interval (plus the time a poll takes).
            let reads = (statusReads[b.gateway] ?? []).filter { $0 >= windowStart }.sorted()
            let gaps =
                zip(reads.dropFirst(), reads).map { $0 - $1 } + [(reads.first ?? windowEnd) - windowStart, windowEnd - (reads.last ?? windowStart)]
            if (gaps.max() ?? .infinity) > poll * 1.5 + 5 { late.append("\(b.gateway): \(gaps.map { Int($0) })") }
            // A box publishes its own gateway only.
            let foreign = c.recorder.messages.withLock { $0 }.filter {
                $0.topic.hasPrefix("\(b.base)/bosch-") && !$0.topic.hasPrefix("\(b.base)/\(b.device)/") && $0.topic != "\(b.base)/\(b.device)"
            }
            XCTAssertTrue(foreign.isEmpty, "box \(b.k) published \(foreign.first?.topic ?? "")")
        }
        XCTAssertTrue(late.isEmpty, "gateways not read within \(poll) s: \(late.prefix(5))")
        let companyWide = ((try h.admin("GET", "/admin/requests").arrayValue) ?? []).filter {
            ["/hvacs", "/health"].contains($0["path"]?.stringValue ?? "")
        }.count

        var rss = 0
        var cpu = 0.0
        for b in boxes {
            let u = usage(b.process.processIdentifier)
            rss += u.rssKiB
            cpu += u.cpuS
        }
        let elapsedH = Date().timeIntervalSince(started) / 3600
        print(
            String(
                format:
                    "fleet: %d boxes, poll %.0f s, %.0f s window; all ready after %.1f s; %d Bosch requests (%.0f per device per hour), %d answered 429; company-wide reads in the last window: %d; RSS %.1f MiB summed (%.1f per box), CPU %.1f s summed (%.2f %% of one core per box)",
                count, poll, duration, readyAfter, total, Double(total) / Double(count) / elapsedH, limited, companyWide,
                Double(rss) / 1024, Double(rss) / 1024 / Double(count), cpu, cpu / Double(count) / (elapsedH * 3600) * 100))
    }

    /// Each box's local mosquitto bridged to one central broker with the shipped `heatbridge-bridge.conf`
    /// (as `Harness.startBoxBroker` fills it in; the uplink runs through a TCP relay the test can cut). A command
    /// published centrally for box k runs on box k only and its results arrive centrally; retained commands are
    /// still refused; a 60-second cut of the uplink loses no command and no result; a box's last wills reach the
    /// centre.
    func boxesBehindACentralBrokerThroughTheShippedBridgeConfig() throws {
        let env = ProcessInfo.processInfo.environment
        let count = env["HEATBRIDGE_FLEET_CENTRAL_BOXES"].flatMap(Int.init) ?? 3
        let started = Date()
        var marks: [String] = []
        func mark(_ what: String) { marks.append("\(what) \(Int(Date().timeIntervalSince(started))) s") }
        defer { print("central: \((marks + ["cleaned up \(Int(Date().timeIntervalSince(started))) s"]).joined(separator: ", "))") }
        let gateways = (0..<count).map { String(format: "1030%05d", $0) }
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("central-\(getpid()).yaml")
        try ("bosch:\n  rate_limit: true\n  gateways:\n" + gateways.map { "    - {id: \"\($0)\", brand: bosch}\n" }.joined())
            .write(to: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scenario) }
        let h = try Harness(simArgs: ["--scenario", scenario.path])  // its broker is the central one
        defer { h.stopAll() }
        let relayPort = try Harness.freePort()
        func startRelay() throws -> Process {
            let p = try h.launch(
                "/usr/bin/socat", ["TCP-LISTEN:\(relayPort),fork,reuseaddr,bind=127.0.0.1", "TCP:127.0.0.1:\(h.brokerPort)"],
                log: "relay.log")
            try h.waitForPort(relayPort, what: "socat relay")
            return p
        }
        func cut(_ relay: Process) throws {
            _ = try runShell("pkill -KILL -P \(relay.processIdentifier); kill -KILL \(relay.processIdentifier)")
            relay.waitUntilExit()
        }
        var relay = try startRelay()
        defer { if relay.isRunning { try? cut(relay) } }

        // The shipped uplink retries with a jittered backoff (`restart_timeout base cap`, two values): after a central
        // outage 10,000 boxes come back spread over minutes, not in one burst. The boxes here retry every 1–2 s instead
        // (`startBoxBroker`): the subject is what survives the cut (sessions, queues, wills), not mosquitto's own
        // timer, and the shipped cap would let a box wait up to 120 s after the relay is back.
        let backoff = try Harness.shippedBridgeConfig().split(separator: "\n").filter { $0.hasPrefix("restart_timeout ") }
        XCTAssertEqual(backoff.count, 1, "the shipped uplink sets one restart_timeout")
        let backoffValues = backoff.first.map { $0.split(separator: " ").dropFirst().compactMap { Int($0) } } ?? []
        XCTAssertEqual(backoffValues.count, 2, "the shipped uplink's backoff is jittered (base and cap)")
        XCTAssertGreaterThanOrEqual(backoffValues.last ?? 0, 60, "the shipped uplink's backoff spreads a fleet's reconnects over minutes")
        var localPorts: [Int] = []
        var brokers: [Process] = []
        defer {
            for b in brokers where b.isRunning {
                b.terminate()
                b.waitUntilExit()
            }
        }
        for k in 0..<count {
            let (broker, port) = try h.startBoxBroker(k, centralPort: relayPort)
            brokers.append(broker)
            localPorts.append(port)
        }
        let c = try TestMQTTClient(port: h.brokerPort)
        defer { c.close() }
        try c.waitConnected()
        c.subscribe("partner/#")
        mark("brokers up")
        let boxes = try startBoxes(h, gateways: gateways, pollIntervalS: 5, brokerPorts: localPorts)
        defer {
            for b in boxes where b.process.isRunning {
                kill(b.process.processIdentifier, SIGKILL)
                b.process.waitUntilExit()
            }
        }
        func central(_ k: Int, _ rest: String) -> String { "partner/boxes/box-\(k)/heatbridge/\(rest)" }
        func uplink(_ k: Int) -> String? { c.all("partner/boxes/box-\(k)/uplink").last.map { String(decoding: $0.payload, as: UTF8.self) } }
        for b in boxes {
            c.waitJSON(central(b.k, "\(b.device)/dhw1/state"), timeout: 60)
            c.waitJSON(central(b.k, "bridge/state"), timeout: 30) { $0["state"] == "online" }
            XCTAssertEqual(uplink(b.k), "1")
        }

        mark("boxes up")
        // A command for box 0 runs there only, and its results come back to the centre.
        let gw0 = boxes[0].device
        let gw1 = boxes[1].device
        c.publish(central(0, "\(gw0)/dhw1/charge/set"), #"{"id":"central-1","action":"start","duration_min":17}"#)
        XCTAssertNotNil(c.waitResult(central(0, "\(gw0)/dhw1/charge/result"), id: "central-1", status: "done", timeout: 30))
        let patches = try h.admin("GET", "/admin/requests").arrayValue?.filter { $0["method"] == "PATCH" } ?? []
        XCTAssertEqual(patches.compactMap { $0["path"]?.stringValue }, ["/hvacs/\(boxes[0].gateway)/dhwCircuits/1/charge"])
        // Box 0 does not know box 1's gateway, even when asked through box 0's topics.
        c.publish(central(0, "\(gw1)/dhw1/charge/set"), #"{"id":"foreign","action":"start"}"#)
        XCTAssertEqual(c.waitResult(central(0, "\(gw1)/dhw1/charge/result"), id: "foreign", status: "rejected")?["code"], "UNKNOWN_TARGET")
        // A bridge request for box 1 is answered by box 1 only, from the centre.
        c.publish(central(1, "bridge/request/status"), #"{"transaction":"fleet-status"}"#)
        let answer = c.waitJSON(central(1, "bridge/response/status"), timeout: 30) { $0["transaction"] == "fleet-status" }
        XCTAssertEqual(answer?["data"]?["devices"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [gw1])
        c.publish(central(0, "bridge/request/health_check"), #"{"transaction":"fleet-health"}"#)
        XCTAssertEqual(c.waitJSON(central(0, "bridge/response/health_check"), timeout: 30) { $0["transaction"] == "fleet-health" }?["status"], "ok")
        let answeredBy = c.recorder.messages.withLock { $0 }.filter {
            $0.topic.hasSuffix("/bridge/response/status") && String(decoding: $0.payload, as: UTF8.self).contains("fleet-status")
        }.map(\.topic)
        XCTAssertEqual(answeredBy, [central(1, "bridge/response/status")], "a request for box 1 answered elsewhere")

        // A retained command at the centre arrives retained and is refused, as on the local broker.
        c.publish(central(1, "\(gw1)/dhw1/charge/set"), #"{"id":"retained","action":"start"}"#, retain: true)
        XCTAssertEqual(c.waitResult(central(1, "\(gw1)/dhw1/charge/result"), id: "retained", status: "rejected")?["code"], "RETAINED_COMMAND")
        c.publish(central(1, "\(gw1)/dhw1/charge/set"), "", retain: true)

        // The uplink is cut for 60 s. A command sent centrally meanwhile waits at the centre; box 1 gets one
        // locally and produces its results while no uplink is there.
        mark("commands done")
        try cut(relay)
        h.waitUntil("the centre to see the uplinks down", timeout: 60) { (0..<count).allSatisfy { uplink($0) == "0" } }
        mark("uplinks down")
        c.publish(central(0, "\(gw0)/dhw1/charge/set"), #"{"id":"during-cut","action":"start","duration_min":18}"#)
        let local1 = try TestMQTTClient(port: localPorts[1])
        defer { local1.close() }
        try local1.waitConnected()
        local1.subscribe("heatbridge/#")
        local1.publish("heatbridge/\(gw1)/dhw1/charge/set", #"{"id":"local-during-cut","action":"start","duration_min":19}"#)
        XCTAssertNotNil(
            local1.waitResult("heatbridge/\(gw1)/dhw1/charge/result", id: "local-during-cut", status: "done", timeout: 30),
            "box 1 kept working without its uplink")
        Thread.sleep(forTimeInterval: 60)  // the subject: sixty seconds without an uplink
        XCTAssertTrue(c.statuses(central(0, "\(gw0)/dhw1/charge/result"), id: "during-cut").isEmpty, "the uplink was not cut")
        mark("cut over")
        relay = try startRelay()
        XCTAssertNotNil(
            c.waitResult(central(0, "\(gw0)/dhw1/charge/result"), id: "during-cut", status: "done", timeout: 60),
            "the command sent during the cut was lost")
        XCTAssertNotNil(
            c.waitResult(central(1, "\(gw1)/dhw1/charge/result"), id: "local-during-cut", status: "done", timeout: 60),
            "a result produced during the cut was lost")
        XCTAssertEqual(
            c.statuses(central(1, "\(gw1)/dhw1/charge/result"), id: "local-during-cut"), ["accepted", "done"],
            "every stage once, in order")
        XCTAssertEqual(c.statuses(central(0, "\(gw0)/dhw1/charge/result"), id: "during-cut").filter { $0 == "done" }.count, 1)

        // The last wills: the daemon's (through the bridge) and the box's own (the central broker's), once the last
        // box's uplink is back after the cut.
        mark("results back")
        let last = boxes[count - 1]
        h.waitUntil("box \(last.k)'s uplink back after the cut", timeout: 60) { uplink(last.k) == "1" }
        mark("uplink back")
        kill(last.process.processIdentifier, SIGKILL)
        c.waitJSON(central(last.k, "bridge/state"), timeout: 60) { $0["state"] == "offline" }
        brokers[count - 1].terminate()
        h.waitUntil("the centre to see box \(last.k) gone", timeout: 60) { uplink(last.k) == "0" }
        mark("wills seen")
    }

    /// 40 boxes started together (a region's power cut, a rollout) at a 10 s poll, and no `fleet:` in their
    /// configs: the company-wide reads are spread over the first minute and a 429 backs off at random, so the
    /// partner key gets no 429 (measured before: 180 of 7,029 answers).
    func fortyBoxesStartedTogetherWithoutAFleetSettingGetNo429() throws {
        let count = ProcessInfo.processInfo.environment["HEATBRIDGE_FLEET_START_BOXES"].flatMap(Int.init) ?? 40
        let gateways = (0..<count).map { String(format: "1050%05d", $0) }
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("start-\(getpid()).yaml")
        try ("bosch:\n  rate_limit: true\n  gateways:\n" + gateways.map { "    - {id: \"\($0)\", brand: bosch}\n" }.joined())
            .write(to: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scenario) }
        let h = try Harness(simArgs: ["--scenario", scenario.path])
        defer { h.stopAll() }
        let c = try TestMQTTClient(port: h.brokerPort)
        defer { c.close() }
        try c.waitConnected()
        c.subscribe("#")
        let boxes = try startBoxes(h, gateways: gateways, pollIntervalS: 10, statesFleet: false)
        defer {
            for b in boxes where b.process.isRunning {
                kill(b.process.processIdentifier, SIGKILL)
                b.process.waitUntilExit()
            }
        }
        for b in boxes { c.waitJSON("\(b.base)/\(b.device)/dhw1/state", timeout: 120) }
        // Past the spread (60 s) and a retry: every box has read the gateway list once (its brand is known).
        let started = Date()
        for b in boxes {
            c.waitJSON("\(b.base)/\(b.device)/state", timeout: 150) { $0["brand"] == "bosch" }
        }
        let stats = try h.admin("GET", "/admin/stats")
        let total = (stats.objectValue ?? [:]).filter { $0.key.hasPrefix("bosch ") }.values.compactMap(\.intValue).reduce(0, +)
        let limited = stats["bosch 429"]?.intValue ?? 0
        let lists = try h.admin("GET", "/admin/requests").arrayValue?.filter { $0["path"] == "/hvacs" }.count ?? 0
        print(
            "fleet start: \(count) boxes together, 10 s poll, no fleet: setting: \(total) Bosch answers, \(limited) × 429, \(lists) gateway-list reads; every box had its list after \(Int(Date().timeIntervalSince(started))) s more"
        )
        XCTAssertGreaterThan(total, count * 10, "the boxes were not polling")
        XCTAssertEqual(limited, 0)
    }

    /// 100 boxes (HEATBRIDGE_FLEET_BOXES) at the defaults (60 s poll, `push: true`), first without events, then with
    /// the simulator's webhooks live through `heatbridge-receiver` and the central broker (each box's base topic is its
    /// box id): Bosch requests per device-hour are printed for both windows (HEATBRIDGE_FLEET_PUSH_S each, 90 s; use
    /// 1200 or more to see the steady state, one reconcile poll per 900 s), with no 429 and every box's heat pump
    /// power live.
    func hundredBoxesWithPushLivePollLessAndGetNo429() throws {
        let env = ProcessInfo.processInfo.environment
        let count = env["HEATBRIDGE_FLEET_BOXES"].flatMap(Int.init) ?? 100
        let window = env["HEATBRIDGE_FLEET_PUSH_S"].flatMap(Double.init) ?? 90
        let gateways = (0..<count).map { String(format: "1060%05d", $0) }
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("pushfleet-\(getpid()).yaml")
        try ("bosch:\n  rate_limit: true\n  gateways:\n" + gateways.map { "    - {id: \"\($0)\", brand: bosch}\n" }.joined())
            .write(to: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scenario) }
        let h = try Harness(simArgs: ["--scenario", scenario.path])
        defer { h.stopAll() }
        let map = h.dir.appendingPathComponent("boxes.map")
        try gateways.enumerated().map { "box\($0.offset) \"bosch:\($0.element)\";\n" }.joined().write(to: map, atomically: true, encoding: .utf8)
        let receiver = try TestReceiver(h, scopeMap: map.path, topic: "{box}/push/bosch/{gateway}")
        defer { receiver.kill9() }
        let c = try TestMQTTClient(port: h.brokerPort)
        defer { c.close() }
        try c.waitConnected()
        c.subscribe("#")
        let boxes = try startBoxes(h, gateways: gateways, pollIntervalS: 60, push: "\n    push: true")
        defer {
            for b in boxes where b.process.isRunning {
                kill(b.process.processIdentifier, SIGKILL)
                b.process.waitUntilExit()
            }
        }
        for b in boxes { c.waitJSON("\(b.base)/\(b.device)/dhw1/state", timeout: 180) }

        func answers() throws -> Int {
            let stats = try h.admin("GET", "/admin/stats")
            return (stats.objectValue ?? [:]).filter { $0.key.hasPrefix("bosch ") }.values.compactMap(\.intValue).reduce(0, +)
        }
        func rate(_ n: Int, _ s: Double) -> Double { Double(n) / Double(count) / (s / 3600) }
        // Polling only: push is configured, no event has come (silent).
        let a0 = try answers()
        let t0 = Date()
        Thread.sleep(forTimeInterval: window)  // the measured window: the test's input
        let polled = try answers() - a0
        let polledS = Date().timeIntervalSince(t0)

        try h.admin("POST", "/admin/bosch/webhooks", #"{"urls":["\#(receiver.directURL)"],"interval_s":10}"#)
        for b in boxes {
            c.waitJSON("\(b.base)/bridge/account/bosch", timeout: 60) { $0["push"] == "live" }
            c.waitJSON("\(b.base)/\(b.device)/heatpump/state", timeout: 30) { $0["compressor"]?["power_w"]?.doubleValue != nil }
        }
        // Each box's poll planned before push went live still comes; then only reconcile polls.
        Thread.sleep(forTimeInterval: 65)
        let a1 = try answers()
        let t1 = Date()
        Thread.sleep(forTimeInterval: window)
        let pushed = try answers() - a1
        let pushedS = Date().timeIntervalSince(t1)
        let stats = try h.admin("GET", "/admin/stats")
        let limited = stats["bosch 429"]?.intValue ?? 0
        let events = receiver.health()
        print(
            String(
                format:
                    "fleet with push: %d boxes, defaults (60 s poll, reconcile 900 s): Bosch requests per device-hour %.0f polling only (%.0f s), %.0f with push live (%.0f s); %d × 429; receiver accepted %d events, %d duplicates, ack p99 %@ ms",
                count, rate(polled, polledS), polledS, rate(pushed, pushedS), pushedS, limited, events["accepted"]?.intValue ?? 0,
                events["duplicates"]?.intValue ?? 0, events["broker"]?["ack_ms"]?["p99"].map { $0.serialized } ?? "?"))
        let which =
            try h.admin("GET", "/admin/requests").arrayValue?.filter { $0["status"] == 429 }
            .map {
                "\($0["method"]?.stringValue ?? "") \($0["path"]?.stringValue ?? "") at \(Int(($0["at"]?.doubleValue ?? 0) - t0.timeIntervalSince1970)) s"
            } ?? []
        XCTAssertEqual(limited, 0, "\(which.prefix(10))")
        XCTAssertLessThanOrEqual(rate(pushed, pushedS), 60, "Bosch requests per device-hour with push live")
        XCTAssertGreaterThan(rate(polled, polledS), 300, "the polling window was not polling")
        // Power keeps moving on every box (the simulator walks it): the state is live.
        let moved = boxes.filter { b in
            Set(
                c.all("\(b.base)/\(b.device)/heatpump/state").compactMap {
                    (try? JSONValue.parse($0.payload))?["compressor"]?["power_w"]?.doubleValue
                }
            ).count > 1
        }
        XCTAssertGreaterThan(moved.count, count * 9 / 10, "boxes whose power changed while push was live")
    }
}

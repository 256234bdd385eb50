import Foundation
import HeatbridgeApp
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import HeatbridgeVendors
import Logging
import Synchronization
import XCTest

/// A box in process: the daemon's own wiring (`AppServices.build`) from a config file like the integration
/// harness writes, over the simulator without a socket, a recording MQTT client and a manual clock the test moves.
/// For what needs no real process (no broker restart, no kill -9, no systemd): those stay in IntegrationTests.
final class InProcessBox {
    struct ConfigRefused: Error { var lines: [String] }
    struct NotBuilt: Error { var failure: BuildFailure }

    let dir: URL
    let sim: Simulator
    let clock: ManualClock
    let services: AppServices
    let mqtt: RecordingMQTT
    /// The way to the simulator: cut it to take the cloud away as stopping the simulator process would.
    let link = InProcessTransport.Link()
    /// Every line the box logged, at every level (what the daemon would write to its journal).
    let log = LogRecorder()
    private let stop = OneShotSignal()
    private var task: Task<Void, Never>?

    /// The integration harness's account: `bosch-test` on every gateway of the simulator's default scenario
    /// (`devices`: only these); `discovery` turns Home Assistant discovery on; `extraSections` is YAML appended
    /// to the config (triggers, groups, limits), as the harness's `writeConfig` takes it.
    /// `homeSmartlink`: a second account, `hsl-test`, on the simulator's built-in home (the harness's `hslAccount()`);
    /// `podero`: one more, `podero-test`, on the simulator's built-in organisation (the harness's `poderoAccount()`).
    convenience init(
        pollIntervalS: Double = 2, timeoutS: Double = 1.5, devices: [String]? = nil, discovery: Bool = false,
        homeSmartlink: HomeSmartlinkAccount? = nil, podero: PoderoAccount? = nil, extraSections: String = ""
    ) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hb-box-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let loaded = try Self.loadConfig(
            in: dir, pollIntervalS: pollIntervalS, timeoutS: timeoutS, devices: devices, discovery: discovery,
            extraAccounts: (try homeSmartlink?.yaml(in: dir) ?? "") + (try podero?.yaml(in: dir) ?? ""), extraSections: extraSections)
        try self.init(dir: dir, loaded: loaded, sim: Simulator(bosch: .defaultScenario()), startingAt: Date().timeIntervalSince1970)
    }

    /// The same box started again after `previous` stopped, as the daemon restarts: the same config file and
    /// store, the same simulated cloud, its clock going on from where the previous one stood. What it publishes
    /// is recorded afresh (a test that cleared its client before the restart sees the same). `after`: how long the
    /// box was off (the clock goes on that much later).
    convenience init(restarting previous: InProcessBox, after offS: Double = 0) throws {
        let path = previous.dir.appendingPathComponent("heatbridge.yaml")
        let loaded: LoadedConfig
        switch ConfigLoader.load(path: path.path, environment: [:], vendors: HeatbridgeVendors.all) {
        case .success(let l): loaded = l
        case .failure(let errors): throw ConfigRefused(lines: errors.lines())
        }
        try self.init(dir: previous.dir, loaded: loaded, sim: previous.sim, startingAt: previous.clock.now() + offS)
    }

    private init(dir: URL, loaded: LoadedConfig, sim: Simulator, startingAt start: Double) throws {
        self.dir = dir
        self.sim = sim
        clock = ManualClock(start: start)
        let client = Mutex<RecordingMQTT?>(nil)
        // The machine's offset, as the simulated gateways' clocks use it (and as a daemon process would).
        let local = FixedOffsetTime(offsetS: Int64(TimeZone.current.secondsFromGMT()))
        let ports = AppPorts(
            transport: InProcessTransport(sim, clock: clock, link: link), clock: clock, localTime: local,
            makeMQTT: { setup in
                let m = RecordingMQTT(intake: setup.intake)
                client.withLock { $0 = m }
                return m
            }, environment: [:], version: "test")
        let log = self.log
        let logger = Logger(label: "box") { _ in RecordingLogHandler(recorder: log) }
        switch AppServices.build(loaded, ports: ports, logger: logger) {
        case .success(let s): services = s
        case .failure(let f): throw NotBuilt(failure: f)
        }
        mqtt = client.withLock { $0! }
        let bridge = services.bridge
        clock.drive(quiesce: { await bridge.quiesce() }, nextDeadline: { bridge.nextTimer })
    }

    /// Writes the box's config file (and its key file, `bosch.key`) into `dir` and loads it as the daemon does.
    static func loadConfig(
        in dir: URL, pollIntervalS: Double = 2, timeoutS: Double = 1.5, devices: [String]? = nil, discovery: Bool = false,
        extraAccounts: String = "", extraSections: String = ""
    ) throws -> LoadedConfig {
        let key = dir.appendingPathComponent("bosch.key")
        try Data((BoschCloud.defaultScenario().apiKey + "\n").utf8).write(to: key)
        chmod(key.path, 0o600)
        let yaml =
            """
            mqtt:
              url: mqtt://127.0.0.1:1
              base_topic: heatbridge
            store:
              path: \(dir.appendingPathComponent("state.db").path)
            http:
              port: 0
            accounts:
              - name: bosch-test
                vendor: bosch
                base_url: http://sim.test/bosch
                api_key_file: \(key.path)
                user_id: it-user
                poll_interval_s: \(pollIntervalS)
                timeout_s: \(timeoutS)
                devices: \(devices.map { "[" + $0.map { "\"\($0)\"" }.joined(separator: ", ") + "]" } ?? "all")\(extraAccounts)
            homeassistant:
              discovery: \(discovery)
            """ + extraSections
        let path = dir.appendingPathComponent("heatbridge.yaml")
        try Data(yaml.utf8).write(to: path)
        switch ConfigLoader.load(path: path.path, environment: [:], vendors: HeatbridgeVendors.all) {
        case .success(let loaded): return loaded
        case .failure(let errors): throw ConfigRefused(lines: errors.lines())
        }
    }

    /// The harness's HomeSmartlink account (`hsl-test`), its secret written into the box's directory.
    struct HomeSmartlinkAccount {
        var secret = "hsl-demo-secret"
        var pollIntervalS: Double = 1
        var reportTimeoutS: Double = 10
        var homes = ["64f1c0a2e9b3"]

        func yaml(in dir: URL) throws -> String {
            let file = dir.appendingPathComponent("hsl-test.secret")
            try Data((secret + "\n").utf8).write(to: file)
            chmod(file.path, 0o600)
            return """

                  - name: hsl-test
                    vendor: homesmartlink
                    base_url: http://sim.test/homesmartlink
                    client_id: hsl-demo
                    client_secret_file: \(file.path)
                    homes: [\(homes.map { "\"\($0)\"" }.joined(separator: ", "))]
                    poll_interval_s: \(pollIntervalS)
                    timeout_s: 2
                    report_timeout_s: \(reportTimeoutS)
                    report_interval_s: 0.5
                    diagnosis_check_s: 1
                """
        }
    }

    /// The harness's Podero account (`podero-test`), its secret written into the box's directory.
    struct PoderoAccount {
        var secret = "demo-secret"
        var pollIntervalS: Double = 1

        func yaml(in dir: URL) throws -> String {
            let file = dir.appendingPathComponent("podero-test.secret")
            try Data((secret + "\n").utf8).write(to: file)
            chmod(file.path, 0o600)
            return """

                  - name: podero-test
                    vendor: podero
                    base_url: http://sim.test/podero/api/partners/v2.0
                    client_id: demo-client
                    client_secret_file: \(file.path)
                    org_id: org-demo
                    devices: all
                    poll_interval_s: \(pollIntervalS)
                    timeout_s: 2
                """
        }
    }

    func start() {
        let services = self.services
        let stop = self.stop
        task = Task { await services.run(until: stop) }
    }

    /// Stops the services as the daemon does (`AppServices.run` returns); the files stay for the test to read.
    func stop() async {
        stop.fire()
        await task?.value
    }

    func stopAll() async {
        await stop()
        try? FileManager.default.removeItem(at: dir)
    }

    /// A message from the broker (a client's command), through the intake as libmosquitto delivers it.
    func publish(_ topic: String, _ payload: String, retained: Bool = false) {
        unhandled.withLock { $0 = true }
        mqtt.send(topic, payload, retained: retained)
    }

    /// Whether the test published since the last barrier.
    private let unhandled = Mutex(false)
    private let barriers = Mutex(0)

    /// Returns once the bridge has handled every message published before (the harness's `barrier()`). Messages
    /// reach the bridge through a stream it reads on its own executor, so without this the clock could move
    /// before a message is handled and the bridge would see it later than the test meant. A command for a
    /// device that does not exist is answered in arrival order: its rejection comes after all of them.
    func barrier(file: StaticString = #filePath, line: UInt = #line) {
        guard unhandled.withLock({ $0 }) else { return }
        let n = barriers.withLock { count in
            count += 1
            return count
        }
        let id = "barrier-\(n)"
        let topic = "heatbridge/barrier-device/none/charge"
        mqtt.send("\(topic)/set", #"{"id":"\#(id)","action":"start"}"#)
        if !waitUntil(timeoutS: 15, { mqtt.on("\(topic)/result").contains { $0.contains("\"\(id)\"") } }) {
            XCTFail("the box did not answer its barrier within 15 s", file: file, line: line)
        }
        unhandled.withLock { $0 = false }
    }

    /// Moves the box's clock once it has handled what the test published (the harness's `advanceClock`).
    func advance(by seconds: Double) async {
        barrier()
        await clock.advance(by: seconds)
    }

    /// Forgets what the box published so far (a test client's `clear()`).
    func clear() { mqtt.published.withLock { $0.removeAll() } }

    /// Every message published on `topic`, oldest first.
    func all(_ topic: String) -> [String] { mqtt.on(topic) }

    /// Every message published on `topic` that parses as JSON, oldest first.
    func json(_ topic: String) -> [JSONValue] { mqtt.json(topic) }

    /// The first message on `topic` that matches. What a real-process test waits for in real time, the box waits
    /// for on its own clock: it lets the bridge answer (its executor is not the test's), then moves the clock a
    /// second at a time, at most `timeout` seconds, so a read-back, a retry or the next poll comes as it would.
    @discardableResult
    /// `clockStill`: the clock must not move (a test that times a lease to the second); the wait is in real time.
    func waitJSON(
        _ topic: String, timeout: Double = 15, clockStill: Bool = false, file: StaticString = #filePath, line: UInt = #line,
        _ predicate: (JSONValue) -> Bool = { _ in true }
    ) async -> JSONValue? {
        var found: JSONValue?
        if clockStill {
            if waitUntil(
                timeoutS: timeout,
                {
                    found = mqtt.json(topic).first(where: predicate)
                    return found != nil
                })
            {
                return found
            }
            XCTFail("no matching message on \(topic) within \(Int(timeout)) s (clock still); seen: \(mqtt.on(topic))", file: file, line: line)
            return nil
        }
        for step in 0...Int(timeout) {
            if waitUntil(
                timeoutS: step == 0 ? 0.1 : 0.02,
                {
                    found = mqtt.json(topic).first(where: predicate)
                    return found != nil
                })
            {
                return found
            }
            await advance(by: 1)
        }
        XCTFail("no matching message on \(topic) within \(Int(timeout)) s of the box's time; seen: \(mqtt.on(topic))", file: file, line: line)
        return nil
    }

    /// Waits until `condition` holds, on the box's clock as `waitJSON`.
    func waitFor(_ what: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) async {
        for step in 0...Int(timeout) {
            if waitUntil(timeoutS: step == 0 ? 0.1 : 0.02, condition) { return }
            await advance(by: 1)
        }
        XCTFail("timed out waiting for \(what) (\(Int(timeout)) s of the box's time)", file: file, line: line)
    }

    /// Returns once the bridge has handled everything given to it so far and published what that handling
    /// publishes (the harness's `barrier()`, without the clock moving).
    func settle() async {
        barrier()
        await services.bridge.quiesce()
    }

    /// The latest message on `topic`, once it matches (on the box's clock, as `waitJSON`).
    @discardableResult
    func waitLatest(
        _ topic: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line, _ predicate: (JSONValue) -> Bool
    ) async -> JSONValue? {
        for step in 0...Int(timeout) {
            if waitUntil(timeoutS: step == 0 ? 0.1 : 0.02, { mqtt.json(topic).last.map(predicate) ?? false }) { return mqtt.json(topic).last }
            await advance(by: 1)
        }
        XCTFail("the latest message on \(topic) never matched; seen: \(mqtt.on(topic))", file: file, line: line)
        return nil
    }

    @discardableResult
    func waitResult(
        _ topic: String, id: String, status: String, timeout: Double = 15, clockStill: Bool = false, file: StaticString = #filePath,
        line: UInt = #line
    ) async -> JSONValue? {
        await waitJSON(topic, timeout: timeout, clockStill: clockStill, file: file, line: line) {
            $0["id"]?.stringValue == id && $0["status"]?.stringValue == status
        }
    }

    /// Publishes each bad command to `<prefix>/<target>/set` and checks that it is rejected with `code` and a
    /// message containing `text` (each payload carries its own `"id"`).
    func expectRejections(
        _ prefix: String, _ cases: [(target: String, payload: String, code: String, text: String)], file: StaticString = #filePath,
        line: UInt = #line
    ) async {
        for (target, payload, code, text) in cases {
            publish("\(prefix)/\(target)/set", payload)
            guard let id = (try? JSONValue.parse(Array(payload.utf8)))?["id"]?.stringValue else {
                XCTFail("test case without an id: \(payload)", file: file, line: line)
                continue
            }
            let r = await waitResult("\(prefix)/\(target)/result", id: id, status: "rejected", file: file, line: line)
            XCTAssertEqual(r?["code"]?.stringValue, code, payload, file: file, line: line)
            XCTAssertTrue(
                r?["message"]?.stringValue?.contains(text) ?? false, "\(payload): \(r?["message"]?.stringValue ?? "")", file: file, line: line)
        }
    }

    /// Every status the command `id` was answered with, in order.
    func statuses(_ topic: String, id: String) -> [String] {
        mqtt.json(topic).filter { $0["id"]?.stringValue == id }.compactMap { $0["status"]?.stringValue }
    }

    /// A fault the simulator answers with (its `/admin/faults` JSON).
    func injectFault(_ json: String) async throws { try await admin("POST", "/admin/faults", json) }

    /// Waits (on the box's clock, as `waitJSON`) until the simulator has answered `count` more requests whose
    /// path contains `path`.
    func waitForRequests(_ path: String, count: Int, timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line) async throws {
        let since = try await admin("GET", "/admin/requests").arrayValue?.compactMap { $0["at"]?.doubleValue }.max() ?? 0
        func seen() async throws -> Int {
            try await admin("GET", "/admin/requests").arrayValue?.filter {
                ($0["at"]?.doubleValue ?? 0) > since && ($0["path"]?.stringValue?.contains(path) ?? false)
            }.count ?? 0
        }
        for _ in 0...Int(timeout) {
            if try await seen() >= count { return }
            await advance(by: 1)
        }
        XCTFail("fewer than \(count) requests for \(path) within \(Int(timeout)) s of the box's time", file: file, line: line)
    }

    /// The simulator's admin API, in process.
    @discardableResult
    func admin(_ method: String, _ path: String, _ body: String? = nil) async throws -> JSONValue {
        let answer = await sim.handle(method: method, path: path, headers: [:], body: Array((body ?? "").utf8), arrivedAt: clock.now())
        return answer.body.isEmpty ? .null : try JSONValue.parse(answer.body)
    }
}

/// The lines a box logged, kept for a test to read.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
}

/// Records every event, its message and its metadata, at every level: a test reads what the box logged.
struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        recorder.append("\(event.level) \(event.message) " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
    }
}

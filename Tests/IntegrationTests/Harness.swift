import Foundation
import HeatbridgeCore
import HeatbridgeMQTT
import Synchronization
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Real parts for black-box tests: a private mosquitto on a loopback port, `heatbridge-sim`, and the
/// `heatbridge` daemon as separate processes, plus an MQTT client that records everything it sees.
/// Anything that cannot be started fails the test loudly; nothing is skipped.
final class Harness: @unchecked Sendable {
    let dir: URL
    let brokerPort: Int
    let simPort: Int
    var broker: Process?
    var sim: Process?
    var daemon: Process?
    var daemonLog: URL { dir.appendingPathComponent("daemon.log") }
    var client: TestMQTTClient!

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func binary(_ name: String) -> String {
        let env = ProcessInfo.processInfo.environment["HEATBRIDGE_BIN_DIR"]
        let dir = env ?? packageRoot.appendingPathComponent(".build/debug").path
        return dir + "/" + name
    }

    /// Broker credentials when the harness runs an authenticating broker.
    let mqttUser: (name: String, password: String)?

    /// Whether the broker keeps sessions and retained messages across its own restarts.
    let brokerPersistence: Bool

    init(
        pollIntervalS: Double = 2, timeoutS: Double = 1.5, simArgs: [String] = [],
        mqttUser: (name: String, password: String)? = nil, brokerPersistence: Bool = false
    ) throws {
        self.mqttUser = mqttUser
        self.brokerPersistence = brokerPersistence
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hb-it-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        brokerPort = try Self.freePort()
        simPort = try Self.freePort()
        try startBroker()
        try startSim(extra: simArgs)
        try writeConfig(pollIntervalS: pollIntervalS, timeoutS: timeoutS)
        client = try TestMQTTClient(port: brokerPort, user: mqttUser)
        try client.waitConnected()
        client.subscribe("heatbridge/#")
    }

    deinit { stopAll() }

    func stopAll() {
        if let d = daemon, d.isRunning {
            signalDaemon(SIGKILL)  // the daemon itself, also when it runs under strace
            kill(d.processIdentifier, SIGKILL)
            d.waitUntilExit()
        }
        for p in [sim, broker] {
            if let p, p.isRunning {
                p.terminate()
                p.waitUntilExit()
            }
        }
        client?.close()
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw HarnessError("cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func launch(_ path: String, _ args: [String], log: String, env: [String: String] = [:]) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(path) is missing: build first (Scripts/test does)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.currentDirectoryURL = dir
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        let logURL = dir.appendingPathComponent(log)
        if !FileManager.default.fileExists(atPath: logURL.path) { _ = FileManager.default.createFile(atPath: logURL.path, contents: nil) }
        try launchAlone(p) {
            let h = try FileHandle(forWritingTo: logURL)
            h.seekToEndOfFile()
            p.standardOutput = h
            p.standardError = h
        }
        return p
    }

    func startBroker() throws {
        let conf = dir.appendingPathComponent("mosquitto.conf")
        // The broker settings heatbridge ships (etc/mosquitto/heatbridge.conf), as an installer would use them.
        let shipped = try String(contentsOf: Self.packageRoot.appendingPathComponent("etc/mosquitto/heatbridge.conf"), encoding: .utf8)
        var text = "listener \(brokerPort) 127.0.0.1\nlog_dest stderr\n" + shipped + "\n"
        if brokerPersistence {
            let db = dir.appendingPathComponent("broker-db")
            try FileManager.default.createDirectory(at: db, withIntermediateDirectories: true)
            chmod(db.path, 0o777)  // mosquitto drops to its own user when started as root
            chmod(dir.path, 0o755)
            text += "persistence true\npersistence_location \(db.path)/\n"
        } else {
            text += "persistence false\n"
        }
        if let user = mqttUser {
            let pw = dir.appendingPathComponent("broker.passwd").path
            let p = try launch("/usr/bin/mosquitto_passwd", ["-b", "-c", pw, user.name, user.password], log: "passwd.log")
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw HarnessError("mosquitto_passwd failed") }
            chmod(pw, 0o644)  // mosquitto drops to its own user when started as root
            text += "allow_anonymous false\npassword_file \(pw)\n"
        } else {
            text += "allow_anonymous true\n"
        }
        try text.write(to: conf, atomically: true, encoding: .utf8)
        broker = try launch(try Self.mosquitto(), ["-c", conf.path], log: "broker.log")
        try waitForPort(brokerPort, what: "mosquitto")
    }

    static func mosquitto() throws -> String {
        let path = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { throw HarnessError("mosquitto is not installed (Scripts/test installs it)") }
        return path
    }

    /// The shipped `etc/mosquitto/heatbridge-bridge.conf`, unchanged.
    static func shippedBridgeConfig() throws -> String {
        try String(contentsOf: packageRoot.appendingPathComponent("etc/mosquitto/heatbridge-bridge.conf"), encoding: .utf8)
    }

    /// Starts box `k`'s own mosquitto on a free port, bridged to the central broker on `centralPort` with the shipped
    /// bridge config as an installer fills it in (`BOX_ID` = `box-<k>`, the central address), with `settings` before
    /// it. Two lines differ: the TLS lines are left out (loopback), and the uplink retries every 1–2 s instead of
    /// the shipped backoff (up to 120 s, for a fleet coming back after an outage), so a test's box is back within
    /// seconds of its central broker.
    func startBoxBroker(_ k: Int, centralPort: Int, settings: String = "") throws -> (process: Process, port: Int) {
        let port = try Self.freePort()
        let tls = ["bridge_cafile", "bridge_certfile", "bridge_keyfile", "bridge_insecure"]
        let bridge = try Self.shippedBridgeConfig().split(separator: "\n", omittingEmptySubsequences: false)
            .filter { line in !tls.contains { line.hasPrefix($0) } }
            .map { $0.hasPrefix("restart_timeout ") ? "restart_timeout 1 2" : $0 }
            .joined(separator: "\n")
            .replacingOccurrences(of: "BOX_ID", with: "box-\(k)")
            .replacingOccurrences(of: "central.partner.example:8883", with: "127.0.0.1:\(centralPort)")
        let conf = dir.appendingPathComponent("local\(k).conf")
        try ("listener \(port) 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n" + settings + "\n" + bridge)
            .write(to: conf, atomically: true, encoding: .utf8)
        let process = try launch(try Self.mosquitto(), ["-c", conf.path], log: "local\(k).log")
        try waitForPort(port, what: "local mosquitto \(k)")
        return (process, port)
    }

    func restartBroker() throws {
        broker?.terminate()
        broker?.waitUntilExit()
        try startBroker()
    }

    func startSim(extra: [String] = []) throws {
        sim = try launch(Self.binary("heatbridge-sim"), ["--port", "\(simPort)"] + extra, log: "sim.log")
        try waitForPort(simPort, what: "heatbridge-sim")
    }

    func stopSim() {
        sim?.terminate()
        sim?.waitUntilExit()
    }

    func waitForPort(_ port: Int, what: String, timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if rc == 0 { return }
            usleep(50_000)
        }
        throw HarnessError("\(what) did not listen on port \(port) within \(timeout) s")
    }

    static let apiKey = "xHCSAPI-demo-20270522"

    var configPath: String { dir.appendingPathComponent("heatbridge.yaml").path }

    func writeConfig(
        pollIntervalS: Double, timeoutS: Double, accountName: String = "bosch-test", logLevel: String = "debug",
        discovery: Bool = false, devices: [String]? = nil, extraAccounts: String = "", extraSections: String = ""
    ) throws {
        let keyFile = dir.appendingPathComponent("bosch.key")
        try (Self.apiKey + "\n").write(to: keyFile, atomically: true, encoding: .utf8)
        var auth = ""
        if let user = mqttUser {
            let pwFile = dir.appendingPathComponent("mqtt.pass")
            try (user.password + "\n").write(to: pwFile, atomically: true, encoding: .utf8)
            auth = "\n  username: \(user.name)\n  password_file: \(pwFile.path)"
        }
        let yaml = """
            mqtt:
              url: mqtt://127.0.0.1:\(brokerPort)
              base_topic: heatbridge
              client_id: heatbridge-it\(auth)
            store:
              path: \(dir.appendingPathComponent("state.db").path)
            accounts:
              - name: \(accountName)
                vendor: bosch
                base_url: http://127.0.0.1:\(simPort)/bosch
                api_key_file: \(keyFile.path)
                user_id: it-user
                poll_interval_s: \(pollIntervalS)
                timeout_s: \(timeoutS)
                devices: \(devices.map { "[\($0.map { "\"\($0)\"" }.joined(separator: ", "))]" } ?? "all")\(extraAccounts)
            homeassistant:
              discovery: \(discovery)
            log:
              level: \(logLevel)
            """ + extraSections
            // The listener is on by default (127.0.0.1:8787); each test's daemon gets a port of its own.
            + (extraSections.contains("\nhttp:") ? "" : "\nhttp:\n  port: \(try Self.freePort())\n")
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// A Podero account against the simulator, to pass as `extraAccounts` (the built-in scenario's client).
    func poderoAccount(
        secret: String = "demo-secret", pollIntervalS: Double = 1, name: String = "podero-test",
        devices: String = "all"
    ) throws -> String {
        let file = dir.appendingPathComponent("\(name).secret")
        try (secret + "\n").write(to: file, atomically: true, encoding: .utf8)
        return """

              - name: \(name)
                vendor: podero
                base_url: http://127.0.0.1:\(simPort)/podero/api/partners/v2.0
                client_id: demo-client
                client_secret_file: \(file.path)
                org_id: org-demo
                devices: \(devices)
                poll_interval_s: \(pollIntervalS)
                timeout_s: 2
            """
    }

    /// A HomeSmartlink account against the simulator's built-in home, to pass as `extraAccounts`.
    func hslAccount(
        secret: String = "hsl-demo-secret", pollIntervalS: Double = 1, reportTimeoutS: Double = 10,
        name: String = "hsl-test", homes: [String] = ["64f1c0a2e9b3"]
    ) throws -> String {
        let file = dir.appendingPathComponent("\(name).secret")
        try (secret + "\n").write(to: file, atomically: true, encoding: .utf8)
        return """

              - name: \(name)
                vendor: homesmartlink
                base_url: http://127.0.0.1:\(simPort)/homesmartlink
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

    func startDaemon(env: [String: String] = [:], wrapper: [String] = []) throws {
        let bin = Self.binary("heatbridge")
        var env = env
        env["HEATBRIDGE_TEST_CLOCK_FILE"] = clockFile.path  // read only with HEATBRIDGE_TEST_HOOKS=1
        if wrapper.isEmpty {
            daemon = try launch(bin, ["run", "--config", configPath], log: "daemon.log", env: env)
        } else {
            daemon = try launch(wrapper[0], Array(wrapper.dropFirst()) + [bin, "run", "--config", configPath], log: "daemon.log", env: env)
        }
    }

    /// The daemon's pid; when it runs under a wrapper (strace), the wrapper's child.
    var daemonPID: Int32? {
        guard let d = daemon else { return nil }
        let pid = d.processIdentifier
        if let kids = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8),
            let child = kids.split(separator: " ").first.flatMap({ Int32($0) })
        {
            return child
        }
        return pid
    }

    /// The daemon's test clock (`HEATBRIDGE_TEST_HOOKS=1`): how far `advanceClock` has moved it, across restarts.
    private(set) var clockAdvanced = 0.0
    private var clockSequence = 0
    var clockFile: URL { dir.appendingPathComponent("test-clock") }

    /// Moves the daemon's clock `seconds` forward (it must run with `HEATBRIDGE_TEST_HOOKS=1`) and returns once
    /// it has fired every timer now due: a hold time, a spacing limit or a lease passes without waiting for it.
    /// Everything published before is handled first (a barrier), so it happened at the earlier time.
    func advanceClock(by seconds: Double, file: StaticString = #filePath, line: UInt = #line) throws {
        barrier(file: file, line: line)
        clockSequence += 1
        clockAdvanced += seconds
        let tmp = dir.appendingPathComponent("test-clock.tmp")
        try Data("\(clockSequence) \(clockAdvanced)".utf8).write(to: tmp)
        _ = rename(tmp.path, clockFile.path)
        signalDaemon(SIGUSR1)
        let ack = clockFile.path + ".ack"
        let expected = "\(clockSequence)"
        waitUntil("the daemon's clock to move \(seconds) s", file: file, line: line) {
            (try? String(contentsOfFile: ack, encoding: .utf8)) == expected
        }
    }

    func signalDaemon(_ sig: Int32) {
        if let pid = daemonPID { kill(pid, sig) }
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stopDaemon() -> Int32 {
        guard let d = daemon else { return -1 }
        if d.isRunning { signalDaemon(SIGTERM) }
        d.waitUntilExit()
        return d.terminationStatus
    }

    func killDaemon() {
        guard let d = daemon, d.isRunning else { return }
        kill(d.processIdentifier, SIGKILL)
        d.waitUntilExit()
    }

    func daemonOutput() -> String { (try? String(contentsOf: daemonLog, encoding: .utf8)) ?? "" }

    // MARK: simulator admin

    @discardableResult
    func admin(_ method: String, _ path: String, _ body: String? = nil) throws -> JSONValue {
        var req = URLRequest(url: URL(string: "http://127.0.0.1:\(simPort)\(path)")!)
        req.httpMethod = method
        req.httpBody = body.map { Data($0.utf8) }
        let result = Mutex<Result<Data, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: req) { data, _, error in
            result.withLock { $0 = error.map { Result<Data, Error>.failure($0) } ?? .success(data ?? Data()) }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 10) == .success else { throw HarnessError("simulator admin \(path) timed out") }
        let data = try result.withLock { $0! }.get()
        return try JSONValue.parse(Array(data))
    }

    func injectFault(_ json: String) throws { try admin("POST", "/admin/faults", json) }

    /// Waits until the daemon has handled every message published before this call, and shows it was active:
    /// it handles MQTT messages one at a time in arrival order, so once it has answered a command sent now (to
    /// a device that does not exist: rejected), whatever came earlier has been handled, including the results
    /// that handling published. The "nothing happened" checks of the tests stand on this.
    func barrier(timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line) {
        let id = "barrier-\(UUID().uuidString.prefix(8))"
        client.publish("heatbridge/barrier-device/none/ping/set", #"{"id":"\#(id)"}"#)
        client.waitResult("heatbridge/barrier-device/none/ping/result", id: id, status: "rejected", timeout: timeout, file: file, line: line)
    }

    /// Waits (bounded) until `condition` holds; fails the test naming `what` otherwise.
    func waitUntil(_ what: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool) rethrows
    {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            if Date() > deadline { return XCTFail("timed out waiting for \(what)", file: file, line: line) }
            usleep(50_000)
        }
    }

    /// Waits until the simulator has answered `count` more requests whose path contains `path` (e.g. two more
    /// polls of one gateway): a window in which the daemon demonstrably worked, for "nothing happened" checks
    /// about what a poll would have done.
    func waitForRequests(_ path: String, count: Int, timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line) throws {
        // By the simulator's own timestamps: its log keeps the newest 10,000 requests only.
        let since = try admin("GET", "/admin/requests").arrayValue?.compactMap { $0["at"]?.doubleValue }.max() ?? 0
        func seen() throws -> Int {
            try admin("GET", "/admin/requests").arrayValue?.filter {
                ($0["at"]?.doubleValue ?? 0) > since && ($0["path"]?.stringValue?.contains(path) ?? false)
            }.count ?? 0
        }
        let deadline = Date().addingTimeInterval(timeout)
        while try seen() < count {
            if Date() > deadline { return XCTFail("fewer than \(count) requests for \(path) within \(timeout) s", file: file, line: line) }
            usleep(100_000)
        }
    }

    /// Runs `heatbridge <args> --config <this harness's config>`.
    func cli(_ args: [String]) throws -> (status: Int32, output: String) {
        try runProcess(Self.binary("heatbridge"), args + ["--config", configPath])
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// An MQTT client for tests: records every message, retained or not.
final class TestMQTTClient: @unchecked Sendable {
    final class Recorder: Sendable {
        let messages = Mutex<[MQTTMessage]>([])
        let connects = Mutex(0)
        /// Subscriptions to renew after every reconnect (the test client's session is clean).
        let filters = Mutex<[String]>([])
    }
    let mqtt: MosquittoClient
    let recorder = Recorder()
    var reader: Task<Void, Never>?

    init(port: Int, user: (name: String, password: String)? = nil, persistentId: String? = nil) throws {
        mqtt = try MosquittoClient(
            MQTTConnectOptions(
                host: "127.0.0.1", port: port, clientId: persistentId ?? "it-\(UUID().uuidString.prefix(8))",
                cleanSession: persistentId == nil, username: user?.name, password: user?.password,
                keepaliveS: 10))
        let m = mqtt
        let r = recorder
        reader = Task.detached {
            for await e in m.events {
                switch e {
                case .message(let msg): r.messages.withLock { $0.append(msg) }
                case .connected:
                    for f in r.filters.withLock({ $0 }) { m.subscribe(f, qos: 1) }
                    r.connects.withLock { $0 += 1 }
                case .disconnected: break
                }
            }
        }
        mqtt.start()
    }

    func waitConnected(timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while recorder.connects.withLock({ $0 }) == 0 {
            if Date() > deadline { throw HarnessError("test MQTT client could not connect") }
            usleep(20_000)
        }
    }

    /// Connections made so far (the first one included).
    var connects: Int { recorder.connects.withLock { $0 } }

    /// Waits until the client has connected again after `previous` connections (it reconnects by itself).
    func waitReconnected(after previous: Int, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while connects <= previous {
            if Date() > deadline { throw HarnessError("test MQTT client did not reconnect") }
            usleep(20_000)
        }
    }

    /// Subscribes and returns once the broker has the subscription (see `brokerBarrier`).
    func subscribe(_ filter: String) {
        recorder.filters.withLock { if !$0.contains(filter) { $0.append(filter) } }
        mqtt.subscribe(filter, qos: 1)
        brokerBarrier()
    }

    /// Waits until the broker has processed everything this client sent before: a broker handles one client's
    /// packets in order, so a message to a private topic that comes back proves the subscriptions before it
    /// are active.
    func brokerBarrier(timeout: Double = 10) {
        let topic = "it-barrier/\(UUID().uuidString.prefix(8))"
        mqtt.subscribe(topic, qos: 1)
        publish(topic, "x")
        let deadline = Date().addingTimeInterval(timeout)
        while all(topic).isEmpty {
            if Date() > deadline { return XCTFail("the broker did not answer the test client within \(timeout) s") }
            usleep(2_000)
        }
    }

    func publish(_ topic: String, _ payload: String, retain: Bool = false) {
        let ok = mqtt.publish(topic: topic, payload: Array(payload.utf8), qos: 1, retain: retain)
        precondition(ok, "test client publish failed")
    }

    /// Publishes a v5 request: Response Topic, Correlation Data and user properties.
    func publishRequest(
        _ topic: String, _ payload: String, responseTopic: String, correlationData: [UInt8]?,
        userProperties: [(String, String)] = []
    ) {
        let ok = mqtt.publish(
            topic: topic, payload: Array(payload.utf8), qos: 1, retain: false, responseTopic: responseTopic,
            correlationData: correlationData, userProperties: userProperties)
        precondition(ok, "test client publish failed")
    }

    func close() {
        mqtt.shutdown()
        reader?.cancel()
    }

    func all(_ topic: String) -> [MQTTMessage] { recorder.messages.withLock { $0.filter { $0.topic == topic } } }

    func clear() { recorder.messages.withLock { $0 = [] } }

    /// The last message seen on `topic`, as JSON (nil when none, or an empty retained clear).
    func latest(_ topic: String) -> JSONValue? { all(topic).last.flatMap { try? JSONValue.parse($0.payload) } }

    /// Waits for a message on `topic` whose JSON satisfies `predicate`; fails the test with what was seen.
    @discardableResult
    func waitJSON(
        _ topic: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line,
        _ predicate: (JSONValue) -> Bool = { _ in true }
    ) -> JSONValue? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for m in all(topic) {
                if let j = try? JSONValue.parse(m.payload), predicate(j) { return j }
            }
            usleep(50_000)
        }
        let seen = all(topic).map { String(decoding: $0.payload, as: UTF8.self) }
        XCTFail("no matching message on \(topic) within \(timeout) s; seen: \(seen)", file: file, line: line)
        return nil
    }

    /// Waits until the newest message on `topic` satisfies `predicate` (older matches do not count).
    @discardableResult
    func waitLatest(
        _ topic: String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line,
        _ predicate: (JSONValue) -> Bool
    ) -> JSONValue? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let m = all(topic).last, let j = try? JSONValue.parse(m.payload), predicate(j) { return j }
            usleep(50_000)
        }
        XCTFail(
            "the newest message on \(topic) did not match within \(timeout) s; last: \(all(topic).last.map { String(decoding: $0.payload, as: UTF8.self) } ?? "none")",
            file: file, line: line)
        return nil
    }

    /// Waits for the result with `status` of command `id` on `topic`.
    @discardableResult
    func waitResult(
        _ topic: String, id: String, status: String, timeout: Double = 15, file: StaticString = #filePath,
        line: UInt = #line
    ) -> JSONValue? {
        waitJSON(topic, timeout: timeout, file: file, line: line) { $0["id"]?.stringValue == id && $0["status"]?.stringValue == status }
    }

    /// Publishes each bad command to `<prefix>/<target>/set` and checks that it is rejected with `code` and a
    /// message containing `text` (each payload carries its own `"id"`).
    func expectRejections(
        _ prefix: String, _ cases: [(target: String, payload: String, code: String, text: String)],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        for (target, payload, code, text) in cases {
            publish("\(prefix)/\(target)/set", payload)
            guard let id = (try? JSONValue.parse(Array(payload.utf8)))?["id"]?.stringValue else {
                XCTFail("test case without an id: \(payload)", file: file, line: line)
                continue
            }
            let r = waitResult("\(prefix)/\(target)/result", id: id, status: "rejected", file: file, line: line)
            XCTAssertEqual(r?["code"]?.stringValue, code, payload, file: file, line: line)
            XCTAssertTrue(
                r?["message"]?.stringValue?.contains(text) ?? false, "\(payload): \(r?["message"]?.stringValue ?? "")", file: file, line: line)
        }
    }

    func statuses(_ topic: String, id: String) -> [String] {
        all(topic).compactMap { try? JSONValue.parse($0.payload) }.filter { $0["id"]?.stringValue == id }.compactMap { $0["status"]?.stringValue }
    }
}

/// Held by every launch in these tests, from the moment its descriptors are opened until `run()` has returned.
///
/// Why: Foundation's `Process.run()` on Linux (swift-corelibs-foundation) closes in the child only the descriptors
/// that were open when it listed `/proc/self/fd`, and each launch opens a socket pair whose far end, held by the
/// child alone, tells Foundation that the child exited. Two launches at once from two threads (the lanes of
/// `SideBySideTests`) can hand one child the other's socket end or pipe: Foundation then sees that child's exit, and
/// a reader its pipe's end, only when the other child exits too. Seen (gdb): a lane's `waitUntilExit` in its cleanup
/// waited 160 s, until another lane's 100 boxes were stopped.
private let launching = NSLock()

/// Runs `p` while no other launch of these tests opens descriptors (see `launching`); `open` opens the ones `p`
/// gets (its log, its pipe) under the same lock.
@discardableResult
func launchAlone<T>(_ p: Process, opening open: () throws -> T) throws -> T {
    launching.lock()
    defer { launching.unlock() }
    let opened = try open()
    try p.run()
    return opened
}

/// Runs `path` with `args` in the package root; returns its exit status and combined output.
func runProcess(_ path: String, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.currentDirectoryURL = Harness.packageRoot
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let pipe = try launchAlone(p) {
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        return pipe
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Runs a shell command in the package root and returns its exit status and combined output.
func runShell(_ command: String, env: [String: String] = [:]) throws -> (status: Int32, output: String) {
    try runProcess("/bin/bash", ["-c", command], env: env)
}

/// One HTTP exchange waited for on the calling (test) thread: the harness blocks its thread, so tests that
/// talk HTTP themselves stay synchronous instead of blocking the cooperative pool.
func blockingSend(_ transport: any HTTPTransport, _ request: HTTPRequest) -> Result<HTTPResponse, HTTPTransportError> {
    let answer = Mutex<Result<HTTPResponse, HTTPTransportError>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let r: Result<HTTPResponse, HTTPTransportError>
        do throws(HTTPTransportError) { r = .success(try await transport.send(request)) } catch { r = .failure(error) }
        answer.withLock { $0 = r }
        done.signal()
    }
    done.wait()
    return answer.withLock { $0! }
}

import Foundation
import HeatbridgeCore
import Synchronization
import XCTest

/// Plays systemd's side of sd_notify: an AF_UNIX datagram socket that records every message with its time.
final class NotifySocket: @unchecked Sendable {
    final class Box: Sendable {
        let messages = Mutex<[(at: Date, text: String)]>([])
    }
    let path: String
    let fd: Int32
    let box = Box()
    var thread: Thread?
    let stopped = DispatchSemaphore(value: 0)

    init(dir: URL) throws {
        path = dir.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in for (i, b) in bytes.enumerated() { dst[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, rc == 0 else { throw HarnessError("cannot bind \(path)") }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let sock = fd
        let box = self.box
        let stopped = self.stopped
        thread = Thread {
            var buf = [UInt8](repeating: 0, count: 4096)
            while !Thread.current.isCancelled {
                let n = recv(sock, &buf, buf.count, 0)
                if n > 0 {
                    let text = String(decoding: buf[0..<n], as: UTF8.self)
                    box.messages.withLock { $0.append((Date(), text)) }
                }
            }
            stopped.signal()
        }
        thread?.start()
    }

    func close() {
        thread?.cancel()
        // The reader leaves its loop within one receive timeout; only then may the socket close under it.
        _ = stopped.wait(timeout: .now() + 2)
        Glibc.close(fd)
        unlink(path)
    }

    func all() -> [(at: Date, text: String)] { box.messages.withLock { $0 } }

    /// Messages containing `line` as one of their newline-separated assignments.
    func with(_ line: String) -> [(at: Date, text: String)] {
        all().filter { $0.text.split(separator: "\n").contains(Substring(line)) }
    }

    @discardableResult
    func wait(for line: String, count: Int = 1, timeout: Double = 20, file: StaticString = #filePath, line l: UInt = #line) -> [(
        at: Date, text: String
    )] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let m = with(line)
            if m.count >= count { return m }
            usleep(50_000)
        }
        XCTFail("no \(count)× \(line) within \(timeout) s; got \(all().map(\.text))", file: file, line: l)
        return with(line)
    }
}

final class SystemdTests: XCTestCase {
    func testReadyStatusWatchdogAndCleanStop() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let notify = try NotifySocket(dir: h.dir)
        defer { notify.close() }
        try h.startDaemon(env: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "600000"])
        let ready = notify.wait(for: "READY=1")
        XCTAssertTrue(ready.first?.text.contains("STATUS=Bridging 1 account(s); broker 127.0.0.1:\(h.brokerPort) connected") ?? false, "\(ready)")
        // READY=1 comes after the broker accepted the connection: bridge/state is already online.
        h.client.waitJSON("heatbridge/bridge/state", timeout: 2) { $0["state"]?.stringValue == "online" }
        let pings = notify.wait(for: "WATCHDOG=1", count: 6)
        let gaps = zip(pings.dropFirst(), pings).map { $0.at.timeIntervalSince($1.at) }
        XCTAssertLessThan(gaps.max() ?? 99, 0.6, "a watchdog ping came later than WATCHDOG_USEC: \(gaps)")
        h.signalDaemon(SIGTERM)
        notify.wait(for: "STOPPING=1")
        h.daemon?.waitUntilExit()
        XCTAssertEqual(h.daemon?.terminationStatus, 0)
        h.client.waitJSON("heatbridge/bridge/state") { $0["state"]?.stringValue == "offline" }
    }

    func testHungBridgeStopsWatchdogPings() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let notify = try NotifySocket(dir: h.dir)
        defer { notify.close() }
        try h.startDaemon(env: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000", "HEATBRIDGE_TEST_HOOKS": "1"])
        notify.wait(for: "READY=1")
        notify.wait(for: "WATCHDOG=1", count: 3)
        h.signalDaemon(SIGUSR2)
        h.waitUntil("the bridge to block") { h.daemonOutput().contains("test hook: the bridge is blocked") }
        let before = notify.with("WATCHDOG=1").count
        // Watchdog timing is the subject: ten intervals (0.2 s) must bring at most the one ping that had passed
        // the bridge before it blocked. No event marks "a ping that did not come".
        Thread.sleep(forTimeInterval: 2)
        XCTAssertLessThanOrEqual(notify.with("WATCHDOG=1").count - before, 1, "pings went on while the bridge was hung")
        XCTAssertTrue(h.daemon?.isRunning ?? false)
        h.killDaemon()
    }

    /// No broker at start: the daemon tells systemd it is ready after a bounded wait, saying the broker is
    /// unreachable, and connects on its own when the broker comes. (Runs in `SideBySideTests`' outage lane: its
    /// subject is a stretch of real time.)
    func readyWithoutBrokerAfterABoundedWait() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let notify = try NotifySocket(dir: h.dir)
        defer { notify.close() }
        h.broker?.terminate()
        h.broker?.waitUntilExit()
        try h.startDaemon(env: ["NOTIFY_SOCKET": notify.path])
        let ready = notify.wait(for: "READY=1", timeout: 30)
        XCTAssertTrue(ready.first?.text.contains("unreachable") ?? false, "\(ready)")
        // The broker comes back: the daemon connects on its own and publishes.
        try h.startBroker()
        h.client.waitJSON("heatbridge/bridge/state", timeout: 40) { $0["state"]?.stringValue == "online" }
    }

    func testReloadAppliesAGoodConfigAndRefusesABadOne() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let notify = try NotifySocket(dir: h.dir)
        defer { notify.close() }
        try h.startDaemon(env: ["NOTIFY_SOCKET": notify.path])
        notify.wait(for: "READY=1")
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "ready" }

        // Good: the account is renamed. The old account's retained topic is cleared, the new one comes up.
        try h.writeConfig(pollIntervalS: 2, timeoutS: 1.5, accountName: "bosch-renamed", logLevel: "info")
        h.signalDaemon(SIGHUP)
        notify.wait(for: "RELOADING=1")
        let reloaded = notify.wait(for: "READY=1", count: 2)
        XCTAssertTrue(reloaded.last?.text.contains("STATUS=Config reloaded") ?? false, "\(reloaded.map(\.text))")
        c.waitJSON("heatbridge/bridge/account/bosch-renamed") { $0["state"]?.stringValue == "ready" }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !c.all("heatbridge/bridge/account/bosch-test").contains(where: { $0.payload.isEmpty }) { usleep(50_000) }
        XCTAssertTrue(c.all("heatbridge/bridge/account/bosch-test").contains { $0.payload.isEmpty }, "old account topic not cleared")
        c.waitJSON("heatbridge/bridge/info") { $0["accounts"]?.arrayValue?.first?["name"]?.stringValue == "bosch-renamed" }

        // Bad: refused, logged, and the daemon keeps running on the previous config.
        try "mqtt:\n  url: nonsense\n".write(toFile: h.configPath, atomically: true, encoding: .utf8)
        h.signalDaemon(SIGHUP)
        notify.wait(for: "RELOADING=1", count: 2)
        let refused = notify.wait(for: "READY=1", count: 3)
        XCTAssertTrue(refused.last?.text.contains("STATUS=Reload refused") ?? false, "\(refused.map(\.text))")
        XCTAssertTrue(h.daemon?.isRunning ?? false)
        XCTAssertTrue(h.daemonOutput().contains("bad MQTT URL"))
        c.publish("heatbridge/bosch-101000001/dhw1/charge/set", #"{"id":"after-reload","action":"stop"}"#)
        c.waitResult("heatbridge/bosch-101000001/dhw1/charge/result", id: "after-reload", status: "done")
        XCTAssertEqual(h.stopDaemon(), 0)
        XCTAssertFalse(h.daemonOutput().contains(Harness.apiKey), "the API key reached the log")
    }

    /// A full scenario (start, commands, cloud errors, reload, stop) with an authenticating broker: neither the
    /// broker password nor the API key may appear in any log line or MQTT payload.
    func testNoSecretInAnyOutput() throws {
        let password = "mqtt-Pa55-\(UUID().uuidString.prefix(6))"
        let h = try Harness(mqttUser: ("heatbridge", password))
        defer { h.stopAll() }
        let notify = try NotifySocket(dir: h.dir)
        defer { notify.close() }
        try h.startDaemon(env: ["NOTIFY_SOCKET": notify.path])
        let c: TestMQTTClient = h.client
        notify.wait(for: "READY=1")
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        let topic = "heatbridge/bosch-101000001/dhw1/charge"
        c.publish("\(topic)/set", #"{"id":"s-1","action":"start"}"#)
        c.waitResult("\(topic)/result", id: "s-1", status: "done")
        try h.injectFault(#"{"method":"PATCH","path_contains":"charge","status":401,"count":1}"#)
        c.publish("\(topic)/set", #"{"id":"s-2","action":"start"}"#)
        c.waitResult("\(topic)/result", id: "s-2", status: "failed")
        c.publish("\(topic)/set", "{broken")
        c.waitJSON("\(topic)/result") { $0["status"]?.stringValue == "rejected" }
        h.signalDaemon(SIGHUP)
        notify.wait(for: "READY=1", count: 2)
        XCTAssertEqual(h.stopDaemon(), 0)
        let logs = h.daemonOutput() + notify.all().map(\.text).joined()
        let mqtt = c.recorder.messages.withLock { $0.map { $0.topic + String(decoding: $0.payload, as: UTF8.self) } }.joined()
        XCTAssertTrue(logs.contains("command done"), "the scenario did not run")
        for secret in [password, Harness.apiKey] {
            XCTAssertFalse(logs.contains(secret), "secret in the log")
            XCTAssertFalse(mqtt.contains(secret), "secret on MQTT")
        }
    }
}

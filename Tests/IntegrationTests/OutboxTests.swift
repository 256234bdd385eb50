import Foundation
import HeatbridgeCore
import XCTest

/// The durable outbox against the real daemon: cloud outages, supersede and expiry, `kill -9`, broker outages.
final class OutboxTests: XCTestCase {
    let gw1 = "heatbridge/bosch-101000001/dhw1/charge"
    let gw2 = "heatbridge/bosch-101000002/dhw1/charge"

    func testCloudDownQueuesSupersedesExpiresThenRunsWhenBack() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000002/dhw1/state")
        try h.admin("POST", "/admin/down", #"{"down":true}"#)
        c.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "offline" }
        c.publish("\(gw1)/set", #"{"id":"q1","action":"start","duration_min":20}"#)
        c.publish("\(gw2)/set", #"{"id":"q2","action":"start","duration_min":21}"#)
        let q = c.waitResult("\(gw1)/result", id: "q1", status: "queued")
        XCTAssertEqual(q?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
        XCTAssertNotNil(q?["retry_at"]?.stringValue.flatMap(Timestamp.parse))
        c.waitResult("\(gw2)/result", id: "q2", status: "queued")
        // A newer command for the same target replaces the waiting one.
        c.publish("\(gw1)/set", #"{"id":"q3","action":"start","duration_min":22}"#)
        XCTAssertEqual(c.waitResult("\(gw1)/result", id: "q1", status: "expired")?["code"]?.stringValue, "SUPERSEDED")
        // A short-lived one expires while the cloud is still down.
        c.publish("\(gw2)/set", #"{"id":"q4","action":"stop","valid_for_s":2}"#)
        XCTAssertEqual(c.waitResult("\(gw2)/result", id: "q2", status: "expired")?["code"]?.stringValue, "SUPERSEDED")
        XCTAssertEqual(c.waitResult("\(gw2)/result", id: "q4", status: "expired")?["code"]?.stringValue, "EXPIRED")
        // State ages while the cloud is away; `heatbridge status` sees the waiting command.
        let status = try runShell("'\(Harness.binary("heatbridge"))' status --json --config '\(h.configPath)'").output
        XCTAssertEqual(try JSONValue.parse(status)["outbox_depth"]?.intValue, 1, status)
        // Two more commands for the same device, other nodes: they must run in arrival order after q3.
        let program = try XCTUnwrap(c.waitJSON("heatbridge/bosch-101000001/hc1/schedule"))
        var days = program["days"]?.objectValue ?? [:]
        days["sun"] = [["at": "08:00", "level": "comfort"], ["at": "23:00", "level": "eco"]]
        c.publish("heatbridge/bosch-101000001/hc1/schedule/set", JSONValue.object(["id": "q5", "days": .object(days)]).serialized)
        c.waitResult("heatbridge/bosch-101000001/hc1/schedule/result", id: "q5", status: "queued")
        try h.admin("DELETE", "/admin/requests")
        try h.admin("POST", "/admin/down", #"{"down":false}"#)
        c.waitResult("\(gw1)/result", id: "q3", status: "done", timeout: 20)
        c.waitResult("heatbridge/bosch-101000001/hc1/schedule/result", id: "q5", status: "done", timeout: 20)
        XCTAssertEqual(c.statuses("\(gw1)/result", id: "q3"), ["accepted", "queued", "done"])
        let writes = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { ["PATCH", "PUT"].contains($0["method"]?.stringValue ?? "") }
        XCTAssertEqual(writes.map { $0["method"]?.stringValue ?? "" }, ["PATCH", "PUT"], "arrival order per device")
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 22)
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000002"]?["charges"]?["1"]?["active"]?.boolValue, false, "an expired command ran")
        XCTAssertEqual(writes.count, 2, "only q3 and q5 may reach the cloud: \(writes)")
    }

    /// A command published while the daemon was stopped and the cloud unreachable: a cold start treats the
    /// account as offline with its cached state, and the command waits `queued` until the cloud is back
    /// (it used to fail at once).
    func testACommandFromWhileTheDaemonWasDownWaitsForACloudThatIsDownAtStart() throws {
        let h = try Harness(pollIntervalS: 1)
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        XCTAssertEqual(h.stopDaemon(), 0)
        h.stopSim()
        c.publish("\(gw1)/set", #"{"id":"cold-1","action":"start","duration_min":33,"valid_for_s":600}"#)
        c.brokerBarrier()
        try h.startDaemon()
        let q = c.waitResult("\(gw1)/result", id: "cold-1", status: "queued", timeout: 20)
        XCTAssertTrue(["CLOUD_UNAVAILABLE", "ACCOUNT_OFFLINE"].contains(q?["code"]?.stringValue ?? ""), "\(String(describing: q))")
        XCTAssertNotNil(q?["retry_at"]?.stringValue.flatMap(Timestamp.parse))
        // The account is offline with its cached devices, not failed or empty.
        c.waitLatest("heatbridge/bridge/account/bosch-test") { $0["state"]?.stringValue == "offline" }
        c.waitLatest("heatbridge/bosch-101000001/dhw1/state") { $0["charge"] != nil }
        // Still waiting a few polls later (the daemon kept trying: each failed poll is in its debug log).
        h.waitUntil("three failed polls") { h.daemonOutput().components(separatedBy: "poll failed").count > 3 }
        XCTAssertEqual(c.statuses("\(gw1)/result", id: "cold-1"), ["accepted", "queued"])
        try h.startSim()
        c.waitResult("\(gw1)/result", id: "cold-1", status: "done", timeout: 40)
        XCTAssertEqual(c.statuses("\(gw1)/result", id: "cold-1"), ["accepted", "queued", "done"])
        let state = try h.admin("GET", "/admin/state")
        XCTAssertEqual(state["bosch"]?["gateways"]?["101000001"]?["charges"]?["1"]?["duration_min"]?.intValue, 33)
    }

    /// 30 × `kill -9` at random moments while commands stream in: afterwards every command has exactly one
    /// terminal result, the store passes `PRAGMA integrity_check` after every kill, and no charge reached the
    /// cloud twice (each command has its own duration, so the simulator's log tells).
    /// (Runs in `SideBySideTests`' outage lane: it mostly waits, on its own broker and simulator.)
    func killNineLoopLosesAndDuplicatesNothing() throws {
        let h = try Harness(pollIntervalS: 5)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        // Each charge takes 150 ms in the cloud, so many kills land while a call is in flight.
        try h.injectFault(#"{"method":"PATCH","path_contains":"charge","latency_ms":150}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        var rng = SystemRandomNumberGenerator()
        let n = 30
        let db = h.dir.appendingPathComponent("state.db").path
        for i in 0..<n {
            c.publish("\(gw1)/set", "{\"id\":\"k\(i)\",\"action\":\"start\",\"duration_min\":\(i + 1)}")
            Thread.sleep(forTimeInterval: Double.random(in: 0...0.25, using: &rng))  // the kill lands at a random stage: the input
            h.killDaemon()
            let check = try runShell("sqlite3 '\(db)' 'PRAGMA integrity_check'").output
            XCTAssertEqual(check, "ok\n", "after kill \(i)")
            try h.startDaemon()
        }
        for i in 0..<n {
            c.waitJSON("\(gw1)/result", timeout: 30) {
                $0["id"]?.stringValue == "k\(i)" && ["done", "failed", "expired"].contains($0["status"]?.stringValue ?? "")
            }
        }
        h.barrier()  // every result the daemon had to send again has arrived: duplicates would be here now
        var seen = Set<[UInt8]>()
        var terminal: [String: [String]] = [:]
        for m in c.all("\(gw1)/result") where seen.insert(m.payload).inserted {
            guard let j = try? JSONValue.parse(m.payload), let id = j["id"]?.stringValue, let st = j["status"]?.stringValue,
                ["done", "failed", "expired", "rejected"].contains(st)
            else { continue }
            terminal[id, default: []].append(st)
        }
        for i in 0..<n {
            XCTAssertEqual(terminal["k\(i)"]?.count, 1, "k\(i): \(terminal["k\(i)"] ?? [])")
            XCTAssertNotEqual(terminal["k\(i)"]?.first, "failed", "k\(i) failed")
        }
        // One first answer per message: every `accepted`/`rejected` as it arrived (not de-duplicated) is the one
        // answer, or the outbox's own re-send of those same bytes (logged; the copy before the kill may never
        // have left the process); a broker redelivery of a message already taken is answered `repeated`, never
        // with a second first answer.
        var resent: [String: Int] = [:]
        for line in h.daemonOutput().split(separator: "\n") where line.contains("result sent again from the outbox") {
            if let id = line.split(separator: " ").first(where: { $0.hasPrefix("id=") })?.dropFirst(3),
                ["status=accepted", "status=rejected"].contains(where: { line.contains($0) })
            {
                resent[String(id), default: 0] += 1
            }
        }
        var first: [String: Int] = [:]
        var repeated = 0
        for m in c.all("\(gw1)/result") {
            guard let j = try? JSONValue.parse(m.payload), let id = j["id"]?.stringValue else { continue }
            if ["accepted", "rejected"].contains(j["status"]?.stringValue ?? "") { first[id, default: 0] += 1 }
            if j["status"] == "repeated" { repeated += 1 }
        }
        for i in 0..<n {
            let answers = first["k\(i)"] ?? 0
            let copies = resent["k\(i)"] ?? 0
            XCTAssertTrue((1...1 + copies).contains(answers), "k\(i): first answers \(answers), re-sent by the outbox \(copies)")
        }
        print(
            "kill loop: \(repeated) redelivered message(s) answered `repeated`; \(resent.values.reduce(0, +)) first answer(s) re-sent from the outbox"
        )
        let patches = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter { $0["method"]?.stringValue == "PATCH" }
        var perDuration: [Int: Int] = [:]
        for p in patches {
            if let d = (try? JSONValue.parse(p["body"]?.stringValue ?? ""))?["chargeDuration"]?.intValue { perDuration[d, default: 0] += 1 }
        }
        XCTAssertTrue(perDuration.values.allSatisfy { $0 == 1 }, "a command reached the cloud twice: \(perDuration.filter { $0.value > 1 })")
        XCTAssertGreaterThan(perDuration.count, 0)
        XCTAssertEqual(try runShell("sqlite3 '\(db)' 'PRAGMA integrity_check'").output, "ok\n")
        let confirmed = h.daemonOutput().components(separatedBy: "confirmed by read-back").count - 1
        print("kill loop: \(patches.count) PATCHes for \(n) commands; \(confirmed) confirmed by read-back after a kill")
    }

    /// The broker goes away for thirty seconds while a command runs: its `done`, produced meanwhile, reaches a
    /// persistent subscriber once, after the broker is back. (Runs in `SideBySideTests`' outage lane: its subject
    /// is a stretch of real time.)
    func brokerAwayThirtySecondsLosesNoResult() throws {
        let h = try Harness(brokerPersistence: true)
        defer { h.stopAll() }
        // A subscriber with a persistent session: the broker keeps what it misses while it is away.
        let watcher = try TestMQTTClient(port: h.brokerPort, persistentId: "it-watcher-\(UUID().uuidString.prefix(6))")
        defer { watcher.close() }
        try watcher.waitConnected()
        watcher.subscribe("\(gw1)/result")
        try h.startDaemon()
        h.client.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        try h.injectFault(#"{"method":"PATCH","path_contains":"charge","latency_ms":1000,"count":1}"#)
        h.client.publish("\(gw1)/set", #"{"id":"away-1","action":"start","duration_min":33}"#)
        watcher.waitResult("\(gw1)/result", id: "away-1", status: "accepted")
        h.broker?.terminate()  // mid-call: `done` is produced while no broker is there
        h.broker?.waitUntilExit()
        Thread.sleep(forTimeInterval: 30)  // the subject: thirty seconds without a broker
        try h.startBroker()
        watcher.waitResult("\(gw1)/result", id: "away-1", status: "done", timeout: 60)
        XCTAssertEqual(watcher.statuses("\(gw1)/result", id: "away-1").filter { $0 == "done" }.count, 1)
        XCTAssertTrue(h.daemon?.isRunning ?? false)
    }
}

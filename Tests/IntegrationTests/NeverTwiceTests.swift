import Foundation
import HeatbridgeCore
import XCTest

/// Never twice, never undoing a newer command — also when the disk fills; a store that cannot write is not
/// ready (issue #25). Real daemon, real SQLite on a real (small or immutable) filesystem, the simulator.
final class NeverTwiceTests: XCTestCase {
    let hc1 = "heatbridge/bosch-101000001/hc1"

    /// The PATCHes that set hc1's manual setpoint, as the cloud saw them, in order.
    func setpointWrites(_ h: Harness) throws -> [Double] {
        (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["method"] == "PATCH" && ($0["path"]?.stringValue?.hasSuffix("/heatingCircuits/1") ?? false)
        }.compactMap { (try? JSONValue.parse($0["body"]?.stringValue ?? ""))?["manualModeSettings"]?["setPointTemperature"]?.doubleValue }
    }

    func sqlite(_ db: String, _ sql: String) throws -> String {
        let r = try runProcess("/usr/bin/sqlite3", [db, sql])
        XCTAssertEqual(r.status, 0, r.output)
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The audit's sequence on a 2 MiB tmpfs: a setpoint the cloud took while the disk filled (its `done`
    /// could not be stored), two newer setpoints for the same circuit after space returned, `kill -9`, restart.
    /// Each command reached the cloud exactly once, and the newest value stands.
    /// (Runs in `SideBySideTests`' outage lane: its subject is a stretch of real time.)
    func doneCommandWhoseEndWasNotStoredIsNeverSentAgainNorUndoesANewerOne() throws {
        let h = try Harness(pollIntervalS: 30, timeoutS: 25)
        defer { h.stopAll() }
        let (small, db) = try h.moveStoreToSmallDisk()
        defer { h.unmount(small) }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(hc1)/state")
        try h.admin("DELETE", "/admin/requests")

        // The cloud holds the first setpoint's answer for 15 s; meanwhile the disk fills up.
        try h.injectFault(#"{"method":"PATCH","path_contains":"heatingCircuits/1","latency_ms":15000,"count":1}"#)
        c.publish("\(hc1)/setpoint/set", #"{"id":"df-full-1","setpoint":18.5}"#)
        c.waitResult("\(hc1)/setpoint/result", id: "df-full-1", status: "accepted")
        h.waitUntil("the setpoint's PATCH to reach the cloud") { (try? setpointWrites(h))?.count == 1 }
        let filler = try h.fillSmallDisk(small)
        // The cloud took it; its end is published but cannot be stored, and the bridge says it is not ready.
        XCTAssertNotNil(c.waitResult("\(hc1)/setpoint/result", id: "df-full-1", status: "done", timeout: 45))
        XCTAssertTrue(
            h.daemonOutput().split(separator: "\n").contains { $0.contains("cannot persist result") && $0.hasSuffix("id=df-full-1") },
            "df-full-1's end was stored after all")
        c.waitJSON("heatbridge/bridge/health") { $0["ready"] == false && $0["store"]?["writable"] == false }

        // Space returns; two newer setpoints for the same circuit run.
        XCTAssertEqual(unlink(filler), 0)
        c.publish("\(hc1)/setpoint/set", #"{"id":"df-full-2","setpoint":20}"#)
        XCTAssertNotNil(c.waitResult("\(hc1)/setpoint/result", id: "df-full-2", status: "done"))
        c.publish("\(hc1)/setpoint/set", #"{"id":"df-full-3","setpoint":21.5}"#)
        XCTAssertNotNil(c.waitResult("\(hc1)/setpoint/result", id: "df-full-3", status: "done"))
        c.waitJSON("heatbridge/bridge/health") { $0["ready"] == true }
        XCTAssertEqual(try sqlite(db, "SELECT status FROM commands WHERE id = 'df-full-1'"), "done", "the late end was recorded")

        // kill -9 and a restart: nothing is resumed, nothing is sent again, the newest value stands.
        h.killDaemon()
        c.clear()
        try h.startDaemon()
        c.waitJSON("\(hc1)/state")
        c.publish("\(hc1)/setpoint/set", #"{"id":"after-restart","setpoint":21.5}"#)  // shows the daemon active
        XCTAssertNotNil(c.waitResult("\(hc1)/setpoint/result", id: "after-restart", status: "done"))
        h.barrier()
        XCTAssertEqual(c.statuses("\(hc1)/setpoint/result", id: "df-full-1"), [], "df-full-1 was answered again after the restart")
        XCTAssertEqual(try setpointWrites(h), [18.5, 20, 21.5, 21.5])
        c.waitJSON("\(hc1)/state") { $0["manual_setpoint"] == 21.5 }
        XCTAssertEqual(h.stopDaemon(), 0)
    }

    /// The fallback when the end was never recorded at all (the daemon died before space returned): after the
    /// restart, an open command older than one accepted after it for the same target is superseded, not read
    /// back and sent.
    func testAnUnknownAttemptOlderThanAFinishedNewerCommandIsSupersededAfterARestart() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("\(hc1)/state")
        try h.admin("DELETE", "/admin/requests")
        c.publish("\(hc1)/setpoint/set", #"{"id":"older","setpoint":19}"#)
        XCTAssertNotNil(c.waitResult("\(hc1)/setpoint/result", id: "older", status: "done"))
        c.publish("\(hc1)/setpoint/set", #"{"id":"newer","setpoint":22}"#)
        XCTAssertNotNil(c.waitResult("\(hc1)/setpoint/result", id: "newer", status: "done"))
        XCTAssertEqual(h.stopDaemon(), 0)
        // As a daemon killed after the cloud call of `older` but before its end was stored would leave it.
        let db = h.dir.appendingPathComponent("state.db").path
        _ = try sqlite(db, "UPDATE commands SET status = 'accepted', attempts = 1 WHERE id = 'older'")
        c.clear()
        try h.startDaemon()
        let superseded = c.waitResult("\(hc1)/setpoint/result", id: "older", status: "expired")
        XCTAssertEqual(superseded?["code"], "SUPERSEDED")
        XCTAssertTrue(superseded?["message"]?.stringValue?.contains("superseded by command newer") ?? false, "\(superseded ?? .null)")
        c.waitJSON("\(hc1)/state") { $0["manual_setpoint"] == 22 }
        XCTAssertEqual(try setpointWrites(h), [19, 22], "the older setpoint was sent again")
        XCTAssertEqual(h.stopDaemon(), 0)
    }

    /// A store that cannot take a write at start stops the daemon (exit 78: a restart cannot help); a store
    /// lacking a table is damaged: moved aside, and the daemon runs on a fresh one.
    func testAStoreThatCannotWriteAtStartStopsTheDaemonAndOneLackingATableIsReplaced() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        XCTAssertEqual(h.stopDaemon(), 0)
        let db = h.dir.appendingPathComponent("state.db").path
        XCTAssertEqual(try runProcess("/usr/bin/chattr", ["+i", db]).status, 0)
        defer { _ = try? runProcess("/usr/bin/chattr", ["-i", db]) }
        try h.startDaemon()
        h.daemon?.waitUntilExit()
        XCTAssertEqual(h.daemon?.terminationStatus, 78, h.daemonOutput())
        XCTAssertTrue(h.daemonOutput().contains("cannot open the store"), h.daemonOutput())
        XCTAssertEqual(try runProcess("/usr/bin/chattr", ["-i", db]).status, 0)

        _ = try sqlite(db, "DROP TABLE commands")
        c.clear()
        try h.startDaemon()
        let health = c.waitJSON("heatbridge/bridge/health") { $0["store"]?["recovered"]?["reason"] != nil }
        XCTAssertEqual(health?["store"]?["recovered"]?["reason"], "the store lacks table(s) commands")
        c.publish("heatbridge/bosch-101000001/dhw1/charge/set", #"{"id":"fresh-store","action":"start","duration_min":15}"#)
        XCTAssertNotNil(c.waitResult("heatbridge/bosch-101000001/dhw1/charge/result", id: "fresh-store", status: "done"))
        XCTAssertEqual(h.stopDaemon(), 0)
    }

    /// The store turns read-only (immutable) while the daemon runs: commands are refused `STORE_FAILED`, the
    /// bridge says it is not ready, and it is ready again on its own once the store writes again.
    /// (Runs in `SideBySideTests`' outage lane: its subject is a stretch of real time.)
    func storeTurningReadOnlyWhileRunningIsNotReadyUntilItWritesAgain() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let notify = try NotifySocket(dir: h.dir)
        defer { notify.close() }
        try h.startDaemon(env: ["NOTIFY_SOCKET": notify.path])
        let c: TestMQTTClient = h.client
        let charge = "heatbridge/bosch-101000001/dhw1/charge"
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        c.waitJSON("heatbridge/bridge/health") { $0["ready"] == true }
        // The database and its WAL (the shared-memory index stays writable: it is mapped, not written).
        let files = ["state.db", "state.db-wal"].map { h.dir.appendingPathComponent($0).path }
        for f in files { XCTAssertEqual(try runProcess("/usr/bin/chattr", ["+i", f]).status, 0) }
        defer { for f in files { _ = try? runProcess("/usr/bin/chattr", ["-i", f]) } }
        c.publish("\(charge)/set", #"{"id":"read-only","action":"start","duration_min":15}"#)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "read-only", status: "rejected")?["code"], "STORE_FAILED")
        let down = c.waitJSON("heatbridge/bridge/health") { $0["ready"] == false }
        XCTAssertEqual(down?["store"]?["writable"], false)
        XCTAssertNotNil(down?["store"]?["problem"]?.stringValue)
        XCTAssertTrue(h.daemonOutput().contains("the store cannot write"), h.daemonOutput())
        // systemd's view (`systemctl status`) says so too.
        h.waitUntil("STATUS= to say the store cannot write") {
            notify.all().contains { $0.text.hasPrefix("STATUS=Not ready: the store cannot write") }
        }

        for f in files { XCTAssertEqual(try runProcess("/usr/bin/chattr", ["-i", f]).status, 0) }
        c.waitJSON("heatbridge/bridge/health", timeout: 30) { $0["ready"] == true && $0["store"]?["writable"] == true }
        h.waitUntil("STATUS= to say the store writes again") { notify.all().contains { $0.text.hasSuffix("the store writes again") } }
        c.publish("\(charge)/set", #"{"id":"writable-again","action":"start","duration_min":16}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "writable-again", status: "done"))
        XCTAssertEqual(h.stopDaemon(), 0)
    }
}

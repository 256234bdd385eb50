import Foundation
import HeatbridgeCore
import XCTest

/// What a hostile (or careless) local MQTT client can send: oversized and over-complex payloads, control
/// characters meant for the journal. Each gets one clear answer and leaves no trace in the store or the log.
final class HostileInputTests: XCTestCase {
    let charge = "heatbridge/bosch-101000001/dhw1/charge"

    func storeBytes(_ h: Harness) -> Data {
        ["state.db", "state.db-wal"].reduce(into: Data()) { $0 += (try? Data(contentsOf: h.dir.appendingPathComponent($1))) ?? Data() }
    }

    func testOversizedAndOverComplexPayloadsAreRefusedBeforeParsingOrStoring() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")

        // 100 KiB (default limit 64 KiB): refused unread, with a generated id; the payload never reaches the store.
        let marker = "HOSTILE-MARKER-7f3a"
        let big = #"{"id":"big","action":"start","pad":""# + marker + String(repeating: "x", count: 100 * 1024) + #""}"#
        c.publish("\(charge)/set", big)
        let tooLarge = c.waitJSON("\(charge)/result") { $0["code"] == "PAYLOAD_TOO_LARGE" }
        XCTAssertNotEqual(tooLarge?["id"], "big", "the id of an oversized payload is not read")
        XCTAssertTrue(
            tooLarge?["message"]?.stringValue?.contains("is above the limit of 65536 bytes (mqtt.max_payload_bytes)") ?? false, "\(tooLarge ?? .null)"
        )
        // Small but too deep, too wide, a string too long: refused by the JSON reader's bounds.
        let deep = String(repeating: #"{"a":"#, count: 20) + "1" + String(repeating: "}", count: 20)
        let wide = "{" + (0..<300).map { "\"k\($0)\":1" }.joined(separator: ",") + "}"
        let long = #"{"id":"long","action":"start","x":""# + String(repeating: "y", count: 5000) + #""}"#
        for (payload, reason) in [
            (deep, "nesting deeper than 16"), (wide, "more than 256 members in one object"), (long, "a string longer than 4096 bytes"),
        ] {
            c.clear()
            c.publish("\(charge)/set", payload)
            let r = c.waitJSON("\(charge)/result") { $0["code"] == "PAYLOAD_TOO_LARGE" }
            XCTAssertTrue(r?["message"]?.stringValue?.contains(reason) ?? false, "\(r ?? .null)")
            XCTAssertLessThanOrEqual(r?["message"]?.stringValue?.count ?? 0, CommandRejection.maxMessageCharacters + 1)
        }
        // Not JSON: a number with a leading zero.
        c.publish("\(charge)/set", #"{"id":"zero","action":"start","duration_min":030}"#)
        XCTAssertTrue(c.waitJSON("\(charge)/result") { $0["code"] == "INVALID_PAYLOAD" }?["message"]?.stringValue?.contains("leading zero") ?? false)

        // 3 MiB, above what the daemon lets the broker send it at all (16 × the limit, at least 1 MiB): the
        // broker drops it for the daemon, which never holds it; the next command is served as usual.
        c.publish("\(charge)/set", #"{"id":"huge","x":""# + marker + String(repeating: "z", count: 3 << 20) + #""}"#)
        c.brokerBarrier()
        c.publish("\(charge)/set", #"{"id":"after","action":"start","duration_min":15}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "after", status: "done"))
        XCTAssertTrue(c.statuses("\(charge)/result", id: "huge").isEmpty)
        XCTAssertEqual(h.stopDaemon(), 0)
        XCTAssertNil(storeBytes(h).range(of: Data(marker.utf8)), "an oversized payload was stored")
        let brokerLog = (try? String(contentsOf: h.dir.appendingPathComponent("broker.log"), encoding: .utf8)) ?? ""
        XCTAssertTrue(brokerLog.contains("Dropping too large outgoing PUBLISH for heatbridge-it"), brokerLog)
        XCTAssertEqual(h.daemonOutput().components(separatedBy: "code=PAYLOAD_TOO_LARGE").count - 1, 4, "the 3 MiB payload reached the daemon")
    }

    func testControlCharactersInValuesCannotForgeLogLines() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        // Accepted and executed, rejected (unknown target): both are logged with the id.
        c.publish("\(charge)/set", #"{"id":"a\n<0>FORGED accepted\r\u001b[2J","action":"start","duration_min":15}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "a\n<0>FORGED accepted\r\u{1b}[2J", status: "done"))
        c.publish("heatbridge/bosch-101000001/dhw9/charge/set", #"{"id":"r\n<0>FORGED rejected x=\"1\"","action":"start"}"#)
        XCTAssertNotNil(c.waitResult("heatbridge/bosch-101000001/dhw9/charge/result", id: "r\n<0>FORGED rejected x=\"1\"", status: "rejected"))
        XCTAssertEqual(h.stopDaemon(), 0)
        let log = h.daemonOutput()
        XCTAssertTrue(log.contains(#"a\n<0>FORGED accepted\r\u{1b}[2J"#), "the id is logged, escaped")
        XCTAssertTrue(log.contains(#"r\n<0>FORGED rejected x=\"1\""#), "quotes inside a quoted value are escaped")
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertFalse(
            lines.contains { $0.hasPrefix("<0>") || $0.contains("\u{1b}") || $0.contains("\r") }, "a forged line or a raw control character")
        XCTAssertTrue(lines.filter { !$0.isEmpty }.allSatisfy { $0.hasPrefix("<") }, "every line starts with its priority")
    }

    /// Runs `heatbridge ARGS` with a 60 s cap, so a hang fails this test instead of the whole run.
    func cli(_ args: [String]) throws -> (status: Int32, output: String) {
        let r = try runProcess("/usr/bin/timeout", ["60", Harness.binary("heatbridge")] + args)
        XCTAssertNotEqual(r.status, 124, "heatbridge \(args.joined(separator: " ")) hung")
        return r
    }

    /// Configs an attacker (or a broken generator) could write: deep, wide, long, and a secret "file" that is
    /// a FIFO. Each is refused with a clear error, quickly; a running daemon survives them on reload.
    func testDeepHugeAndStrangeConfigsAreRefusedCleanly() throws {
        let h = try Harness()
        defer { h.stopAll() }
        let dir = h.dir
        func write(_ name: String, _ text: String) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let deep = try write("deep.yaml", String(repeating: "[", count: 60_000) + String(repeating: "]", count: 60_000) + "\n")
        let wide = try write("wide.yaml", "mqtt:\n  url: mqtt://127.0.0.1:1883\n" + (0..<100_000).map { "k\($0): 1\n" }.joined())
        let groups = try write("groups.yaml", "groups:\n" + (0..<30_000).map { "  g\($0): [a]\n" }.joined())
        let list = try write("list.yaml", "groups:\n  g: [" + (0..<1_000_000).map { _ in "a" }.joined(separator: ",") + "]\n")
        let cases: [(String, String)] = [
            (deep, "the config nests deeper than 32 levels"),
            (wide, "the config has more than 20000 values"),
            (groups, "the config has more than 20000 values"),
            (list, "cannot read config file: larger than 1048576 bytes"),
        ]
        for (path, text) in cases {
            let r = try cli(["check-config", "--config", path])
            XCTAssertEqual(r.status, 1, "\(path): \(r.output.prefix(300))")
            XCTAssertTrue(r.output.contains(text), "\(path): \(r.output.prefix(300))")
            XCTAssertLessThan(r.output.count, 2000, "one clear error, not a flood")
        }
        // Just under the bounds, every pass must stay linear: these finish (the cap above fails a hang), each
        // with its one error per mistake.
        let manyGroups = try write(
            "many-groups.yaml", "mqtt:\n  url: mqtt://127.0.0.1:1883\ngroups:\n" + (0..<6_000).map { "  g\($0): [hsl-1/room-\($0)]\n" }.joined())
        let longList = try write(
            "long-list.yaml",
            "mqtt:\n  url: mqtt://127.0.0.1:1883\ngroups:\n  g: [" + (0..<19_000).map { "hsl-1/room-\($0)" }.joined(separator: ",") + "]\n")
        let manyKeys = try write("many-keys.yaml", "mqtt:\n  url: mqtt://127.0.0.1:1883\n" + (0..<9_000).map { "unknown\($0): 1\n" }.joined())
        for path in [manyGroups, longList, manyKeys] {
            let start = Date()
            let r = try cli(["check-config", "--config", path])
            print(
                "check-config \(URL(fileURLWithPath: path).lastPathComponent): \(String(format: "%.2f", Date().timeIntervalSince(start))) s, exit \(r.status)"
            )
            XCTAssertTrue([0, 1].contains(r.status), r.output.suffix(300).description)
            XCTAssertFalse(r.output.contains("more than 20000 values"), "\(path) is under the bound")
        }
        // A secret "file" that is a FIFO: refused at once, never opened for a blocking read.
        let fifo = dir.appendingPathComponent("key.fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8)
        let withFifo = try write("fifo.yaml", text.replacingOccurrences(of: dir.appendingPathComponent("bosch.key").path, with: fifo))
        let r = try cli(["check-config", "--config", withFifo])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("cannot read secret file \(fifo): not a regular file"), r.output)

        // A running daemon reloads each of them: refused, logged, still serving.
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bridge/account/bosch-test") { $0["state"] == "ready" }
        let good = text
        for (i, bad) in [deep, wide, withFifo].enumerated() {
            try String(contentsOfFile: bad, encoding: .utf8).write(toFile: h.configPath, atomically: true, encoding: .utf8)
            h.signalDaemon(SIGHUP)
            h.waitUntil("reload \(i) refused") { h.daemonOutput().components(separatedBy: "reload refused").count - 1 > i }
            XCTAssertTrue(h.daemon?.isRunning ?? false)
        }
        try good.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        c.publish("\(charge)/set", #"{"id":"after-bad-reloads","action":"start","duration_min":15}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "after-bad-reloads", status: "done"))
    }

    /// A store truncated to nothing (a card that lost its blocks): the daemon keeps the evidence, starts fresh
    /// and says so on every channel; a store it cannot use at all stops it with 78, which the unit does not
    /// restart on.
    func testADamagedStoreIsSaidLoudlyAndAnUnusableOneStopsTheUnit() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        c.publish("\(charge)/set", #"{"id":"before-damage","action":"start","duration_min":15}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "before-damage", status: "done"))
        c.waitJSON("heatbridge/bridge/health") { $0["store"]?["recovered"] == .null && ($0["store"]?["free_bytes"]?.intValue ?? 0) > 0 }
        XCTAssertEqual(h.stopDaemon(), 0)
        let db = h.dir.appendingPathComponent("state.db").path
        XCTAssertEqual(truncate(db, 0), 0)

        try h.startDaemon()
        let health = c.waitJSON("heatbridge/bridge/health") { $0["store"]?["recovered"]?["reason"] != nil }
        XCTAssertEqual(health?["store"]?["recovered"]?["reason"], "the store file is empty (truncated)")
        let kept = try XCTUnwrap(health?["store"]?["recovered"]?["kept_as"]?.stringValue)
        XCTAssertTrue(kept.hasPrefix(db + ".damaged-"), kept)
        XCTAssertTrue(FileManager.default.fileExists(atPath: kept), "the evidence is kept")
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")  // and the bridge works on the fresh store
        XCTAssertTrue(h.daemonOutput().contains("<2>the store was damaged: started with a fresh one"), h.daemonOutput())
        let status = try h.cli(["status"])
        XCTAssertTrue(status.output.contains("store: DAMAGED at "), status.output)
        XCTAssertTrue(status.output.contains("store: \(db), ") && status.output.contains(" MiB free"), status.output)
        XCTAssertTrue(status.output.contains("the damaged file is kept as \(kept)"), status.output)
        var st = stat()
        XCTAssertEqual(stat(db, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "the fresh store is private")
        XCTAssertEqual(h.stopDaemon(), 0)

        // A store from a newer heatbridge: nothing a restart can fix.
        let bump = try runProcess("/usr/bin/sqlite3", [db, "PRAGMA user_version=99"])
        XCTAssertEqual(bump.status, 0, bump.output)
        try h.startDaemon()
        h.daemon?.waitUntilExit()
        XCTAssertEqual(h.daemon?.terminationStatus, 78)
        XCTAssertTrue(h.daemonOutput().contains("newer than this heatbridge"), h.daemonOutput())
    }

    /// 5,000 QoS 1 commands at once, with the broker settings heatbridge ships: every one is answered (with
    /// mosquitto's default `max_queued_messages 1000` the broker dropped 2,121 before the daemon saw them).
    func testAFloodOfCommandsIsAnsweredInFull() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        let info = c.waitJSON("heatbridge/bridge/info") { $0["mqtt"] != nil }
        XCTAssertEqual(info?["mqtt"]?["receive_maximum"], 20)
        XCTAssertEqual(info?["mqtt"]?["max_payload_bytes"], 65536)
        let n = 5_000
        let topic = "heatbridge/bosch-101000001/dhw9/charge"  // no such circuit: each is answered `rejected` at once
        let start = Date()
        for i in 0..<n { c.publish("\(topic)/set", "{\"id\":\"flood-\(i)\",\"action\":\"start\"}") }
        var answered = Set<String>()
        h.waitUntil("\(n) commands answered", timeout: 180) {
            answered = Set(c.all("\(topic)/result").compactMap { try? JSONValue.parse($0.payload)["id"]?.stringValue })
            return answered.count >= n
        }
        print("flood: \(answered.count) of \(n) commands answered in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        XCTAssertEqual(answered, Set((0..<n).map { "flood-\($0)" }))
        XCTAssertEqual(c.all("\(topic)/result").count, n, "each exactly once")
    }

    /// A retained command published while the daemon is stopped reaches it twice (queued in its session, and as
    /// the stored retained message): it is answered exactly once, and cleared.
    func testARetainedCommandPublishedWhileStoppedIsRejectedOnce() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")
        h.barrier()
        XCTAssertEqual(h.stopDaemon(), 0)
        c.publish("\(charge)/set", #"{"id":"retained-offline","action":"start"}"#, retain: true)
        c.brokerBarrier()
        try h.startDaemon()
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "retained-offline", status: "rejected")?["code"], "RETAINED_COMMAND")
        h.waitUntil("the retained command to be cleared") { c.all("\(charge)/set").contains { $0.payload.isEmpty } }
        // Shown active after the rejection: a live command is answered, and later than any second rejection would be.
        c.publish("\(charge)/set", #"{"id":"live-after","action":"start","duration_min":15}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "live-after", status: "done"))
        h.barrier()
        XCTAssertEqual(c.statuses("\(charge)/result", id: "retained-offline"), ["rejected"])
        // And after one more restart (the session keeps its subscription), nothing comes back.
        XCTAssertEqual(h.stopDaemon(), 0)
        try h.startDaemon()
        c.waitJSON("heatbridge/bridge/state") { $0["state"] == "online" }
        h.barrier()
        XCTAssertEqual(c.statuses("\(charge)/result", id: "retained-offline"), ["rejected"])
    }

    /// The store on a 2 MiB filesystem that fills up: a command that cannot be stored is refused (and not run),
    /// writes resume without a restart once space returns, and a derogation whose end could not be stored is
    /// recorded once space returns, so a restart neither resumes nor sends it again.
    /// (Runs in `SideBySideTests`' outage lane: its subject is a stretch of real time.)
    func fullDiskNeverRunsACommandTwice() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, extraAccounts: try h.hslAccount(pollIntervalS: 1, reportTimeoutS: 20))
        let (small, db) = try h.moveStoreToSmallDisk()
        defer { h.unmount(small) }
        try h.admin("POST", "/admin/homesmartlink", #"{"never_ack":["64f1c0a2e9b3"]}"#)
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        let room = "heatbridge/hsl-64f1c0a2e9b3/room-1/derogation"
        c.waitJSON("heatbridge/hsl-64f1c0a2e9b3/room-1/state")
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state")

        // A derogation is sent; while it waits for the home's acknowledgement the disk fills up.
        c.publish("\(room)/set", #"{"id":"shed","delta":-2,"duration_min":60}"#)
        c.waitJSON("\(room)/result") { $0["id"] == "shed" && $0["status"] == "progress" }
        let filler = try h.fillSmallDisk(small)
        // The derogation's end (not acknowledged within 20 s) is published but cannot be stored.
        c.waitResult("\(room)/result", id: "shed", status: "failed", timeout: 40)
        // A command while the disk is full is refused, not run.
        c.publish("\(charge)/set", #"{"id":"while-full","action":"start","duration_min":15}"#)
        XCTAssertEqual(c.waitResult("\(charge)/result", id: "while-full", status: "rejected")?["code"], "STORE_FAILED")

        // Space comes back: the next command is stored and run, without a restart.
        XCTAssertEqual(unlink(filler), 0)
        c.publish("\(charge)/set", #"{"id":"after-space","action":"start","duration_min":16}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "after-space", status: "done"))

        // The derogation's end, refused while the disk was full, was recorded once space returned (before the
        // next command ran). The daemon dies; after the restart nothing of it is resumed or sent again.
        XCTAssertEqual(
            try runProcess("/usr/bin/sqlite3", [db, "SELECT status FROM commands WHERE id = 'shed'"]).output
                .trimmingCharacters(in: .whitespacesAndNewlines), "failed", "the derogation's end was not recorded late")
        h.killDaemon()
        c.clear()
        try h.startDaemon()
        c.waitJSON("heatbridge/hsl-64f1c0a2e9b3/room-1/state")
        c.publish("\(charge)/set", #"{"id":"after-restart","action":"start","duration_min":17}"#)
        XCTAssertNotNil(c.waitResult("\(charge)/result", id: "after-restart", status: "done"))
        h.barrier()
        XCTAssertEqual(c.statuses("\(room)/result", id: "shed"), [], "the derogation was resumed after the restart")
        let derogations = (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["vendor"] == "homesmartlink" && $0["path"] == "/partners/1/derogations"
        }
        XCTAssertEqual(derogations.count, 1, "the derogation was sent again")
        XCTAssertEqual(h.stopDaemon(), 0)
        let stored = try runProcess("/usr/bin/sqlite3", [db, "SELECT count(*) FROM commands WHERE id = 'after-space' AND status = 'done'"])
        XCTAssertEqual(stored.output.trimmingCharacters(in: .whitespacesAndNewlines), "1", "the command after space returned was stored")
    }
}

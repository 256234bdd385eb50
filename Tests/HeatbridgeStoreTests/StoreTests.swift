import HeatbridgeCore
import HeatbridgeStore
import XCTest

final class StoreTests: XCTestCase {
    var path: String!

    override func setUp() {
        path = "/tmp/hb-store-\(UInt32.random(in: 0...UInt32.max)).db"
    }

    override func tearDown() {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    }

    /// Energy buckets: one row per device, counter and hour, added to (a revision subtracts, never below zero),
    /// stored in the same transaction as the settings that go with them, and forgotten after the retention.
    func testEnergyBucketsAddUpPerHourAndAreForgottenAfterTheRetention() throws {
        let s = try SQLiteStore(path: path)
        try s.saveLive(
            settings: [("meter.d", ["counters": [:]])],
            buckets: [
                EnergyBucket(device: "d", meter: "electricity_total", hour: 10, kwh: 0.5),
                EnergyBucket(device: "d", meter: "heat_total", hour: 10, kwh: 2),
                EnergyBucket(device: "other", meter: "electricity_total", hour: 10, kwh: 9),
            ])
        try s.saveLive(
            settings: [],
            buckets: [
                EnergyBucket(device: "d", meter: "electricity_total", hour: 10, kwh: 0.25),
                EnergyBucket(device: "d", meter: "electricity_total", hour: 11, kwh: 1),
                EnergyBucket(device: "d", meter: "heat_total", hour: 10, kwh: -5),
            ])
        XCTAssertEqual(
            try s.energyBuckets(device: "d", fromHour: 0, toHour: 100),
            [
                EnergyBucket(device: "d", meter: "electricity_total", hour: 10, kwh: 0.75),
                EnergyBucket(device: "d", meter: "heat_total", hour: 10, kwh: 0),
                EnergyBucket(device: "d", meter: "electricity_total", hour: 11, kwh: 1),
            ])
        XCTAssertEqual(try s.energyBuckets(device: "d", fromHour: 11, toHour: 12).count, 1, "[from, to)")
        XCTAssertEqual(try s.loadSettings()["meter.d"], ["counters": [:]])
        try s.saveLive(settings: [("meter.d", nil)], buckets: [])
        XCTAssertNil(try s.loadSettings()["meter.d"], "a nil setting deletes it")
        try s.pruneEnergy(beforeHour: 11)
        XCTAssertEqual(try s.energyBuckets(device: "d", fromHour: 0, toHour: 100).map(\.hour), [11])
    }

    func testMigratesAndPersistsAcrossReopen() throws {
        do {
            let s = try SQLiteStore(path: path)
            XCTAssertEqual(s.schemaVersion, SQLiteStore.latestSchemaVersion)
            try s.saveDevice(
                CachedDevice(
                    deviceId: "d", account: "a", state: ["model": "M"], availability: "online",
                    nodes: ["hc1": ["setpoint": 21], "dhw1": ["temperature": 50]], updatedAt: 100))
            try s.saveDevice(
                CachedDevice(
                    deviceId: "d", account: "a", state: ["model": "M2"], availability: "offline",
                    nodes: ["hc1": ["setpoint": 19]], updatedAt: 200, schedules: ["hc1": ["days": [:]]]))
            let c = Command(
                id: "c1", device: "d", node: "dhw1", capability: "charge", params: ["action": "stop"], source: "mqtt",
                receivedAt: 1, validUntil: 601)
            try s.insertCommand(c)
            var q = c
            q.status = .queued
            q.notBefore = 50
            q.attempts = 1
            try s.updateCommand(q)
            let r1 = try s.appendResult(
                commandId: "c1", topic: "t", payload: Array("one".utf8), reply: nil, command: nil, isNew: false, inboxRow: nil
            ).row
            _ = try s.appendResult(commandId: "c1", topic: "t", payload: Array("two".utf8), reply: nil, command: nil, isNew: false, inboxRow: nil)
            try s.markResultPublished(r1)
            try s.saveSetting("d/dhw1/charge_duration_min", 45)
        }
        let s = try SQLiteStore(path: path)
        XCTAssertEqual(s.schemaVersion, SQLiteStore.latestSchemaVersion)
        let devices = try s.loadDevices()
        XCTAssertEqual(devices.count, 1)
        XCTAssertEqual(devices[0].state, ["model": "M2"])
        XCTAssertEqual(devices[0].availability, "offline")
        XCTAssertEqual(devices[0].nodes, ["hc1": ["setpoint": 19]])
        XCTAssertEqual(devices[0].updatedAt, 200)
        XCTAssertEqual(devices[0].schedules, ["hc1": ["days": [:]]])
        XCTAssertEqual(try s.loadSettings(), ["d/dhw1/charge_duration_min": 45])
        XCTAssertEqual(SQLiteStore.latestSchemaVersion, 8)
        let open = try s.openCommands()
        XCTAssertEqual(open.map(\.id), ["c1"])
        XCTAssertEqual(open[0].status, .queued)
        XCTAssertEqual(open[0].notBefore, 50)
        XCTAssertEqual(open[0].attempts, 1)
        XCTAssertEqual(try s.unpublishedResults().map { String(decoding: $0.payload, as: UTF8.self) }, ["two"])
        var done = open[0]
        done.status = .done
        try s.updateCommand(done)
        XCTAssertTrue(try s.openCommands().isEmpty)
        XCTAssertEqual(try s.results(commandId: "c1").count, 2)
    }

    func testWALModeIsOn() throws {
        let store = try SQLiteStore(path: path)
        try store.saveDevice(CachedDevice(deviceId: "d", account: "a", state: [:], availability: nil, nodes: [:], updatedAt: 1))
        XCTAssertEqual(access(path + "-wal", F_OK), 0, "WAL file missing while the store is open")
        withExtendedLifetime(store) {}
    }

    func damagedCopies() -> [String] {
        let dir = opendir("/tmp")!
        defer { closedir(dir) }
        var out: [String] = []
        let base = String(path.split(separator: "/").last!)
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(base + ".damaged-") { out.append("/tmp/" + name) }
        }
        return out
    }

    override func tearDownWithError() throws {
        for f in damagedCopies() { unlink(f) }
    }

    /// Created private whatever the umask; a sound store opens as it is.
    func testCheckedOpenCreatesAPrivateFileAndKeepsASoundStore() throws {
        let old = umask(0o022)
        defer { umask(old) }
        do {
            let (store, recovery) = try SQLiteStore.openChecked(path: path, now: 1_800_000_000)
            XCTAssertNil(recovery)
            try store.saveSetting("k", "v")
        }
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let (again, recovery) = try SQLiteStore.openChecked(path: path, now: 1_800_000_000)
        XCTAssertNil(recovery)
        XCTAssertEqual(try again.loadSettings()["k"], "v")
    }

    /// Truncated to nothing, or a page overwritten: the evidence is kept aside, a fresh store starts, and the
    /// recovery is returned and remembered.
    func testADamagedStoreIsKeptAsideAndReplaced() throws {
        for damage in ["truncate", "page"] {
            do {
                let (store, _) = try SQLiteStore.openChecked(path: path, now: 1_800_000_000)
                for i in 0..<200 { try store.saveSetting("key-\(i)", .string(String(repeating: "v", count: 100))) }
            }
            let fd = open(path, O_WRONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            if damage == "truncate" {
                XCTAssertEqual(ftruncate(fd, 0), 0)
            } else {
                // Page 2 onwards (4096-byte pages): garbage where the settings table's b-tree lives.
                let garbage = [UInt8](repeating: 0xA5, count: 8192)
                XCTAssertEqual(garbage.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 4096) }, 8192)
            }
            close(fd)
            for suffix in ["-wal", "-shm"] { unlink(path + suffix) }  // as after a clean stop: the WAL was checkpointed
            let (fresh, recovery) = try SQLiteStore.openChecked(path: path, now: 1_800_000_000 + (damage == "page" ? 60 : 0))
            let r = try XCTUnwrap(recovery, damage)
            XCTAssertTrue(
                damage == "truncate"
                    ? r.reason == "the store file is empty (truncated)" : r.reason.hasPrefix("quick_check:") || r.reason.contains("malformed"),
                "\(damage): \(r.reason)")
            XCTAssertTrue(r.keptAs.hasPrefix(path + ".damaged-2027"), r.keptAs)
            XCTAssertEqual(access(r.keptAs, F_OK), 0, "the damaged file is kept")
            XCTAssertEqual(fresh.quickCheck(), ["ok"])
            XCTAssertNil(try fresh.loadSettings()["key-1"])
            XCTAssertEqual(try fresh.loadSettings()[SQLiteStore.recoverySettingKey]?["reason"]?.stringValue, r.reason)
            for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        }
        XCTAssertEqual(damagedCopies().count, 2)
    }

    /// Failed operations are counted with the last error's words, for `bridge/health`.
    func testStoreErrorsAreCountedForHealth() throws {
        do { _ = try SQLiteStore(path: path) }
        let ro = try SQLiteStore(path: path, readOnly: true)
        XCTAssertEqual(ro.errorReport["errors"], 0)
        XCTAssertThrowsError(try ro.saveSetting("k", "v"))
        XCTAssertEqual(ro.errorReport["errors"], 1)
        XCTAssertTrue(ro.errorReport["last_error"]?.stringValue?.contains("readonly") ?? false, "\(ro.errorReport)")
    }

    func fileSize(_ p: String) -> Int {
        var st = stat()
        return stat(p, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Flash wear: a poll that finds the device unchanged writes nothing; its confirmation time is refreshed
    /// only every `confirmationRefreshS`; a change is written at once.
    func testAnUnchangedDeviceIsNotRewrittenOnEveryPoll() throws {
        let s = try SQLiteStore(path: path)
        func device(_ model: String, at t: Double) -> CachedDevice {
            CachedDevice(
                deviceId: "d", account: "a", state: ["model": .string(model)], availability: "online",
                nodes: ["hc1": ["setpoint": 21], "dhw1": ["charge": ["active": false]]], updatedAt: t)
        }
        try s.saveDevice(device("M", at: 1000))
        let written = s.rowsWritten
        XCTAssertGreaterThan(written, 0)
        for i in 1...49 { try s.saveDevice(device("M", at: 1000 + Double(i) * 6)) }  // 49 polls within 300 s
        XCTAssertEqual(s.rowsWritten, written, "an unchanged poll wrote to the store")
        try s.saveDevice(device("M", at: 1000 + SQLiteStore.confirmationRefreshS))
        XCTAssertEqual(s.rowsWritten, written + 1, "only the confirmation time, after \(SQLiteStore.confirmationRefreshS) s")
        XCTAssertEqual(try s.loadDevices().first?.updatedAt, 1000 + SQLiteStore.confirmationRefreshS)
        try s.saveDevice(device("M2", at: 1000 + SQLiteStore.confirmationRefreshS + 1))
        XCTAssertEqual(try s.loadDevices().first?.state["model"], "M2", "a change is written at once")
        // One node changes: its row and the device's time are written, not every node again.
        let before = s.rowsWritten
        var one = device("M2", at: 2000)
        one.nodes["hc1"] = ["setpoint": 19]
        try s.saveDevice(one)
        XCTAssertEqual(s.rowsWritten - before, 2, "one node changed: its row and the device's updated_at")
        XCTAssertEqual(try s.loadDevices().first?.nodes["hc1"]?["setpoint"], 19)
        XCTAssertEqual(try s.loadDevices().first?.nodes["dhw1"]?["charge"]?["active"], false)
        one.nodes["dhw1"] = nil
        try s.saveDevice(one)
        XCTAssertNil(try s.loadDevices().first?.nodes["dhw1"], "a node that went away is removed")
    }

    /// The WAL stays small whatever is written: checkpointed every 64 pages and cut back to 256 KiB.
    func testTheWALIsBounded() throws {
        let s = try SQLiteStore(path: path)
        var peak = 0
        for i in 0..<3000 {
            try s.saveSetting("k\(i % 500)", .string(String(repeating: "v", count: 200) + "\(i)"))
            peak = max(peak, fileSize(path + "-wal"))
        }
        XCTAssertLessThan(peak, 600_000, "WAL peak \(peak) bytes")
    }

    func testUnwritableLocationIsAClearError() {
        XCTAssertThrowsError(try SQLiteStore(path: "/nonexistent-dir/x.db")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent-dir/x.db"), "\(error)")
        }
    }

    func testNewerSchemaIsRefused() throws {
        do { _ = try SQLiteStore(path: path) }
        // Simulate a store written by a future version, with the sqlite3 shell.
        let f = popen("sqlite3 \(path!) 'PRAGMA user_version=99'", "r")
        XCTAssertNotNil(f)
        if let f { pclose(f) }
        XCTAssertThrowsError(try SQLiteStore(path: path)) { error in
            XCTAssertTrue("\(error)".contains("newer"), "\(error)")
        }
    }

    /// MQTT v5 request/response survives a restart: the Response Topic and Correlation Data go from the inbox
    /// to the command to each result's copy, and a copy not yet published comes back as a reply.
    func testReplyAddressesArePersistedAlongTheWay() throws {
        let s = try SQLiteStore(path: path)
        let corr: [UInt8] = [0, 1, 0xff]
        _ = try s.inboxAdd(MQTTMessage(topic: "hb/d/n/c/set", payload: Array("{}".utf8), responseTopic: "ems/r", correlationData: corr))
        XCTAssertEqual(try s.inboxPending().first?.responseTopic, "ems/r")
        XCTAssertEqual(try s.inboxPending().first?.correlationData, corr)
        let reply = ReplyAddress(topic: "ems/r", correlationData: corr)
        let c = Command(id: "v5", device: "d", node: "n", capability: "c", params: [:], source: "mqtt", receivedAt: 1, validUntil: 601, reply: reply)
        let rows = try s.appendResult(commandId: "v5", topic: "hb/d/n/c/result", payload: [7], reply: reply, command: c, isNew: true, inboxRow: nil)
        XCTAssertNotNil(rows.replyRow)
        try s.markResultPublished(rows.row)
        XCTAssertEqual(try s.openCommands().first?.reply, reply)
        let pending = try s.unpublishedResults()
        XCTAssertEqual(pending, [PendingResult(rowId: rows.replyRow!, topic: "ems/r", payload: [7], reply: reply)])
        // The reply copy is never taken for the command's own last result.
        XCTAssertEqual(try s.priorCommand(id: "v5", since: 0)?.lastResult?.topic, "hb/d/n/c/result")
        // No Correlation Data is NULL, not an empty one.
        let bare = ReplyAddress(topic: "ems/r2", correlationData: nil)
        let r2 = try s.appendResult(commandId: "v5", topic: "hb/d/n/c/result", payload: [8], reply: bare, command: nil, isNew: false, inboxRow: nil)
        XCTAssertEqual(try s.unpublishedResults().last, PendingResult(rowId: r2.replyRow!, topic: "ems/r2", payload: [8], reply: bare))
    }

    func testInboxIsConsumedWithTheResultInOneTransaction() throws {
        let s = try SQLiteStore(path: path)
        let row = try s.inboxAdd(MQTTMessage(topic: "hb/d/n/c/set", payload: Array("{}".utf8), retained: true))
        XCTAssertEqual(try s.inboxPending().map(\.inboxRow), [row])
        XCTAssertEqual(try s.inboxPending().first?.retained, true)
        let c = Command(id: "i1", device: "d", node: "n", capability: "c", params: ["a": 1], source: "mqtt", receivedAt: 100, validUntil: 700)
        _ = try s.appendResult(commandId: "i1", topic: "t", payload: [1], reply: nil, command: c, isNew: true, inboxRow: row)
        XCTAssertTrue(try s.inboxPending().isEmpty)
        let prior = try XCTUnwrap(try s.priorCommand(id: "i1", since: 50))
        XCTAssertEqual(prior.command, c)
        XCTAssertEqual(prior.lastResult?.topic, "t")
        XCTAssertEqual(prior.lastResult?.payload, [1])
        XCTAssertTrue(prior.isSame(Target(device: "d", node: "n", capability: "c"), params: ["a": 1]))
        XCTAssertFalse(prior.isSame(Target(device: "d", node: "n", capability: "c"), params: ["a": 2]))
        XCTAssertNil(try s.priorCommand(id: "i1", since: 150))
        XCTAssertNil(try s.priorCommand(id: "i2", since: 50))
        XCTAssertEqual(try s.integrityCheck(), "ok")
    }
}

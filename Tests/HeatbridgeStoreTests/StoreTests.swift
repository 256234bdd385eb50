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

    func testMigratesAndPersistsAcrossReopen() throws {
        do {
            let s = try SQLiteStore(path: path)
            XCTAssertEqual(s.schemaVersion, SQLiteStore.latestSchemaVersion)
            try s.saveDevice(CachedDevice(deviceId: "d", account: "a", state: ["model": "M"], availability: "online",
                                          nodes: ["hc1": ["setpoint": 21], "dhw1": ["temperature": 50]], updatedAt: 100))
            try s.saveDevice(CachedDevice(deviceId: "d", account: "a", state: ["model": "M2"], availability: "offline",
                                          nodes: ["hc1": ["setpoint": 19]], updatedAt: 200, schedules: ["hc1": ["days": [:]]]))
            let c = Command(id: "c1", device: "d", node: "dhw1", capability: "charge", params: ["action": "stop"], source: "mqtt",
                            receivedAt: 1, validUntil: 601)
            try s.insertCommand(c)
            var q = c
            q.status = .queued
            q.notBefore = 50
            q.attempts = 1
            try s.updateCommand(q)
            let r1 = try s.appendResult(commandId: "c1", topic: "t", payload: Array("one".utf8), command: nil, isNew: false, inboxRow: nil)
            _ = try s.appendResult(commandId: "c1", topic: "t", payload: Array("two".utf8), command: nil, isNew: false, inboxRow: nil)
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
        XCTAssertEqual(SQLiteStore.latestSchemaVersion, 6)
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

    func testInboxIsConsumedWithTheResultInOneTransaction() throws {
        let s = try SQLiteStore(path: path)
        let row = try s.inboxAdd(MQTTMessage(topic: "hb/d/n/c/set", payload: Array("{}".utf8), retained: true))
        XCTAssertEqual(try s.inboxPending().map(\.inboxRow), [row])
        XCTAssertEqual(try s.inboxPending().first?.retained, true)
        let c = Command(id: "i1", device: "d", node: "n", capability: "c", params: ["a": 1], source: "mqtt", receivedAt: 100, validUntil: 700)
        _ = try s.appendResult(commandId: "i1", topic: "t", payload: [1], command: c, isNew: true, inboxRow: row)
        XCTAssertTrue(try s.inboxPending().isEmpty)
        XCTAssertTrue(try s.hasCommand(id: "i1", device: "d", node: "n", capability: "c", params: ["a": 1], since: 50))
        XCTAssertFalse(try s.hasCommand(id: "i1", device: "d", node: "n", capability: "c", params: ["a": 2], since: 50))
        XCTAssertFalse(try s.hasCommand(id: "i1", device: "d", node: "n", capability: "c", params: ["a": 1], since: 150))
        XCTAssertEqual(try s.integrityCheck(), "ok")
    }
}

import HeatbridgeCore
import HeatbridgeTesting
import XCTest

/// Never twice, never undoing a newer command, also when the store refuses writes (issue #25), with the
/// in-memory store's failure switch.
extension BridgeTests {
    func knownDevice() {
        store.devices.withLock {
            $0["fake-1"] = CachedDevice(
                deviceId: "fake-1", account: "acc", state: ["vendor_id": "1"], availability: "online",
                nodes: ["dhw1": [:]], updatedAt: 1_800_000_000)
        }
    }

    func health() -> JSONValue? { mqtt.json("hb/bridge/health").last }

    /// The cloud takes a command, then its end cannot be stored: it is kept and written before the next
    /// command's attempt, so the store never holds it open (a restart would have sent it again).
    func testACommandWhoseEndCouldNotBeStoredIsRecordedBeforeTheNextOneRuns() {
        knownDevice()
        let store = self.store!
        adapter.duringExecute.withLock { $0 = { c in if c.id == "first" { store.failing.withLock { $0 = true } } } }
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"first","action":"start","duration_min":20}"#)
        eventually("first done (published, not stored)") { results("first").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(store.commands.withLock { $0.first { $0.id == "first" }?.status }, .accepted, "the store took the end after all")
        eventually("health says not ready") { health()?["ready"] == false }
        XCTAssertEqual(health()?["store"]?["writable"], false)
        XCTAssertEqual(health()?["store"]?["unrecorded_results"], 1)

        store.failing.withLock { $0 = false }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"second","action":"start","duration_min":30}"#)
        eventually("second done") { results("second").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(store.commands.withLock { $0.first { $0.id == "first" }?.status }, .done, "recorded before the next command ran")
        XCTAssertEqual(try store.openCommands().map(\.id), [], "nothing left open for a restart to resume")
        XCTAssertEqual(adapter.executed.withLock { $0.map(\.id) }, ["first", "second"])
        eventually("ready again") { health()?["ready"] == true }
        // The late record is marked published: nothing is sent again on the next connect.
        XCTAssertEqual(try store.unpublishedResults().filter { $0.topic.hasSuffix("charge/result") }.count, 0)
    }

    /// After a restart, an open command older than one accepted after it for the same target ends
    /// `SUPERSEDED`: neither read back nor sent, so it cannot undo the newer one.
    func testAnUnknownAttemptOlderThanAFinishedNewerCommandIsSupersededOnResume() {
        knownDevice()
        store.commands.withLock {
            $0 = [
                Command(
                    id: "old", device: "fake-1", node: "dhw1", capability: "charge", params: ["action": "start", "duration_min": 20],
                    source: "mqtt", receivedAt: 1_800_000_000, validUntil: 1_900_000_000, attempts: 1),
                Command(
                    id: "newer", device: "fake-1", node: "dhw1", capability: "charge", params: ["action": "stop"],
                    source: "mqtt", receivedAt: 1_800_000_100, validUntil: 1_900_000_000, status: .done, attempts: 1),
                Command(
                    id: "other-target", device: "fake-1", node: "hc1", capability: "charge", params: ["action": "stop"],
                    source: "mqtt", receivedAt: 1_800_000_000, validUntil: 1_900_000_000, attempts: 1),
            ]
        }
        adapter.confirmAnswer.withLock { $0 = false }
        _ = start()
        eventually("old superseded") { results("old").last?["status"]?.stringValue == "expired" }
        XCTAssertEqual(results("old").last?["code"], "SUPERSEDED")
        XCTAssertTrue(results("old").last?["message"]?.stringValue?.contains("superseded by command newer") ?? false)
        // A command for another target is resumed as before (read back, then sent: the read-back said not applied).
        eventually("the other target resumed") { adapter.executed.withLock { $0.map(\.id) } == ["other-target"] }
        XCTAssertFalse(adapter.confirmed.withLock { $0 }.contains("old"), "the superseded command was read back")
    }

    /// A store that refuses writes while running: the bridge says it is not ready, and ready again once a
    /// probe write succeeds, without a command to show it.
    func testAStoreThatStopsWritingMakesTheBridgeNotReadyUntilItWritesAgain() async {
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        eventually("health") { health()?["ready"] == true }
        store.failing.withLock { $0 = true }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"while-failing","action":"stop"}"#)
        eventually("rejected") { results("while-failing").count == 1 }
        XCTAssertEqual(results("while-failing").first?["code"], "STORE_FAILED")
        eventually("not ready") { health()?["ready"] == false }
        XCTAssertNotNil(health()?["store"]?["problem"]?.stringValue)
        store.failing.withLock { $0 = false }
        await clock.advance(by: 11)
        eventually("ready again after the probe") { health()?["ready"] == true }
        XCTAssertEqual(health()?["store"]?["writable"], true)
    }
}

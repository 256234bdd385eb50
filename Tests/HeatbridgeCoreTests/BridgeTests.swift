import HeatbridgeCore
import HeatbridgeTesting
import Logging
import XCTest

final class BridgeTests: XCTestCase {
    var mqtt: RecordingMQTT!
    var store: InMemoryStore!
    var clock: ManualClock!
    var adapter: ScriptedAdapter!
    var task: Task<Void, Never>?
    let topics = TopicLayout(base: "hb")

    override func setUp() {
        mqtt = RecordingMQTT()
        store = InMemoryStore()
        clock = ManualClock()
        adapter = ScriptedAdapter()
        adapter.snapshots.withLock {
            $0 = [
                DeviceSnapshot(id: "fake-1", vendorId: "1", model: "M", online: true, nodes: ["dhw1": ["temperature": 50], "hc1": ["setpoint": 21]])
            ]
        }
    }

    override func tearDown() { task?.cancel() }

    func start(pollIntervalS: Double = 3600, maxPollIntervalS: Double? = nil, push: PushSettings? = nil, scope: [String]? = nil) -> Bridge {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let bridge = Bridge(
            settings: BridgeSettings(
                topics: topics, version: "t", configHash: "h", behaviour: BridgeBehaviour(),
                accounts: [
                    AccountRuntime(
                        name: "acc", vendor: "fake", pollIntervalS: pollIntervalS,
                        maxPollIntervalS: maxPollIntervalS, adapter: adapter,
                        scope: scope, push: push)
                ]),
            mqtt: mqtt, store: store, clock: clock, logger: logger)
        clock.drive(quiesce: { await bridge.quiesce() }, nextDeadline: { bridge.nextTimer })
        task = Task { await bridge.run() }
        mqtt.continuation.yield(.connected)
        return bridge
    }

    func eventually(_ what: String, timeout: Double = 5, file: StaticString = #filePath, line: UInt = #line, _ cond: () -> Bool) {
        if !waitUntil(timeoutS: timeout, cond) { XCTFail("timed out waiting for \(what)", file: file, line: line) }
    }

    func results(_ id: String? = nil) -> [JSONValue] {
        mqtt.json("hb/fake-1/dhw1/charge/result").filter { id == nil || $0["id"]?.stringValue == id }
    }

    func testPublishesStateAndSubscribesOnConnect() {
        _ = start()
        eventually("node state") { !mqtt.json("hb/fake-1/dhw1/state").isEmpty }
        eventually("connect handled") { !mqtt.json("hb/bridge/state").isEmpty }
        XCTAssertEqual(mqtt.subscriptions.withLock { $0 }, ["hb/+/+/+/set", "hb/bridge/request/+"])
        XCTAssertEqual(mqtt.json("hb/fake-1/state").last?["vendor"]?.stringValue, "fake")
        XCTAssertEqual(mqtt.on("hb/fake-1/availability").last, "online")
        XCTAssertEqual(mqtt.json("hb/fake-1/dhw1/state").last?["source"]?.stringValue, "cloud")
        XCTAssertEqual(mqtt.json("hb/bridge/state").last?["state"]?.stringValue, "online")
        eventually("cached in store") { store.devices.withLock { $0["fake-1"] } != nil }
    }

    func testUnchangedStateIsNotRepublishedButChangesAre() async {
        _ = start(pollIntervalS: 1)
        eventually("connect handled and first poll") { !mqtt.json("hb/bridge/state").isEmpty && !mqtt.on("hb/fake-1/hc1/state").isEmpty }
        await clock.quiesce()  // the post-connect replay of retained topics and the first poll are done
        mqtt.published.withLock { $0 = [] }
        let polls = adapter.priorities.withLock { $0.count }
        await clock.advance(by: 10)
        XCTAssertGreaterThan(adapter.priorities.withLock { $0.count }, polls + 3, "the bridge did not poll in those 10 s")
        XCTAssertEqual(mqtt.on("hb/fake-1/hc1/state").count, 0, "unchanged state published again")
        adapter.snapshots.withLock { $0[0].nodes["hc1"] = ["setpoint": 19] }
        await clock.advance(by: 4)  // the slowest the quiet account polls now
        eventually("changed state") { mqtt.on("hb/fake-1/hc1/state").count == 1 }
        XCTAssertEqual(mqtt.json("hb/fake-1/hc1/state").last?["setpoint"]?.doubleValue, 19)
    }

    /// A device of the account's scope that its cloud stops listing (the relay narrowed the box's scope, the
    /// contract moved) is removed after two polls; a command for it is then refused as FORBIDDEN with the last
    /// answer, not as an unknown device, and nothing reaches the adapter.
    func testAScopedDeviceTheCloudStopsListingIsRefusedAsForbidden() async {
        _ = start(pollIntervalS: 1, scope: ["1"])
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        adapter.snapshots.withLock {
            $0[0].error = CloudError(.forbidden, status: 403, message: "relay: gateway 1 is not in the scope of box b")
        }
        await clock.advance(by: 1.5)
        eventually("the 403 shown") { mqtt.json("hb/fake-1/state").last?["error"]?["code"]?.stringValue == "FORBIDDEN" }
        adapter.snapshots.withLock { $0 = [] }
        for _ in 0..<6 where !mqtt.on("hb/fake-1/state").contains("") { await clock.advance(by: 1) }
        eventually("device removed") { mqtt.on("hb/fake-1/state").last == "" }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"gone","action":"start","duration_min":30}"#)
        eventually("refused") { results("gone").count == 1 }
        XCTAssertEqual(results("gone").first?["code"]?.stringValue, "FORBIDDEN")
        XCTAssertTrue(results("gone").first?["message"]?.stringValue?.contains("no longer lists it") ?? false, "\(results("gone"))")
        XCTAssertTrue(results("gone").first?["message"]?.stringValue?.contains("not in the scope of box b") ?? false, "\(results("gone"))")
        XCTAssertTrue(adapter.executed.withLock { $0.isEmpty })
        // Listed again: the device is back and commands run.
        adapter.snapshots.withLock {
            $0 = [DeviceSnapshot(id: "fake-1", vendorId: "1", model: "M", online: true, nodes: ["dhw1": ["temperature": 50]])]
        }
        for _ in 0..<8 where mqtt.on("hb/fake-1/availability").last != "online" { await clock.advance(by: 1) }
        eventually("back") { mqtt.on("hb/fake-1/availability").last == "online" }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"back","action":"start","duration_min":30}"#)
        eventually("done") { results("back").count == 2 }
    }

    func testCommandAcceptedThenDone() {
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"a","action":"start","duration_min":30}"#)
        eventually("done") { results("a").count == 2 }
        XCTAssertEqual(results("a").map { $0["status"]?.stringValue }, ["accepted", "done"])
        XCTAssertEqual(adapter.executed.withLock { $0.first?.params }, ["action": "start", "duration_min": 30])
        XCTAssertEqual(store.commands.withLock { $0.first?.status }, .done)
    }

    /// Commands run at command priority, the read-back after them at read-back priority, polls at poll
    /// priority: under a shared rate budget that is the order they get tokens in.
    func testWorkRunsAtItsPriority() async {
        _ = start()
        eventually("first poll") { !mqtt.json("hb/fake-1/state").isEmpty }
        XCTAssertEqual(adapter.priorities.withLock { $0 }, ["fetch poll"])
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"p","action":"start","duration_min":30}"#)
        eventually("done") { results("p").count == 2 }
        // The fake cannot read one device, so the read-back is a whole poll, 1 s later.
        await clock.advance(by: 1)
        eventually("read-back") { adapter.priorities.withLock { $0.count } >= 3 }
        XCTAssertEqual(adapter.priorities.withLock { $0 }, ["fetch poll", "execute command", "fetch read-back"])
    }

    /// A quiet account is polled less often (down to poll_max_interval_s); a change brings the normal rate back.
    func testPollsSlowDownWhileNothingChanges() async {
        _ = start(pollIntervalS: 1, maxPollIntervalS: 8)
        func polls() -> Int { adapter.priorities.withLock { $0.filter { $0 == "fetch poll" }.count } }
        eventually("first poll") { polls() >= 1 }
        await clock.advance(by: 120)
        let quiet = polls()
        // Fixed-rate polling would have asked ~120 times; 3 polls each at 1, 2, 4 s, then every 8 s: ~25.
        XCTAssertLessThan(quiet, 35, "polls did not slow down: \(quiet) in 120 s")
        XCTAssertGreaterThan(quiet, 12, "polling stopped: \(quiet) in 120 s")
        // Something changes: the next poll sees it and the rate is back to every second.
        adapter.snapshots.withLock { $0[0].nodes["hc1"] = ["setpoint": 18] }
        // Second by second until the next (slow) poll sees it, at most the 8 s maximum.
        for _ in 0..<8 where mqtt.json("hb/fake-1/hc1/state").last?["setpoint"]?.doubleValue != 18 { await clock.advance(by: 1) }
        eventually("change seen") { mqtt.json("hb/fake-1/hc1/state").last?["setpoint"]?.doubleValue == 18 }
        // Back to every second: twice, a second on the clock brings a poll. Each step first waits until the poll
        // before it has scheduled the next (a sleeper a second away), so a slow machine cannot skip one.
        for step in 1...2 {
            let at = clock.now()
            let before = polls()
            eventually("poll \(step) scheduled") { (clock.nextDeadline ?? .infinity) <= at + 1.001 }
            await clock.advance(by: 1)
            eventually("the rate came back after a change: poll \(step) a second later") { polls() > before }
        }
    }

    func testRejections() {
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", "[1,2]")
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"v","action":"start","valid_for_s":"soon"}"#)
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"w","action":"start","valid_for_s":0}"#)
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":{"x":1},"action":"start"}"#)
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"r","action":"start"}"#, retained: true)
        mqtt.send("hb/fake-1/dhw1/charge/set", "")  // the clearing publish: ignored
        eventually("five rejections") { results().count == 5 }
        XCTAssertEqual(
            results().map { $0["code"]?.stringValue }, ["INVALID_PAYLOAD", "INVALID_PAYLOAD", "OUT_OF_RANGE", "INVALID_PAYLOAD", "RETAINED_COMMAND"])
        XCTAssertTrue(results().allSatisfy { $0["status"]?.stringValue == "rejected" })
        XCTAssertTrue(mqtt.published.withLock { $0.contains { $0.topic == "hb/fake-1/dhw1/charge/set" && $0.payload.isEmpty && $0.retain } })
        XCTAssertTrue(adapter.executed.withLock { $0.isEmpty })
    }

    func testRateLimitQueuesAndRetries() async {
        adapter.executeErrors.withLock { $0 = [CloudError(.rateLimited(retryAfter: 5), status: 429, message: "slow down")] }
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"q","action":"stop"}"#)
        eventually("queued") { results("q").count == 2 }
        await clock.advance(by: 4)
        XCTAssertEqual(results("q").count, 2, "retried before retry_at")
        await clock.advance(by: 1)
        eventually("done after retry") { results("q").count == 3 }
        XCTAssertEqual(results("q").map { $0["status"]?.stringValue }, ["accepted", "queued", "done"])
        XCTAssertEqual(results("q")[1]["code"]?.stringValue, "RATE_LIMITED")
        XCTAssertEqual(adapter.executed.withLock { $0.count }, 2)
        XCTAssertEqual(adapter.confirmed.withLock { $0 }, [], "a 429 is a definite answer: no read-back")
    }

    /// A 429 takes its attempt back in the store too: a restart while the command waits sends it without a
    /// read-back (it used to end IN_DOUBT for a vendor that cannot be read back).
    func testARateLimitedCommandIsNotInDoubtAfterARestart() throws {
        adapter.executeErrors.withLock { $0 = [CloudError(.rateLimited(retryAfter: 60), status: 429, message: "slow down")] }
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"rq","action":"stop"}"#)
        eventually("queued") { results("rq").last?["status"]?.stringValue == "queued" }
        let open = try store.openCommands()
        XCTAssertEqual(open.map(\.id), ["rq"])
        XCTAssertEqual(open.first?.attempts, 0, "the refused attempt is still counted as one that may have applied")
    }

    /// A timeout may have reached the cloud: the retry reads the device back first; a 503 does not need that.
    func testTransientFailuresRetryWithBackoffAndReadBackAfterATimeout() async {
        adapter.executeErrors.withLock {
            $0 = [CloudError(.unavailable, status: 503, message: "busy"), CloudError(.unavailable, message: "no answer within 1 s")]
        }
        adapter.confirmAnswer.withLock { $0 = false }
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"t","action":"stop","valid_for_s":60}"#)
        eventually("queued") { results("t").last?["status"]?.stringValue == "queued" }
        XCTAssertEqual(results("t").last?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
        await clock.advance(by: 1.9)
        XCTAssertEqual(adapter.executed.withLock { $0.count }, 1, "retried before its backoff")
        await clock.advance(by: 0.2)
        eventually("second try") { adapter.executed.withLock { $0.count } == 2 }
        XCTAssertEqual(adapter.confirmed.withLock { $0 }, [], "a 503 is a definite answer: no read-back")
        await clock.advance(by: 4.1)  // the second backoff is 4 s
        eventually("done") { results("t").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(adapter.confirmed.withLock { $0 }, ["t"], "after a timeout the device is read back before sending again")
        XCTAssertEqual(adapter.executed.withLock { $0.count }, 3)
        XCTAssertEqual(results("t").map { $0["status"]?.stringValue }, ["accepted", "queued", "done"])
    }

    func testRateLimitPastValidityExpires() {
        adapter.executeErrors.withLock { $0 = [CloudError(.rateLimited(retryAfter: 120), status: 429, message: "slow down")] }
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"e","action":"stop","valid_for_s":60}"#)
        eventually("expired") { results("e").count == 2 }
        XCTAssertEqual(results("e").map { $0["status"]?.stringValue }, ["accepted", "expired"])
        XCTAssertEqual(results("e").last?["code"]?.stringValue, "EXPIRED")
    }

    func testAuthFailureFailsCommandAndMarksAccount() {
        adapter.executeErrors.withLock { $0 = [CloudError(.authFailed, status: 401, message: "API key rejected")] }
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"f","action":"stop"}"#)
        eventually("failed") { results("f").count == 2 }
        XCTAssertEqual(results("f").last?["code"]?.stringValue, "AUTH_FAILED")
        eventually("account auth_required") { mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "auth_required" }
    }

    func testCachedStateIsPublishedBeforeTheCloudAnswers() {
        store.devices.withLock {
            $0["fake-1"] = CachedDevice(
                deviceId: "fake-1", account: "acc", state: ["vendor_id": "1", "model": "M"], availability: "online",
                nodes: ["dhw1": ["temperature": 44]], updatedAt: 1_700_000_000)
        }
        adapter.fetchError.withLock { $0 = CloudError(.unavailable, message: "down") }
        _ = start()
        eventually("cached node") { !mqtt.json("hb/fake-1/dhw1/state").isEmpty }
        let node = mqtt.json("hb/fake-1/dhw1/state").first
        XCTAssertEqual(node?["source"]?.stringValue, "cache")
        XCTAssertEqual(node?["stale"]?.boolValue, true)
        XCTAssertEqual(node?["temperature"]?.doubleValue, 44)
        XCTAssertEqual(node?["updated_at"]?.stringValue, "2023-11-14T22:13:20Z")
        eventually("account offline") { mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "offline" }
    }

    func testResultsKeptWhileBrokerAwayArePublishedOnReconnect() {
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        mqtt.online.withLock { $0 = false }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"k","action":"stop"}"#)
        eventually("stored results") { store.results.withLock { $0.count } == 2 }
        XCTAssertTrue(results("k").isEmpty)
        mqtt.online.withLock { $0 = true }
        mqtt.continuation.yield(.connected)
        eventually("flushed") { results("k").count == 2 }
        XCTAssertEqual(results("k").map { $0["status"]?.stringValue }, ["accepted", "done"])
        XCTAssertTrue(store.results.withLock { $0.allSatisfy(\.published) })
    }

    func testStoreFailureRejectsInsteadOfLosingTheCommand() {
        _ = start()
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        store.failing.withLock { $0 = true }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"s","action":"stop"}"#)
        eventually("rejected") { results("s").count == 1 }
        XCTAssertEqual(results("s").first?["code"]?.stringValue, "STORE_FAILED")
        XCTAssertTrue(adapter.executed.withLock { $0.isEmpty })
    }

    func testOpenCommandsFromTheStoreResumeOnStart() {
        store.commands.withLock {
            $0 = [
                Command(
                    id: "old", device: "fake-1", node: "dhw1", capability: "charge", params: ["action": "stop"], source: "mqtt",
                    receivedAt: 1_800_000_000, validUntil: 1_800_000_600)
            ]
        }
        store.devices.withLock {
            $0["fake-1"] = CachedDevice(
                deviceId: "fake-1", account: "acc", state: ["vendor_id": "1"], availability: "online",
                nodes: ["dhw1": [:]], updatedAt: 1_800_000_000)
        }
        _ = start()
        eventually("resumed") { results("old").last?["status"]?.stringValue == "done" }
    }

    // MARK: outbox

    func hcResults(_ id: String) -> [JSONValue] {
        mqtt.json("hb/fake-1/hc1/charge/result").filter { $0["id"]?.stringValue == id }
    }

    func testCommandsWaitWhileTheCloudIsDownAndRunInOrderWhenItReturns() async {
        adapter.fetchError.withLock { $0 = CloudError(.unavailable, message: "connection refused") }
        _ = start(pollIntervalS: 10)
        eventually("account offline") { mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "offline" }
        // The device must be known: let one poll succeed, then take the cloud away again.
        adapter.fetchError.withLock { $0 = nil }
        await clock.advance(by: 10)
        eventually("device known and account ready") {
            !mqtt.json("hb/fake-1/state").isEmpty && mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "ready"
        }
        adapter.fetchError.withLock { $0 = CloudError(.unavailable, message: "connection refused") }
        await clock.advance(by: 10)
        eventually("offline again") { mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "offline" }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"o1","action":"stop"}"#)
        mqtt.send("hb/fake-1/hc1/charge/set", #"{"id":"o2","action":"stop"}"#)
        eventually("queued") { results("o1").count == 2 && hcResults("o2").isEmpty == false }
        XCTAssertEqual(results("o1").last?["status"]?.stringValue, "queued")
        XCTAssertEqual(results("o1").last?["code"]?.stringValue, "CLOUD_UNAVAILABLE")
        XCTAssertNotNil(results("o1").last?["retry_at"]?.stringValue)
        XCTAssertTrue(adapter.executed.withLock { $0.isEmpty }, "a command ran while the account was offline")
        adapter.fetchError.withLock { $0 = nil }
        await clock.advance(by: 15)  // the next retry of an offline account
        eventually("both done") { results("o1").last?["status"]?.stringValue == "done" && hcResults("o2").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(adapter.executed.withLock { $0.map(\.id) }, ["o1", "o2"])
        XCTAssertEqual(results("o1").map { $0["status"]?.stringValue }, ["accepted", "queued", "done"])
    }

    func testNewerCommandSupersedesAWaitingOne() async {
        _ = start(pollIntervalS: 10)
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        adapter.fetchError.withLock { $0 = CloudError(.authFailed, status: 401, message: "expired key") }
        // Force the account down through a failing command.
        adapter.executeErrors.withLock { $0 = [CloudError(.authFailed, status: 401, message: "expired key")] }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"s0","action":"stop"}"#)
        eventually("auth_required") { mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "auth_required" }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"s1","action":"start"}"#)
        eventually("s1 queued") { results("s1").last?["status"]?.stringValue == "queued" }
        XCTAssertEqual(results("s1").last?["code"]?.stringValue, "AUTH_FAILED")
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"s2","action":"stop"}"#)
        eventually("s1 superseded") { results("s1").last?["status"]?.stringValue == "expired" }
        XCTAssertEqual(results("s1").last?["code"]?.stringValue, "SUPERSEDED")
        adapter.fetchError.withLock { $0 = nil }
        await clock.advance(by: 15)  // the next retry of a failing account
        eventually("s2 done") { results("s2").last?["status"]?.stringValue == "done" }
        XCTAssertFalse(adapter.executed.withLock { $0.contains { $0.id == "s1" } })
    }

    func testWaitingCommandExpires() async {
        _ = start(pollIntervalS: 10)
        eventually("device known") { !mqtt.json("hb/fake-1/state").isEmpty }
        // The polls, not a command's failure, take the account offline.
        adapter.fetchError.withLock { $0 = CloudError(.unavailable, message: "down") }
        await clock.advance(by: 10)
        eventually("offline") { mqtt.json("hb/bridge/account/acc").last?["state"]?.stringValue == "offline" }
        mqtt.send("hb/fake-1/dhw1/charge/set", #"{"id":"x1","action":"start","valid_for_s":30}"#)
        eventually("queued") { results("x1").last?["status"]?.stringValue == "queued" }
        await clock.advance(by: 29)
        XCTAssertEqual(results("x1").last?["status"]?.stringValue, "queued", "expired before valid_for_s")
        await clock.advance(by: 2)
        eventually("expired") { results("x1").last?["status"]?.stringValue == "expired" }
        XCTAssertEqual(results("x1").map { $0["status"]?.stringValue }, ["accepted", "queued", "expired"])
        XCTAssertEqual(results("x1").last?["code"]?.stringValue, "EXPIRED")
    }

    func testCommandInDoubtAfterACrashIsConfirmedByReadBackNotResent() {
        store.commands.withLock {
            $0 = [
                Command(
                    id: "doubt", device: "fake-1", node: "dhw1", capability: "charge", params: ["action": "stop"], source: "mqtt",
                    receivedAt: 1_800_000_000, validUntil: 1_900_000_000, attempts: 1)
            ]
        }
        adapter.confirmAnswer.withLock { $0 = true }
        _ = start()
        eventually("done") { results("doubt").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(adapter.confirmed.withLock { $0 }, ["doubt"])
        XCTAssertTrue(adapter.executed.withLock { $0.isEmpty }, "sent again although the read-back showed it applied")
        XCTAssertEqual(results("doubt").last?["message"]?.stringValue, "confirmed by read-back after an unanswered attempt")
    }

    func testCommandInDoubtNotVisibleIsSentAgain() {
        store.commands.withLock {
            $0 = [
                Command(
                    id: "doubt2", device: "fake-1", node: "dhw1", capability: "charge", params: ["action": "stop"], source: "mqtt",
                    receivedAt: 1_800_000_000, validUntil: 1_900_000_000, attempts: 1)
            ]
        }
        adapter.confirmAnswer.withLock { $0 = false }
        _ = start()
        eventually("done") { results("doubt2").last?["status"]?.stringValue == "done" }
        XCTAssertEqual(adapter.executed.withLock { $0.map(\.id) }, ["doubt2"])
    }

    func testInboxMessagesFromBeforeACrashAreHandledOnceOnStart() async throws {
        store.devices.withLock {
            $0["fake-1"] = CachedDevice(
                deviceId: "fake-1", account: "acc", state: ["vendor_id": "1"], availability: "online",
                nodes: ["dhw1": [:]], updatedAt: 1_800_000_000)
        }
        _ = try store.inboxAdd(MQTTMessage(topic: "hb/fake-1/dhw1/charge/set", payload: Array(#"{"id":"in1","action":"stop"}"#.utf8)))
        _ = start()
        eventually("done") { results("in1").last?["status"]?.stringValue == "done" }
        XCTAssertTrue(try store.inboxPending().isEmpty)
        // The broker redelivers it (the crash came before the acknowledgement): not run twice.
        var again = MQTTMessage(topic: "hb/fake-1/dhw1/charge/set", payload: Array(#"{"id":"in1","action":"stop"}"#.utf8))
        again.inboxRow = try store.inboxAdd(again)
        mqtt.continuation.yield(.message(again))
        eventually("inbox drained") { (try? store.inboxPending().isEmpty) == true }
        await clock.quiesce()
        XCTAssertEqual(adapter.executed.withLock { $0.count }, 1)
        // The redelivery is answered `repeated` with the command's current result under `current` (not a
        // second first answer, not a new stored result).
        XCTAssertEqual(results("in1").map { $0["status"]?.stringValue }, ["accepted", "done", "repeated"])
        XCTAssertEqual(results("in1").last?["current"]?["status"], "done")
        XCTAssertEqual(store.results.withLock { $0.filter { $0.commandId == "in1" }.count }, 2)
    }

    func testScheduleIsPublishedAndScheduleNowMovesAtSwitchPoints() async {
        // The manual clock starts 2027-01-15T08:00:00Z (UTC box); switch points at 08:01 (eco) and 08:03 (comfort).
        let program = WeekSchedule(
            days: Array(repeating: [.init(minute: 481, level: "eco"), .init(minute: 483, level: "comfort")], count: 7),
            levels: ["eco": 17, "comfort": 21])
        adapter.snapshots.withLock { $0[0].schedules = ["hc1": program] }
        _ = start()
        eventually("schedule topic") { !mqtt.json("hb/fake-1/hc1/schedule").isEmpty }
        let sched = mqtt.json("hb/fake-1/hc1/schedule").last
        XCTAssertEqual(sched?["days"]?["fri"]?.arrayValue?.count, 2)
        XCTAssertEqual(sched?["levels"]?["comfort"]?.doubleValue, 21)
        XCTAssertNotNil(sched?["version"]?.stringValue)
        XCTAssertEqual(mqtt.json("hb/fake-1/hc1/state").last?["schedule_now"]?["level"]?.stringValue, "comfort")
        XCTAssertEqual(mqtt.json("hb/fake-1/hc1/state").last?["schedule_now"]?["next"]?["at"]?.stringValue, "2027-01-15T08:01:00Z")
        // No poll happens (interval 1 h): the switch point alone re-publishes the node state.
        let polls = adapter.priorities.withLock { $0.count }
        await clock.advance(by: 61)
        eventually("eco after 08:01") { mqtt.json("hb/fake-1/hc1/state").last?["schedule_now"]?["level"]?.stringValue == "eco" }
        XCTAssertEqual(mqtt.json("hb/fake-1/hc1/state").last?["schedule_now"]?["setpoint"]?.doubleValue, 17)
        await clock.advance(by: 120)
        XCTAssertEqual(adapter.priorities.withLock { $0.count }, polls, "a poll, not the switch point, re-published the state")
        eventually("comfort after 08:03") { mqtt.json("hb/fake-1/hc1/state").last?["schedule_now"]?["level"]?.stringValue == "comfort" }
        eventually("schedule cached") { store.devices.withLock { $0["fake-1"]?.schedules["hc1"] } != nil }
    }
}

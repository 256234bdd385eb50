import HeatbridgeCore
import Synchronization

/// In-memory doubles of Core's ports, for unit tests of the bridge logic only.
final class FakeMQTT: MQTTPort {
    let events: AsyncStream<MQTTEvent>
    let continuation: AsyncStream<MQTTEvent>.Continuation
    let published = Mutex<[(topic: String, payload: String, retain: Bool)]>([])
    let subscriptions = Mutex<[String]>([])
    let online = Mutex(true)

    init() { (events, continuation) = AsyncStream.makeStream(of: MQTTEvent.self) }

    func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) -> Bool {
        guard online.withLock({ $0 }) else { return false }
        published.withLock { $0.append((topic, String(decoding: payload, as: UTF8.self), retain)) }
        return true
    }

    func subscribe(_ filter: String, qos: Int) { subscriptions.withLock { $0.append(filter) } }
    var counters: MQTTCounters { MQTTCounters() }

    func send(_ topic: String, _ payload: String, retained: Bool = false) {
        continuation.yield(.message(MQTTMessage(topic: topic, payload: Array(payload.utf8), retained: retained)))
    }

    func on(_ topic: String) -> [String] { published.withLock { $0.filter { $0.topic == topic }.map(\.payload) } }

    func json(_ topic: String) -> [JSONValue] { on(topic).compactMap { try? JSONValue.parse($0) } }
}

final class FakeStore: StatePort {
    struct StoreDown: Error {}
    let devices = Mutex<[String: CachedDevice]>([:])
    let commands = Mutex<[Command]>([])
    let results = Mutex<[(row: Int64, topic: String, payload: [UInt8], published: Bool)]>([])
    let failing = Mutex(false)

    func check() throws { if failing.withLock({ $0 }) { throw StoreDown() } }
    func loadDevices() throws -> [CachedDevice] { try check(); return devices.withLock { Array($0.values) } }
    func saveDevice(_ d: CachedDevice) throws { try check(); devices.withLock { $0[d.deviceId] = d } }
    func insertCommand(_ c: Command) throws { try check(); commands.withLock { $0.append(c) } }
    func updateCommand(_ c: Command) throws {
        try check()
        commands.withLock { list in if let i = list.lastIndex(where: { $0.id == c.id }) { list[i] = c } }
    }
    func openCommands() throws -> [Command] { try check(); return commands.withLock { $0.filter { !$0.status.isTerminal } } }
    let accounts = Mutex<[String: JSONValue]>([:])
    let settings = Mutex<[String: JSONValue]>([:])
    func loadSettings() throws -> [String: JSONValue] { settings.withLock { $0 } }
    func saveSetting(_ key: String, _ value: JSONValue) throws { try check(); settings.withLock { $0[key] = value } }
    func saveAccountState(name: String, state: JSONValue) throws { accounts.withLock { $0[name] = state } }
    let triggerFires = Mutex<[(name: String, at: EpochSeconds, commandId: String, reason: String)]>([])
    func recordTriggerFire(name: String, at: EpochSeconds, commandId: String, reason: String) throws {
        try check()
        triggerFires.withLock { $0.append((name, at, commandId, reason)) }
    }
    let inbox = Mutex<[MQTTMessage]>([])
    func inboxAdd(_ m: MQTTMessage) throws -> Int64 {
        inbox.withLock { var m = m; m.inboxRow = Int64($0.count + 1000); $0.append(m); return m.inboxRow! }
    }
    func inboxPending() throws -> [MQTTMessage] { inbox.withLock { $0 } }
    func inboxRemove(_ row: Int64) throws { inbox.withLock { $0.removeAll { $0.inboxRow == row } } }
    func hasCommand(id: String, device: String, node: String, capability: String, params: JSONValue, since: EpochSeconds) throws -> Bool {
        commands.withLock { $0.contains { $0.id == id && $0.device == device && $0.node == node && $0.capability == capability && $0.params == params && $0.receivedAt >= since } }
    }
    func appendResult(commandId: String, topic: String, payload: [UInt8], command: Command?, isNew: Bool, inboxRow: Int64?) throws -> Int64 {
        try check()
        if let inboxRow { try inboxRemove(inboxRow) }
        if let command { if isNew { try insertCommand(command) } else { try updateCommand(command) } }
        return results.withLock { r in
            r.append((Int64(r.count + 1), topic, payload, false))
            return Int64(r.count)
        }
    }
    func markResultPublished(_ rowId: Int64) throws { results.withLock { $0[Int(rowId) - 1].published = true } }
    func unpublishedResults() throws -> [PendingResult] {
        results.withLock { $0.filter { !$0.published }.map { PendingResult(rowId: $0.row, topic: $0.topic, payload: $0.payload) } }
    }
}

/// Fake time running 1000 times faster than real time, starting at 2027-01-15: a 60 s retry takes 60 ms.
final class FakeClock: Clock {
    static let scale = 1000.0
    let origin = ContinuousClock.now
    let base: Double = 1_800_000_000
    func now() -> EpochSeconds {
        let d = ContinuousClock.now - origin
        return base + (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) * Self.scale
    }
    func sleep(seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(max(0, seconds) / Self.scale * 1e9))
    }
}

/// A vendor adapter scripted by the test.
final class FakeAdapter: VendorAdapter {
    let vendor = "fake"
    let snapshots = Mutex<[DeviceSnapshot]>([])
    let fetchError = Mutex<CloudError?>(nil)
    /// Errors for the next executions, in order; empty means success.
    let executeErrors = Mutex<[CloudError]>([])
    let executed = Mutex<[Command]>([])
    /// What `confirm` answers.
    let confirmAnswer = Mutex<Bool?>(nil)
    let confirmed = Mutex<[String]>([])
    /// The request priority each call ran at, in order ("fetch poll", "execute command", …).
    let priorities = Mutex<[String]>([])

    func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        priorities.withLock { $0.append("confirm \(RequestPriority.current)") }
        confirmed.withLock { $0.append(command.id) }
        return confirmAnswer.withLock { $0 }
    }

    func capabilities(of node: String) -> Set<String> { ["charge"] }

    func fetchDevices() async throws(CloudError) -> [DeviceSnapshot] {
        priorities.withLock { $0.append("fetch \(RequestPriority.current)") }
        if let e = fetchError.withLock({ $0 }) { throw e }
        return snapshots.withLock { $0 }
    }

    func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        guard device.nodes[node] != nil else { throw CommandRejection(.unknownTarget, "no node") }
        guard capability == "charge" else { throw CommandRejection(.unsupported, "no") }
        return try CapabilityValidation.dhwCharge(body)
    }

    func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        priorities.withLock { $0.append("execute \(RequestPriority.current)") }
        executed.withLock { $0.append(command) }
        if let e = executeErrors.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw e }
        return "ok"
    }
}

import HeatbridgeCore
import Synchronization

/// An MQTT client that records every publish and subscription; `send` plays a message from the broker (through
/// the intake, as libmosquitto's callback does, when one is given); `start` connects at once.
public final class RecordingMQTT: MQTTService {
    public let events: AsyncStream<MQTTEvent>
    public let continuation: AsyncStream<MQTTEvent>.Continuation
    public let published = Mutex<[(topic: String, payload: String, retain: Bool)]>([])
    public let subscriptions = Mutex<[String]>([])
    public let online = Mutex(true)

    let intake: (@Sendable (inout MQTTMessage) -> Void)?

    public init(intake: (@Sendable (inout MQTTMessage) -> Void)? = nil) {
        self.intake = intake
        (events, continuation) = AsyncStream.makeStream(of: MQTTEvent.self)
    }

    public func start() { continuation.yield(.connected) }
    public func flush(timeoutS: Double) {}
    public func shutdown() { continuation.finish() }

    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) -> Bool {
        guard online.withLock({ $0 }) else { return false }
        published.withLock { $0.append((topic, String(decoding: payload, as: UTF8.self), retain)) }
        return true
    }

    /// Replies as published: topic, payload and Correlation Data.
    public let replies = Mutex<[(topic: String, payload: String, correlationData: [UInt8]?)]>([])
    public func publishReply(topic: String, payload: [UInt8], correlationData: [UInt8]?) -> Bool {
        guard online.withLock({ $0 }) else { return false }
        replies.withLock { $0.append((topic, String(decoding: payload, as: UTF8.self), correlationData)) }
        return true
    }

    public func subscribe(_ filter: String, qos: Int, retainedOnlyWhenNew: Bool) { subscriptions.withLock { $0.append(filter) } }
    public var counters: MQTTCounters { MQTTCounters() }

    public func send(_ topic: String, _ payload: String, retained: Bool = false) {
        var message = MQTTMessage(topic: topic, payload: Array(payload.utf8), retained: retained)
        intake?(&message)
        continuation.yield(.message(message))
    }

    public func on(_ topic: String) -> [String] { published.withLock { $0.filter { $0.topic == topic }.map(\.payload) } }

    public func json(_ topic: String) -> [JSONValue] { on(topic).compactMap { try? JSONValue.parse($0) } }
}

/// The store in memory, with a switch that makes every write fail (a full disk).
public final class InMemoryStore: StatePort {
    public struct StoreDown: Error {}
    public init() {}
    public let devices = Mutex<[String: CachedDevice]>([:])
    public let commands = Mutex<[Command]>([])
    public let results = Mutex<[(row: Int64, commandId: String, topic: String, payload: [UInt8], published: Bool, reply: ReplyAddress?)]>([])
    public let failing = Mutex(false)

    public func check() throws { if failing.withLock({ $0 }) { throw StoreDown() } }
    public func loadDevices() throws -> [CachedDevice] {
        try check()
        return devices.withLock { Array($0.values) }
    }
    public func saveDevice(_ d: CachedDevice) throws {
        try check()
        devices.withLock { $0[d.deviceId] = d }
    }
    public func deleteDevice(_ deviceId: String) throws {
        try check()
        _ = devices.withLock { $0.removeValue(forKey: deviceId) }
    }
    public func insertCommand(_ c: Command) throws {
        try check()
        commands.withLock { $0.append(c) }
    }
    public func updateCommand(_ c: Command) throws {
        try check()
        commands.withLock { list in if let i = list.lastIndex(where: { $0.id == c.id }) { list[i] = c } }
    }
    public func openCommands() throws -> [Command] {
        try check()
        return commands.withLock { $0.filter { !$0.status.isTerminal } }
    }
    public func newerCommand(than c: Command) throws -> String? {
        try check()
        return commands.withLock { list in
            guard let i = list.lastIndex(where: { $0.id == c.id }) else { return nil }
            return list[(i + 1)...].last { $0.device == c.device && $0.node == c.node && $0.capability == c.capability }?.id
        }
    }
    public func writeCheck() throws { try check() }
    public let accounts = Mutex<[String: JSONValue]>([:])
    public let settings = Mutex<[String: JSONValue]>([:])
    public func loadSettings() throws -> [String: JSONValue] { settings.withLock { $0 } }
    public func saveSetting(_ key: String, _ value: JSONValue) throws {
        try check()
        settings.withLock { $0[key] = value }
    }
    public func saveAccountState(name: String, state: JSONValue) throws { accounts.withLock { $0[name] = state } }
    /// Hourly energy by "<device>|<meter>|<hour>".
    public let energy = Mutex<[String: Double]>([:])
    public func saveLive(settings list: [(key: String, value: JSONValue?)], buckets: [EnergyBucket]) throws {
        try check()
        settings.withLock { for (k, v) in list { $0[k] = v } }
        energy.withLock {
            for b in buckets {
                $0["\(b.device)|\(b.meter)|\(b.hour)", default: 0] = max(0, $0["\(b.device)|\(b.meter)|\(b.hour)", default: 0] + b.kwh)
            }
        }
    }
    public func energyBuckets(device: String, fromHour: Int64, toHour: Int64) throws -> [EnergyBucket] {
        energy.withLock { e in
            e.compactMap { k, v -> EnergyBucket? in
                let p = k.split(separator: "|")
                guard p.count == 3, p[0] == device, let h = Int64(p[2]), h >= fromHour, h < toHour else { return nil }
                return EnergyBucket(device: device, meter: String(p[1]), hour: h, kwh: v)
            }.sorted { ($0.hour, $0.meter) < ($1.hour, $1.meter) }
        }
    }
    public func pruneEnergy(beforeHour: Int64) throws {
        energy.withLock { $0 = $0.filter { k, _ in (k.split(separator: "|").last.flatMap { Int64($0) } ?? 0) >= beforeHour } }
    }
    public let triggerFires = Mutex<[(name: String, at: EpochSeconds, commandId: String, reason: String)]>([])
    public func recordTriggerFire(name: String, at: EpochSeconds, commandId: String, reason: String) throws {
        try check()
        triggerFires.withLock { $0.append((name, at, commandId, reason)) }
    }
    public let inbox = Mutex<[MQTTMessage]>([])
    /// Rows are never reused, as with SQLite's AUTOINCREMENT (the bridge tells a replayed row by its number).
    let lastInboxRow = Mutex<Int64>(999)
    public func inboxAdd(_ m: MQTTMessage) throws -> Int64 {
        let row = lastInboxRow.withLock {
            $0 += 1
            return $0
        }
        return inbox.withLock {
            var m = m
            m.inboxRow = row
            $0.append(m)
            return row
        }
    }
    public func inboxPending() throws -> [MQTTMessage] { inbox.withLock { $0 } }
    public func inboxRemove(_ row: Int64) throws { inbox.withLock { $0.removeAll { $0.inboxRow == row } } }
    public func priorCommand(id: String, since: EpochSeconds) throws -> PriorCommand? {
        guard let c = commands.withLock({ $0.last { $0.id == id && $0.receivedAt >= since } }) else { return nil }
        let last = results.withLock { $0.last { $0.commandId == id && $0.reply == nil } }.map {
            PendingResult(rowId: $0.row, topic: $0.topic, payload: $0.payload)
        }
        return PriorCommand(command: c, lastResult: last)
    }
    public func appendResult(
        commandId: String, topic: String, payload: [UInt8], reply: ReplyAddress?, command: Command?, isNew: Bool,
        inboxRow: Int64?
    ) throws -> (row: Int64, replyRow: Int64?) {
        try check()
        if let inboxRow { try inboxRemove(inboxRow) }
        if let command { if isNew { try insertCommand(command) } else { try updateCommand(command) } }
        return results.withLock { r in
            r.append((Int64(r.count + 1), commandId, topic, payload, false, nil))
            let row = Int64(r.count)
            guard let reply else { return (row, nil) }
            r.append((Int64(r.count + 1), commandId, reply.topic, payload, false, reply))
            return (row, Int64(r.count))
        }
    }
    public func markResultPublished(_ rowId: Int64) throws { results.withLock { $0[Int(rowId) - 1].published = true } }
    public func unpublishedResults() throws -> [PendingResult] {
        results.withLock { $0.filter { !$0.published }.map { PendingResult(rowId: $0.row, topic: $0.topic, payload: $0.payload, reply: $0.reply) } }
    }
}

/// A vendor adapter scripted by the test: devices to return, errors to throw, and a record of what ran.
public final class ScriptedAdapter: VendorAdapter {
    public let vendor = "fake"
    public init() {}
    public let snapshots = Mutex<[DeviceSnapshot]>([])
    public let fetchError = Mutex<CloudError?>(nil)
    /// Errors for the next executions, in order; empty means success.
    public let executeErrors = Mutex<[CloudError]>([])
    public let executed = Mutex<[Command]>([])
    /// What `confirm` answers.
    public let confirmAnswer = Mutex<Bool?>(nil)
    public let confirmed = Mutex<[String]>([])
    /// The request priority each call ran at, in order ("fetch poll", "execute command", …).
    public let priorities = Mutex<[String]>([])

    public func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        priorities.withLock { $0.append("confirm \(RequestPriority.current)") }
        confirmed.withLock { $0.append(command.id) }
        return confirmAnswer.withLock { $0 }
    }

    public func capabilities(of node: String) -> Set<String> { ["charge"] }

    public func fetchDevices() async throws(CloudError) -> [DeviceSnapshot] {
        priorities.withLock { $0.append("fetch \(RequestPriority.current)") }
        if let e = fetchError.withLock({ $0 }) { throw e }
        return snapshots.withLock { $0 }
    }

    public func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        guard device.nodes[node] != nil else { throw CommandRejection(.unknownTarget, "no node") }
        guard capability == "charge" else { throw CommandRejection(.unsupported, "no") }
        return try CapabilityValidation.startStop(body, duration: "duration_min", maxMinutes: 240, defaultMinutes: 60)
    }

    /// Runs inside each execution, after it is counted (e.g. the disk fills while the cloud call is out).
    public let duringExecute = Mutex<(@Sendable (Command) -> Void)?>(nil)

    public func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        priorities.withLock { $0.append("execute \(RequestPriority.current)") }
        executed.withLock { $0.append(command) }
        duringExecute.withLock { $0 }?(command)
        if let e = executeErrors.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw e }
        return "ok"
    }
}

/// The scripted adapter takes pushed events in a neutral test format: `{"device": "<vendor id>", "at": <epoch s>,
/// "updates": [{"key", "node" (absent: the device), "path": [...], "value" | "counter" | "online"}]}`.
extension ScriptedAdapter: PushDecoding {
    public func decodePush(_ payload: [UInt8]) -> Result<PushEvent, PushRejection> {
        guard let j = try? JSONValue.parse(payload) else { return .failure(PushRejection(.malformed, "not JSON")) }
        guard let device = j["device"]?.stringValue, let at = j["at"]?.doubleValue else {
            return .failure(PushRejection(.invalid, "no device or at"))
        }
        var updates: [PushUpdate] = []
        for u in j["updates"]?.arrayValue ?? [] {
            guard let key = u["key"]?.stringValue, let path = u["path"]?.arrayValue?.compactMap(\.stringValue) else { continue }
            let target: PushUpdate.Target = u["node"]?.stringValue.map { .node($0) } ?? .device
            let value: PushUpdate.Value
            if let c = u["counter"]?.doubleValue {
                value = .counter(c)
            } else if let o = u["online"]?.boolValue {
                value = .online(o)
            } else {
                value = .set(u["value"] ?? .null)
            }
            updates.append(PushUpdate(key: key, at: u["at"]?.doubleValue ?? at, target: target, path: path, value: value))
        }
        return .success(PushEvent(vendorId: device, type: "TEST", at: at, updates: updates))
    }
}

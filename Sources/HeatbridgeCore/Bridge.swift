import Logging

/// One configured cloud account with its adapter.
public struct AccountRuntime: Sendable {
    public var name: String
    public var vendor: String
    public var pollIntervalS: Double { pacing.baseS }
    public var pacing: PollPacing
    public var adapter: any VendorAdapter

    public init(name: String, vendor: String, pollIntervalS: Double, maxPollIntervalS: Double? = nil, adapter: any VendorAdapter) {
        self.name = name
        self.vendor = vendor
        self.pacing = PollPacing(baseS: pollIntervalS, maxS: maxPollIntervalS)
        self.adapter = adapter
    }
}

/// What the bridge needs besides its ports.
public struct BridgeSettings: Sendable {
    public var topics: TopicLayout
    public var version: String
    /// Short hash of the config file, published in `bridge/info` so an installer can tell which config runs.
    public var configHash: String
    public var behaviour: BridgeBehaviour
    public var accounts: [AccountRuntime]
    /// The box's local time, for evaluating week programs.
    public var localTime: any LocalTime
    /// Home Assistant discovery; nil leaves Home Assistant's topics alone.
    public var discovery: HomeAssistantDiscovery?

    public init(topics: TopicLayout, version: String, configHash: String, behaviour: BridgeBehaviour, accounts: [AccountRuntime],
                localTime: any LocalTime = FixedOffsetTime(offsetS: 0), discovery: HomeAssistantDiscovery? = nil) {
        self.localTime = localTime
        self.discovery = discovery
        self.topics = topics
        self.version = version
        self.configHash = configHash
        self.behaviour = behaviour
        self.accounts = accounts
    }
}

/// The bridge: publishes cached and cloud state, and runs commands from MQTT through validation, the store,
/// the vendor adapter and staged results. All I/O goes through the injected ports.
public actor Bridge {
    struct DeviceEntry {
        var account: String
        var snapshot: DeviceSnapshot
        var updatedAt: EpochSeconds
        var source: String
    }

    struct AccountStatus {
        var state: AccountState
        var since: EpochSeconds
        var retryAt: EpochSeconds?
        var error: String?
    }

    struct AccountStats {
        var polls = 0
        var commands = 0
        var errors = 0
        var rateLimited = 0
    }

    var settings: BridgeSettings
    let topics: TopicLayout
    let mqtt: any MQTTPort
    let store: any StatePort
    let clock: any Clock
    let logger: Logger
    let processStats: @Sendable () -> [String: JSONValue]
    let startedAt: EpochSeconds
    var accounts: [String: AccountRuntime]

    /// Last payload per retained topic: compared to skip unchanged publishes, replayed after a reconnect.
    var retained: [String: [UInt8]] = [:]
    /// Content of a retained topic without its volatile stamp, to tell a real change from a new timestamp.
    var contentKeys: [String: String] = [:]
    var devices: [String: DeviceEntry] = [:]
    var accountStatus: [String: AccountStatus] = [:]
    var stats: [String: AccountStats] = [:]
    var queues: [String: [Command]] = [:]
    var running: Set<String> = []
    /// Pending wake-up time per device (the earliest one counts).
    var wakeups: [String: EpochSeconds] = [:]
    /// Commands that arrived for a device not known yet, before every account finished its first poll.
    var deferred: [MQTTMessage] = []
    var firstPollDone: Set<String> = []
    /// Devices with a read-back scheduled after a command, and accounts whose read-back is a whole poll
    /// under way (a group command on several devices then costs one poll, not one each).
    var refreshPending: Set<String> = []
    var fullRefreshRunning: Set<String> = []
    /// Polls in a row per account that changed nothing, and when a command last succeeded there (pacing).
    var unchangedPolls: [String: Int] = [:]
    var lastCommandAt: [String: EpochSeconds] = [:]
    var pollTasks: [String: Task<Void, Never>] = [:]
    /// When each account polls next: the `retry_at` of commands held while the account is down.
    var nextPollAt: [String: EpochSeconds] = [:]
    /// Per device, the task that re-publishes node state at the next switch point of its week programs.
    var scheduleTimers: [String: (at: EpochSeconds, task: Task<Void, Never>)] = [:]
    /// Bridge-local settings (`<device>/<node>/charge_duration_min` …), persisted in the store.
    var localSettings: [String: JSONValue] = [:]
    var rediscoveryPending = false
    var clearedConfigs: Set<String> = []
    /// Retained topics to delete once the broker is reachable.
    var pendingClears: Set<String> = []
    /// Successful polls in a row that no longer listed a device.
    var missingPolls: [String: Int] = [:]
    /// Inbox row of the message `handleMessage` is working on; the first stored result consumes it.
    var currentInbox: Int64?
    /// Commands whose last attempt the cloud answered definitively (e.g. 429): not in doubt, no read-back needed.
    var definitelyNotApplied: Set<String> = []
    var mqttConnected = false
    var cacheLoaded = false
    /// Local triggers: their persisted state (`trigger/<name>` in the settings), timers, and firings waiting
    /// for the first polls (a target is only known once its account answered).
    var triggerStates: [String: TriggerState] = [:]
    var triggerTimers: [String: Task<Void, Never>] = [:]
    var pendingFires: [(rule: TriggerRule, reason: String)] = []
    /// Accounts whose key-expiry warning was logged this run.
    var keyWarned: Set<String> = []
    /// The command each device is executing right now.
    var inFlight: [String: Command] = [:]
    /// Active leases by `<device>/<node>/<capability>`, and the timers that end them.
    var leases: [String: Lease] = [:]
    var leaseTimers: [String: Task<Void, Never>] = [:]
    /// When each device last had a command accepted (`limits.min_spacing_s`).
    var lastAcceptedAt: [String: EpochSeconds] = [:]
    /// Since when each DHW node (`<device>/<node>`) has been off or below the legionella threshold.
    var legionellaLowSince: [String: EpochSeconds] = [:]

    public init(settings: BridgeSettings, mqtt: any MQTTPort, store: any StatePort, clock: any Clock, logger: Logger,
                processStats: @escaping @Sendable () -> [String: JSONValue] = { [:] }) {
        self.settings = settings
        self.topics = settings.topics
        self.mqtt = mqtt
        self.store = store
        self.clock = clock
        self.logger = logger
        self.processStats = processStats
        self.startedAt = clock.now()
        var byName: [String: AccountRuntime] = [:]
        for a in settings.accounts { byName[a.name] = a }
        self.accounts = byName
    }

    // MARK: lifecycle

    /// Publishes the cache, then serves MQTT events, polls every account and publishes health until cancelled.
    public func run() async {
        do { localSettings = try store.loadSettings() } catch {
            logger.error("cannot read settings from the store", metadata: ["error": "\(error)"])
        }
        for (k, v) in localSettings where k.hasPrefix("legionella/") {
            if let since = v["since"]?.doubleValue { legionellaLowSince[String(k.dropFirst("legionella/".count))] = since }
        }
        restoreLeases()
        publishBridgeDiscovery()
        loadCache()
        cacheLoaded = true
        for a in settings.accounts { setAccount(a.name, .starting, error: nil) }
        publishInfo()
        resumeOpenCommands()
        startTriggers()
        do {
            let pending = try store.inboxPending()
            if !pending.isEmpty { logger.info("handling commands stored before a restart", metadata: ["count": "\(pending.count)"]) }
            for m in pending { handleMessage(m) }
        } catch {
            logger.error("cannot read the command inbox", metadata: ["error": "\(error)"])
        }
        startPolling()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.consumeEvents() }
            group.addTask { await self.healthLoop() }
        }
        stopPolling()
        for t in scheduleTimers.values { t.task.cancel() }
        for t in triggerTimers.values { t.cancel() }
        for t in leaseTimers.values { t.cancel() }
    }

    /// True once the cache is published and the broker has accepted the connection: what `READY=1` means.
    public var isReady: Bool { cacheLoaded && mqttConnected }

    /// Answers as soon as the actor is free: the watchdog pings only while this returns, so a hung bridge is
    /// restarted by systemd.
    public func alive() -> Bool { true }

    /// Test hook: runs `body` on the bridge's executor. Given a blocking body it hangs the bridge as a
    /// deadlock would, which is how the tests prove the watchdog stops pinging.
    public func runOnBridge(_ body: @Sendable () -> Void) { body() }

    /// Applies a reloaded config's accounts and behaviour without touching the MQTT connection. Devices of
    /// removed accounts go offline and their retained topics are cleared.
    public func reconfigure(accounts newAccounts: [AccountRuntime], behaviour: BridgeBehaviour) {
        stopPolling()
        let newNames = Set(newAccounts.map(\.name))
        for (id, entry) in devices where !newNames.contains(entry.account) { removeDevice(id) }
        for name in accounts.keys where !newNames.contains(name) {
            clearRetained(topics.account(name))
            accountStatus[name] = nil
            firstPollDone.remove(name)
        }
        settings.accounts = newAccounts
        let triggersChanged = settings.behaviour.triggers != behaviour.triggers
        settings.behaviour = behaviour
        if triggersChanged { startTriggers() }
        accounts = Dictionary(newAccounts.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        for a in newAccounts where accountStatus[a.name] == nil { setAccount(a.name, .starting, error: nil) }
        publishInfo()
        publishBridgeDiscovery()
        startPolling()
        logger.info("configuration applied", metadata: ["accounts": "\(newAccounts.count)"])
    }

    func startPolling() {
        for a in settings.accounts where pollTasks[a.name] == nil {
            pollTasks[a.name] = Task { await self.pollLoop(a) }
        }
    }

    func stopPolling() {
        for t in pollTasks.values { t.cancel() }
        pollTasks = [:]
    }

    /// A device that is gone (contract ended, removed from the config): availability offline first, so
    /// subscribers see it leave, then every retained topic of it cleared, Home Assistant's config included.
    func removeDevice(_ id: String) {
        guard let entry = devices[id] else { return }
        logger.notice("device removed", metadata: ["device": "\(id)"])
        publishRaw(topics.availability(id), "offline")
        if let d = settings.discovery { clearRetained(d.deviceConfigTopic(id)) }
        for node in entry.snapshot.nodes.keys { clearRetained(topics.nodeState(id, node)) }
        for node in entry.snapshot.schedules.keys { clearRetained(topics.nodeSchedule(id, node)) }
        clearRetained(topics.deviceState(id))
        clearRetained(topics.availability(id))
        devices[id] = nil
        scheduleTimers[id]?.task.cancel()
        scheduleTimers[id] = nil
    }

    /// Deletes a retained topic on the broker; when the broker is away, the deletion waits for the next connect.
    func clearRetained(_ topic: String) {
        retained[topic] = nil
        contentKeys[topic] = nil
        if !mqtt.publish(topic: topic, payload: [], qos: 1, retain: true) { pendingClears.insert(topic) }
    }

    /// Publishes `bridge/state` offline (what the last will would say) before a clean shutdown.
    public func publishOffline() {
        let payload = JSONValue.object(["state": "offline"]).bytes
        retained[topics.bridgeState] = payload
        mqtt.publish(topic: topics.bridgeState, payload: payload, qos: 1, retain: true)
    }

    // MARK: cache

    func loadCache() {
        let cached: [CachedDevice]
        do {
            cached = try store.loadDevices()
        } catch {
            logger.error("cannot read the state cache; starting without it", metadata: ["error": "\(error)"])
            return
        }
        for c in cached where accounts[c.account] != nil {
            let snapshot = DeviceSnapshot(
                id: c.deviceId, vendorId: c.state["vendor_id"]?.stringValue ?? c.deviceId,
                model: c.state["model"]?.stringValue,
                online: c.availability.map { $0 == "online" },
                attributes: c.state.objectValue?.filter { !Self.commonDeviceKeys.contains($0.key) } ?? [:],
                nodes: c.nodes, schedules: c.schedules.compactMapValues { WeekSchedule(json: $0) })
            let entry = DeviceEntry(account: c.account, snapshot: snapshot, updatedAt: c.updatedAt, source: "cache")
            devices[c.deviceId] = entry
            publishDevice(entry, at: c.updatedAt)
        }
        if !cached.isEmpty {
            logger.info("published cached state", metadata: ["devices": "\(cached.count)"])
        }
    }

    static let commonDeviceKeys: Set<String> = ["vendor", "vendor_id", "account", "model", "online", "nodes", "source",
                                                "stale", "error", "updated_at"]

    // MARK: publishing

    /// Publishes a retained topic when its content (ignoring `updated_at`) changed; returns true if it did.
    @discardableResult
    func publishRetained(_ topic: String, _ value: JSONValue, at stamp: EpochSeconds? = nil) -> Bool {
        let content = value.serialized
        if contentKeys[topic] == content { return false }
        contentKeys[topic] = content
        var stamped = value
        if let stamp, case .object(var o) = value {
            o["updated_at"] = .string(Timestamp.iso8601(stamp))
            stamped = .object(o)
        }
        let payload = stamped.bytes
        retained[topic] = payload
        mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
        return true
    }

    func publishRaw(_ topic: String, _ text: String) {
        let payload = Array(text.utf8)
        if retained[topic] == payload { return }
        retained[topic] = payload
        contentKeys[topic] = text
        mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
    }

    func publishDevice(_ e: DeviceEntry, at stamp: EpochSeconds) {
        let s = e.snapshot
        publishDeviceDiscovery(e)
        let stale = clock.now() - e.updatedAt > settings.behaviour.staleAfterS
        var o = s.attributes
        o["vendor"] = .string(accounts[e.account]?.vendor)
        o["vendor_id"] = .string(s.vendorId)
        o["account"] = .string(e.account)
        o["model"] = .string(s.model)
        o["online"] = s.online.map(JSONValue.bool) ?? .null
        o["nodes"] = .array(s.nodes.keys.sorted().map { .string($0) })
        o["source"] = .string(e.source)
        o["stale"] = .bool(stale)
        if e.source == "cache" { o["age_s"] = .number((clock.now() - e.updatedAt).rounded()) }
        o["error"] = s.error.map { ["code": .string($0.code.rawValue), "message": .string($0.message)] } ?? .null
        publishRetained(topics.deviceState(s.id), .object(o), at: stamp)
        if let online = s.online {
            publishRaw(topics.availability(s.id), online ? "online" : "offline")
        }
        let now = clock.now()
        var nextSwitch: EpochSeconds?
        for (node, state) in s.nodes {
            var n = state.objectValue ?? ["value": state]
            n["source"] = .string(e.source)
            n["stale"] = .bool(stale)
            if e.source == "cache" { n["age_s"] = .number((now - e.updatedAt).rounded()) }
            if let l = leaseState(device: s.id, node: node, now: now) { n["leases"] = l }
            if case .object(var charge)? = n["charge"] {
                charge["default_duration_min"] = .int(chargeDefault(s.id, node))
                n["charge"] = .object(charge)
            }
            if let program = s.schedules[node] {
                // Computed here from the cached program, so it stays right while the cloud is away.
                n["schedule_now"] = program.nowJSON(at: now, in: settings.localTime)
                if let next = program.now(at: now, in: settings.localTime)?.next?.at {
                    nextSwitch = min(nextSwitch ?? next, next)
                }
                var p = program.json.objectValue ?? [:]
                p["source"] = .string(e.source)
                publishRetained(topics.nodeSchedule(s.id, node), .object(p), at: stamp)
            }
            publishRetained(topics.nodeState(s.id, node), .object(n), at: stamp)
        }
        if let nextSwitch { armScheduleTimer(s.id, at: nextSwitch) }
    }

    /// Re-publishes a device's node state just after its next switch point (`schedule_now` moves on).
    func armScheduleTimer(_ device: String, at: EpochSeconds) {
        if let existing = scheduleTimers[device], existing.at == at { return }
        scheduleTimers[device]?.task.cancel()
        let delay = max(0, at - clock.now()) + 0.5
        let task = Task {
            do { try await clock.sleep(seconds: delay) } catch { return }
            self.scheduleTick(device)
        }
        scheduleTimers[device] = (at, task)
    }

    func scheduleTick(_ device: String) {
        scheduleTimers[device] = nil
        guard let entry = devices[device] else { return }
        publishDevice(entry, at: entry.updatedAt)
    }

    // MARK: Home Assistant

    func publishBridgeDiscovery() {
        guard let d = settings.discovery else { return }
        if d.enabled {
            publishRetained(d.bridgeConfigTopic, d.bridgeConfig(accounts: settings.accounts.map(\.name)))
        } else {
            clearRetained(d.bridgeConfigTopic)
        }
    }

    func publishDeviceDiscovery(_ e: DeviceEntry) {
        guard let d = settings.discovery else { return }
        let topic = d.deviceConfigTopic(e.snapshot.id)
        guard d.enabled else {
            // Discovery switched off: take back what an earlier run announced (once per device).
            if !clearedConfigs.contains(topic) {
                clearedConfigs.insert(topic)
                clearRetained(topic)
            }
            return
        }
        guard let adapter = accounts[e.account]?.adapter else { return }
        let config = d.deviceConfig(e.snapshot, vendor: adapter.vendor) { node in
            var caps = adapter.capabilities(of: node)
            if caps.contains("charge") { caps.insert("charge-duration") }
            return caps
        }
        publishRetained(topic, config)
    }

    /// Home Assistant came (back) online: after a short random delay, so a whole network of bridges does not
    /// answer at once, re-publish every config and then every state.
    func scheduleRediscovery() {
        guard let d = settings.discovery, d.enabled, !rediscoveryPending else { return }
        rediscoveryPending = true
        let delay = Double.random(in: 0.5...2.5)
        Task {
            try? await clock.sleep(seconds: delay)
            self.rediscover(prefix: d.prefix)
        }
    }

    func rediscover(prefix: String) {
        rediscoveryPending = false
        let configs = retained.filter { $0.key.hasPrefix(prefix + "/") }
        for (topic, payload) in configs.sorted(by: { $0.key < $1.key }) { mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true) }
        for (topic, payload) in retained.sorted(by: { $0.key < $1.key }) where !topic.hasPrefix(prefix + "/") {
            mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
        }
        logger.info("re-published discovery and state for Home Assistant", metadata: ["configs": "\(configs.count)"])
    }

    // MARK: bridge-local settings

    func settingKey(_ device: String, _ node: String, _ name: String) -> String { "\(device)/\(node)/\(name)" }

    func chargeDefault(_ device: String, _ node: String) -> Int {
        localSettings[settingKey(device, node, "charge_duration_min")]?.intValue ?? 60
    }

    func publishInfo() {
        let accountList: [JSONValue] = settings.accounts.map { a in
            ["name": .string(a.name), "vendor": .string(a.vendor), "state": .string(accountStatus[a.name]?.state.rawValue)]
        }
        let info: JSONValue = [
            "version": .string(settings.version),
            "started_at": .string(Timestamp.iso8601(startedAt)),
            "config_hash": .string(settings.configHash),
            "accounts": .array(accountList),
            "devices": .array(devices.keys.sorted().map { .string($0) }),
        ]
        publishRetained(topics.bridgeInfo, info)
    }

    func setAccount(_ name: String, _ state: AccountState, error: String?, retryAt: EpochSeconds? = nil) {
        let now = clock.now()
        let previous = accountStatus[name]
        let since = previous?.state == state ? previous!.since : now
        accountStatus[name] = AccountStatus(state: state, since: since, retryAt: retryAt, error: error)
        var payload: JSONValue = [
            "state": .string(state.rawValue), "since": .string(Timestamp.iso8601(since)),
            "retry_at": .string(retryAt.map(Timestamp.iso8601)), "error": .string(error),
        ]
        if let expires = accounts[name]?.adapter.credentialExpiry(), case .object(var o) = payload {
            o["key_expires_at"] = .string(Timestamp.iso8601(expires))
            if let warning = Self.keyWarning(expires: expires, now: now) {
                o["warning"] = .string(warning)
                if !keyWarned.contains(name) {
                    keyWarned.insert(name)
                    logger.warning("API key expires soon", metadata: ["account": "\(name)", "expires": "\(Timestamp.iso8601(expires))"])
                }
            }
            payload = .object(o)
        }
        do {
            try store.saveAccountState(name: name, state: payload)
        } catch {
            logger.error("cannot store account state", metadata: ["account": "\(name)", "error": "\(error)"])
        }
        if state == .ready, previous?.state != .ready {
            // Commands held while the account was down run now, in arrival order per device.
            for (device, entry) in devices where entry.account == name { pump(device) }
            if let p = previous?.state, p == .offline || p == .authRequired { reassertLeases(account: name) }
        }
        if publishRetained(topics.account(name), payload), previous?.state != state {
            if state == .ready || state == .starting {
                logger.info("account state", metadata: ["account": "\(name)", "state": "\(state.rawValue)"])
            } else {
                logger.warning("account state", metadata: ["account": "\(name)", "state": "\(state.rawValue)",
                                                            "error": "\(error ?? "")"])
            }
            publishInfo()
        }
    }

    /// Within 30 days of expiry (or past it): what the installer must do.
    static func keyWarning(expires: EpochSeconds, now: EpochSeconds) -> String? {
        let days = (expires - now) / 86_400
        if days < 0 { return "the API key expired on \(Timestamp.iso8601(expires)); request a new one from Bosch" }
        if days <= 30 { return "the API key expires in \(Int(days.rounded(.up))) days (\(Timestamp.iso8601(expires))); rotate it" }
        return nil
    }

    // MARK: MQTT events

    func consumeEvents() async {
        for await event in mqtt.events {
            switch event {
            case .connected:
                mqttConnected = true
                onConnected()
            case .disconnected(let reason):
                mqttConnected = false
                logger.warning("MQTT connection lost; reconnecting", metadata: ["reason": "\(reason)"])
            case .message(let m): handleMessage(m)
            }
        }
    }

    /// After every (re)connect: subscribe, say online, and re-publish everything retained and every result the
    /// broker has not taken yet, because a restarted broker may have lost them.
    func onConnected() {
        logger.info("MQTT connected")
        mqtt.subscribe(topics.commandFilter, qos: 1)
        subscribeTriggerTopics()
        if let d = settings.discovery, d.enabled { mqtt.subscribe(d.statusTopic, qos: 1) }
        let online = JSONValue.object(["state": "online"]).bytes
        retained[topics.bridgeState] = online
        publishHealth()
        // Configs before states, so Home Assistant knows an entity before its first value arrives.
        for topic in pendingClears.sorted() where mqtt.publish(topic: topic, payload: [], qos: 1, retain: true) {
            pendingClears.remove(topic)
        }
        let prefix = settings.discovery.map { $0.prefix + "/" }
        for (topic, payload) in retained.sorted(by: { a, b in
            let ca = prefix.map { a.key.hasPrefix($0) } ?? false, cb = prefix.map { b.key.hasPrefix($0) } ?? false
            return ca != cb ? ca : a.key < b.key
        }) {
            mqtt.publish(topic: topic, payload: payload, qos: 1, retain: true)
        }
        flushUnpublishedResults()
    }

    func flushUnpublishedResults() {
        do {
            for r in try store.unpublishedResults() {
                guard mqtt.publish(topic: r.topic, payload: r.payload, qos: 1, retain: false) else { return }
                try store.markResultPublished(r.rowId)
            }
        } catch {
            logger.error("cannot read pending results from the store", metadata: ["error": "\(error)"])
        }
    }

    // MARK: commands

    func handleMessage(_ m: MQTTMessage) {
        currentInbox = m.inboxRow
        defer {
            // Every way out of here either stored a result (which consumed the row) or needs none.
            if let row = currentInbox {
                do { try store.inboxRemove(row) } catch {
                    logger.error("cannot clear the command inbox", metadata: ["error": "\(error)"])
                }
            }
            currentInbox = nil
        }
        if let d = settings.discovery, m.topic == d.statusTopic {
            if String(decoding: m.payload, as: UTF8.self) == "online" { scheduleRediscovery() }
            return
        }
        if !m.payload.isEmpty { evaluateConditions(m) }
        guard let (device, node, capability) = topics.parseCommand(m.topic) else { return }
        // An empty payload is how MQTT deletes a retained message (we send one ourselves when clearing a
        // retained command); it is not a command.
        if m.payload.isEmpty { return }
        let now = clock.now()
        let body: [String: JSONValue]
        do {
            guard case .object(let o) = try JSONValue.parse(m.payload) else {
                reject(device, node, capability, id: nil, CommandRejection(.invalidPayload, "command must be a JSON object"))
                return clearIfRetained(m)
            }
            body = o
        } catch {
            reject(device, node, capability, id: nil, CommandRejection(.invalidPayload, "payload is not JSON: \(error)"))
            return clearIfRetained(m)
        }
        var id: String?
        if let v = body["id"] {
            if let s = v.stringValue, !s.isEmpty, s.utf8.count <= 128 {
                id = s
            } else if let i = v.intValue {
                id = String(i)
            } else {
                reject(device, node, capability, id: nil, CommandRejection(.invalidPayload, "\"id\" must be a non-empty string of at most 128 bytes"))
                return clearIfRetained(m)
            }
        }
        if m.retained {
            reject(device, node, capability, id: id,
                   CommandRejection(.retainedCommand, "retained commands are never executed; publish commands without the retain flag"))
            return clearIfRetained(m)
        }
        if (devices[device] == nil || device == Self.groupDevice) && firstPollDone.count < accounts.count {
            deferred.append(m)
            currentInbox = nil  // still to be handled: keep it in the inbox
            return
        }
        submit(device, node, capability, id: id, body: body, inboxRow: m.inboxRow, source: "mqtt", now: now)
    }

    /// Validates a command (from MQTT or a local trigger) and accepts or rejects it; every outcome is a result
    /// on the target's result topic.
    func submit(_ device: String, _ node: String, _ capability: String, id: String?, body: [String: JSONValue], inboxRow: Int64?,
                source: String, now: EpochSeconds) {
        func reject(_ device: String, _ node: String, _ capability: String, id: String?, _ r: CommandRejection) {
            self.reject(device, node, capability, id: id, r, source: source)
        }
        var validFor = settings.behaviour.validFor(capability)
        if let v = body["valid_for_s"] {
            guard let d = v.doubleValue else {
                return reject(device, node, capability, id: id, CommandRejection(.invalidPayload, "\"valid_for_s\" must be a number of seconds"))
            }
            guard d >= 1 && d <= 604_800 else {
                return reject(device, node, capability, id: id, CommandRejection(.outOfRange, "\"valid_for_s\" must be 1…604800, got \(JSONValue.format(d))"))
            }
            validFor = d
        }
        if device == Self.groupDevice {
            return acceptGroup(node, capability, id: id, body: body, inboxRow: inboxRow, now: now, validFor: validFor, source: source)
        }
        guard let entry = devices[device], let account = accounts[entry.account] else {
            let known = devices.keys.sorted().prefix(10).joined(separator: ", ")
            return reject(device, node, capability, id: id,
                          CommandRejection(.unknownTarget, "unknown device \"\(device)\"; known: \(known.isEmpty ? "none yet" : known)"))
        }
        if let deviceError = entry.snapshot.error, entry.snapshot.nodes[node] == nil {
            // We cannot even list this device's nodes: say why, rather than "unknown node".
            return reject(device, node, capability, id: id,
                          CommandRejection(deviceError.code, "device \"\(device)\" cannot be read: \(deviceError.message)"))
        }
        var params = body
        params["id"] = nil
        params["valid_for_s"] = nil
        if capability == "charge-duration", entry.snapshot.nodes[node]?["charge"] != nil {
            return setChargeDuration(device, node, id: id, params: params, entry: entry, now: now, validFor: validFor, source: source)
        }
        if capability == "charge", params["action"]?.stringValue == "start", params["duration_min"] == nil {
            params["duration_min"] = .int(chargeDefault(device, node))
        }
        // Lease members are the bridge's, for capabilities the vendor cannot end by itself.
        var lease: LeaseRequest?
        let restore = account.adapter.restoreParams(node: node, capability: capability, device: entry.snapshot)
        if restore != nil {
            do { lease = try LeaseRequest.take(&params) } catch { return reject(device, node, capability, id: id, error) }
        }
        let normalised: JSONValue
        do {
            normalised = try account.adapter.validate(node: node, capability: capability, body: params, device: entry.snapshot)
        } catch {
            return reject(device, node, capability, id: id, error)
        }
        if let r = checkLimits(device, node, capability, params: normalised, source: source, now: now) {
            return reject(device, node, capability, id: id, r)
        }
        guard let command = accept(device, node, capability, id: id, params: normalised, inboxRow: inboxRow, now: now, validFor: validFor,
                                   source: source) else { return }
        if let lease, let restore {
            startLease(command, request: lease, restore: pendingValue(device, node, capability, over: restore, before: command.id), now: now)
        } else if !source.hasPrefix("lease:"), leases["\(device)/\(node)/\(capability)"] != nil {
            // A plain command for a leased target takes over: the lease ends without restoring.
            logger.info("lease replaced by a command without duration", metadata: ["target": "\(device)/\(node)/\(capability)"])
            leaseTimers.removeValue(forKey: "\(device)/\(node)/\(capability)")?.cancel()
            saveLease(nil, key: "\(device)/\(node)/\(capability)")
        }
    }

    /// A validated command: recognised as a broker redelivery, or stored with its `accepted` result (in one
    /// transaction) and queued; `STORE_FAILED` when the store refuses it.
    @discardableResult
    func accept(_ device: String, _ node: String, _ capability: String, id: String?, params: JSONValue, inboxRow: Int64?,
                now: EpochSeconds, validFor: Double, source: String) -> Command? {
        if let id, inboxRow != nil,
           (try? store.hasCommand(id: id, device: device, node: node, capability: capability, params: params, since: now - 600)) == true {
            // The broker redelivered a message stored just before a crash had let the daemon acknowledge it.
            logger.info("duplicate delivery of an accepted command ignored", metadata: ["id": "\(id)"])
            return nil
        }
        let command = Command(id: id ?? Self.newId(), device: device, node: node, capability: capability, params: params,
                              source: source, receivedAt: now, validUntil: now + validFor)
        let accepted = CommandResultPayload.make(id: command.id, status: .accepted, code: nil, message: nil, at: now,
                                                 extra: Self.sourceExtra(source))
        guard emitResult(commandId: command.id, topic: command.resultTopic(topics), payload: accepted, command: command, isNew: true) else {
            reject(device, node, capability, id: command.id,
                   CommandRejection(.storeFailed, "command could not be stored (disk full or I/O error); it was not run"), source: source)
            return nil
        }
        logger.info("command accepted", metadata: ["id": "\(command.id)", "target": "\(device)/\(node)/\(capability)"])
        if device == Self.groupDevice {
            for m in settings.behaviour.groups[node] ?? [] { lastAcceptedAt[m.device] = now }
        } else {
            lastAcceptedAt[device] = now
        }
        supersede(by: command)
        enqueue(command)
        return command
    }

    // MARK: groups

    /// The pseudo device of group commands: `<base>/group/<name>/<capability>/set`.
    static let groupDevice = "group"

    /// A group command: validated for every member (by the member's own adapter) before it is accepted, so a
    /// mistake is named with the member it concerns; then stored and queued like any command.
    func acceptGroup(_ group: String, _ capability: String, id: String?, body: [String: JSONValue], inboxRow: Int64?,
                     now: EpochSeconds, validFor: Double, source: String) {
        func reject(_ device: String, _ node: String, _ capability: String, id: String?, _ r: CommandRejection) {
            self.reject(device, node, capability, id: id, r, source: source)
        }
        let device = Self.groupDevice
        guard let members = settings.behaviour.groups[group] else {
            let known = settings.behaviour.groups.keys.sorted().joined(separator: ", ")
            return reject(device, group, capability, id: id,
                          CommandRejection(.unknownTarget, "unknown group \"\(group)\"; groups: \(known.isEmpty ? "none configured" : known)"))
        }
        var params = body
        params["id"] = nil
        params["valid_for_s"] = nil
        var normalised: JSONValue?
        var vendors = Set<String>()
        // A group lease: every member must be leasable; each member restores its own value.
        var restores: [GroupMember: JSONValue] = [:]
        for m in members {
            guard let entry = devices[m.device], let account = accounts[entry.account] else { continue }
            if let r = account.adapter.restoreParams(node: m.node, capability: capability, device: entry.snapshot) { restores[m] = r }
        }
        var lease: LeaseRequest?
        if restores.count == members.count {
            do { lease = try LeaseRequest.take(&params) } catch { return reject(device, group, capability, id: id, error) }
        }
        for m in members {
            guard let entry = devices[m.device], let account = accounts[entry.account] else {
                return reject(device, group, capability, id: id,
                              CommandRejection(.unknownTarget, "group \"\(group)\": member \(m.key): unknown device \"\(m.device)\""))
            }
            vendors.insert(account.adapter.vendor)
            do throws(CommandRejection) {
                let n = try account.adapter.validate(node: m.node, capability: capability, body: params, device: entry.snapshot)
                if let r = checkLimits(m.device, m.node, capability, params: n, source: source, now: now) { throw r }
                if normalised == nil { normalised = n }
            } catch {
                return reject(device, group, capability, id: id, CommandRejection(error.code, "group \"\(group)\": member \(m.key): \(error.message)"))
            }
        }
        guard vendors.count == 1, let normalised else {
            return reject(device, group, capability, id: id,
                          CommandRejection(.unsupported, "group \"\(group)\" mixes vendors (\(vendors.sorted().joined(separator: ", "))); one command cannot mean the same for each"))
        }
        guard let command = accept(device, group, capability, id: id, params: normalised, inboxRow: inboxRow, now: now, validFor: validFor,
                                   source: source) else { return }
        if let lease {
            for m in members {
                var one = command
                one.device = m.device
                one.node = m.node
                startLease(one, request: lease, restore: pendingValue(m.device, m.node, capability, over: restores[m]!, before: command.id), now: now,
                           group: group)
            }
        }
    }

    /// Runs a group command: per account, one call for all its members where the adapter can batch them,
    /// member by member otherwise. The final result lists every member's outcome.
    func executeGroup(_ original: Command) async {
        var c = original
        c.attempts += 1
        do { try store.updateCommand(c) } catch {
            logger.error("cannot persist command attempt", metadata: ["id": "\(c.id)", "error": "\(error)"])
        }
        let members = settings.behaviour.groups[c.node] ?? []
        var outcomes: [MemberOutcome] = []
        var byAccount: [String: [(device: DeviceSnapshot, node: String)]] = [:]
        for m in members {
            guard let entry = devices[m.device] else {
                outcomes.append(MemberOutcome(member: m.key, error: CloudError(.rejected, message: "device \(m.device) is no longer bridged")))
                continue
            }
            byAccount[entry.account, default: []].append((entry.snapshot, m.node))
        }
        let running = c
        let sink: ProgressSink = { progress, message in await self.publishProgress(running, progress, message: message) }
        for (name, list) in byAccount.sorted(by: { $0.key < $1.key }) {
            guard let account = accounts[name] else { continue }
            stats[name, default: AccountStats()].commands += 1
            let first = outcomes.count
            if let batching = account.adapter as? any GroupExecuting {
                outcomes += await RequestPriority.$current.withValue(.command) { await batching.executeGroup(c, members: list, progress: sink) }
            } else {
                for (snapshot, node) in list {
                    var one = c
                    one.device = snapshot.id
                    one.node = node
                    do {
                        _ = try await RequestPriority.with(.command) { () async throws(CloudError) in try await account.adapter.execute(one, device: snapshot, progress: sink) }
                        outcomes.append(MemberOutcome(member: "\(snapshot.id)/\(node)", error: nil))
                    } catch {
                        outcomes.append(MemberOutcome(member: "\(snapshot.id)/\(node)", error: error))
                    }
                }
            }
            for o in outcomes[first...] where o.error?.accountState != nil { setAccount(name, o.error!.accountState!, error: o.error!.message) }
            for (snapshot, _) in list { commandSucceeded(account, device: snapshot.id) }
        }
        var report: [String: JSONValue] = [:]
        for o in outcomes {
            report[o.member] = o.error.map { ["status": "failed", "code": .string($0.code.rawValue), "message": .string($0.message)] } ?? ["status": "done"]
        }
        let failed = outcomes.filter { $0.error != nil }
        if failed.isEmpty {
            finish(c, .done, code: nil, message: "\(outcomes.count) of \(outcomes.count) members done", extra: ["members": .object(report)])
        } else {
            finish(c, .failed, code: failed[0].error!.code,
                   message: "\(failed.count) of \(outcomes.count) members failed: \(failed.map(\.member).joined(separator: ", "))",
                   extra: ["members": .object(report)])
        }
    }

    /// `dhw<N>/charge-duration`: the bridge-local default for charges without `duration_min` (what Home
    /// Assistant's "charge now" button sends). No cloud call: accepted and done at once.
    func setChargeDuration(_ device: String, _ node: String, id: String?, params: [String: JSONValue], entry: DeviceEntry,
                           now: EpochSeconds, validFor: Double, source: String) {
        let value: JSONValue
        do throws(CommandRejection) {
            try CapabilityValidation.allowOnly(params, ["minutes"])
            guard let m = params["minutes"]?.intValue else {
                throw CommandRejection(.invalidPayload, "\"minutes\" must be a whole number")
            }
            guard (1...CapabilityValidation.maxChargeMinutes).contains(m) else {
                throw CommandRejection(.outOfRange, "\"minutes\" must be 1…\(CapabilityValidation.maxChargeMinutes), got \(m)")
            }
            value = .int(m)
        } catch {
            return reject(device, node, "charge-duration", id: id, error, source: source)
        }
        let command = Command(id: id ?? Self.newId(), device: device, node: node, capability: "charge-duration", params: ["minutes": value],
                              source: source, receivedAt: now, validUntil: now + validFor)
        let accepted = CommandResultPayload.make(id: command.id, status: .accepted, code: nil, message: nil, at: now)
        guard emitResult(commandId: command.id, topic: command.resultTopic(topics), payload: accepted, command: command, isNew: true) else {
            return reject(device, node, "charge-duration", id: command.id, CommandRejection(.storeFailed, "command could not be stored"), source: source)
        }
        do {
            try store.saveSetting(settingKey(device, node, "charge_duration_min"), value)
        } catch {
            return finish(command, .failed, code: .storeFailed, message: "setting could not be stored: \(error)")
        }
        localSettings[settingKey(device, node, "charge_duration_min")] = value
        finish(command, .done, code: nil, message: "charges without duration_min now last \(value.intValue ?? 0) min")
        publishDevice(entry, at: entry.updatedAt)
    }

    /// A newer command for the same device, node and capability replaces older ones still waiting.
    func supersede(by newer: Command) {
        guard var queue = queues[newer.device] else { return }
        let old = queue.filter { $0.node == newer.node && $0.capability == newer.capability && $0.id != newer.id }
        guard !old.isEmpty else { return }
        queue.removeAll { c in old.contains { $0.id == c.id } }
        queues[newer.device] = queue
        for c in old {
            finish(c, .expired, code: .superseded, message: "superseded by command \(newer.id)")
        }
    }

    func clearIfRetained(_ m: MQTTMessage) {
        if m.retained { mqtt.publish(topic: m.topic, payload: [], qos: 1, retain: true) }
    }

    func reject(_ device: String, _ node: String, _ capability: String, id: String?, _ r: CommandRejection, source: String = "mqtt") {
        let cid = id ?? Self.newId()
        logger.notice("command rejected", metadata: ["id": "\(cid)", "code": "\(r.code)", "reason": "\(r.message)", "source": "\(source)"])
        let topic = topics.result(device: TopicLayout.sanitize(device), node: TopicLayout.sanitize(node),
                                  capability: TopicLayout.sanitize(capability))
        let payload = CommandResultPayload.make(id: cid, status: .rejected, code: r.code, message: r.message, at: clock.now(),
                                                extra: Self.sourceExtra(source))
        emitResult(commandId: cid, topic: topic, payload: payload, command: nil, isNew: false)
    }

    /// Records `c` (already carrying its new status) together with its result, then publishes the result.
    func publishResult(_ c: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue] = [:]) {
        let payload = CommandResultPayload.make(id: c.id, status: status, code: code, message: message, at: clock.now(),
                                                extra: extra.merging(Self.sourceExtra(c.source)) { a, _ in a })
        emitResult(commandId: c.id, topic: c.resultTopic(topics), payload: payload, command: c, isNew: false)
    }

    /// Results (with the command's new state, in one transaction) are written to the store before they are
    /// published, so one the broker never took is sent again after the next connect or restart. Returns false
    /// when the store refused the write; the result is then published anyway, since it is all we have.
    @discardableResult
    func emitResult(commandId: String, topic: String, payload: JSONValue, command: Command?, isNew: Bool) -> Bool {
        let bytes = payload.bytes
        var rowId: Int64?
        do {
            rowId = try store.appendResult(commandId: commandId, topic: topic, payload: bytes, command: command, isNew: isNew,
                                           inboxRow: currentInbox)
            currentInbox = nil
        } catch {
            logger.error("cannot persist result", metadata: ["id": "\(commandId)", "error": "\(error)"])
            if isNew { return false }
        }
        if let st = payload["status"]?.stringValue, CommandStatus(rawValue: st)?.isTerminal == true {
            // Retained summary of the last command that ended, e.g. for a Home Assistant sensor.
            var target = String(topic.dropFirst(topics.base.count + 1))
            if target.hasSuffix("/result") { target.removeLast("/result".count) }
            var last = payload.objectValue ?? [:]
            last["target"] = .string(target)
            publishRetained(topics.bridgeLastResult, .object(last))
        }
        if mqtt.publish(topic: topic, payload: bytes, qos: 1, retain: false), let rowId {
            do {
                try store.markResultPublished(rowId)
            } catch {
                logger.error("cannot mark result published", metadata: ["id": "\(commandId)", "error": "\(error)"])
            }
        }
        return rowId != nil
    }

    /// Results of commands a local trigger issued say so (`"source":"trigger:<name>"`); MQTT commands' do not.
    static func sourceExtra(_ source: String) -> [String: JSONValue] { source == "mqtt" ? [:] : ["source": .string(source)] }

    static func newId() -> String {
        let v = UInt64.random(in: 0...UInt64.max)
        let hex = String(v, radix: 16)
        return "hb-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    func resumeOpenCommands() {
        do {
            let open = try store.openCommands()
            for c in open { enqueue(c) }
            if !open.isEmpty { logger.info("resuming commands from the store", metadata: ["count": "\(open.count)"]) }
        } catch {
            logger.error("cannot read open commands from the store", metadata: ["error": "\(error)"])
        }
    }

    func enqueue(_ c: Command) {
        queues[c.device, default: []].append(c)
        pump(c.device)
    }

    /// Runs the next command of `device` unless one is running; commands of one device run in arrival order.
    /// While the device's account is down the command waits (`queued`) until it recovers or expires.
    func pump(_ device: String) {
        guard !running.contains(device), let first = queues[device]?.first else { return }
        // A command resumed from the store for a device not cached yet waits for the first polls to find it.
        if devices[device] == nil && firstPollDone.count < accounts.count { return }
        let now = clock.now()
        if now > first.validUntil {
            queues[device]!.removeFirst()
            finish(first, .expired, code: .expired, message: "not executed within valid_for_s")
            return pump(device)
        }
        if let account = devices[device]?.account, let status = accountStatus[account],
           let code = Self.holdCode(status.state) {
            let retryAt = max(status.retryAt ?? nextPollAt[account] ?? now + 15, now)
            // Every command waiting for this device says so, not only the first in line.
            for (i, waiting) in queues[device]!.enumerated() where waiting.status != .queued {
                // retry_at is the account's next try; the command itself runs as soon as the account is back.
                var q = waiting
                q.status = .queued
                queues[device]![i] = q
                publishResult(q, .queued, code: code, message: "account \(account) is \(status.state.rawValue)\(status.error.map { ": \($0)" } ?? "")",
                              extra: ["retry_at": .string(Timestamp.iso8601(retryAt))])
            }
            // Wake for expiry; recovery wakes it through setAccount(.ready).
            scheduleWake(device, after: max(0.05, first.validUntil - now + 0.01))
            return
        }
        if let nb = first.notBefore, nb > now {
            scheduleWake(device, after: nb - now)
            return
        }
        queues[device]!.removeFirst()
        running.insert(device)
        inFlight[device] = first
        Task { await self.execute(first) }
    }

    /// The result code a command waiting on an account in `state` is queued with; nil when it may run.
    static func holdCode(_ state: AccountState) -> ResultCode? {
        switch state {
        case .offline: return .cloudUnavailable
        case .authRequired: return .authFailed
        case .rateLimited, .starting, .ready, .degraded: return nil
        }
    }

    func scheduleWake(_ device: String, after seconds: Double) {
        let at = clock.now() + seconds
        if let existing = wakeups[device], existing <= at { return }
        wakeups[device] = at
        Task {
            try? await clock.sleep(seconds: seconds)
            self.wake(device, at: at)
        }
    }

    func wake(_ device: String, at: EpochSeconds) {
        if wakeups[device] == at { wakeups[device] = nil }
        pump(device)
    }

    func execute(_ original: Command) async {
        var c = original
        defer {
            running.remove(c.device)
            inFlight[c.device] = nil
            pump(c.device)
        }
        if c.device == Self.groupDevice { return await executeGroup(c) }
        guard let entry = devices[c.device], let account = accounts[entry.account] else {
            return finish(c, .failed, code: .unknownTarget, message: "device \"\(c.device)\" is no longer bridged")
        }
        // A command tried before without a definitive answer (the daemon died mid-call) may have reached the
        // cloud: read the device back before sending it again.
        if c.attempts > 0 && !definitelyNotApplied.contains(c.id) {
            do {
                if try await RequestPriority.with(.readBack, { () async throws(CloudError) in try await account.adapter.confirm(c, device: entry.snapshot) }) == true {
                    logger.info("command confirmed by read-back; not sent again", metadata: ["id": "\(c.id)"])
                    return finish(c, .done, code: nil, message: "confirmed by read-back after a restart")
                }
            } catch {
                logger.notice("read-back failed; sending the command", metadata: ["id": "\(c.id)", "error": "\(error)"])
            }
        }
        c.attempts += 1
        do {
            try store.updateCommand(c)
        } catch {
            logger.error("cannot persist command attempt", metadata: ["id": "\(c.id)", "error": "\(error)"])
        }
        stats[account.name, default: AccountStats()].commands += 1
        do {
            let running = c
            let snapshot = entry.snapshot
            let message = try await RequestPriority.with(.command) { () async throws(CloudError) in
                try await account.adapter.execute(running, device: snapshot) { progress, message in
                    await self.publishProgress(running, progress, message: message)
                }
            }
            finish(c, .done, code: nil, message: message)
            if accountStatus[account.name]?.state != .ready { setAccount(account.name, .ready, error: nil) }
            commandSucceeded(account, device: c.device)
        } catch {
            stats[account.name, default: AccountStats()].errors += 1
            if error.status != nil && error.kind != .unavailable { definitelyNotApplied.insert(c.id) }
            if case .rateLimited(let retryAfter) = error.kind {
                stats[account.name, default: AccountStats()].rateLimited += 1
                let retryAt = clock.now() + max(retryAfter, 1)
                setAccount(account.name, .rateLimited, error: error.message, retryAt: retryAt)
                if retryAt > c.validUntil {
                    return finish(c, .expired, code: .expired, message: "rate-limited by the cloud until after valid_for_s")
                }
                let alreadyQueued = c.status == .queued
                c.status = .queued
                c.notBefore = retryAt
                if alreadyQueued {
                    // The contract has at most one `queued` per command; later retries only move retry_at.
                    do { try store.updateCommand(c) } catch {
                        logger.error("cannot persist queued command", metadata: ["id": "\(c.id)", "error": "\(error)"])
                    }
                } else {
                    publishResult(c, .queued, code: .rateLimited, message: error.message,
                                  extra: ["retry_at": .string(Timestamp.iso8601(retryAt))])
                }
                queues[c.device, default: []].insert(c, at: 0)
                return
            }
            logger.warning("command failed", metadata: ["id": "\(c.id)", "code": "\(error.code)", "error": "\(error)"])
            finish(c, .failed, code: error.code, message: error.message)
            if let s = error.accountState { setAccount(account.name, s, error: error.message) }
        }
    }

    /// A delivery report while the command runs. Stored and published like every result, but the command's
    /// own row keeps its status, so a restart still finds it open.
    func publishProgress(_ c: Command, _ progress: JSONValue, message: String?) {
        let payload = CommandResultPayload.make(id: c.id, status: .progress, code: nil, message: message, at: clock.now(),
                                                extra: ["progress": progress].merging(Self.sourceExtra(c.source)) { a, _ in a })
        emitResult(commandId: c.id, topic: c.resultTopic(topics), payload: payload, command: nil, isNew: false)
    }

    func finish(_ original: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue] = [:]) {
        var c = original
        c.status = status
        definitelyNotApplied.remove(c.id)
        if status == .done {
            logger.info("command done", metadata: ["id": "\(c.id)"])
        }
        publishResult(c, status, code: code, message: message, extra: extra)
        if status.isTerminal { leaseCommandFinished(c, status) }
    }

    // MARK: polling

    func pollLoop(_ account: AccountRuntime) async {
        while !Task.isCancelled {
            await poll(account)
            await maintainCredential(account)
            let now = clock.now()
            var wait = account.pacing.interval(unchanged: unchangedPolls[account.name] ?? 0,
                                               sinceCommand: lastCommandAt[account.name].map { now - $0 })
            if let s = accountStatus[account.name], s.state != .ready, s.state != .starting {
                // Retry a failing account sooner, but no sooner than the cloud asked.
                wait = min(wait, 15)
                if let r = s.retryAt { wait = max(wait, r - now) }
            }
            nextPollAt[account.name] = now + max(wait, 0.05)
            // In steps, so a command that moves the next poll earlier (see `commandSucceeded`) is honoured.
            while let at = nextPollAt[account.name], clock.now() < at {
                do { try await clock.sleep(seconds: max(min(at - clock.now(), 5), 0.05)) } catch { return }
            }
        }
    }

    func poll(_ account: AccountRuntime) async {
        stats[account.name, default: AccountStats()].polls += 1
        do {
            let snapshots = try await account.adapter.fetchDevices()
            let changed = apply(snapshots, account: account.name)
            unchangedPolls[account.name] = changed ? 0 : (unchangedPolls[account.name] ?? 0) + 1
            setAccount(account.name, .ready, error: nil)
        } catch {
            // Stopping (SIGTERM, reload) cancels a poll mid-call: that says nothing about the cloud.
            if Task.isCancelled { return }
            unchangedPolls[account.name] = 0
            stats[account.name, default: AccountStats()].errors += 1
            if case .rateLimited(let ra) = error.kind {
                stats[account.name, default: AccountStats()].rateLimited += 1
                setAccount(account.name, .rateLimited, error: error.message, retryAt: clock.now() + ra)
            } else {
                setAccount(account.name, error.accountState ?? .degraded, error: error.message)
            }
            markStale(account: account.name)
        }
        if !firstPollDone.contains(account.name) {
            firstPollDone.insert(account.name)
            if firstPollDone.count == accounts.count {
                for device in queues.keys { pump(device) }
                let waiting = deferred
                deferred = []
                for m in waiting { handleMessage(m) }
                let fires = pendingFires
                pendingFires = []
                for f in fires { fire(f.rule, reason: f.reason) }
            }
        }
    }

    /// Lets the adapter renew a credential close to its expiry (Bosch key rotation, when enabled).
    func maintainCredential(_ account: AccountRuntime) async {
        switch await account.adapter.renewCredential(now: clock.now()) {
        case nil: return
        case .renewed(let expires)?:
            logger.notice("API key rotated and stored", metadata: ["account": "\(account.name)",
                                                                   "expires": "\(expires.map(Timestamp.iso8601) ?? "unknown")"])
            keyWarned.remove(account.name)
        case .failed(let why)?:
            logger.warning("API key rotation failed; the current key stays in use", metadata: ["account": "\(account.name)", "error": "\(why)"])
        }
        // Re-publish the account with the new expiry (or the same warning).
        if let s = accountStatus[account.name] { setAccount(account.name, s.state, error: s.error, retryAt: s.retryAt) }
    }

    /// While an account cannot be read, its devices' state ages: republish what crossed `stale_after_s`.
    func markStale(account: String) {
        for (_, entry) in devices where entry.account == account {
            publishDevice(entry, at: entry.updatedAt)
        }
    }

    /// After a command succeeded: read the device back soon so the state shows its effect (at read-back
    /// priority, just that device when the adapter can), then poll the account faster for a while.
    func commandSucceeded(_ account: AccountRuntime, device: String) {
        let now = clock.now()
        lastCommandAt[account.name] = now
        unchangedPolls[account.name] = 0
        if let at = nextPollAt[account.name] { nextPollAt[account.name] = min(at, now + account.pacing.interval(unchanged: 0, sinceCommand: 0)) }
        let key = "\(account.name)/\(device)"
        guard !refreshPending.contains(key) else { return }
        refreshPending.insert(key)
        Task {
            try? await clock.sleep(seconds: 1)
            self.refreshPending.remove(key)
            await RequestPriority.$current.withValue(.readBack) { await self.refresh(account, device: device) }
        }
    }

    /// Reads one device again; adapters that cannot read a single device get one full poll.
    func refresh(_ account: AccountRuntime, device: String) async {
        do {
            if let entry = devices[device], entry.account == account.name, let snap = try await account.adapter.refresh(entry.snapshot) {
                _ = update(snap, account: account.name, now: clock.now())
                return
            }
        } catch {
            return logger.notice("read-back after a command failed", metadata: ["device": "\(device)", "error": "\(error)"])
        }
        guard fullRefreshRunning.insert(account.name).inserted else { return }
        await poll(account)
        fullRefreshRunning.remove(account.name)
    }

    /// Takes an account's poll; returns whether anything changed (a device's state, or the device list).
    @discardableResult
    func apply(_ snapshots: [DeviceSnapshot], account: String) -> Bool {
        let now = clock.now()
        var changedList = false
        var changed = false
        let present = Set(snapshots.map(\.id))
        for (id, entry) in devices where entry.account == account {
            if present.contains(id) {
                missingPolls[id] = nil
                continue
            }
            // Gone from two successful reads in a row (one empty answer could be a cloud hiccup): remove it.
            missingPolls[id, default: 0] += 1
            changed = true
            if missingPolls[id]! >= 2 {
                missingPolls[id] = nil
                removeDevice(id)
                changedList = true
            }
        }
        for s in snapshots {
            if devices[s.id] == nil { changedList = true }
            if update(s, account: account, now: now) { changed = true }
        }
        if changedList { publishInfo() }
        return changed || changedList
    }

    /// Takes one device's fresh snapshot: publishes and caches it. Returns whether it differs from before.
    func update(_ s: DeviceSnapshot, account: String, now: EpochSeconds) -> Bool {
        var snap = s
        let old = devices[s.id]
        if snap.error != nil, let old {
            // Keep the last known nodes and programs of a device we cannot read right now.
            if snap.nodes.isEmpty { snap.nodes = old.snapshot.nodes }
            if snap.schedules.isEmpty { snap.schedules = old.snapshot.schedules }
        }
        let entry = DeviceEntry(account: account, snapshot: snap, updatedAt: now, source: "cloud")
        devices[s.id] = entry
        publishDevice(entry, at: now)
        if snap.error == nil { watchLegionella(snap, now: now) }
        // Saved on every successful read, not only on change: the row's time is when the cloud last
        // confirmed the state, which is what staleness (and `heatbridge status`) is about.
        do {
            var state: [String: JSONValue] = snap.attributes
            state["vendor_id"] = .string(snap.vendorId)
            state["model"] = .string(snap.model)
            try store.saveDevice(CachedDevice(
                deviceId: snap.id, account: account, state: .object(state),
                availability: snap.online.map { $0 ? "online" : "offline" }, nodes: snap.nodes, updatedAt: now,
                schedules: snap.schedules.mapValues(\.json)))
        } catch {
            logger.error("cannot cache device state", metadata: ["device": "\(snap.id)", "error": "\(error)"])
        }
        return old?.snapshot != snap
    }

    // MARK: health

    func healthLoop() async {
        while !Task.isCancelled {
            publishHealth()
            do { try await clock.sleep(seconds: 60) } catch { return }
        }
    }

    func publishHealth() {
        var o = processStats()
        o["uptime_s"] = .number((clock.now() - startedAt).rounded())
        o["outbox_depth"] = .int(queues.values.reduce(0) { $0 + $1.count } + running.count)
        var perAccount: [String: JSONValue] = [:]
        for a in settings.accounts {
            let s = stats[a.name] ?? AccountStats()
            perAccount[a.name] = ["polls": .int(s.polls), "commands": .int(s.commands), "errors": .int(s.errors),
                                  "rate_limited": .int(s.rateLimited)]
        }
        o["accounts"] = .object(perAccount)
        let m = mqtt.counters
        o["mqtt"] = ["connects": .int(m.connects), "published": .int(m.published), "publish_failures": .int(m.publishFailures),
                     "received": .int(m.received)]
        publishRetained(topics.bridgeHealth, .object(o), at: clock.now())
    }
}

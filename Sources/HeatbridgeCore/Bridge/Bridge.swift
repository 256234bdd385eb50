import Logging

/// The coordinator: takes MQTT events, timer firings and poll answers and hands each to the component whose job
/// it is: `CommandPipeline` (commands), `AccountPoller` (reads), `Automation` (leases, triggers, limits),
/// `LiveState` (pushed events, meters), `RequestDesk` and `StatusReport` (what the bridge says about itself). Each
/// runs isolated to this actor and names what it needs of it in a host protocol; the bridge keeps the devices, the
/// account states and the retained topics.
///
/// Everything it starts is a child task of `run()`; it runs on a serial queue of its own, so its synchronous
/// store writes never block Swift's cooperative threads.
public actor Bridge {
    nonisolated let executor = SerialQueueExecutor(label: "heatbridge.bridge")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    var settings: BridgeSettings
    let topics: TopicLayout
    let mqtt: any MQTTPort
    let store: any StatePort
    let clock: any Clock
    let logger: Logger
    let processStats: @Sendable () -> [String: JSONValue]
    let readinessChanged: @Sendable (Bool, String?) -> Void
    let startedAt: EpochSeconds
    var accounts: [String: AccountRuntime]

    var retained: RetainedTopics
    var devices = DeviceRegistry()
    var book = AccountBook()
    /// The command path after intake: queue, execution, results (`CommandPipeline`); it runs on this actor.
    let commands: CommandPipeline
    /// Each account's reads (`AccountPoller`); it runs on this actor.
    let poller: AccountPoller
    var limits: LimitsPolicy
    /// Leases, triggers and the legionella watch carried out (`Automation`); it runs on this actor.
    let automation: Automation
    /// Pushed events and meters, saved coalesced (`LiveState`); it runs on this actor.
    let live: LiveState
    var discovery: DiscoveryPublisher
    let timers = TimerQueue<BridgeTimer>()
    let spawner = WorkSpawner()
    let ready = OneShotSignal()

    /// Bridge-local settings as kept in the store (charge defaults, lease, trigger and legionella state).
    var localSettings: [String: JSONValue] = [:]
    /// Commands that arrived for a device not known yet, before every account finished its first poll, and
    /// trigger firings waiting for the same (a target is only known once its account answered).
    var deferred: [MQTTMessage] = []
    /// Whether the store takes writes (`StoreWatch`); it runs on this actor.
    let storeWatch: StoreWatch
    /// Inbox rows handled at start from the store. The MQTT client runs (and stores what it receives) before
    /// the bridge reads the inbox, so a message that arrived in that moment is read from the store *and*
    /// delivered live: the live copy of a row handled here is dropped, once.
    var replayedInbox: Set<Int64> = []
    var mqttConnected = false
    var cacheLoaded = false

    /// - Parameter readinessChanged: told when the bridge stops or starts being ready (the store cannot write, or
    ///   writes again), with the reason; the daemon turns it into the service's `STATUS=`.
    public init(
        settings: BridgeSettings, mqtt: any MQTTPort, store: any StatePort, clock: any Clock, logger: Logger,
        processStats: @escaping @Sendable () -> [String: JSONValue] = { [:] },
        readinessChanged: @escaping @Sendable (_ ready: Bool, _ reason: String?) -> Void = { _, _ in }
    ) {
        self.readinessChanged = readinessChanged
        self.settings = settings
        self.topics = settings.topics
        self.mqtt = mqtt
        self.store = store
        self.clock = clock
        self.logger = logger
        self.processStats = processStats
        self.startedAt = clock.now()
        self.accounts = Dictionary(settings.accounts.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        self.retained = RetainedTopics(mqtt: mqtt)
        self.poller = AccountPoller(clock: clock, logger: logger)
        self.commands = CommandPipeline(store: store, mqtt: mqtt, topics: settings.topics, clock: clock, logger: logger)
        self.limits = LimitsPolicy(limits: settings.behaviour.limits, settings: [:])
        self.automation = Automation(store: store, clock: clock, logger: logger)
        self.live = LiveState(store: store, topics: settings.topics, clock: clock, logger: logger)
        self.storeWatch = StoreWatch(store: store, clock: clock, logger: logger)
        self.discovery = DiscoveryPublisher(settings.discovery)
    }

    // MARK: lifecycle

    /// Publishes the cache, then serves MQTT events, timers, polls and health until cancelled.
    public func run() async {
        do { localSettings = try store.loadSettings() } catch {
            logger.error("cannot read settings from the store", metadata: ["error": "\(error)"])
        }
        limits = LimitsPolicy(limits: settings.behaviour.limits, settings: localSettings)
        live.restorePush(host: self)
        live.restoreMeters(host: self)
        automation.restoreLeases(host: self)
        publishBridgeDiscovery()
        loadCache()
        cacheLoaded = true
        for a in settings.accounts { setAccount(a.name, .starting, error: nil) }
        publishInfo()
        commands.resumeOpenCommands(host: self)
        automation.startTriggers(host: self)
        do {
            let pending = try store.inboxPending()
            if !pending.isEmpty { logger.info("handling commands stored before a restart", metadata: ["count": "\(pending.count)"]) }
            replayedInbox = Set(pending.compactMap(\.inboxRow))
            for m in pending { handleMessage(m) }
        } catch {
            logger.error("cannot read the command inbox", metadata: ["error": "\(error)"])
        }
        startPolling()
        timers.schedule(.health, at: clock.now())
        await withDiscardingTaskGroup { group in
            group.addTask { await self.consumeEvents() }
            group.addTask { await self.timers.run(clock: self.clock) { await self.timerDue($0) } }
            // Work the bridge starts (commands, polls) becomes a child of this group: it ends with `run()`.
            for await work in spawner.work { group.addTask { await work() } }
        }
    }

    /// True once the cache is published and the broker has accepted the connection: what `READY=1` means.
    public var isReady: Bool { cacheLoaded && mqttConnected }

    /// Waits until the bridge is ready or `timeoutS` passed; returns whether it is ready.
    public func waitUntilReady(timeoutS: Double) async -> Bool {
        if isReady { return true }
        let ready = self.ready
        let clock = self.clock
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await ready.wait() }
            group.addTask { try? await clock.sleep(seconds: timeoutS) }
            await group.next()
            group.cancelAll()
        }
        return isReady
    }

    /// Answers as soon as the actor is free: the watchdog pings only while this returns, so a hung bridge is
    /// restarted by systemd.
    public func alive() -> Bool { true }

    /// Test hook: runs `body` on the bridge's executor. Given a blocking body it hangs the bridge as a
    /// deadlock would, which is how the tests prove the watchdog stops pinging.
    public func runOnBridge(_ body: @Sendable () -> Void) { body() }

    /// Test hook: returns once every timer due by the clock's current time has fired, so a black-box test
    /// that moved the daemon's clock forward sees the consequences (a lease end, a trigger's hold time) at once
    /// instead of sleeping out real time.
    public func settleTimers() async {
        await timers.settle(through: clock.now())
    }

    /// Test hook: returns once the bridge has nothing left to do at the clock's current time: every piece of
    /// work it started (polls, commands, reads) has returned or sleeps on the clock, and every timer due by now
    /// has fired. A test's `ManualClock` waits for this between two steps of time (`ManualClock.drive`) instead
    /// of guessing with pauses; MQTT messages a test hands in are not counted (it waits for their answers).
    public nonisolated func quiesce() async {
        await timers.quiesce(with: spawner.gauge, clock: clock)
    }

    /// Test hook: the bridge's next timer (nil: none), which a test's clock must not step over before the
    /// bridge's timer loop has had its turn.
    public nonisolated var nextTimer: EpochSeconds? { timers.nextDeadline }

    /// Applies a reloaded config's accounts and behaviour without touching the MQTT connection. Devices of
    /// removed accounts go offline and their retained topics are cleared.
    /// `configHash`/`configDocument`: the reloaded file's (nil keeps the current ones).
    public func reconfigure(
        accounts newAccounts: [AccountRuntime], behaviour: BridgeBehaviour, configHash: String? = nil,
        configDocument: JSONValue? = nil
    ) {
        stopPolling()
        if let configHash { settings.configHash = configHash }
        if let configDocument { settings.configDocument = configDocument }
        let newNames = Set(newAccounts.map(\.name))
        for id in devices.ids where !newNames.contains(devices[id]!.account) { removeDevice(id) }
        for name in accounts.keys where !newNames.contains(name) {
            retained.clear(topics.account(name))
            book.forget(name)
        }
        settings.accounts = newAccounts
        let triggersChanged = settings.behaviour.triggers != behaviour.triggers
        settings.behaviour = behaviour
        limits.limits = behaviour.limits
        if triggersChanged { automation.startTriggers(host: self) }
        accounts = Dictionary(newAccounts.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        for a in newAccounts where book.status[a.name] == nil { setAccount(a.name, .starting, error: nil) }
        publishInfo()
        publishBridgeDiscovery()
        startPolling()
        logger.info("configuration applied", metadata: ["accounts": "\(newAccounts.count)"])
    }

    /// Publishes `bridge/state` offline (what the last will would say) before a clean shutdown.
    public func publishOffline() {
        // Pushed state not written yet (coalesced) is written now: counters must not step back at the next start.
        live.saveLive(host: self)
        retained.force(topics.bridgeState, JSONValue.object(["state": "offline"]).bytes)
    }

    /// Every firing of the timer queue lands here.
    func timerDue(_ timer: BridgeTimer) {
        switch timer {
        case .poll(let name): poller.startPoll(name, host: self)
        case .wake(let device): pump(device)
        case .schedule(let device): if let e = devices[device] { publishDevice(e, at: e.updatedAt) }
        case .lease(let key): automation.leaseDue(key, host: self)
        case .trigger(let name): automation.triggerDue(name, host: self)
        case .readBack(let account, let device): poller.startReadBack(account: account, device: device, host: self)
        case .logLevelBack: RequestDesk.logLevelBack(host: self)
        case .rediscovery: rediscover()
        case .background(let name): poller.startBackgroundRead(name, host: self)
        case .storeProbe: storeWatch.probe(host: self)
        case .health:
            publishHealth()
            timers.schedule(.health, at: clock.now() + Self.healthIntervalS)
        case .liveSave: live.saveLive(host: self)
        case .statistics(let name): poller.startStatisticsRead(name, host: self)
        case .discoveryRepeat(let device): repeatDeviceDiscovery(device)
        }
    }

    // MARK: MQTT events

    func consumeEvents() async {
        for await event in mqtt.events {
            switch event {
            case .connected:
                mqttConnected = true
                onConnected()
                if isReady { ready.fire() }
            case .disconnected(let reason):
                mqttConnected = false
                logger.warning("MQTT connection lost; reconnecting", metadata: ["reason": "\(reason)"])
            case .message(let m):
                if let row = m.inboxRow, replayedInbox.remove(row) != nil { continue }  // handled from the store
                handleMessage(m)
            }
        }
    }

    /// After every (re)connect: subscribe, say online, and re-publish everything retained and every result the
    /// broker has not taken yet, because a restarted broker may have lost them.
    func onConnected() {
        logger.info("MQTT connected")
        // A retained command is rejected (and cleared) once: a persistent session that already has the
        // subscription does not get the stored retained message again on every reconnect (a command published
        // retained while the daemon was stopped came twice: queued in the session, and as retained).
        mqtt.subscribe(topics.commandFilter, qos: 1, retainedOnlyWhenNew: true)
        for topic in automation.triggers.conditionTopics { mqtt.subscribe(topic, qos: 1) }
        if let status = discovery.statusTopic { mqtt.subscribe(status, qos: 1) }
        live.subscribePush(host: self)
        mqtt.subscribe(topics.bridgeRequestFilter, qos: 1)
        retained.remember(topics.bridgeState, JSONValue.object(["state": "online"]).bytes)
        publishHealth()
        // Configs before states, so Home Assistant knows an entity before its first value arrives.
        retained.replay(first: discovery.prefix.map { $0 + "/" })
        commands.outbox.flushUnpublished()
    }

    // MARK: bridge topics

    func publishInfo() { retained.publish(topics.bridgeInfo, StatusReport.info(host: self)) }

    func setAccount(_ name: String, _ state: AccountState, error: String?, retryAt: EpochSeconds? = nil) {
        let now = clock.now()
        let (previous, current) = book.set(name, state, error: error, retryAt: retryAt, now: now)
        let expires = accounts[name]?.adapter.credentialExpiry()
        var (payload, warning) = AccountBook.payload(current, keyExpiry: expires, notVisible: book.notVisible[name] ?? [], now: now)
        if let p = accounts[name]?.push, case .object(var o) = payload {
            o["push"] = .string(live.pushBook.state(name, settings: p, now: now))
            payload = .object(o)
        }
        if warning != nil, let expires, !book.keyWarned.contains(name) {
            book.keyWarned.insert(name)
            logger.warning("API key expires soon", metadata: ["account": "\(name)", "expires": "\(Timestamp.iso8601(expires))"])
        }
        do {
            try store.saveAccountState(name: name, state: payload)
        } catch {
            logger.error("cannot store account state", metadata: ["account": "\(name)", "error": "\(error)"])
        }
        if state == .ready, previous?.state != .ready {
            // Commands held while the account was down run now, in arrival order per device.
            for device in devices.ids(of: name) { pump(device) }
            if let p = previous?.state, p == .offline || p == .authRequired { automation.reassertLeases(account: name, host: self) }
        }
        if retained.publish(topics.account(name), payload), previous?.state != state {
            if state == .ready || state == .starting {
                logger.info("account state", metadata: ["account": "\(name)", "state": "\(state.rawValue)"])
            } else {
                logger.warning(
                    "account state",
                    metadata: [
                        "account": "\(name)", "state": "\(state.rawValue)",
                        "error": "\(error ?? "")",
                    ])
            }
            publishInfo()
        }
    }

    /// How often `bridge/health` is published.
    static let healthIntervalS: Double = 60

    func publishHealth() {
        retained.publish(topics.bridgeHealth, StatusReport.health(host: self), stamp: clock.now())
    }

    /// Persists one bridge-local setting (nil deletes it).
    func saveSetting(_ key: String, _ value: JSONValue?, what: String) {
        localSettings[key] = value
        do { try store.saveSetting(key, value ?? .null) } catch {
            logger.error("cannot persist \(what)", metadata: ["key": "\(key)", "error": "\(error)"])
        }
    }
}

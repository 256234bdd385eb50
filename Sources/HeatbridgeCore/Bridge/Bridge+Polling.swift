/// Device state: the cache at start, what each read finds (`AccountPoller` reads, `apply`/`update` take it), and
/// publishing each device's retained topics. The bridge is the poller's `PollHost`.
extension Bridge: PollHost {
    func spawn(_ work: @escaping @Sendable () async -> Void) { spawner.spawn(work) }

    func startPolling() { poller.startPolling(host: self) }

    func stopPolling() { poller.stopPolling(host: self) }

    func commandSucceeded(_ account: AccountRuntime, device: String, capability: String?) {
        poller.commandSucceeded(account, device: device, capability: capability, host: self)
    }

    func lastPushEvent(account: String) -> EpochSeconds? { live.pushBook.stats[account]?.lastEventAt }

    func pushLive(_ account: AccountRuntime) -> Bool { live.pushLive(account, host: self) }

    func takeStatistics(_ readings: [MeterReading], device: String) { live.takeStatistics(readings, device: device, host: self) }

    func everyAccountReadOnce() {
        for device in commands.queue.devicesWaiting { pump(device) }
        let waiting = deferred
        deferred = []
        for m in waiting { handleMessage(m) }
        automation.firePending(host: self)
    }

    /// Takes an account's poll; returns whether anything changed (a device's state, or the device list).
    @discardableResult
    func apply(_ snapshots: [DeviceSnapshot], account: String) -> Bool {
        let now = clock.now()
        let (gone, anyMissing) = devices.missing(from: snapshots, account: account)
        for id in gone { removeDevice(id) }
        var changedList = !gone.isEmpty
        var changed = anyMissing
        for s in snapshots {
            if devices[s.id] == nil {
                changedList = true
                book.lostAccess[s.id] = nil
            }
            if update(s, account: account, now: now) { changed = true }
        }
        if changedList { publishInfo() }
        return changed || changedList
    }

    /// Takes one device's fresh snapshot: publishes and caches it. Returns whether it differs from before.
    func update(_ polled: DeviceSnapshot, account: String, now: EpochSeconds) -> Bool {
        var s = polled
        live.onPoll(&s, account: account, now: now, host: self)
        let (entry, changed) = devices.update(s, account: account, now: now)
        publishDevice(entry, at: now)
        if entry.snapshot.error == nil, let runtime = accounts[account] {
            automation.watchLegionella(entry.snapshot, account: runtime, now: now, host: self)
        }
        // Saved on every successful read, not only on change: the row's time is when the cloud last
        // confirmed the state, which is what staleness (and `heatbridge status`) is about.
        do {
            try store.saveDevice(DeviceRegistry.cacheRecord(entry))
        } catch {
            logger.error("cannot cache device state", metadata: ["device": "\(entry.snapshot.id)", "error": "\(error)"])
            noteStore(.failed(error))
        }
        return changed
    }

    // MARK: device state

    func loadCache() {
        let cached: [CachedDevice]
        do {
            cached = try store.loadDevices()
        } catch {
            logger.error("cannot read the state cache; starting without it", metadata: ["error": "\(error)"])
            return
        }
        for c in cached where accounts[c.account] != nil {
            let entry = DeviceRegistry.entry(cached: c)
            devices.insert(entry)
            publishDevice(entry, at: c.updatedAt)
        }
        if !cached.isEmpty {
            logger.info("published cached state", metadata: ["devices": "\(cached.count)"])
        }
    }

    /// Publishes a device's retained topics (those that changed) and arms the timer of its next switch point.
    func publishDevice(_ e: DeviceRegistry.Entry, at stamp: EpochSeconds) {
        let id = e.snapshot.id
        publishDeviceDiscovery(e)
        let now = clock.now()
        let adapter = accounts[e.account]?.adapter
        let view = DeviceView(
            e, vendor: accounts[e.account]?.vendor, now: now, staleAfterS: live.staleAfter(account: e.account, host: self),
            localTime: settings.localTime
        ) { node, n in
            if let l = automation.leases.state(device: id, node: node, now: now) { n["leases"] = l }
            for d in adapter?.localDefaults(of: node) ?? [] {
                guard case .object(var member)? = n[d.stateMember] else { continue }
                member[d.stateKey] = .int(localDefault(d, device: id, node: node))
                n[d.stateMember] = .object(member)
            }
        }
        retained.publish(topics.deviceState(id), view.deviceState, stamp: stamp)
        if let a = view.availability { retained.publishText(topics.availability(id), a) }
        for (node, state, program) in view.nodes {
            if let program { retained.publish(topics.nodeSchedule(id, node), program, stamp: stamp) }
            retained.publish(topics.nodeState(id, node), state, stamp: stamp)
        }
        // Re-published just after the next switch point, when `schedule_now` moves on.
        if let next = view.nextSwitch, timers.deadline(.schedule(device: id)) != next + 0.5 {
            timers.schedule(.schedule(device: id), at: next + 0.5)
        }
    }

    /// A device that is gone (contract ended, removed from the config): availability offline first, so
    /// subscribers see it leave, then every retained topic of it cleared, Home Assistant's config included.
    func removeDevice(_ id: String) {
        guard let entry = devices.remove(id) else { return }
        logger.notice("device removed", metadata: ["device": "\(id)"])
        if let account = accounts[entry.account], account.scope?.contains(entry.snapshot.vendorId) == true {
            let last = entry.snapshot.error.map { " (its last answer: \($0.message))" } ?? ""
            book.lostAccess[id] = "device \"\(id)\" is in account \(entry.account)'s scope but its cloud no longer lists it\(last)"
        }
        retained.publishText(topics.availability(id), "offline")
        if let topic = discovery.deviceConfigTopic(id) { retained.clear(topic) }
        for node in entry.snapshot.nodes.keys { retained.clear(topics.nodeState(id, node)) }
        for node in entry.snapshot.schedules.keys { retained.clear(topics.nodeSchedule(id, node)) }
        retained.clear(topics.deviceState(id))
        retained.clear(topics.availability(id))
        timers.cancel(.schedule(device: id))
        live.forget(id, host: self)
        // Kept, it would be listed by `heatbridge status` as it last was and come back from the cache at the next start.
        do { try store.deleteDevice(id) } catch {
            logger.error("cannot forget a removed device in the store", metadata: ["device": "\(id)", "error": "\(error)"])
        }
    }

    // MARK: Home Assistant

    func publishBridgeDiscovery() {
        discovery.publishBridge(accounts: settings.accounts.map(\.name), into: &retained)
    }

    /// A config that gained components (a meter's sensors with the first readings) is sent once more 10 s later:
    /// Home Assistant 2025.4 was seen (once, under load) not to create components added to a device's config while
    /// it was still setting up that device's first ones; the repeat costs one message and is ignored when it has them.
    func publishDeviceDiscovery(_ e: DeviceRegistry.Entry) {
        if discovery.publishDevice(e.snapshot, adapter: accounts[e.account]?.adapter, into: &retained) {
            timers.schedule(.discoveryRepeat(device: e.snapshot.id), at: clock.now() + 10)
        }
    }

    func repeatDeviceDiscovery(_ id: String) {
        guard let topic = discovery.deviceConfigTopic(id), let payload = retained.payloads[topic] else { return }
        retained.force(topic, payload)
    }

    /// Home Assistant came (back) online: after a short random delay, so a whole network of bridges does not
    /// answer at once, re-publish every config and then every state.
    func scheduleRediscovery() {
        guard discovery.startRediscovery() else { return }
        timers.schedule(.rediscovery, at: clock.now() + Double.random(in: 0.5...2.5))
    }

    func rediscover() {
        guard let prefix = discovery.endRediscovery() else { return }
        let configs = retained.republish(prefix: prefix + "/")
        logger.info("re-published discovery and state for Home Assistant", metadata: ["configs": "\(configs)"])
    }
}

/// Device state: the cache at start, each account's polls (paced by `PollPacing`), the read-back after a
/// command, and publishing each device's retained topics.
extension Bridge {
    // MARK: polling

    /// Every account polls now, then at its own pace.
    func startPolling() {
        let now = clock.now()
        for a in settings.accounts {
            timers.schedule(.poll(account: a.name), at: now)
            scheduleBackgroundRead(a, generation: pollGeneration[a.name, default: 0])
            startStatistics(a, now: now)
        }
    }

    /// Stops every account's polling; an answer to a poll still under way is dropped.
    func stopPolling() {
        timers.cancelAll {
            switch $0 {
            case .poll, .background, .statistics: return true
            default: return false
            }
        }
        for a in accounts.keys { pollGeneration[a, default: 0] += 1 }
    }

    /// Asks the adapter when it next wants its background reads and sets the timer (earlier only: a poll's
    /// evidence can bring them forward).
    func scheduleBackgroundRead(_ account: AccountRuntime, generation: Int) {
        spawner.spawn {
            guard let at = await account.adapter.nextBackgroundRead() else { return }
            await self.setBackgroundTimer(account.name, at: at, generation: generation)
        }
    }

    func setBackgroundTimer(_ name: String, at: EpochSeconds, generation: Int) {
        guard pollGeneration[name, default: 0] == generation else { return }
        timers.scheduleEarliest(.background(account: name), at: at)
    }

    func startBackgroundRead(_ name: String) {
        guard let account = accounts[name] else { return }
        let generation = pollGeneration[name, default: 0]
        spawner.spawn {
            await RequestPriority.$current.withValue(.sync) { await account.adapter.backgroundRead() }
            await self.scheduleBackgroundRead(account, generation: generation)
        }
    }

    /// The poll timer of `name` came: poll, let the adapter maintain its credential, then pick the next time.
    func startPoll(_ name: String) {
        guard let account = accounts[name] else { return }
        let generation = pollGeneration[name, default: 0]
        spawner.spawn {
            guard await self.poll(account, generation: generation) else { return }
            await self.maintainCredential(account)
            await self.scheduleNextPoll(account, generation: generation)
            await self.scheduleBackgroundRead(account, generation: generation)
        }
    }

    func scheduleNextPoll(_ account: AccountRuntime, generation: Int) {
        guard pollGeneration[account.name, default: 0] == generation else { return }
        let now = clock.now()
        var wait = account.pacing.interval(unchanged: book.unchangedPolls[account.name] ?? 0,
                                           sinceCommand: book.lastCommandAt[account.name].map { now - $0 })
        // Events carry the measured values while push is live: polls only reconcile settings and what was lost.
        // Not past the moment push would turn silent (then the normal pace returns at once).
        if let p = account.push, pushLive(account), let last = pushBook.stats[account.name]?.lastEventAt {
            wait = max(wait, min(p.reconcileIntervalS, last + p.silentAfterS - now + wait))
        }
        if let s = book.status[account.name], s.state != .ready, s.state != .starting {
            // Retry a failing account sooner, but no sooner than the cloud asked.
            wait = min(wait, 15)
            if let r = s.retryAt { wait = max(wait, r - now) }
        }
        let at = now + max(wait, 0.05)
        book.nextPollAt[account.name] = at
        timers.schedule(.poll(account: account.name), at: at)
    }

    /// One poll of an account; false when its answer was dropped (polling restarted meanwhile, or stopping).
    @discardableResult
    func poll(_ account: AccountRuntime, generation: Int) async -> Bool {
        book.count(account.name) { $0.polls += 1 }
        let result: Result<[DeviceSnapshot], CloudError>
        do { result = .success(try await account.adapter.fetchDevices()) } catch { result = .failure(error) }
        // Stopping (SIGTERM, reload) says nothing about the cloud.
        if Task.isCancelled || pollGeneration[account.name, default: 0] != generation { return false }
        switch result {
        case .success(let snapshots):
            let changed = apply(snapshots, account: account.name)
            book.unchangedPolls[account.name] = changed ? 0 : (book.unchangedPolls[account.name] ?? 0) + 1
            noteVisibility(account, snapshots)
            setAccount(account.name, .ready, error: nil)
        case .failure(let error):
            logger.debug("poll failed", metadata: ["account": "\(account.name)", "error": "\(error)"])
            book.unchangedPolls[account.name] = 0
            book.count(account.name) { $0.errors += 1 }
            if case .rateLimited(let ra) = error.kind {
                book.count(account.name) { $0.rateLimited += 1 }
                setAccount(account.name, .rateLimited, error: error.message, retryAt: clock.now() + ra)
            } else {
                setAccount(account.name, error.accountState ?? .degraded, error: error.message)
            }
            // While an account cannot be read, its devices' state ages: republish what crossed `stale_after_s`.
            for id in devices.ids(of: account.name) { if let e = devices[id] { publishDevice(e, at: e.updatedAt) } }
        }
        if book.firstPollDone.insert(account.name).inserted, allFirstPollsDone {
            for device in commands.queue.devicesWaiting { pump(device) }
            let waiting = deferred
            deferred = []
            for m in waiting { handleMessage(m) }
            let fires = pendingFires
            pendingFires = []
            for f in fires { fire(f.rule, reason: f.reason) }
        }
        return true
    }

    /// Devices of the account's scope that the cloud did not return (no contract, a typo in `devices:`): on the
    /// account state and in the log when the set changes, instead of silently missing.
    func noteVisibility(_ account: AccountRuntime, _ snapshots: [DeviceSnapshot]) {
        guard let scope = account.scope else { return }
        let seen = Set(snapshots.map(\.vendorId))
        let missing = scope.filter { !seen.contains($0) }
        guard missing != book.notVisible[account.name] ?? [] else { return }
        book.notVisible[account.name] = missing
        if !missing.isEmpty {
            logger.warning("devices in the account's scope are not visible to its credentials",
                           metadata: ["account": "\(account.name)", "devices": "\(missing.joined(separator: ","))"])
        }
    }

    /// Lets the adapter renew a credential close to its expiry (e.g. API key rotation, when enabled).
    func maintainCredential(_ account: AccountRuntime) async {
        switch await account.adapter.renewCredential(now: clock.now()) {
        case nil: return
        case .renewed(let expires)?:
            logger.notice("API key rotated and stored", metadata: ["account": "\(account.name)",
                                                                   "expires": "\(expires.map(Timestamp.iso8601) ?? "unknown")"])
            book.keyWarned.remove(account.name)
        case .failed(let why)?:
            logger.warning("API key rotation failed; the current key stays in use", metadata: ["account": "\(account.name)", "error": "\(why)"])
        }
        // Re-publish the account with the new expiry (or the same warning).
        if let s = book.status[account.name] { setAccount(account.name, s.state, error: s.error, retryAt: s.retryAt) }
    }

    /// After a command succeeded: read the device back soon so the state shows its effect (at read-back
    /// priority, just that device when the adapter can), then poll the account faster for a while.
    /// While push is live, a command whose effect events report (`PushDecoding.confirmedByEvents`) is not read back:
    /// the event brings it, and the reconcile poll catches one that was lost.
    func commandSucceeded(_ account: AccountRuntime, device: String, capability: String? = nil) {
        let now = clock.now()
        book.lastCommandAt[account.name] = now
        book.unchangedPolls[account.name] = 0
        if let at = book.nextPollAt[account.name] {
            let sooner = min(at, now + account.pacing.interval(unchanged: 0, sinceCommand: 0))
            book.nextPollAt[account.name] = sooner
            // Only a poll that is waiting moves; one under way picks its next time when it ends.
            if timers.deadline(.poll(account: account.name)) != nil { timers.schedule(.poll(account: account.name), at: sooner) }
        }
        if let capability, pushLive(account), let decoder = account.adapter as? any PushDecoding, decoder.confirmedByEvents(capability: capability) {
            logger.debug("no read-back: push events confirm it", metadata: ["device": "\(device)", "capability": "\(capability)"])
            return
        }
        let key = "\(account.name)/\(device)"
        guard refreshPending.insert(key).inserted else { return }
        timers.schedule(.readBack(account: account.name, device: device), at: now + 1)
    }

    func startReadBack(account name: String, device: String) {
        refreshPending.remove("\(name)/\(device)")
        guard let account = accounts[name] else { return }
        spawner.spawn {
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
        await poll(account, generation: pollGeneration[account.name, default: 0])
        fullRefreshRunning.remove(account.name)
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
            if devices[s.id] == nil { changedList = true; book.lostAccess[s.id] = nil }
            if update(s, account: account, now: now) { changed = true }
        }
        if changedList { publishInfo() }
        return changed || changedList
    }

    /// Takes one device's fresh snapshot: publishes and caches it. Returns whether it differs from before.
    func update(_ polled: DeviceSnapshot, account: String, now: EpochSeconds) -> Bool {
        var s = polled
        if accounts[account]?.push != nil {
            if s.nodes.isEmpty, s.error != nil || s.online == false, let old = devices[s.id] {
                // A device that cannot be read keeps its last state (as `DeviceRegistry.update` does), pushed values included.
                s.nodes = old.snapshot.nodes
                if s.schedules.isEmpty { s.schedules = old.snapshot.schedules }
                s = pushBook.merged(s)
            } else {
                s = pushBook.overlay(onPoll: s)
            }
        }
        meterize(&s, account: account, now: now)
        let (entry, changed) = devices.update(s, account: account, now: now)
        publishDevice(entry, at: now)
        if entry.snapshot.error == nil, let runtime = accounts[account] { watchLegionella(entry.snapshot, account: runtime, now: now) }
        // Saved on every successful read, not only on change: the row's time is when the cloud last
        // confirmed the state, which is what staleness (and `heatbridge status`) is about.
        do {
            try store.saveDevice(DeviceRegistry.cacheRecord(entry))
        } catch {
            logger.error("cannot cache device state", metadata: ["device": "\(entry.snapshot.id)", "error": "\(error)"])
            storeFailed(error)
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
        let view = DeviceView(e, vendor: accounts[e.account]?.vendor, now: now, staleAfterS: staleAfter(account: e.account),
                              localTime: settings.localTime) { node, n in
            if let l = leases.state(device: id, node: node, now: now) { n["leases"] = l }
            if case .object(var charge)? = n[HotWaterCharge.stateMember] {
                charge["default_duration_min"] = .int(chargeDefault(id, node))
                n[HotWaterCharge.stateMember] = .object(charge)
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
        pushBook.forget(id)
        energyBook.forget(id)
        if localSettings[Self.pushSettingPrefix + id] != nil { saveSetting(Self.pushSettingPrefix + id, nil, what: "pushed state") }
        if localSettings[Self.meterSettingPrefix + id] != nil { saveSetting(Self.meterSettingPrefix + id, nil, what: "meter") }
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

import Logging

/// What the vendors report live and what counts up: pushed events (`<base>/push/<vendor>/<vendor id>`, delivered by
/// the partner's receiver through the box's broker: scope checked again, decoded by the vendor, ordered and
/// de-duplicated by `PushBook`, merged into the device's state and published at once) and each device's meter
/// (`EnergyBook`, fed from polls, events and statistics reads). Both are stored on one coalesced timer
/// (`liveSave`, at most every `pushSaveIntervalS`) in one transaction, so the flash-wear budget holds and a total
/// never disagrees with the hours it was counted into. Runs isolated to the host, like `CommandPipeline`.
final class LiveState {
    var pushBook = PushBook()
    var energyBook = EnergyBook()
    /// When old energy buckets were last forgotten (daily).
    var energyPrunedAt: EpochSeconds = 0
    let store: any StatePort
    let topics: TopicLayout
    let clock: any Clock
    let logger: Logger

    init(store: any StatePort, topics: TopicLayout, clock: any Clock, logger: Logger) {
        self.store = store
        self.topics = topics
        self.clock = clock
        self.logger = logger
    }

    /// How often pushed state (and the meters) is written to the store at most (a device's row and its push record).
    static let pushSaveIntervalS: Double = 300
    /// Rejections logged per account before the log only counts them (a flood must not fill the journal).
    static let pushLogLimit = 20

    /// The vendors whose accounts take pushed events.
    func pushVendors(host: isolated some LiveHost) -> Set<String> {
        Set(host.settings.accounts.filter { $0.push != nil && $0.adapter is any PushDecoding }.map(\.vendor))
    }

    func subscribePush(host: isolated some LiveHost) {
        for vendor in pushVendors(host: host).sorted() { host.subscribe(topics.pushFilter(vendor: vendor)) }
    }

    /// Restores each device's pushed state (overlay, order, counters) as last saved.
    func restorePush(host: isolated some LiveHost) {
        for (key, value) in host.localSettings where key.hasPrefix(Self.pushSettingPrefix) {
            pushBook.restore(String(key.dropFirst(Self.pushSettingPrefix.count)), value)
        }
    }

    static let pushSettingPrefix = "push."

    /// One pushed message. Returns without a trace only for vendors without push; everything else is counted.
    func handlePush(_ m: MQTTMessage, vendor: String, vendorId: String, host: isolated some LiveHost) {
        let candidates = host.settings.accounts.filter { $0.vendor == vendor && $0.push != nil }
        guard !candidates.isEmpty else { return }
        let now = clock.now()
        // The box's own scope decides, whatever the receiver or the central broker sent: a device of another box
        // never enters this one's state.
        guard
            let (id, account) = host.devices.ids.lazy.compactMap({ id -> (String, AccountRuntime)? in
                guard let e = host.devices[id], e.snapshot.vendorId == vendorId, let a = candidates.first(where: { $0.name == e.account }) else {
                    return nil
                }
                return (id, a)
            }).first, let decoder = account.adapter as? any PushDecoding
        else {
            return pushRejected(
                candidates[0].name, PushRejection(.unknownDevice, "no device \(vendor) \(vendorId) on this box"), now: now, host: host)
        }
        let event: PushEvent
        switch decoder.decodePush(m.payload) {
        case .success(let e): event = e
        case .failure(let r): return pushRejected(account.name, r, now: now, host: host)
        }
        guard event.vendorId == vendorId else {
            return pushRejected(
                account.name, PushRejection(.invalid, "the event names device \(event.vendorId), its topic \(vendorId)"), now: now, host: host)
        }
        if !event.issues.isEmpty {
            logger.notice("pushed event read with repairs", metadata: ["device": "\(id)", "issues": "\(event.issues.joined(separator: "; "))"])
        }
        let wasLive = pushBook.isLive(account.name, settings: account.push!, now: now)
        switch pushBook.apply(event, device: id, account: account.name, now: now) {
        case .rejected(let r):
            pushRejectedLog(account.name, r, host: host)
        case .duplicate, .stale:
            logger.debug("pushed event changes nothing", metadata: ["device": "\(id)", "type": "\(event.type)"])
        case .applied:
            guard let entry = host.devices[id] else { return }
            var merged = pushBook.merged(entry.snapshot)
            meterize(&merged, account: account.name, now: now, host: host)
            let e = host.devices.pushed(merged, now: now)
            host.publishDevice(e, at: now)
            scheduleLiveSave(now, host: host)
        }
        if !wasLive, pushBook.isLive(account.name, settings: account.push!, now: now) {
            logger.info(
                "push events are live; polling at the reconcile interval",
                metadata: ["account": "\(account.name)", "reconcile_interval_s": "\(JSONValue.format(account.push!.reconcileIntervalS))"])
            if let s = host.book.status[account.name] { host.setAccount(account.name, s.state, error: s.error, retryAt: s.retryAt) }
        }
    }

    func pushRejected(_ account: String, _ r: PushRejection, now: EpochSeconds, host: isolated some LiveHost) {
        pushBook.reject(account, r, now: now)
        pushRejectedLog(account, r, host: host)
    }

    func pushRejectedLog(_ account: String, _ r: PushRejection, host: isolated some LiveHost) {
        let n = pushBook.stats[account]?.rejected.values.reduce(0, +) ?? 0
        guard n <= Self.pushLogLimit else { return }
        // The message quotes no payload: what a sender wrote never reaches the journal as it came.
        logger.warning(
            "pushed event dropped",
            metadata: [
                "account": "\(account)", "code": "\(r.code.rawValue)", "error": "\(r.message)",
                "note": "\(n == Self.pushLogLimit ? "further drops are only counted (bridge/health)" : "")",
            ])
    }

    /// Whether the account's polls may slow to the reconcile interval: push is on and live.
    func pushLive(_ account: AccountRuntime, host: isolated some LiveHost) -> Bool {
        guard let p = account.push else { return false }
        return pushBook.isLive(account.name, settings: p, now: clock.now())
    }

    /// When a device's state counts as stale: while push is live the polls come at the reconcile interval, so
    /// the threshold is at least two of those.
    func staleAfter(account name: String, host: isolated some LiveHost) -> Double {
        guard let a = host.accounts[name], let p = a.push, pushLive(a, host: host) else { return host.settings.behaviour.staleAfterS }
        return max(host.settings.behaviour.staleAfterS, 2 * p.reconcileIntervalS + 60)
    }

    /// The push part of an account's state and health.
    func pushJSON(_ name: String, host: isolated some LiveHost) -> JSONValue? {
        guard let p = host.accounts[name]?.push else { return nil }
        return pushBook.healthJSON(name, settings: p, now: clock.now())
    }

    // MARK: energy

    static let meterSettingPrefix = "meter."

    /// Restores each device's meter as last saved, and forgets buckets older than the retention.
    func restoreMeters(host: isolated some LiveHost) {
        for (key, value) in host.localSettings where key.hasPrefix(Self.meterSettingPrefix) {
            energyBook.restore(String(key.dropFirst(Self.meterSettingPrefix.count)), value)
        }
        pruneEnergy(host: host)
    }

    func pruneEnergy(host: isolated some LiveHost) {
        let now = clock.now()
        energyPrunedAt = now
        do { try store.pruneEnergy(beforeHour: Int64(now / 3600) - EnergyHistory.retentionDays * 24) } catch {
            logger.warning("cannot forget old energy buckets", metadata: ["error": "\(error)"])
        }
    }

    /// The meter of a device's fresh state: the adapter's readings go into the book, the book's state into `meter`.
    func meterize(_ s: inout DeviceSnapshot, account: String, now: EpochSeconds, host: isolated some LiveHost) {
        guard let m = host.accounts[account]?.adapter as? any EnergyMetering else { return }
        if energyBook.apply(m.meterReadings(s), device: s.id, now: now, localTime: host.settings.localTime), energyBook.isDirty(s.id) {
            scheduleLiveSave(now, host: host)
        }
        s.attributes["meter"] = energyBook.stateJSON(s.id, now: now, localTime: host.settings.localTime)
    }

    func scheduleLiveSave(_ now: EpochSeconds, host: isolated some LiveHost) {
        if host.timers.deadline(.liveSave) == nil { host.timers.schedule(.liveSave, at: now + Self.pushSaveIntervalS) }
    }

    // MARK: statistics

    /// An account's energy statistics for one device (`AccountPoller.startStatisticsRead`).
    func takeStatistics(_ readings: [MeterReading], device: String, host: isolated some LiveHost) {
        guard host.devices[device] != nil else { return }
        let now = clock.now()
        guard energyBook.apply(readings, device: device, now: now, localTime: host.settings.localTime) else { return }
        scheduleLiveSave(now, host: host)
        if let e = host.devices.setAttribute(device, "meter", energyBook.stateJSON(device, now: now, localTime: host.settings.localTime)) {
            host.publishDevice(e, at: e.updatedAt)
        }
    }

    // MARK: saving

    /// Writes every device's changed pushed state and meter, and the energy buckets counted since the last save,
    /// in one transaction: a counter's total and the hours it was counted into are stored together.
    func saveLive(host: isolated some LiveHost) {
        host.timers.cancel(.liveSave)
        let pushIds = pushBook.takeDirty()
        let meters = energyBook.takeDirty()
        guard !pushIds.isEmpty || !meters.isEmpty else { return }
        var list: [(key: String, value: JSONValue?)] = []
        for id in pushIds { if let r = pushBook.record(id) { list.append((Self.pushSettingPrefix + id, r)) } }
        for m in meters { list.append((Self.meterSettingPrefix + m.device, m.record)) }
        do {
            try store.saveLive(settings: list, buckets: meters.flatMap(\.buckets))
            for (k, v) in list { host.localSettings[k] = v }
            host.noteStore(.worked)
        } catch {
            logger.error("cannot store pushed state and energy", metadata: ["error": "\(error)"])
            for id in pushIds { pushBook.markDirty(id) }
            for m in meters { energyBook.giveBack(m.device, m.buckets) }
            scheduleLiveSave(clock.now(), host: host)
            host.noteStore(.failed(error))
        }
        for id in Set(pushIds + meters.map(\.device)).sorted() {
            guard let e = host.devices[id] else { continue }
            do { try store.saveDevice(DeviceRegistry.cacheRecord(e)) } catch {
                logger.error("cannot cache device state", metadata: ["device": "\(id)", "error": "\(error)"])
                host.noteStore(.failed(error))
            }
        }
        if clock.now() - energyPrunedAt > 86_400 { pruneEnergy(host: host) }
    }

    // MARK: the device's life

    /// A poll's snapshot of a device of a push account: pushed values over it (a device that cannot be read keeps
    /// its last state, pushed values included), then its meter.
    func onPoll(_ s: inout DeviceSnapshot, account: String, now: EpochSeconds, host: isolated some LiveHost) {
        if host.accounts[account]?.push != nil {
            if s.nodes.isEmpty, s.error != nil || s.online == false, let old = host.devices[s.id] {
                // As `DeviceRegistry.update` does for polled state.
                s.nodes = old.snapshot.nodes
                if s.schedules.isEmpty { s.schedules = old.snapshot.schedules }
                s = pushBook.merged(s)
            } else {
                s = pushBook.overlay(onPoll: s)
            }
        }
        meterize(&s, account: account, now: now, host: host)
    }

    /// A removed device: its pushed state and meter are forgotten, in the store too.
    func forget(_ id: String, host: isolated some LiveHost) {
        pushBook.forget(id)
        energyBook.forget(id)
        if host.localSettings[Self.pushSettingPrefix + id] != nil { host.saveSetting(Self.pushSettingPrefix + id, nil, what: "pushed state") }
        if host.localSettings[Self.meterSettingPrefix + id] != nil { host.saveSetting(Self.meterSettingPrefix + id, nil, what: "meter") }
    }
}

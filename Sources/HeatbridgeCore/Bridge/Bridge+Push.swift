/// Pushed events (`<base>/push/<vendor>/<vendor id>`, delivered by the partner's receiver through the box's
/// broker): scope checked again, decoded by the vendor, ordered and de-duplicated by `PushBook`, merged into the
/// device's state and published at once; stored coalesced (`pushSaveIntervalS`) so the flash-wear budget holds.
extension Bridge {
    /// How often pushed state is written to the store at most (a device's row and its push record).
    static let pushSaveIntervalS: Double = 300
    /// Rejections logged per account before the log only counts them (a flood must not fill the journal).
    static let pushLogLimit = 20

    /// The vendors whose accounts take pushed events.
    var pushVendors: Set<String> { Set(settings.accounts.filter { $0.push != nil && $0.adapter is any PushDecoding }.map(\.vendor)) }

    func subscribePush() {
        for vendor in pushVendors.sorted() { mqtt.subscribe(topics.pushFilter(vendor: vendor), qos: 1) }
    }

    /// Restores each device's pushed state (overlay, order, counters) as last saved.
    func restorePush() {
        for (key, value) in localSettings where key.hasPrefix(Self.pushSettingPrefix) {
            pushBook.restore(String(key.dropFirst(Self.pushSettingPrefix.count)), value)
        }
    }

    static let pushSettingPrefix = "push."

    /// One pushed message. Returns without a trace only for vendors without push; everything else is counted.
    func handlePush(_ m: MQTTMessage, vendor: String, vendorId: String) {
        let candidates = settings.accounts.filter { $0.vendor == vendor && $0.push != nil }
        guard !candidates.isEmpty else { return }
        let now = clock.now()
        // The box's own scope decides, whatever the receiver or the central broker sent: a device of another box
        // never enters this one's state.
        guard let (id, account) = devices.ids.lazy.compactMap({ id -> (String, AccountRuntime)? in
            guard let e = self.devices[id], e.snapshot.vendorId == vendorId, let a = candidates.first(where: { $0.name == e.account }) else { return nil }
            return (id, a)
        }).first, let decoder = account.adapter as? any PushDecoding else {
            return pushRejected(candidates[0].name, PushRejection(.unknownDevice, "no device \(vendor) \(vendorId) on this box"), now: now)
        }
        let event: PushEvent
        switch decoder.decodePush(m.payload) {
        case .success(let e): event = e
        case .failure(let r): return pushRejected(account.name, r, now: now)
        }
        guard event.vendorId == vendorId else {
            return pushRejected(account.name, PushRejection(.invalid, "the event names device \(event.vendorId), its topic \(vendorId)"), now: now)
        }
        if !event.issues.isEmpty {
            logger.notice("pushed event read with repairs", metadata: ["device": "\(id)", "issues": "\(event.issues.joined(separator: "; "))"])
        }
        let wasLive = pushBook.isLive(account.name, settings: account.push!, now: now)
        switch pushBook.apply(event, device: id, account: account.name, now: now) {
        case .rejected(let r):
            pushRejectedLog(account.name, r)
        case .duplicate, .stale:
            logger.debug("pushed event changes nothing", metadata: ["device": "\(id)", "type": "\(event.type)"])
        case .applied:
            guard let entry = devices[id] else { return }
            var merged = pushBook.merged(entry.snapshot)
            meterize(&merged, account: account.name, now: now)
            let e = devices.pushed(merged, now: now)
            publishDevice(e, at: now)
            scheduleLiveSave(now)
        }
        if !wasLive, pushBook.isLive(account.name, settings: account.push!, now: now) {
            logger.info("push events are live; polling at the reconcile interval",
                        metadata: ["account": "\(account.name)", "reconcile_interval_s": "\(JSONValue.format(account.push!.reconcileIntervalS))"])
            if let s = book.status[account.name] { setAccount(account.name, s.state, error: s.error, retryAt: s.retryAt) }
        }
    }

    func pushRejected(_ account: String, _ r: PushRejection, now: EpochSeconds) {
        pushBook.reject(account, r, now: now)
        pushRejectedLog(account, r)
    }

    func pushRejectedLog(_ account: String, _ r: PushRejection) {
        let n = pushBook.stats[account]?.rejected.values.reduce(0, +) ?? 0
        guard n <= Self.pushLogLimit else { return }
        // The message quotes no payload: what a sender wrote never reaches the journal as it came.
        logger.warning("pushed event dropped", metadata: ["account": "\(account)", "code": "\(r.code.rawValue)", "error": "\(r.message)",
                                                          "note": "\(n == Self.pushLogLimit ? "further drops are only counted (bridge/health)" : "")"])
    }

    /// Whether the account's polls may slow to the reconcile interval: push is on and live.
    func pushLive(_ account: AccountRuntime) -> Bool {
        guard let p = account.push else { return false }
        return pushBook.isLive(account.name, settings: p, now: clock.now())
    }

    /// When a device's state counts as stale: while push is live the polls come at the reconcile interval, so
    /// the threshold is at least two of those.
    func staleAfter(account name: String) -> Double {
        guard let a = accounts[name], let p = a.push, pushLive(a) else { return settings.behaviour.staleAfterS }
        return max(settings.behaviour.staleAfterS, 2 * p.reconcileIntervalS + 60)
    }

    /// The push part of an account's state and health.
    func pushJSON(_ name: String) -> JSONValue? {
        guard let p = accounts[name]?.push else { return nil }
        return pushBook.healthJSON(name, settings: p, now: clock.now())
    }
}

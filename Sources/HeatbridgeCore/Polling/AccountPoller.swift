import Logging

/// Each account's reads: the poll timer (paced by `PollPacing`, slower while push events are live, sooner after a
/// command or while the account fails), the adapter's background reads, credential upkeep, the read-back of a
/// device after a command, and reads on request. What a read finds goes to the host (`PollHost.apply`), which
/// owns the devices. Runs isolated to the host, like `CommandPipeline`.
final class AccountPoller {
    /// Bumped when an account's polling restarts (reload): an answer to an older poll is dropped.
    private(set) var pollGeneration: [String: Int] = [:]
    /// Read-backs waiting for their timer (`account/device`), so a burst of commands reads a device once.
    private var refreshPending: Set<String> = []
    /// Accounts whose full poll stands in for a read-back (adapters that cannot read one device).
    private var fullRefreshRunning: Set<String> = []
    /// When each account was last read on a `poll` request.
    private var requestedPollAt: [String: EpochSeconds] = [:]
    let clock: any Clock
    let logger: Logger

    init(clock: any Clock, logger: Logger) {
        self.clock = clock
        self.logger = logger
    }

    /// The current polling generation of an account (statistics reads carry it too).
    func generation(_ account: String) -> Int { pollGeneration[account, default: 0] }

    /// Every account polls now, then at its own pace.
    func startPolling(host: isolated some PollHost) {
        let now = clock.now()
        for a in host.settings.accounts {
            host.timers.schedule(.poll(account: a.name), at: now)
            scheduleBackgroundRead(a, generation: pollGeneration[a.name, default: 0], host: host)
            startStatistics(a, now: now, host: host)
        }
    }

    /// Stops every account's polling; an answer to a poll still under way is dropped.
    func stopPolling(host: isolated some PollHost) {
        host.timers.cancelAll {
            switch $0 {
            case .poll, .background, .statistics: return true
            default: return false
            }
        }
        for a in host.accounts.keys { pollGeneration[a, default: 0] += 1 }
    }

    /// Asks the adapter when it next wants its background reads and sets the timer (earlier only: a poll's
    /// evidence can bring them forward).
    func scheduleBackgroundRead(_ account: AccountRuntime, generation: Int, host: isolated some PollHost) {
        host.spawn {
            guard let at = await account.adapter.nextBackgroundRead() else { return }
            await host.polling { h, p in p.setBackgroundTimer(account.name, at: at, generation: generation, host: h) }
        }
    }

    func setBackgroundTimer(_ name: String, at: EpochSeconds, generation: Int, host: isolated some PollHost) {
        guard pollGeneration[name, default: 0] == generation else { return }
        host.timers.scheduleEarliest(.background(account: name), at: at)
    }

    func startBackgroundRead(_ name: String, host: isolated some PollHost) {
        guard let account = host.accounts[name] else { return }
        let generation = pollGeneration[name, default: 0]
        host.spawn {
            await RequestPriority.$current.withValue(.sync) { await account.adapter.backgroundRead() }
            await host.polling { h, p in p.scheduleBackgroundRead(account, generation: generation, host: h) }
        }
    }

    /// The poll timer of `name` came: poll, let the adapter maintain its credential, then pick the next time.
    func startPoll(_ name: String, host: isolated some PollHost) {
        guard let account = host.accounts[name] else { return }
        let generation = pollGeneration[name, default: 0]
        host.spawn {
            await host.polling { h, p in
                guard await p.poll(account, generation: generation, host: h) else { return }
                await p.maintainCredential(account, host: h)
                p.scheduleNextPoll(account, generation: generation, host: h)
                p.scheduleBackgroundRead(account, generation: generation, host: h)
            }
        }
    }

    func scheduleNextPoll(_ account: AccountRuntime, generation: Int, host: isolated some PollHost) {
        guard pollGeneration[account.name, default: 0] == generation else { return }
        let now = clock.now()
        var wait = account.pacing.interval(
            unchanged: host.book.unchangedPolls[account.name] ?? 0,
            sinceCommand: host.book.lastCommandAt[account.name].map { now - $0 })
        // Events carry the measured values while push is live: polls only reconcile settings and what was lost.
        // Not past the moment push would turn silent (then the normal pace returns at once).
        if let p = account.push, host.pushLive(account), let last = host.lastPushEvent(account: account.name) {
            wait = max(wait, min(p.reconcileIntervalS, last + p.silentAfterS - now + wait))
        }
        if let s = host.book.status[account.name], s.state != .ready, s.state != .starting {
            // Retry a failing account sooner, but no sooner than the cloud asked.
            wait = min(wait, 15)
            if let r = s.retryAt { wait = max(wait, r - now) }
        }
        let at = now + max(wait, 0.05)
        host.book.nextPollAt[account.name] = at
        host.timers.schedule(.poll(account: account.name), at: at)
    }

    /// One poll of an account; false when its answer was dropped (polling restarted meanwhile, or stopping).
    @discardableResult
    func poll(_ account: AccountRuntime, generation: Int, host: isolated some PollHost) async -> Bool {
        host.book.count(account.name) { $0.polls += 1 }
        let result: Result<[DeviceSnapshot], CloudError>
        do { result = .success(try await account.adapter.fetchDevices()) } catch { result = .failure(error) }
        // Stopping (SIGTERM, reload) says nothing about the cloud.
        if Task.isCancelled || pollGeneration[account.name, default: 0] != generation { return false }
        switch result {
        case .success(let snapshots):
            let changed = host.apply(snapshots, account: account.name)
            host.book.unchangedPolls[account.name] = changed ? 0 : (host.book.unchangedPolls[account.name] ?? 0) + 1
            noteVisibility(account, snapshots, host: host)
            host.setAccount(account.name, .ready, error: nil, retryAt: nil)
        case .failure(let error):
            logger.debug("poll failed", metadata: ["account": "\(account.name)", "error": "\(error)"])
            host.book.unchangedPolls[account.name] = 0
            host.book.count(account.name) { $0.errors += 1 }
            if case .rateLimited(let ra) = error.kind {
                host.book.count(account.name) { $0.rateLimited += 1 }
                host.setAccount(account.name, .rateLimited, error: error.message, retryAt: clock.now() + ra)
            } else {
                host.setAccount(account.name, error.accountState ?? .degraded, error: error.message, retryAt: nil)
            }
            // While an account cannot be read, its devices' state ages: republish what crossed `stale_after_s`.
            for id in host.devices.ids(of: account.name) { if let e = host.devices[id] { host.publishDevice(e, at: e.updatedAt) } }
        }
        if host.book.firstPollDone.insert(account.name).inserted, host.allFirstPollsDone {
            host.everyAccountReadOnce()
        }
        return true
    }

    /// Devices of the account's scope that the cloud did not return (no contract, a typo in `devices:`): on the
    /// account state and in the log when the set changes, instead of silently missing.
    func noteVisibility(_ account: AccountRuntime, _ snapshots: [DeviceSnapshot], host: isolated some PollHost) {
        guard let scope = account.scope else { return }
        let seen = Set(snapshots.map(\.vendorId))
        let missing = scope.filter { !seen.contains($0) }
        guard missing != host.book.notVisible[account.name] ?? [] else { return }
        host.book.notVisible[account.name] = missing
        if !missing.isEmpty {
            logger.warning(
                "devices in the account's scope are not visible to its credentials",
                metadata: ["account": "\(account.name)", "devices": "\(missing.joined(separator: ","))"])
        }
    }

    /// Lets the adapter renew a credential close to its expiry (e.g. API key rotation, when enabled).
    func maintainCredential(_ account: AccountRuntime, host: isolated some PollHost) async {
        switch await account.adapter.renewCredential(now: clock.now()) {
        case nil: return
        case .renewed(let expires)?:
            logger.notice(
                "API key rotated and stored",
                metadata: [
                    "account": "\(account.name)",
                    "expires": "\(expires.map(Timestamp.iso8601) ?? "unknown")",
                ])
            host.book.keyWarned.remove(account.name)
        case .failed(let why)?:
            logger.warning("API key rotation failed; the current key stays in use", metadata: ["account": "\(account.name)", "error": "\(why)"])
        }
        // Re-publish the account with the new expiry (or the same warning).
        if let s = host.book.status[account.name] { host.setAccount(account.name, s.state, error: s.error, retryAt: s.retryAt) }
    }

    /// After a command succeeded: read the device back soon so the state shows its effect (at read-back
    /// priority, just that device when the adapter can), then poll the account faster for a while.
    /// While push is live, a command whose effect events report (`PushDecoding.confirmedByEvents`) is not read back:
    /// the event brings it, and the reconcile poll catches one that was lost.
    func commandSucceeded(_ account: AccountRuntime, device: String, capability: String? = nil, host: isolated some PollHost) {
        let now = clock.now()
        host.book.lastCommandAt[account.name] = now
        host.book.unchangedPolls[account.name] = 0
        if let at = host.book.nextPollAt[account.name] {
            let sooner = min(at, now + account.pacing.interval(unchanged: 0, sinceCommand: 0))
            host.book.nextPollAt[account.name] = sooner
            // Only a poll that is waiting moves; one under way picks its next time when it ends.
            if host.timers.deadline(.poll(account: account.name)) != nil { host.timers.schedule(.poll(account: account.name), at: sooner) }
        }
        if let capability, host.pushLive(account), let decoder = account.adapter as? any PushDecoding,
            decoder.confirmedByEvents(capability: capability)
        {
            logger.debug("no read-back: push events confirm it", metadata: ["device": "\(device)", "capability": "\(capability)"])
            return
        }
        let key = "\(account.name)/\(device)"
        guard refreshPending.insert(key).inserted else { return }
        host.timers.schedule(.readBack(account: account.name, device: device), at: now + 1)
    }

    func startReadBack(account name: String, device: String, host: isolated some PollHost) {
        refreshPending.remove("\(name)/\(device)")
        guard let account = host.accounts[name] else { return }
        host.spawn {
            await RequestPriority.$current.withValue(.readBack) {
                await host.polling { h, p in await p.refresh(account, device: device, host: h) }
            }
        }
    }

    /// Reads one device again; adapters that cannot read a single device get one full poll.
    func refresh(_ account: AccountRuntime, device: String, host: isolated some PollHost) async {
        do {
            if let entry = host.devices[device], entry.account == account.name, let snap = try await account.adapter.refresh(entry.snapshot) {
                _ = host.update(snap, account: account.name, now: clock.now())
                return
            }
        } catch {
            return logger.notice("read-back after a command failed", metadata: ["device": "\(device)", "error": "\(error)"])
        }
        guard fullRefreshRunning.insert(account.name).inserted else { return }
        await poll(account, generation: pollGeneration[account.name, default: 0], host: host)
        fullRefreshRunning.remove(account.name)
    }

    // MARK: on request

    /// The `poll` bridge request: the accounts read now (a device: just it, read back), each at most once per
    /// `BridgeRequests.pollMinGapS`; returns the account asked too early and how long it has to wait, or nil.
    func readOnRequest(_ names: [String], device: String?, host: isolated some PollHost) -> (account: String, wait: Double)? {
        let now = clock.now()
        let early = names.compactMap { n in requestedPollAt[n].map { (account: n, wait: $0 + BridgeRequests.pollMinGapS - now) } }.filter {
            $0.wait > 0
        }
        if let first = early.max(by: { $0.wait < $1.wait }) { return first }
        for name in names {
            requestedPollAt[name] = now
            if let device {
                guard refreshPending.insert("\(name)/\(device)").inserted else { continue }
                host.timers.schedule(.readBack(account: name, device: device), at: now)
            } else if host.timers.deadline(.poll(account: name)) != nil {
                // A poll under way has no timer; it is the fresh read asked for.
                host.timers.schedule(.poll(account: name), at: now)
            }
        }
        return nil
    }

    // MARK: energy statistics

    /// The account's first statistics read, a little after the start (adapters that have them).
    func startStatistics(_ account: AccountRuntime, now: EpochSeconds, host: isolated some PollHost) {
        guard account.adapter is any EnergyStatistics else { return }
        host.timers.schedule(.statistics(account: account.name), at: now + Double.random(in: 20...60))
    }

    /// Reads every device's statistics of the account one after the other, at the lowest priority; a failure
    /// waits for the next round and changes no account state.
    func startStatisticsRead(_ name: String, host: isolated some PollHost) {
        guard let account = host.accounts[name], let stats = account.adapter as? any EnergyStatistics else { return }
        let generation = pollGeneration[name, default: 0]
        let targets = host.devices.ids(of: name).compactMap { host.devices[$0]?.snapshot }.filter { $0.error == nil }
        let logger = self.logger
        host.spawn {
            for s in targets {
                do throws(CloudError) {
                    let readings = try await RequestPriority.with(.sync) { () async throws(CloudError) in try await stats.readEnergyStatistics(s) }
                    await host.polling { h, p in
                        if p.generation(name) == generation { h.takeStatistics(readings, device: s.id) }
                    }
                } catch {
                    logger.notice("energy statistics not read", metadata: ["account": "\(name)", "device": "\(s.id)", "error": "\(error)"])
                    if case .rateLimited = error.kind { break }
                }
            }
            await host.polling { h, p in
                guard p.generation(name) == generation else { return }
                h.timers.schedule(.statistics(account: name), at: p.clock.now() + stats.statisticsIntervalS)
            }
        }
    }
}

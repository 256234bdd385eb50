import Logging

/// Carrying out what the lease, trigger and limit policies decide (`LeaseBook`, `TriggerEngine`, `LimitsPolicy`
/// return decisions; this keeps their state, persists it, arms their timers and issues their commands through the
/// host's `submit`). Runs isolated to the host, like `CommandPipeline`.
final class Automation {
    var leases = LeaseBook(settings: [:])
    var triggers = TriggerEngine(rules: [])
    /// Fires that came before every account had been read once (the devices were not known yet).
    var pendingFires: [(rule: TriggerRule, reason: String)] = []
    let store: any StatePort
    let clock: any Clock
    let logger: Logger

    init(store: any StatePort, clock: any Clock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.logger = logger
    }

    // MARK: leases

    /// Starts (or renews) the lease of an accepted command.
    func startLease(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String?, host: isolated some AutomationHost) {
        let lease = leases.starting(c, request: request, restore: restore, now: now, group: group)
        saveLease(lease, key: lease.key, host: host)
        host.timers.schedule(.lease(lease.key), at: lease.endsAt)
        if let e = host.devices[c.device] { host.publishDevice(e, at: e.updatedAt) }
    }

    /// A plain command for a leased target takes over: the lease ends without restoring.
    func plainCommandAccepted(_ target: Target, host: isolated some AutomationHost) {
        guard leases[target.key] != nil else { return }
        logger.info("lease replaced by a command without duration", metadata: ["target": "\(target)"])
        host.timers.cancel(.lease(target.key))
        saveLease(nil, key: target.key, host: host)
    }

    func saveLease(_ lease: Lease?, key: String, host: isolated some AutomationHost) {
        leases.set(lease, key: key)
        host.saveSetting(LeaseBook.storageKey(key), lease?.json, what: "lease")
    }

    /// A leased command ended (a group command leases each member under its own id).
    func leaseCommandFinished(_ c: Command, _ status: CommandStatus, host: isolated some AutomationHost) {
        let members = c.isGroup ? (host.settings.behaviour.groups[c.node] ?? []).map { c.target.member($0.device, $0.node) } : [c.target]
        for target in members {
            var one = c
            one.target = target
            switch leases.commandFinished(one, status, now: clock.now()) {
            case nil: continue
            case .rearm(let lease)?:
                saveLease(lease, key: lease.key, host: host)
                host.timers.schedule(.lease(lease.key), at: lease.endsAt)
            case .drop(let key)?:
                host.timers.cancel(.lease(key))
                saveLease(nil, key: key, host: host)
            }
        }
    }

    /// The lease ended (time up, or not renewed in time): the previous value goes back through the pipeline.
    func leaseDue(_ key: String, host: isolated some AutomationHost) {
        guard let lease = leases[key] else { return }
        let now = clock.now()
        guard now >= lease.endsAt - 0.01 else { return host.timers.schedule(.lease(key), at: lease.endsAt) }
        if !host.allFirstPollsDone || host.devices[lease.device] == nil {
            // After a restart: wait until the device is known again.
            return host.timers.schedule(.lease(key), at: now + 1)
        }
        let lapsed = lease.renewBy.map { $0 < lease.until && now >= $0 } ?? false
        logger.info(
            lapsed ? "lease lapsed (not renewed): restoring" : "lease ended: restoring",
            metadata: ["target": "\(key)", "id": "\(lease.commandId)"])
        saveLease(nil, key: key, host: host)
        // A lease whose command has not run yet still restores: the command may run later, the restore after it.
        if let restore = LeaseBook.restoreCommand(lease) { host.submit(restore) }
    }

    /// The account came back: the leased values are sent again, in case the cloud or the device lost them.
    func reassertLeases(account: String, host: isolated some AutomationHost) {
        for (lease, command) in leases.reassertions(devices: Set(host.devices.ids(of: account)), now: clock.now()) {
            logger.info("re-asserting lease after the account came back", metadata: ["target": "\(lease.key)"])
            host.submit(command)
        }
    }

    // MARK: triggers

    /// (Re)starts every rule and subscribes to the condition topics.
    func startTriggers(host: isolated some AutomationHost) {
        host.timers.cancelAll { if case .trigger = $0 { return true } else { return false } }
        let persisted = host.localSettings
        apply(
            triggers.start(
                rules: host.settings.behaviour.triggers, persisted: { persisted[$0] }, now: clock.now(),
                localTime: host.settings.localTime), host: host)
        if host.mqttConnected { for topic in triggers.conditionTopics { host.subscribe(topic) } }
        publishTriggers(host: host)
    }

    /// A message on any topic: conditions that match it are updated.
    func evaluateConditions(_ m: MQTTMessage, host: isolated some AutomationHost) {
        let (outcome, matched) = triggers.evaluate(m, now: clock.now())
        apply(outcome, publish: matched, host: host)
    }

    /// Persists what changed, arms the timers, and fires (now, or once every account has been read).
    func apply(_ o: TriggerEngine.Outcome, publish: Bool = true, host: isolated some AutomationHost) {
        for name in o.changed {
            if let state = triggers.states[name] { host.saveSetting(TriggerEngine.storageKey(name), state.json, what: "trigger state") }
        }
        for (name, missed) in o.skipped {
            logger.notice(
                "trigger time missed while the daemon was down; skipped",
                metadata: ["trigger": "\(name)", "missed": "\(Timestamp.iso8601(missed))"])
        }
        for (name, at) in o.timers { host.timers.schedule(.trigger(name), at: at) }
        for (rule, reason) in o.fires {
            if host.allFirstPollsDone { fire(rule, reason: reason, host: host) } else { pendingFires.append((rule, reason)) }
        }
        if publish { publishTriggers(host: host) }
    }

    /// Issues the rule's command through the normal pipeline.
    func fire(_ rule: TriggerRule, reason: String, host: isolated some AutomationHost) {
        let now = clock.now()
        let command = TriggerEngine.submission(rule, now: now)
        logger.info(
            "trigger fired",
            metadata: [
                "trigger": "\(rule.name)", "target": "\(rule.action.target)", "reason": "\(reason)",
                "id": "\(command.id)",
            ])
        do { try store.recordTriggerFire(name: rule.name, at: now, commandId: command.id, reason: reason) } catch {
            logger.error("cannot audit trigger firing", metadata: ["trigger": "\(rule.name)", "error": "\(error)"])
        }
        host.submit(command)
    }

    func publishTriggers(host: isolated some AutomationHost) {
        if let view = triggers.view(now: clock.now(), localTime: host.settings.localTime) { host.publishTriggerView(view) }
    }

    // MARK: limits

    /// After each successful read of a device: the legionella watch.
    func watchLegionella(_ snapshot: DeviceSnapshot, account: AccountRuntime, now: EpochSeconds, host: isolated some AutomationHost) {
        let hotWater = snapshot.nodes.compactMap { node, state in account.adapter.hotWaterTarget(node: node, state: state).map { (node, $0) } }
        let o = host.limits.observe(
            device: snapshot.id, hotWater: hotWater.sorted { $0.0 < $1.0 },
            canCharge: { account.adapter.hotWaterCharge(node: $0) != nil }, now: now)
        for (key, value) in o.saves { host.saveSetting(key, value, what: "the legionella watch") }
        for (node, since) in o.charge {
            guard let charge = account.adapter.hotWaterCharge(node: node) else { continue }
            logger.warning(
                "hot water low for too long: charging it", metadata: ["target": "\(snapshot.id)/\(node)", "since": "\(Timestamp.iso8601(since))"])
            host.submit(
                Submission(
                    target: Target(device: snapshot.id, node: node, capability: charge.capability),
                    id: "limit-legionella-\(Int64(now * 1000))",
                    body: charge.params, source: .limit("legionella")))
        }
    }

    /// A trigger's timer came (its time, or the end of a condition's hold time).
    func triggerDue(_ name: String, host: isolated some AutomationHost) {
        apply(triggers.timerDue(name, now: clock.now(), localTime: host.settings.localTime), host: host)
    }

    /// Every account has been read once: the fires that waited for it run now.
    func firePending(host: isolated some AutomationHost) {
        let fires = pendingFires
        pendingFires = []
        for f in fires { fire(f.rule, reason: f.reason, host: host) }
    }

    /// Leases from the store (after a restart), their timers armed.
    func restoreLeases(host: isolated some AutomationHost) {
        leases = LeaseBook(settings: host.localSettings)
        for lease in leases.all { host.timers.schedule(.lease(lease.key), at: lease.endsAt) }
    }

}

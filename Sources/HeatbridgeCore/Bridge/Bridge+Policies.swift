/// Carrying out what the lease, trigger and limit policies decide: persisting their state, arming their
/// timers, issuing their commands.
extension Bridge {
    // MARK: leases

    /// Starts (or renews) the lease of an accepted command.
    func startLease(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String?) {
        let lease = leases.starting(c, request: request, restore: restore, now: now, group: group)
        saveLease(lease, key: lease.key)
        timers.schedule(.lease(lease.key), at: lease.endsAt)
        if let e = devices[c.device] { publishDevice(e, at: e.updatedAt) }
    }

    /// A plain command for a leased target takes over: the lease ends without restoring.
    func plainCommandAccepted(_ target: Target) {
        guard leases[target.key] != nil else { return }
        logger.info("lease replaced by a command without duration", metadata: ["target": "\(target)"])
        timers.cancel(.lease(target.key))
        saveLease(nil, key: target.key)
    }

    func saveLease(_ lease: Lease?, key: String) {
        leases.set(lease, key: key)
        saveSetting(LeaseBook.storageKey(key), lease?.json, what: "lease")
    }

    /// A leased command ended (a group command leases each member under its own id).
    func leaseCommandFinished(_ c: Command, _ status: CommandStatus) {
        let members = c.isGroup ? (settings.behaviour.groups[c.node] ?? []).map { c.target.member($0.device, $0.node) } : [c.target]
        for target in members {
            var one = c
            one.target = target
            switch leases.commandFinished(one, status, now: clock.now()) {
            case nil: continue
            case .rearm(let lease)?:
                saveLease(lease, key: lease.key)
                timers.schedule(.lease(lease.key), at: lease.endsAt)
            case .drop(let key)?:
                timers.cancel(.lease(key))
                saveLease(nil, key: key)
            }
        }
    }

    /// The lease ended (time up, or not renewed in time): the previous value goes back through the pipeline.
    func leaseDue(_ key: String) {
        guard let lease = leases[key] else { return }
        let now = clock.now()
        guard now >= lease.endsAt - 0.01 else { return timers.schedule(.lease(key), at: lease.endsAt) }
        if !allFirstPollsDone || devices[lease.device] == nil {
            // After a restart: wait until the device is known again.
            return timers.schedule(.lease(key), at: now + 1)
        }
        let lapsed = lease.renewBy.map { $0 < lease.until && now >= $0 } ?? false
        logger.info(lapsed ? "lease lapsed (not renewed): restoring" : "lease ended: restoring",
                    metadata: ["target": "\(key)", "id": "\(lease.commandId)"])
        saveLease(nil, key: key)
        // A lease whose command has not run yet still restores: the command may run later, the restore after it.
        if let restore = LeaseBook.restoreCommand(lease) { submit(restore) }
    }

    /// The account came back: the leased values are sent again, in case the cloud or the device lost them.
    func reassertLeases(account: String) {
        for (lease, command) in leases.reassertions(devices: Set(devices.ids(of: account)), now: clock.now()) {
            logger.info("re-asserting lease after the account came back", metadata: ["target": "\(lease.key)"])
            submit(command)
        }
    }

    // MARK: triggers

    /// (Re)starts every rule and subscribes to the condition topics.
    func startTriggers() {
        timers.cancelAll { if case .trigger = $0 { return true } else { return false } }
        let settings = localSettings
        apply(triggers.start(rules: self.settings.behaviour.triggers, persisted: { settings[$0] }, now: clock.now(),
                             localTime: self.settings.localTime))
        if mqttConnected { for topic in triggers.conditionTopics { mqtt.subscribe(topic, qos: 1) } }
        publishTriggers()
    }

    /// A message on any topic: conditions that match it are updated.
    func evaluateConditions(_ m: MQTTMessage) {
        let (outcome, matched) = triggers.evaluate(m, now: clock.now())
        apply(outcome, publish: matched)
    }

    /// Persists what changed, arms the timers, and fires (now, or once every account has been read).
    func apply(_ o: TriggerEngine.Outcome, publish: Bool = true) {
        for name in o.changed {
            if let state = triggers.states[name] { saveSetting(TriggerEngine.storageKey(name), state.json, what: "trigger state") }
        }
        for (name, missed) in o.skipped {
            logger.notice("trigger time missed while the daemon was down; skipped",
                          metadata: ["trigger": "\(name)", "missed": "\(Timestamp.iso8601(missed))"])
        }
        for (name, at) in o.timers { timers.schedule(.trigger(name), at: at) }
        for (rule, reason) in o.fires {
            if allFirstPollsDone { fire(rule, reason: reason) } else { pendingFires.append((rule, reason)) }
        }
        if publish { publishTriggers() }
    }

    /// Issues the rule's command through the normal pipeline.
    func fire(_ rule: TriggerRule, reason: String) {
        let now = clock.now()
        let command = TriggerEngine.submission(rule, now: now)
        logger.info("trigger fired", metadata: ["trigger": "\(rule.name)", "target": "\(rule.action.target)", "reason": "\(reason)",
                                                "id": "\(command.id)"])
        do { try store.recordTriggerFire(name: rule.name, at: now, commandId: command.id, reason: reason) } catch {
            logger.error("cannot audit trigger firing", metadata: ["trigger": "\(rule.name)", "error": "\(error)"])
        }
        submit(command)
    }

    func publishTriggers() {
        if let view = triggers.view(now: clock.now(), localTime: settings.localTime) { retained.publish(topics.bridgeTriggers, view) }
    }

    // MARK: limits

    /// After each successful read of a device: the legionella watch.
    func watchLegionella(_ snapshot: DeviceSnapshot, account: AccountRuntime, now: EpochSeconds) {
        let hotWater = snapshot.nodes.compactMap { node, state in account.adapter.hotWaterTarget(node: node, state: state).map { (node, $0) } }
        let o = limits.observe(device: snapshot.id, hotWater: hotWater.sorted { $0.0 < $1.0 },
                               canCharge: { account.adapter.capabilities(of: $0).contains(HotWaterCharge.capability) }, now: now)
        for (key, value) in o.saves { saveSetting(key, value, what: "the legionella watch") }
        for (node, since) in o.charge {
            logger.warning("hot water low for too long: charging it", metadata: ["target": "\(snapshot.id)/\(node)", "since": "\(Timestamp.iso8601(since))"])
            submit(Submission(target: Target(device: snapshot.id, node: node, capability: HotWaterCharge.capability), id: "limit-legionella-\(Int64(now * 1000))",
                              body: ["action": "start"], source: .limit("legionella")))
        }
    }
}

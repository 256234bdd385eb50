/// The command path: an MQTT message (or a trigger, lease or limit) → `submit` (validation by the vendor,
/// the installer's limits) → `accept` (stored with its `accepted` result in one transaction) → the device's
/// line in `CommandQueue` → `pump` → `execute` (the adapter) → `finish` (the terminal result).
extension Bridge {
    func handleMessage(_ m: MQTTMessage) {
        var reply: ReplyAddress?
        var badReply: CommandRejection?
        switch CommandIntake.replyAddress(m, forbiddenPrefixes: [topics.base] + (discovery.prefix.map { [$0] } ?? [])) {
        case .success(let r): reply = r
        case .failure(let r): badReply = r
        }
        let inbound = Inbound(inboxRow: m.inboxRow, reply: reply)
        var keepInInbox = false
        defer {
            // Every way out of here either stored a result (which consumed the row) or needs none.
            if !keepInInbox, let row = inbound.takeInboxRow() {
                do { try store.inboxRemove(row) } catch {
                    logger.error("cannot clear the command inbox", metadata: ["error": "\(error)"])
                }
            }
        }
        if let (vendor, vendorId) = topics.parsePush(m.topic) { return handlePush(m, vendor: vendor, vendorId: vendorId) }
        if let name = topics.parseBridgeRequest(m.topic) { return handleRequest(m, name: name) }
        if m.topic == discovery.statusTopic {
            if String(decoding: m.payload, as: UTF8.self) == "online" { scheduleRediscovery() }
            return
        }
        if !m.payload.isEmpty { evaluateConditions(m) }
        let outcome = CommandIntake.parse(m, topics: topics, maxPayloadBytes: settings.maxPayloadBytes)
        switch outcome {
        case .notCommand, .deletion:
            return
        case .rejected(let target, let id, let rejection, let clear):
            reject(target, id: id, rejection, inbound: inbound)
            if clear { mqtt.publish(topic: m.topic, payload: [], qos: 1, retain: true) }
        case .command(let target, let id, _) where badReply != nil:
            // A refused response topic is not answered there: the rejection goes to the result topic only.
            reject(target, id: id, badReply!, inbound: Inbound(inboxRow: inbound.takeInboxRow(), reply: nil))
        case .command(let target, let id, let body):
            if (devices[target.device] == nil || target.isGroup) && !allFirstPollsDone {
                deferred.append(m)
                keepInInbox = true  // still to be handled
                return
            }
            submit(target, id: id, body: body, inbound: inbound, source: .mqtt, now: clock.now())
        }
    }

    var allFirstPollsDone: Bool { book.firstPollDone.count >= accounts.count }

    /// Issues a command the bridge decided on itself (trigger, lease, limit).
    func submit(_ s: Submission) {
        submit(s.target, id: s.id, body: s.body, inbound: nil, source: s.source, now: clock.now())
    }

    /// Validates a command and accepts or rejects it; every outcome is a result on the target's result topic.
    func submit(_ target: Target, id: String?, body: [String: JSONValue], inbound: Inbound?, source: CommandSource, now: EpochSeconds) {
        func reject(_ r: CommandRejection) { self.reject(target, id: id, r, source: source, inbound: inbound) }
        let validFor: Double
        switch CommandIntake.validity(body, default: settings.behaviour.validFor(target.capability)) {
        case .success(let v): validFor = v
        case .failure(let r): return reject(r)
        }
        if target.isGroup {
            return acceptGroup(target, id: id, body: body, inbound: inbound, now: now, validFor: validFor, source: source)
        }
        let (device, node, capability) = (target.device, target.node, target.capability)
        guard let entry = devices[device], let account = accounts[entry.account] else {
            if let why = book.lostAccess[device] { return reject(CommandRejection(.forbidden, why)) }
            let known = devices.ids.prefix(10).joined(separator: ", ")
            return reject(CommandRejection(.unknownTarget, "unknown device \"\(device)\"; known: \(known.isEmpty ? "none yet" : known)"))
        }
        if node == EnergyHistory.node, capability == EnergyHistory.capability {
            return energyHistory(target, id: id, params: CommandIntake.parameters(body), entry: entry, now: now, validFor: validFor,
                                 source: source, inbound: inbound)
        }
        if let deviceError = entry.snapshot.error, entry.snapshot.nodes[node] == nil {
            // We cannot even list this device's nodes: say why, rather than "unknown node".
            return reject(CommandRejection(deviceError.code, "device \"\(device)\" cannot be read: \(deviceError.message)"))
        }
        var params = CommandIntake.parameters(body)
        if capability == HotWaterCharge.durationSetting, entry.snapshot.nodes[node]?[HotWaterCharge.stateMember] != nil {
            return setChargeDuration(target, id: id, params: params, entry: entry, now: now, validFor: validFor, source: source, inbound: inbound)
        }
        if capability == HotWaterCharge.capability, params["action"]?.stringValue == "start", params[HotWaterCharge.durationMember] == nil {
            params[HotWaterCharge.durationMember] = .int(chargeDefault(device, node))
        }
        // Lease members are the bridge's, for capabilities the vendor cannot end by itself.
        var lease: LeaseRequest?
        let restore = account.adapter.restoreParams(node: node, capability: capability, device: entry.snapshot)
        if restore != nil {
            do { lease = try LeaseRequest.take(&params) } catch { return reject(error) }
        }
        let normalised: JSONValue
        do {
            normalised = try account.adapter.validate(node: node, capability: capability, body: params, device: entry.snapshot)
        } catch {
            return reject(error)
        }
        let facts = account.adapter.facts(node: node, capability: capability, params: normalised)
        if let r = limits.check(device: device, node: node, facts: facts, source: source, now: now) { return reject(r) }
        guard let command = accept(target, id: id, params: normalised, inbound: inbound, now: now, validFor: validFor, source: source) else { return }
        if let lease, let restore {
            let value = queue.pendingValue(device, node, capability, over: restore, before: command.id)
            startLease(command, request: lease, restore: value, now: now, group: nil)
        } else if !source.isLease, leases[target.key] != nil {
            // A plain command for a leased target takes over: the lease ends without restoring.
            logger.info("lease replaced by a command without duration", metadata: ["target": "\(target)"])
            timers.cancel(.lease(target.key))
            saveLease(nil, key: target.key)
        }
    }

    /// How long an MQTT command's `id` stays taken: a message repeating it within this time is the same
    /// command again (answered with its current result) or, with another target or parameters, `DUPLICATE_ID`.
    static let idReuseWindowS: Double = 86_400

    /// A validated command: recognised as a broker redelivery, or stored with its `accepted` result (in one
    /// transaction) and queued; `STORE_FAILED` when the store refuses it.
    @discardableResult
    func accept(_ target: Target, id: String?, params: JSONValue, inbound: Inbound?, now: EpochSeconds, validFor: Double,
                source: CommandSource) -> Command? {
        if let id, source == .mqtt, let prior = try? store.priorCommand(id: id, since: now - Self.idReuseWindowS) {
            if prior.isSame(target, params: params) {
                // The same command again: a broker redelivery (stored just before a crash let the daemon
                // acknowledge it) or the sender's own retry. It never runs twice; the sender hears where it is.
                // Its first answer (`accepted`) was given once; the repeat is told where the command is under a
                // status of its own, so it never reads as a second first answer.
                logger.info("repeated command answered with its current result, not run again", metadata: ["id": "\(id)"])
                outbox.repeated(prior, target: target, id: id, inbound: inbound, at: now)
                return nil
            }
            reject(target, id: id, CommandRejection(.duplicateId, "id \"\(id)\" was already used at \(Timestamp.iso8601(prior.command.receivedAt)) by a command for \(prior.command.target) with other parameters; ids must be unique for 24 h"),
                   source: source, inbound: inbound)
            return nil
        }
        let command = Command(id: id ?? CommandIntake.newId(), device: target.device, node: target.node, capability: target.capability,
                              params: params, source: source, receivedAt: now, validUntil: now + validFor,
                              reply: source == .mqtt ? inbound?.reply : nil)
        guard emitted(outbox.accepted(command, inbound: inbound, at: now, extra: ResultOutbox.sourceExtra(source))) else {
            reject(target, id: command.id,
                   CommandRejection(.storeFailed, "command could not be stored (disk full or I/O error); it was not run"), source: source, inbound: inbound)
            return nil
        }
        logger.info("command accepted", metadata: ["id": "\(command.id)", "target": "\(target)"])
        let touched = target.isGroup ? (settings.behaviour.groups[target.node] ?? []).map(\.device) : [target.device]
        limits.accepted(devices: touched, now: now)
        for old in queue.supersede(by: command) {
            finish(old, .expired, code: .superseded, message: "superseded by command \(command.id)")
        }
        queue.append(command)
        pump(command.device)
        return command
    }

    /// `<node>/charge-duration`: the bridge-local default for charges without `duration_min` (what Home
    /// Assistant's "charge now" button sends). No cloud call: accepted and done at once.
    func setChargeDuration(_ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry,
                           now: EpochSeconds, validFor: Double, source: CommandSource, inbound: Inbound?) {
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
            return reject(target, id: id, error, source: source, inbound: inbound)
        }
        let command = Command(id: id ?? CommandIntake.newId(), device: target.device, node: target.node, capability: target.capability,
                              params: ["minutes": value], source: source, receivedAt: now, validUntil: now + validFor,
                              reply: source == .mqtt ? inbound?.reply : nil)
        guard emitted(outbox.accepted(command, inbound: inbound, at: now, extra: [:])) else {
            return reject(target, id: command.id, CommandRejection(.storeFailed, "command could not be stored"), source: source, inbound: inbound)
        }
        let key = Self.chargeDefaultKey(target.device, target.node)
        do {
            try store.saveSetting(key, value)
        } catch {
            return finish(command, .failed, code: .storeFailed, message: "setting could not be stored: \(error)")
        }
        localSettings[key] = value
        finish(command, .done, code: nil, message: "charges without duration_min now last \(value.intValue ?? 0) min")
        publishDevice(entry, at: entry.updatedAt)
    }

    static func chargeDefaultKey(_ device: String, _ node: String) -> String { "\(device)/\(node)/charge_duration_min" }

    func chargeDefault(_ device: String, _ node: String) -> Int {
        localSettings[Self.chargeDefaultKey(device, node)]?.intValue ?? 60
    }

    // MARK: results

    func reject(_ target: Target, id: String?, _ r: CommandRejection, source: CommandSource = .mqtt, inbound: Inbound? = nil) {
        let cid = id ?? CommandIntake.newId()
        logger.notice("command rejected", metadata: ["id": "\(cid)", "code": "\(r.code)", "reason": "\(r.message)", "source": "\(source)"])
        emitted(outbox.rejected(target, id: cid, r, source: source, inbound: inbound, at: clock.now()))
    }

    /// Records `c` (already carrying its new status) together with its result, then publishes the result.
    func publishResult(_ c: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue] = [:]) {
        emitted(outbox.result(c, status, code: code, message: message, extra: extra, at: clock.now()))
    }

    /// A delivery report while the command runs (`ResultOutbox.progress`).
    func publishProgress(_ c: Command, _ progress: JSONValue, message: String?) {
        emitted(outbox.progress(c, progress, message: message, at: clock.now()))
    }

    /// What the outbox did, on the bridge: the retained summary of the last command that ended, and the store's
    /// health. Returns whether the store has the result.
    @discardableResult
    func emitted(_ e: ResultOutbox.Emitted) -> Bool {
        noteStore(e.store)
        if let last = e.ended { retained.publish(topics.bridgeLastResult, last) }
        return e.stored
    }

    func finish(_ original: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue] = [:]) {
        var c = original
        c.status = status
        queue.transientFailures[c.id] = nil
        if status == .done {
            logger.info("command done", metadata: ["id": "\(c.id)"])
        }
        publishResult(c, status, code: code, message: message, extra: extra)
        if status.isTerminal { leaseCommandFinished(c, status) }
    }

    // MARK: the queue

    func resumeOpenCommands() {
        do {
            var open: [Command] = []
            for c in try store.openCommands() {
                // A newer command for the same target was accepted after it (and may have finished): running the
                // older one now would undo it. As in the live queue, the older one is superseded.
                if let newer = try store.newerCommand(than: c) {
                    finish(c, .expired, code: .superseded, message: "superseded by command \(newer), accepted after it (found when resuming after a restart)")
                } else {
                    open.append(c)
                }
            }
            for c in open { queue.append(c) }
            for device in Set(open.map(\.device)) { pump(device) }
            if !open.isEmpty { logger.info("resuming commands from the store", metadata: ["count": "\(open.count)"]) }
        } catch {
            logger.error("cannot read open commands from the store", metadata: ["error": "\(error)"])
        }
    }

    /// Runs the next command of `device` unless one is running; commands of one device run in arrival order.
    /// While the device's account is down the command waits (`queued`) until it recovers or expires.
    func pump(_ device: String) {
        guard !queue.isRunning(device), let first = queue.first(device) else { return }
        recordUnrecorded()
        // A command resumed from the store for a device not cached yet waits for the first polls to find it.
        if devices[device] == nil && !allFirstPollsDone { return }
        let now = clock.now()
        if now > first.validUntil {
            queue.dropFirst(device)
            finish(first, .expired, code: .expired, message: "not executed within valid_for_s")
            return pump(device)
        }
        if let account = devices[device]?.account, let status = book.status[account], let code = AccountBook.holdCode(status.state) {
            let retryAt = max(status.retryAt ?? book.nextPollAt[account] ?? now + 15, now)
            // Every command waiting for this device says so, not only the first in line; retry_at is the
            // account's next try, the command itself runs as soon as the account is back.
            for q in queue.markQueued(device) {
                publishResult(q, .queued, code: code, message: "account \(account) is \(status.state.rawValue)\(status.error.map { ": \($0)" } ?? "")",
                              extra: ["retry_at": .string(Timestamp.iso8601(retryAt))])
            }
            // Wake for expiry; recovery wakes it through setAccount(.ready).
            timers.scheduleEarliest(.wake(device: device), at: now + max(0.05, first.validUntil - now + 0.01))
            return
        }
        if let nb = first.notBefore, nb > now {
            timers.scheduleEarliest(.wake(device: device), at: nb)
            return
        }
        guard let c = queue.start(device) else { return }
        spawner.spawn { await self.execute(c) }
    }
}

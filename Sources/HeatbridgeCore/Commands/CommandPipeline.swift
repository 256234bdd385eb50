import Logging

/// The command path after intake: `submit` (validation by the vendor's capability handler, the installer's
/// limits) → `accept` (stored with its `accepted` result in one transaction, `ResultOutbox`) → the device's line
/// in `CommandQueue` → `pump` → `execute` (the adapter) → `finish` (the terminal result). It owns the queue and the
/// outbox; what it needs of the bridge around it (devices, accounts, limits, leases, timers) is `CommandHost`,
/// which every call names: the pipeline runs on the host's actor (`isolated`), so it needs no lock and no actor
/// of its own, and stores no state about the message it is handling (the `Inbound` value carries that).
final class CommandPipeline {
    /// Accepted commands, one line per device.
    var queue = CommandQueue()
    /// Every result goes through it: stored, then published; what the store refused is kept and written before
    /// the next command runs, so a command whose cloud call succeeded is never resumed as open and sent again.
    var outbox: ResultOutbox
    let store: any StatePort
    let clock: any Clock
    let topics: TopicLayout
    let logger: Logger

    init(store: any StatePort, mqtt: any MQTTPort, topics: TopicLayout, clock: any Clock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.topics = topics
        self.logger = logger
        outbox = ResultOutbox(store: store, mqtt: mqtt, topics: topics, logger: logger)
    }

    /// Issues a command the bridge decided on itself (trigger, lease, limit).
    func submit(_ s: Submission, host: isolated some CommandHost) {
        submit(s.target, id: s.id, body: s.body, inbound: nil, source: s.source, now: clock.now(), host: host)
    }

    /// Validates a command and accepts or rejects it; every outcome is a result on the target's result topic.
    func submit(
        _ target: Target, id: String?, body: [String: JSONValue], inbound: Inbound?, source: CommandSource, now: EpochSeconds,
        host: isolated some CommandHost
    ) {
        func refuse(_ r: CommandRejection) { reject(target, id: id, r, source: source, inbound: inbound, host: host) }
        let validFor: Double
        switch CommandIntake.validity(body, default: host.settings.behaviour.validFor(target.capability)) {
        case .success(let v): validFor = v
        case .failure(let r): return refuse(r)
        }
        if target.isGroup {
            return acceptGroup(target, id: id, body: body, inbound: inbound, now: now, validFor: validFor, source: source, host: host)
        }
        let (device, node, capability) = (target.device, target.node, target.capability)
        guard let entry = host.devices[device], let account = host.accounts[entry.account] else {
            if let why = host.book.lostAccess[device] { return refuse(CommandRejection(.forbidden, why)) }
            let known = host.devices.ids.prefix(10).joined(separator: ", ")
            return refuse(CommandRejection(.unknownTarget, "unknown device \"\(device)\"; known: \(known.isEmpty ? "none yet" : known)"))
        }
        var params = CommandIntake.parameters(body)
        if host.answerLocally(target, id: id, params: params, entry: entry, now: now, validFor: validFor, source: source, inbound: inbound) { return }
        if let deviceError = entry.snapshot.error, entry.snapshot.nodes[node] == nil {
            // We cannot even list this device's nodes: say why, rather than "unknown node".
            return refuse(CommandRejection(deviceError.code, "device \"\(device)\" cannot be read: \(deviceError.message)"))
        }
        // A member the command leaves out whose default the bridge keeps (a charge's duration).
        for d in account.adapter.localDefaults(of: node) where d.capability == capability && d.applies(to: params) {
            params[d.member] = .int(host.localDefault(d, device: device, node: node))
        }
        // Lease members are the bridge's, for capabilities the vendor cannot end by itself.
        var lease: LeaseRequest?
        let restore = account.adapter.restoreParams(node: node, capability: capability, device: entry.snapshot)
        if restore != nil {
            do { lease = try LeaseRequest.take(&params) } catch { return refuse(error) }
        }
        let normalised: JSONValue
        do {
            normalised = try account.adapter.validate(node: node, capability: capability, body: params, device: entry.snapshot)
        } catch {
            return refuse(error)
        }
        let facts = account.adapter.facts(node: node, capability: capability, params: normalised)
        if let r = host.limits.check(device: device, node: node, facts: facts, source: source, now: now) { return refuse(r) }
        guard let command = accept(target, id: id, params: normalised, inbound: inbound, now: now, validFor: validFor, source: source, host: host)
        else { return }
        if let lease, let restore {
            let value = queue.pendingValue(device, node, capability, over: restore, before: command.id)
            host.startLease(command, request: lease, restore: value, now: now, group: nil)
        } else if !source.isLease {
            host.plainCommandAccepted(target)
        }
    }

    /// How long an MQTT command's `id` stays taken: a message repeating it within this time is the same
    /// command again (answered with its current result) or, with another target or parameters, `DUPLICATE_ID`.
    static let idReuseWindowS: Double = 86_400

    /// A validated command: recognised as a broker redelivery, or stored with its `accepted` result (in one
    /// transaction) and queued; `STORE_FAILED` when the store refuses it.
    @discardableResult
    func accept(
        _ target: Target, id: String?, params: JSONValue, inbound: Inbound?, now: EpochSeconds, validFor: Double,
        source: CommandSource, host: isolated some CommandHost
    ) -> Command? {
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
            reject(
                target, id: id,
                CommandRejection(
                    .duplicateId,
                    "id \"\(id)\" was already used at \(Timestamp.iso8601(prior.command.receivedAt)) by a command for \(prior.command.target) with other parameters; ids must be unique for 24 h"
                ),
                source: source, inbound: inbound, host: host)
            return nil
        }
        let command = Command(
            id: id ?? CommandIntake.newId(), device: target.device, node: target.node, capability: target.capability,
            params: params, source: source, receivedAt: now, validUntil: now + validFor,
            reply: source == .mqtt ? inbound?.reply : nil)
        guard emitted(outbox.accepted(command, inbound: inbound, at: now, extra: ResultOutbox.sourceExtra(source)), host: host) else {
            reject(
                target, id: command.id,
                CommandRejection(.storeFailed, "command could not be stored (disk full or I/O error); it was not run"), source: source,
                inbound: inbound, host: host)
            return nil
        }
        logger.info("command accepted", metadata: ["id": "\(command.id)", "target": "\(target)"])
        let touched = target.isGroup ? (host.settings.behaviour.groups[target.node] ?? []).map(\.device) : [target.device]
        host.limits.accepted(devices: touched, now: now)
        for old in queue.supersede(by: command) {
            finish(old, .expired, code: .superseded, message: "superseded by command \(command.id)", host: host)
        }
        queue.append(command)
        pump(command.device, host: host)
        return command
    }

    // MARK: results

    func reject(
        _ target: Target, id: String?, _ r: CommandRejection, source: CommandSource = .mqtt, inbound: Inbound? = nil, host: isolated some CommandHost
    ) {
        let cid = id ?? CommandIntake.newId()
        logger.notice("command rejected", metadata: ["id": "\(cid)", "code": "\(r.code)", "reason": "\(r.message)", "source": "\(source)"])
        emitted(outbox.rejected(target, id: cid, r, source: source, inbound: inbound, at: clock.now()), host: host)
    }

    /// Records `c` (already carrying its new status) together with its result, then publishes the result.
    func publishResult(
        _ c: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue] = [:], host: isolated some CommandHost
    ) {
        emitted(outbox.result(c, status, code: code, message: message, extra: extra, at: clock.now()), host: host)
    }

    /// A delivery report while the command runs (`ResultOutbox.progress`).
    func publishProgress(_ c: Command, _ progress: JSONValue, message: String?, host: isolated some CommandHost) {
        emitted(outbox.progress(c, progress, message: message, at: clock.now()), host: host)
    }

    /// What the outbox did, told to the host: the retained summary of the last command that ended, and the
    /// store's health. Returns whether the store has the result.
    @discardableResult
    func emitted(_ e: ResultOutbox.Emitted, host: isolated some CommandHost) -> Bool {
        host.noteStore(e.store)
        if let last = e.ended { host.publishLastResult(last) }
        return e.stored
    }

    /// Writes the terminal results the store refused earlier (`ResultOutbox.recordUnrecorded`).
    func recordUnrecorded(host: isolated some CommandHost) {
        host.noteStore(outbox.recordUnrecorded())
    }

    func finish(
        _ original: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue] = [:],
        host: isolated some CommandHost
    ) {
        var c = original
        c.status = status
        queue.transientFailures[c.id] = nil
        if status == .done {
            logger.info("command done", metadata: ["id": "\(c.id)"])
        }
        publishResult(c, status, code: code, message: message, extra: extra, host: host)
        if status.isTerminal { host.leaseCommandFinished(c, status) }
    }

    // MARK: the queue

    func resumeOpenCommands(host: isolated some CommandHost) {
        do {
            var open: [Command] = []
            for c in try store.openCommands() {
                // A newer command for the same target was accepted after it (and may have finished): running the
                // older one now would undo it. As in the live queue, the older one is superseded.
                if let newer = try store.newerCommand(than: c) {
                    finish(
                        c, .expired, code: .superseded,
                        message: "superseded by command \(newer), accepted after it (found when resuming after a restart)", host: host)
                } else {
                    open.append(c)
                }
            }
            for c in open { queue.append(c) }
            for device in Set(open.map(\.device)) { pump(device, host: host) }
            if !open.isEmpty { logger.info("resuming commands from the store", metadata: ["count": "\(open.count)"]) }
        } catch {
            logger.error("cannot read open commands from the store", metadata: ["error": "\(error)"])
        }
    }

    /// Runs the next command of `device` unless one is running; commands of one device run in arrival order.
    /// While the device's account is down the command waits (`queued`) until it recovers or expires.
    func pump(_ device: String, host: isolated some CommandHost) {
        guard !queue.isRunning(device), let first = queue.first(device) else { return }
        recordUnrecorded(host: host)
        // A command resumed from the store for a device not cached yet waits for the first polls to find it.
        if host.devices[device] == nil && !host.allFirstPollsDone { return }
        let now = clock.now()
        if now > first.validUntil {
            queue.dropFirst(device)
            finish(first, .expired, code: .expired, message: "not executed within valid_for_s", host: host)
            return pump(device, host: host)
        }
        if let account = host.devices[device]?.account, let status = host.book.status[account], let code = AccountBook.holdCode(status.state) {
            let retryAt = max(status.retryAt ?? host.book.nextPollAt[account] ?? now + 15, now)
            // Every command waiting for this device says so, not only the first in line; retry_at is the
            // account's next try, the command itself runs as soon as the account is back.
            for q in queue.markQueued(device) {
                publishResult(
                    q, .queued, code: code, message: "account \(account) is \(status.state.rawValue)\(status.error.map { ": \($0)" } ?? "")",
                    extra: ["retry_at": .string(Timestamp.iso8601(retryAt))], host: host)
            }
            // Wake for expiry; recovery wakes it through setAccount(.ready).
            host.wake(device, at: now + max(0.05, first.validUntil - now + 0.01))
            return
        }
        if let nb = first.notBefore, nb > now {
            host.wake(device, at: nb)
            return
        }
        guard let c = queue.start(device) else { return }
        host.startExecution(c)
    }

    // MARK: running

    func execute(_ original: Command, host: isolated some CommandHost) async {
        var c = original
        defer {
            queue.finished(c.device)
            pump(c.device, host: host)
        }
        if c.isGroup { return await executeGroup(c, host: host) }
        guard let entry = host.devices[c.device], let account = host.accounts[entry.account] else {
            if let why = host.book.lostAccess[c.device] { return finish(c, .failed, code: .forbidden, message: why, host: host) }
            return finish(c, .failed, code: .unknownTarget, message: "device \"\(c.device)\" is no longer bridged", host: host)
        }
        // `attempts` counts sends whose outcome is unknown (the daemon died mid-call, a timeout, its end could
        // not be stored): such a command may have reached the cloud, so read the device back; never send it
        // again blind. A definite answer (4xx, 429, 503) takes its attempt back.
        if c.attempts > 0 {
            let applied: Bool?
            do {
                applied = try await RequestPriority.with(
                    .readBack, { () async throws(CloudError) in try await account.adapter.confirm(c, device: entry.snapshot) })
            } catch {
                logger.notice("read-back failed; the command is not sent blind", metadata: ["id": "\(c.id)", "error": "\(error)"])
                return failed(&c, error, account: account, afterSend: false, host: host)
            }
            if applied == true {
                logger.info("command confirmed by read-back; not sent again", metadata: ["id": "\(c.id)"])
                return finish(c, .done, code: nil, message: "confirmed by read-back after an unanswered attempt", host: host)
            }
            if applied == nil && !account.adapter.resendWhenUnconfirmed(c) {
                logger.warning(
                    "command in doubt: it may have reached the cloud, which cannot be read back; not sent again", metadata: ["id": "\(c.id)"])
                return finish(
                    c, .failed, code: .inDoubt,
                    message:
                        "it may have reached \(account.adapter.vendor) (an attempt got no answer, or the daemon stopped during it) and cannot be read back: not sent again; check the device and send it again if it did not take effect",
                    host: host)
            }
            // Read back as not applied: sending it is safe, as if for the first time.
            if applied == false { c.attempts = 0 }
        }
        c.attempts += 1
        // An earlier command's end the store refused goes first: no attempt is recorded ahead of it.
        recordUnrecorded(host: host)
        do {
            guard outbox.unrecorded.isEmpty else { throw StoreRefusal("earlier results are still unrecorded") }
            try store.updateCommand(c)
            host.noteStore(.worked)
        } catch {
            host.noteStore(.failed(error))
            // Sending now would make a restart unable to tell that it was sent (and send it again): wait for the
            // store instead, within the command's validity.
            logger.error("cannot persist command attempt; not sending it yet", metadata: ["id": "\(c.id)", "error": "\(error)"])
            c.attempts -= 1
            return waitForStore(&c, host: host)
        }
        host.book.count(account.name) { $0.commands += 1 }
        do {
            let running = c
            let snapshot = entry.snapshot
            let message = try await RequestPriority.with(.command) { () async throws(CloudError) in
                try await account.adapter.execute(running, device: snapshot) { progress, message in
                    await host.reportProgress(running, progress, message: message)
                }
            }
            finish(c, .done, code: nil, message: message, host: host)
            if host.book.status[account.name]?.state != .ready { host.setAccount(account.name, .ready, error: nil, retryAt: nil) }
            host.commandSucceeded(account, device: c.device, capability: c.capability)
        } catch {
            // Stopping (SIGTERM) cancels a call in flight: the command stays open in the store and is resumed,
            // with a read-back first, after the restart.
            if Task.isCancelled { return }
            failed(&c, error, account: account, afterSend: true, host: host)
        }
    }

    /// The store cannot take the command's attempt (full disk, I/O error): the command waits (`queued`
    /// `STORE_FAILED`) and is tried again in 30 s, or expires; it is never sent without its attempt on record.
    func waitForStore(_ c: inout Command, host: isolated some CommandHost) {
        let retryAt = clock.now() + 30
        guard retryAt <= c.validUntil else {
            return finish(c, .failed, code: .storeFailed, message: "the store could not record the attempt within valid_for_s; not sent", host: host)
        }
        if c.status != .queued {
            c.status = .queued
            publishResult(
                c, .queued, code: .storeFailed, message: "the store cannot record the attempt (disk full?); waiting for it before sending",
                extra: ["retry_at": .string(Timestamp.iso8601(retryAt))], host: host)
        }
        c.notBefore = retryAt
        queue.putBack(c)
    }

    /// `cloud_request_id` for a result, when the cloud named its request (for the vendor's support).
    static func support(_ error: CloudError) -> [String: JSONValue] {
        error.requestId.map { ["cloud_request_id": .string($0)] } ?? [:]
    }

    /// Backoff after the n-th transient failure of a command: 2, 4, 8 … s, capped at a minute.
    static func transientBackoff(_ n: Int) -> Double { min(60, 2 * Double(1 << min(max(n - 1, 0), 5))) }

    /// A command's call (or its read-back, `afterSend` false) failed. A 429 or a transient failure (5xx,
    /// timeout, lost connection) puts it back in line with one `queued` and `retry_at`, within `valid_for_s`;
    /// a definite refusal ends it.
    func failed(_ c: inout Command, _ error: CloudError, account: AccountRuntime, afterSend: Bool, host: isolated some CommandHost) {
        host.book.count(account.name) { $0.errors += 1 }
        // The cloud answered definitely: this attempt did not apply, so a retry needs no read-back.
        if afterSend && !error.mayHaveApplied { c.attempts = max(0, c.attempts - 1) }
        let now = clock.now()
        let retryAt: EpochSeconds
        let code: ResultCode
        if case .rateLimited(let retryAfter) = error.kind {
            host.book.count(account.name) { $0.rateLimited += 1 }
            retryAt = now + max(retryAfter, 1)
            code = .rateLimited
            host.setAccount(account.name, .rateLimited, error: error.message, retryAt: retryAt)
            if retryAt > c.validUntil {
                return finish(
                    c, .expired, code: .expired, message: "rate-limited by the cloud until after valid_for_s", extra: Self.support(error), host: host)
            }
        } else if error.isTransient {
            let n = (queue.transientFailures[c.id] ?? 0) + 1
            queue.transientFailures[c.id] = n
            retryAt = now + Self.transientBackoff(n)
            code = .cloudUnavailable
            logger.notice("command hit a transient cloud failure; retrying", metadata: ["id": "\(c.id)", "failures": "\(n)", "error": "\(error)"])
            // The account's state is the polls' to say: one failed PATCH does not take every device offline.
            if retryAt > c.validUntil {
                return finish(
                    c, .expired, code: .expired,
                    message:
                        "\(account.adapter.vendor) unavailable (\(n) \(n == 1 ? "try" : "tries")), and valid_for_s runs out before the next: \(error.message)",
                    extra: Self.support(error), host: host)
            }
        } else {
            logger.warning("command failed", metadata: ["id": "\(c.id)", "code": "\(error.code)", "error": "\(error)"])
            finish(c, .failed, code: error.code, message: error.message, extra: Self.support(error), host: host)
            if let s = error.accountState { host.setAccount(account.name, s, error: error.message, retryAt: nil) }
            return
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
            publishResult(
                c, .queued, code: code, message: error.message,
                extra: ["retry_at": .string(Timestamp.iso8601(retryAt))].merging(Self.support(error)) { a, _ in a }, host: host)
        }
        queue.putBack(c)
    }

    // MARK: groups

    /// A group command: validated for every member (by the member's own adapter) before it is accepted, so a
    /// mistake is named with the member it concerns; then stored and queued like any command.
    func acceptGroup(
        _ target: Target, id: String?, body: [String: JSONValue], inbound: Inbound?, now: EpochSeconds, validFor: Double,
        source: CommandSource, host: isolated some CommandHost
    ) {
        func refuse(_ r: CommandRejection) { reject(target, id: id, r, source: source, inbound: inbound, host: host) }
        let group = target.node
        let capability = target.capability
        guard let members = host.settings.behaviour.groups[group] else {
            let known = host.settings.behaviour.groups.keys.sorted().joined(separator: ", ")
            return refuse(CommandRejection(.unknownTarget, "unknown group \"\(group)\"; groups: \(known.isEmpty ? "none configured" : known)"))
        }
        var params = CommandIntake.parameters(body)
        var normalised: JSONValue?
        var vendors = Set<String>()
        // A group lease: every member must be leasable; each member restores its own value.
        var restores: [GroupMember: JSONValue] = [:]
        for m in members {
            guard let entry = host.devices[m.device], let account = host.accounts[entry.account] else { continue }
            if let r = account.adapter.restoreParams(node: m.node, capability: capability, device: entry.snapshot) { restores[m] = r }
        }
        var lease: LeaseRequest?
        if restores.count == members.count {
            do { lease = try LeaseRequest.take(&params) } catch { return refuse(error) }
        }
        for m in members {
            guard let entry = host.devices[m.device], let account = host.accounts[entry.account] else {
                return refuse(CommandRejection(.unknownTarget, "group \"\(group)\": member \(m.key): unknown device \"\(m.device)\""))
            }
            vendors.insert(account.adapter.vendor)
            do throws(CommandRejection) {
                let n = try account.adapter.validate(node: m.node, capability: capability, body: params, device: entry.snapshot)
                let facts = account.adapter.facts(node: m.node, capability: capability, params: n)
                if let r = host.limits.check(device: m.device, node: m.node, facts: facts, source: source, now: now) { throw r }
                if normalised == nil { normalised = n }
            } catch {
                return refuse(CommandRejection(error.code, "group \"\(group)\": member \(m.key): \(error.message)"))
            }
        }
        guard vendors.count == 1, let normalised else {
            return refuse(
                CommandRejection(
                    .unsupported,
                    "group \"\(group)\" mixes vendors (\(vendors.sorted().joined(separator: ", "))); one command cannot mean the same for each"))
        }
        guard let command = accept(target, id: id, params: normalised, inbound: inbound, now: now, validFor: validFor, source: source, host: host)
        else { return }
        if let lease {
            for m in members {
                var one = command
                one.target = target.member(m.device, m.node)
                let value = queue.pendingValue(m.device, m.node, capability, over: restores[m]!, before: command.id)
                host.startLease(one, request: lease, restore: value, now: now, group: group)
            }
        }
    }

    /// Runs a group command: per account, one call for all its members where the adapter can batch them,
    /// member by member otherwise. The final result lists every member's outcome.
    func executeGroup(_ original: Command, host: isolated some CommandHost) async {
        var c = original
        c.attempts += 1
        do { try store.updateCommand(c) } catch {
            logger.error("cannot persist command attempt", metadata: ["id": "\(c.id)", "error": "\(error)"])
        }
        let members = host.settings.behaviour.groups[c.node] ?? []
        var outcomes: [MemberOutcome] = []
        var byAccount: [String: [(device: DeviceSnapshot, node: String)]] = [:]
        for m in members {
            guard let entry = host.devices[m.device] else {
                outcomes.append(MemberOutcome(member: m.key, error: CloudError(.rejected, message: "device \(m.device) is no longer bridged")))
                continue
            }
            byAccount[entry.account, default: []].append((entry.snapshot, m.node))
        }
        let running = c
        let sink: ProgressSink = { progress, message in await host.reportProgress(running, progress, message: message) }
        for (name, list) in byAccount.sorted(by: { $0.key < $1.key }) {
            guard let account = host.accounts[name] else { continue }
            host.book.count(name) { $0.commands += 1 }
            let first = outcomes.count
            if let batching = account.adapter as? any GroupExecuting {
                outcomes += await RequestPriority.$current.withValue(.command) { await batching.executeGroup(c, members: list, progress: sink) }
            } else {
                for (snapshot, node) in list {
                    var one = c
                    one.target = c.target.member(snapshot.id, node)
                    do {
                        _ = try await RequestPriority.with(.command) { () async throws(CloudError) in
                            try await account.adapter.execute(one, device: snapshot, progress: sink)
                        }
                        outcomes.append(MemberOutcome(member: "\(snapshot.id)/\(node)", error: nil))
                    } catch {
                        outcomes.append(MemberOutcome(member: "\(snapshot.id)/\(node)", error: error))
                    }
                }
            }
            for o in outcomes[first...] {
                if let e = o.error, let s = e.accountState { host.setAccount(name, s, error: e.message, retryAt: nil) }
            }
            for (snapshot, _) in list { host.commandSucceeded(account, device: snapshot.id, capability: nil) }
        }
        var report: [String: JSONValue] = [:]
        for o in outcomes {
            report[o.member] =
                o.error.map { e -> JSONValue in
                    .object(
                        ["status": "failed", "code": .string(e.code.rawValue), "message": .string(e.message)].merging(Self.support(e)) { a, _ in a })
                } ?? ["status": "done"]
        }
        let failed = outcomes.compactMap { o in o.error.map { (o.member, $0) } }
        if let (_, firstError) = failed.first {
            finish(
                c, .failed, code: firstError.code,
                message: "\(failed.count) of \(outcomes.count) members failed: \(failed.map(\.0).joined(separator: ", "))",
                extra: ["members": .object(report)], host: host)
        } else {
            finish(
                c, .done, code: nil, message: "\(outcomes.count) of \(outcomes.count) members done", extra: ["members": .object(report)], host: host)
        }
    }
}

extension Command {
    /// A group command (`<base>/group/<name>/<capability>/set`).
    var isGroup: Bool { device == Target.groupDevice }
}

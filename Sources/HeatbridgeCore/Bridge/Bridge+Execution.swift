/// Running accepted commands: one device's command through its adapter, a group's through each member's.
extension Bridge {
    func execute(_ original: Command) async {
        var c = original
        defer {
            queue.finished(c.device)
            pump(c.device)
        }
        if c.isGroup { return await executeGroup(c) }
        guard let entry = devices[c.device], let account = accounts[entry.account] else {
            if let why = book.lostAccess[c.device] { return finish(c, .failed, code: .forbidden, message: why) }
            return finish(c, .failed, code: .unknownTarget, message: "device \"\(c.device)\" is no longer bridged")
        }
        // `attempts` counts sends whose outcome is unknown (the daemon died mid-call, a timeout, its end could
        // not be stored): such a command may have reached the cloud, so read the device back; never send it
        // again blind. A definite answer (4xx, 429, 503) takes its attempt back.
        if c.attempts > 0 {
            let applied: Bool?
            do {
                applied = try await RequestPriority.with(.readBack, { () async throws(CloudError) in try await account.adapter.confirm(c, device: entry.snapshot) })
            } catch {
                logger.notice("read-back failed; the command is not sent blind", metadata: ["id": "\(c.id)", "error": "\(error)"])
                return failed(&c, error, account: account, afterSend: false)
            }
            if applied == true {
                logger.info("command confirmed by read-back; not sent again", metadata: ["id": "\(c.id)"])
                return finish(c, .done, code: nil, message: "confirmed by read-back after an unanswered attempt")
            }
            if applied == nil && !account.adapter.resendWhenUnconfirmed(c) {
                logger.warning("command in doubt: it may have reached the cloud, which cannot be read back; not sent again", metadata: ["id": "\(c.id)"])
                return finish(c, .failed, code: .inDoubt,
                              message: "it may have reached \(account.adapter.vendor) (an attempt got no answer, or the daemon stopped during it) and cannot be read back: not sent again; check the device and send it again if it did not take effect")
            }
            // Read back as not applied: sending it is safe, as if for the first time.
            if applied == false { c.attempts = 0 }
        }
        c.attempts += 1
        // An earlier command's end the store refused goes first: no attempt is recorded ahead of it.
        recordUnrecorded()
        do {
            guard outbox.unrecorded.isEmpty else { throw StoreRefusal("earlier results are still unrecorded") }
            try store.updateCommand(c)
            storeWorked()
        } catch {
            storeFailed(error)
            // Sending now would make a restart unable to tell that it was sent (and send it again): wait for the
            // store instead, within the command's validity.
            logger.error("cannot persist command attempt; not sending it yet", metadata: ["id": "\(c.id)", "error": "\(error)"])
            c.attempts -= 1
            return waitForStore(&c)
        }
        book.count(account.name) { $0.commands += 1 }
        do {
            let running = c
            let snapshot = entry.snapshot
            let message = try await RequestPriority.with(.command) { () async throws(CloudError) in
                try await account.adapter.execute(running, device: snapshot) { progress, message in
                    await self.publishProgress(running, progress, message: message)
                }
            }
            finish(c, .done, code: nil, message: message)
            if book.status[account.name]?.state != .ready { setAccount(account.name, .ready, error: nil) }
            commandSucceeded(account, device: c.device, capability: c.capability)
        } catch {
            // Stopping (SIGTERM) cancels a call in flight: the command stays open in the store and is resumed,
            // with a read-back first, after the restart.
            if Task.isCancelled { return }
            failed(&c, error, account: account, afterSend: true)
        }
    }

    /// The store cannot take the command's attempt (full disk, I/O error): the command waits (`queued`
    /// `STORE_FAILED`) and is tried again in 30 s, or expires; it is never sent without its attempt on record.
    func waitForStore(_ c: inout Command) {
        let retryAt = clock.now() + 30
        guard retryAt <= c.validUntil else {
            return finish(c, .failed, code: .storeFailed, message: "the store could not record the attempt within valid_for_s; not sent")
        }
        if c.status != .queued {
            c.status = .queued
            publishResult(c, .queued, code: .storeFailed, message: "the store cannot record the attempt (disk full?); waiting for it before sending",
                          extra: ["retry_at": .string(Timestamp.iso8601(retryAt))])
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
    func failed(_ c: inout Command, _ error: CloudError, account: AccountRuntime, afterSend: Bool) {
        book.count(account.name) { $0.errors += 1 }
        // The cloud answered definitely: this attempt did not apply, so a retry needs no read-back.
        if afterSend && !error.mayHaveApplied { c.attempts = max(0, c.attempts - 1) }
        let now = clock.now()
        let retryAt: EpochSeconds
        let code: ResultCode
        if case .rateLimited(let retryAfter) = error.kind {
            book.count(account.name) { $0.rateLimited += 1 }
            retryAt = now + max(retryAfter, 1)
            code = .rateLimited
            setAccount(account.name, .rateLimited, error: error.message, retryAt: retryAt)
            if retryAt > c.validUntil {
                return finish(c, .expired, code: .expired, message: "rate-limited by the cloud until after valid_for_s", extra: Self.support(error))
            }
        } else if error.isTransient {
            let n = (queue.transientFailures[c.id] ?? 0) + 1
            queue.transientFailures[c.id] = n
            retryAt = now + Self.transientBackoff(n)
            code = .cloudUnavailable
            logger.notice("command hit a transient cloud failure; retrying", metadata: ["id": "\(c.id)", "failures": "\(n)", "error": "\(error)"])
            // The account's state is the polls' to say: one failed PATCH does not take every device offline.
            if retryAt > c.validUntil {
                return finish(c, .expired, code: .expired,
                              message: "\(account.adapter.vendor) unavailable (\(n) \(n == 1 ? "try" : "tries")), and valid_for_s runs out before the next: \(error.message)",
                              extra: Self.support(error))
            }
        } else {
            logger.warning("command failed", metadata: ["id": "\(c.id)", "code": "\(error.code)", "error": "\(error)"])
            finish(c, .failed, code: error.code, message: error.message, extra: Self.support(error))
            if let s = error.accountState { setAccount(account.name, s, error: error.message) }
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
            publishResult(c, .queued, code: code, message: error.message,
                          extra: ["retry_at": .string(Timestamp.iso8601(retryAt))].merging(Self.support(error)) { a, _ in a })
        }
        queue.putBack(c)
    }

    // MARK: groups

    /// A group command: validated for every member (by the member's own adapter) before it is accepted, so a
    /// mistake is named with the member it concerns; then stored and queued like any command.
    func acceptGroup(_ target: Target, id: String?, body: [String: JSONValue], inbound: Inbound?, now: EpochSeconds, validFor: Double,
                     source: CommandSource) {
        func reject(_ r: CommandRejection) { self.reject(target, id: id, r, source: source, inbound: inbound) }
        let group = target.node, capability = target.capability
        guard let members = settings.behaviour.groups[group] else {
            let known = settings.behaviour.groups.keys.sorted().joined(separator: ", ")
            return reject(CommandRejection(.unknownTarget, "unknown group \"\(group)\"; groups: \(known.isEmpty ? "none configured" : known)"))
        }
        var params = CommandIntake.parameters(body)
        var normalised: JSONValue?
        var vendors = Set<String>()
        // A group lease: every member must be leasable; each member restores its own value.
        var restores: [GroupMember: JSONValue] = [:]
        for m in members {
            guard let entry = devices[m.device], let account = accounts[entry.account] else { continue }
            if let r = account.adapter.restoreParams(node: m.node, capability: capability, device: entry.snapshot) { restores[m] = r }
        }
        var lease: LeaseRequest?
        if restores.count == members.count {
            do { lease = try LeaseRequest.take(&params) } catch { return reject(error) }
        }
        for m in members {
            guard let entry = devices[m.device], let account = accounts[entry.account] else {
                return reject(CommandRejection(.unknownTarget, "group \"\(group)\": member \(m.key): unknown device \"\(m.device)\""))
            }
            vendors.insert(account.adapter.vendor)
            do throws(CommandRejection) {
                let n = try account.adapter.validate(node: m.node, capability: capability, body: params, device: entry.snapshot)
                let facts = account.adapter.facts(node: m.node, capability: capability, params: n)
                if let r = limits.check(device: m.device, node: m.node, facts: facts, source: source, now: now) { throw r }
                if normalised == nil { normalised = n }
            } catch {
                return reject(CommandRejection(error.code, "group \"\(group)\": member \(m.key): \(error.message)"))
            }
        }
        guard vendors.count == 1, let normalised else {
            return reject(CommandRejection(.unsupported, "group \"\(group)\" mixes vendors (\(vendors.sorted().joined(separator: ", "))); one command cannot mean the same for each"))
        }
        guard let command = accept(target, id: id, params: normalised, inbound: inbound, now: now, validFor: validFor, source: source) else { return }
        if let lease {
            for m in members {
                var one = command
                one.target = target.member(m.device, m.node)
                let value = queue.pendingValue(m.device, m.node, capability, over: restores[m]!, before: command.id)
                startLease(one, request: lease, restore: value, now: now, group: group)
            }
        }
    }

    /// Runs a group command: per account, one call for all its members where the adapter can batch them,
    /// member by member otherwise. The final result lists every member's outcome.
    func executeGroup(_ original: Command) async {
        var c = original
        c.attempts += 1
        do { try store.updateCommand(c) } catch {
            logger.error("cannot persist command attempt", metadata: ["id": "\(c.id)", "error": "\(error)"])
        }
        let members = settings.behaviour.groups[c.node] ?? []
        var outcomes: [MemberOutcome] = []
        var byAccount: [String: [(device: DeviceSnapshot, node: String)]] = [:]
        for m in members {
            guard let entry = devices[m.device] else {
                outcomes.append(MemberOutcome(member: m.key, error: CloudError(.rejected, message: "device \(m.device) is no longer bridged")))
                continue
            }
            byAccount[entry.account, default: []].append((entry.snapshot, m.node))
        }
        let running = c
        let sink: ProgressSink = { progress, message in await self.publishProgress(running, progress, message: message) }
        for (name, list) in byAccount.sorted(by: { $0.key < $1.key }) {
            guard let account = accounts[name] else { continue }
            book.count(name) { $0.commands += 1 }
            let first = outcomes.count
            if let batching = account.adapter as? any GroupExecuting {
                outcomes += await RequestPriority.$current.withValue(.command) { await batching.executeGroup(c, members: list, progress: sink) }
            } else {
                for (snapshot, node) in list {
                    var one = c
                    one.target = c.target.member(snapshot.id, node)
                    do {
                        _ = try await RequestPriority.with(.command) { () async throws(CloudError) in try await account.adapter.execute(one, device: snapshot, progress: sink) }
                        outcomes.append(MemberOutcome(member: "\(snapshot.id)/\(node)", error: nil))
                    } catch {
                        outcomes.append(MemberOutcome(member: "\(snapshot.id)/\(node)", error: error))
                    }
                }
            }
            for o in outcomes[first...] {
                if let e = o.error, let s = e.accountState { setAccount(name, s, error: e.message) }
            }
            for (snapshot, _) in list { commandSucceeded(account, device: snapshot.id) }
        }
        var report: [String: JSONValue] = [:]
        for o in outcomes {
            report[o.member] = o.error.map { e -> JSONValue in
                .object(["status": "failed", "code": .string(e.code.rawValue), "message": .string(e.message)].merging(Self.support(e)) { a, _ in a })
            } ?? ["status": "done"]
        }
        let failed = outcomes.compactMap { o in o.error.map { (o.member, $0) } }
        if let (_, firstError) = failed.first {
            finish(c, .failed, code: firstError.code,
                   message: "\(failed.count) of \(outcomes.count) members failed: \(failed.map(\.0).joined(separator: ", "))",
                   extra: ["members": .object(report)])
        } else {
            finish(c, .done, code: nil, message: "\(outcomes.count) of \(outcomes.count) members done", extra: ["members": .object(report)])
        }
    }
}

extension Command {
    /// A group command (`<base>/group/<name>/<capability>/set`).
    var isGroup: Bool { device == Target.groupDevice }
}

/// Leases: a command with `"duration_min"`/`"duration_s"` on a capability whose vendor has no native end (a
/// setpoint, a mode, a preference) ends by itself: the bridge restores the value the node had before, at the
/// end. With `"renew_within_s"` it is a dead-man lease: it lapses unless the same target gets a new command in
/// time. Leases are kept in the store (they survive restarts), re-asserted when their account comes back, and
/// shown in the node state under `leases`.
struct Lease: Sendable, Equatable {
    var commandId: String
    var device: String
    var node: String
    var capability: String
    /// The leased value (re-sent after the account comes back).
    var params: JSONValue
    /// What the node had before the first command of the lease.
    var restore: JSONValue
    var until: EpochSeconds
    var renewWithinS: Double?
    var renewBy: EpochSeconds?
    /// The lease's length; it counts again from when the command is done (it may wait queued first).
    var durationS: Double
    /// False until the command is done: a lease whose command fails restores nothing.
    var applied: Bool
    /// Set when a group command leased this member (restores then get ids of their own).
    var group: String?

    var key: String { "\(device)/\(node)/\(capability)" }
    var endsAt: EpochSeconds { min(until, renewBy ?? .infinity) }

    var json: JSONValue {
        ["command_id": .string(commandId), "device": .string(device), "node": .string(node), "capability": .string(capability),
         "params": params, "restore": restore, "until": .number(until), "renew_within_s": renewWithinS.map(JSONValue.number) ?? .null,
         "renew_by": renewBy.map(JSONValue.number) ?? .null, "duration_s": .number(durationS), "applied": .bool(applied),
         "group": group.map(JSONValue.string) ?? .null]
    }

    init(commandId: String, device: String, node: String, capability: String, params: JSONValue, restore: JSONValue, until: EpochSeconds,
         renewWithinS: Double?, renewBy: EpochSeconds?, durationS: Double, applied: Bool) {
        self.durationS = durationS
        self.applied = applied
        self.commandId = commandId
        self.device = device
        self.node = node
        self.capability = capability
        self.params = params
        self.restore = restore
        self.until = until
        self.renewWithinS = renewWithinS
        self.renewBy = renewBy
    }

    init?(json: JSONValue) {
        guard let id = json["command_id"]?.stringValue, let d = json["device"]?.stringValue, let n = json["node"]?.stringValue,
              let c = json["capability"]?.stringValue, let p = json["params"], let r = json["restore"], let u = json["until"]?.doubleValue else { return nil }
        self.init(commandId: id, device: d, node: n, capability: c, params: p, restore: r, until: u,
                  renewWithinS: json["renew_within_s"]?.doubleValue, renewBy: json["renew_by"]?.doubleValue,
                  durationS: json["duration_s"]?.doubleValue ?? 0, applied: json["applied"]?.boolValue ?? true)
        group = json["group"]?.stringValue
    }
}

/// The lease members of a command body, taken out before the vendor sees it.
struct LeaseRequest: Sendable {
    var durationS: Double
    var renewWithinS: Double?

    /// nil when the body asks for no lease; a rejection when its lease members are wrong.
    static func take(_ body: inout [String: JSONValue]) throws(CommandRejection) -> LeaseRequest? {
        let minutes = body.removeValue(forKey: "duration_min")
        let seconds = body.removeValue(forKey: "duration_s")
        let renew = body.removeValue(forKey: "renew_within_s")
        guard minutes != nil || seconds != nil || renew != nil else { return nil }
        var duration: Double
        switch (minutes, seconds) {
        case (.some, .some): throw CommandRejection(.invalidPayload, "give \"duration_min\" or \"duration_s\", not both")
        case (.some(let m), nil):
            guard let v = m.intValue else { throw CommandRejection(.invalidPayload, "\"duration_min\" must be a whole number of minutes") }
            guard (1...10_080).contains(v) else { throw CommandRejection(.outOfRange, "\"duration_min\" must be 1…10080, got \(v)") }
            duration = Double(v) * 60
        case (nil, .some(let s)):
            guard let v = s.doubleValue else { throw CommandRejection(.invalidPayload, "\"duration_s\" must be a number of seconds") }
            guard (1...604_800).contains(v) else { throw CommandRejection(.outOfRange, "\"duration_s\" must be 1…604800, got \(JSONValue.format(v))") }
            duration = v
        case (nil, nil):
            throw CommandRejection(.invalidPayload, "\"renew_within_s\" needs a \"duration_min\" or \"duration_s\"")
        }
        var renewS: Double?
        if let r = renew {
            guard let v = r.doubleValue, v >= 1, v <= 86_400 else {
                throw CommandRejection(.outOfRange, "\"renew_within_s\" must be 1…86400 seconds")
            }
            renewS = v
        }
        return LeaseRequest(durationS: duration, renewWithinS: renewS)
    }
}

extension Bridge {
    static func leaseKey(_ key: String) -> String { "lease/\(key)" }

    /// Loads the leases kept in the store and arms their ends.
    func restoreLeases() {
        for (k, v) in localSettings where k.hasPrefix("lease/") {
            guard let lease = Lease(json: v) else { continue }
            leases[lease.key] = lease
            armLease(lease)
        }
    }

    /// Starts (or renews) the lease of an accepted command. A renewal keeps the value to restore from the
    /// first command, so the lease always ends where it started.
    func startLease(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String? = nil) {
        let key = "\(c.device)/\(c.node)/\(c.capability)"
        let previous = leases[key]
        var lease = Lease(commandId: c.id, device: c.device, node: c.node, capability: c.capability, params: c.params,
                          restore: previous?.restore ?? restore, until: now + request.durationS, renewWithinS: request.renewWithinS,
                          renewBy: request.renewWithinS.map { now + $0 }, durationS: request.durationS,
                          applied: previous?.applied ?? false)
        lease.group = group
        saveLease(lease)
        armLease(lease)
        if let e = devices[c.device] { publishDevice(e, at: e.updatedAt) }
    }

    /// The value a target will have just before command `id` runs: the polled value, overlaid with the
    /// parameters of commands for the same target still running or queued ahead of it (e.g. a restore that
    /// has not been read back yet).
    func pendingValue(_ device: String, _ node: String, _ capability: String, over polled: JSONValue, before id: String) -> JSONValue {
        var value = polled.objectValue ?? [:]
        var ahead: [Command] = inFlight[device].map { $0.id == id ? [] : [$0] } ?? []
        for c in queues[device] ?? [] {
            if c.id == id { break }
            ahead.append(c)
        }
        for c in ahead where c.node == node && c.capability == capability {
            for (k, v) in c.params.objectValue ?? [:] where value[k] != nil { value[k] = v }
        }
        return .object(value)
    }

    /// The leased command ended: done starts the lease's time (it may have waited queued); anything else
    /// drops a lease that never took effect, since there is nothing to restore.
    func leaseCommandFinished(_ c: Command, _ status: CommandStatus) {
        if c.device == Self.groupDevice {
            // A group command leases each member under the group command's id.
            for m in settings.behaviour.groups[c.node] ?? [] {
                var one = c
                one.device = m.device
                one.node = m.node
                leaseCommandFinished(one, status)
            }
            return
        }
        let key = "\(c.device)/\(c.node)/\(c.capability)"
        guard var lease = leases[key], lease.commandId == c.id else { return }
        let now = clock.now()
        if status == .done {
            lease.applied = true
            lease.until = now + lease.durationS
            lease.renewBy = lease.renewWithinS.map { now + $0 }
            saveLease(lease)
            armLease(lease)
        } else if !lease.applied {
            leaseTimers.removeValue(forKey: key)?.cancel()
            saveLease(nil, key: key)
        }
    }

    func saveLease(_ lease: Lease?, key: String? = nil) {
        let k = key ?? lease!.key
        leases[k] = lease
        localSettings[Self.leaseKey(k)] = lease?.json
        do { try store.saveSetting(Self.leaseKey(k), lease?.json ?? .null) } catch {
            logger.error("cannot persist lease", metadata: ["target": "\(k)", "error": "\(error)"])
        }
    }

    func armLease(_ lease: Lease) {
        leaseTimers[lease.key]?.cancel()
        let at = lease.endsAt
        leaseTimers[lease.key] = Task {
            try? await clock.sleep(seconds: max(0, at - clock.now()))
            guard !Task.isCancelled else { return }
            self.leaseDue(lease.key)
        }
    }

    /// The lease ended (time up, or not renewed in time): the previous value goes back through the pipeline.
    func leaseDue(_ key: String) {
        guard let lease = leases[key] else { return }
        let now = clock.now()
        guard now >= lease.endsAt - 0.01 else { return armLease(lease) }
        if firstPollDone.count < accounts.count || devices[lease.device] == nil {
            // After a restart: wait until the device is known again.
            leaseTimers[key] = Task {
                try? await clock.sleep(seconds: 1)
                self.leaseDue(key)
            }
            return
        }
        let lapsed = lease.renewBy.map { $0 < lease.until && now >= $0 } ?? false
        logger.info(lapsed ? "lease lapsed (not renewed): restoring" : "lease ended: restoring",
                    metadata: ["target": "\(key)", "id": "\(lease.commandId)"])
        saveLease(nil, key: key)
        leaseTimers[key] = nil
        // A lease whose command has not run yet still restores: the command may run later, the restore after it.
        guard case .object(let body) = lease.restore else { return }
        let rid = lease.group == nil ? "\(lease.commandId)-restore" : "\(lease.commandId)-restore-\(lease.device)-\(lease.node)"
        submit(lease.device, lease.node, lease.capability, id: rid, body: body, inboxRow: nil,
               source: "lease:\(lease.commandId)", now: now)
    }

    /// The account came back: the leased values are sent again, in case the cloud or the device lost them.
    func reassertLeases(account: String) {
        let now = clock.now()
        for lease in leases.values where devices[lease.device]?.account == account && lease.endsAt > now {
            guard case .object(let body) = lease.params else { continue }
            logger.info("re-asserting lease after the account came back", metadata: ["target": "\(lease.key)"])
            submit(lease.device, lease.node, lease.capability, id: "\(lease.commandId)-reassert-\(Int64(now))", body: body, inboxRow: nil,
                   source: "lease:\(lease.commandId)", now: now)
        }
    }

    /// `leases` in a node's state: per capability, when it ends and how long is left.
    func leaseState(device: String, node: String, now: EpochSeconds) -> JSONValue? {
        let mine = leases.values.filter { $0.device == device && $0.node == node }
        guard !mine.isEmpty else { return nil }
        var o: [String: JSONValue] = [:]
        for l in mine {
            o[l.capability] = ["until": .string(Timestamp.iso8601(l.until)), "remaining_s": .number(max(0, (l.endsAt - now).rounded())),
                               "renew_by": l.renewBy.map { .string(Timestamp.iso8601($0)) } ?? .null, "restore": l.restore,
                               "command_id": .string(l.commandId)]
        }
        return .object(o)
    }
}

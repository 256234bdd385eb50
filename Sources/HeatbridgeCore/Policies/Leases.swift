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
        [
            "command_id": .string(commandId), "device": .string(device), "node": .string(node), "capability": .string(capability),
            "params": params, "restore": restore, "until": .number(until), "renew_within_s": renewWithinS.map(JSONValue.number) ?? .null,
            "renew_by": renewBy.map(JSONValue.number) ?? .null, "duration_s": .number(durationS), "applied": .bool(applied),
            "group": group.map(JSONValue.string) ?? .null,
        ]
    }

    init(
        commandId: String, device: String, node: String, capability: String, params: JSONValue, restore: JSONValue, until: EpochSeconds,
        renewWithinS: Double?, renewBy: EpochSeconds?, durationS: Double, applied: Bool
    ) {
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
            let c = json["capability"]?.stringValue, let p = json["params"], let r = json["restore"], let u = json["until"]?.doubleValue
        else { return nil }
        self.init(
            commandId: id, device: d, node: n, capability: c, params: p, restore: r, until: u,
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
            guard (1...604_800).contains(v) else {
                throw CommandRejection(.outOfRange, "\"duration_s\" must be 1…604800, got \(JSONValue.format(v))")
            }
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

/// The active leases by `<device>/<node>/<capability>`. Returns decisions (what to persist, arm or submit);
/// the bridge carries them out.
struct LeaseBook {
    private(set) var leases: [String: Lease] = [:]

    static let storagePrefix = "lease/"
    static func storageKey(_ key: String) -> String { storagePrefix + key }

    /// The leases kept in the store.
    init(settings: [String: JSONValue]) {
        for (k, v) in settings where k.hasPrefix(Self.storagePrefix) {
            if let lease = Lease(json: v) { leases[lease.key] = lease }
        }
    }

    subscript(key: String) -> Lease? { leases[key] }
    var all: [Lease] { Array(leases.values) }

    mutating func set(_ lease: Lease?, key: String) { leases[key] = lease }

    /// The lease an accepted command starts (or renews). A renewal keeps the value to restore from the first
    /// command, so the lease always ends where it started.
    func starting(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String?) -> Lease {
        let previous = leases[c.target.key]
        var lease = Lease(
            commandId: c.id, device: c.device, node: c.node, capability: c.capability, params: c.params,
            restore: previous?.restore ?? restore, until: now + request.durationS, renewWithinS: request.renewWithinS,
            renewBy: request.renewWithinS.map { now + $0 }, durationS: request.durationS,
            applied: previous?.applied ?? false)
        lease.group = group
        return lease
    }

    enum Change {
        /// The lease (with its new end) is to be stored and armed.
        case rearm(Lease)
        /// The lease never took effect: it is to be dropped without a restore.
        case drop(String)
    }

    /// The leased command of one member ended: done starts the lease's time (the command may have waited
    /// queued); anything else drops a lease that never took effect, since there is nothing to restore.
    func commandFinished(_ c: Command, _ status: CommandStatus, now: EpochSeconds) -> Change? {
        let key = c.target.key
        guard var lease = leases[key], lease.commandId == c.id else { return nil }
        if status == .done {
            lease.applied = true
            lease.until = now + lease.durationS
            lease.renewBy = lease.renewWithinS.map { now + $0 }
            return .rearm(lease)
        }
        return lease.applied ? nil : .drop(key)
    }

    /// The command that puts a target back where its lease found it.
    static func restoreCommand(_ lease: Lease) -> Submission? {
        guard case .object(let body) = lease.restore else { return nil }
        let rid = lease.group == nil ? "\(lease.commandId)-restore" : "\(lease.commandId)-restore-\(lease.device)-\(lease.node)"
        return Submission(
            target: Target(device: lease.device, node: lease.node, capability: lease.capability), id: rid, body: body,
            source: .lease(lease.commandId))
    }

    /// The commands that send the leased values of `devices` again (their account came back), for leases still running.
    func reassertions(devices: Set<String>, now: EpochSeconds) -> [(Lease, Submission)] {
        leases.values.sorted { $0.key < $1.key }.compactMap { lease in
            guard devices.contains(lease.device), lease.endsAt > now, case .object(let body) = lease.params else { return nil }
            return (
                lease,
                Submission(
                    target: Target(device: lease.device, node: lease.node, capability: lease.capability),
                    id: "\(lease.commandId)-reassert-\(Int64(now))", body: body, source: .lease(lease.commandId))
            )
        }
    }

    /// `leases` in a node's state: per capability, when it ends and how long is left.
    func state(device: String, node: String, now: EpochSeconds) -> JSONValue? {
        let mine = leases.values.filter { $0.device == device && $0.node == node }
        guard !mine.isEmpty else { return nil }
        var o: [String: JSONValue] = [:]
        for l in mine {
            o[l.capability] = [
                "until": .string(Timestamp.iso8601(l.until)), "remaining_s": .number(max(0, (l.endsAt - now).rounded())),
                "renew_by": l.renewBy.map { .string(Timestamp.iso8601($0)) } ?? .null, "restore": l.restore,
                "command_id": .string(l.commandId),
            ]
        }
        return .object(o)
    }
}

/// Commands the bridge answers itself, without a cloud call: a default the bridge keeps for a node (`LocalDefault`,
/// such as a charge's duration) and a device's energy history. Accepted and ended through the pipeline like every
/// command, so they have the same results, outbox and response topic.
enum LocalAnswers {
    static func answer(
        _ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry, now: EpochSeconds,
        validFor: Double, source: CommandSource, inbound: Inbound?, host: isolated some LocalAnswerHost
    ) -> Bool {
        if target.node == EnergyHistory.node, target.capability == EnergyHistory.capability {
            energyHistory(target, id: id, params: params, entry: entry, now: now, validFor: validFor, source: source, inbound: inbound, host: host)
            return true
        }
        let defaults = host.accounts[entry.account]?.adapter.localDefaults(of: target.node) ?? []
        if let d = defaults.first(where: { $0.setting == target.capability }), entry.snapshot.nodes[target.node]?[d.stateMember] != nil {
            setLocalDefault(
                d, target, id: id, params: params, entry: entry, now: now, validFor: validFor, source: source, inbound: inbound, host: host)
            return true
        }
        return false
    }

    /// `<node>/<setting>`: the default the bridge keeps for commands that leave `d.member` out (a charge's
    /// duration: what Home Assistant's "charge now" button sends). No cloud call: accepted and done at once.
    static func setLocalDefault(
        _ d: LocalDefault, _ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry,
        now: EpochSeconds, validFor: Double, source: CommandSource, inbound: Inbound?, host: isolated some LocalAnswerHost
    ) {
        let value: JSONValue
        do throws(CommandRejection) {
            try CapabilityValidation.allowOnly(params, [d.settingMember])
            guard let m = params[d.settingMember]?.intValue else {
                throw CommandRejection(.invalidPayload, "\"\(d.settingMember)\" must be a whole number")
            }
            guard d.range.contains(m) else {
                throw CommandRejection(.outOfRange, "\"\(d.settingMember)\" must be \(d.range.lowerBound)…\(d.range.upperBound), got \(m)")
            }
            value = .int(m)
        } catch {
            return host.commands.reject(target, id: id, error, source: source, inbound: inbound, host: host)
        }
        let command = Command(
            id: id ?? CommandIntake.newId(), device: target.device, node: target.node, capability: target.capability,
            params: [d.settingMember: value], source: source, receivedAt: now, validUntil: now + validFor,
            reply: source == .mqtt ? inbound?.reply : nil)
        guard host.commands.emitted(host.commands.outbox.accepted(command, inbound: inbound, at: now, extra: [:]), host: host) else {
            return host.commands.reject(
                target, id: command.id, CommandRejection(.storeFailed, "command could not be stored"), source: source, inbound: inbound,
                host: host)
        }
        let key = storageKey(d, device: target.device, node: target.node)
        do {
            try host.store.saveSetting(key, value)
        } catch {
            return host.commands.finish(command, .failed, code: .storeFailed, message: "setting could not be stored: \(error)", host: host)
        }
        host.localSettings[key] = value
        host.commands.finish(command, .done, code: nil, message: d.done(value.intValue ?? 0), host: host)
        host.publishDevice(entry, at: entry.updatedAt)
    }

    // MARK: the history request

    /// `<device>/energy/history/set` with `from`/`to` (and `meter`): the device's hourly buckets, answered `done`
    /// on the result path with `history` (at most `EnergyHistory.maxHours` hours). No cloud call.
    static func energyHistory(
        _ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry,
        now: EpochSeconds, validFor: Double, source: CommandSource, inbound: Inbound?, host: isolated some LocalAnswerHost
    ) {
        func reject(_ target: Target, id: String?, _ r: CommandRejection, source: CommandSource) {
            host.commands.reject(target, id: id, r, source: source, inbound: inbound, host: host)
        }
        let device = target.device
        let layout = (host.accounts[entry.account]?.adapter as? any EnergyMetering)?.meterLayout(entry.snapshot)
        guard host.live.energyBook.hasMeter(device) || layout.map({ !$0.isEmpty }) == true else {
            return reject(
                target, id: id, CommandRejection(.noMeter, "device \"\(device)\" has no meter: its vendor reports no power or energy"),
                source: source)
        }
        let range: (from: Int64, to: Int64)
        var meter: MeterKey?
        do throws(CommandRejection) {
            range = try EnergyHistory.range(params, now: now)
            if let m = params["meter"] {
                guard let s = m.stringValue, let k = MeterKey(id: s) else {
                    throw CommandRejection(.invalidPayload, "\"meter\" must be a counter id such as \"electricity_total\" or \"heat_dhw\"")
                }
                meter = k
            }
        } catch {
            return reject(target, id: id, error, source: source)
        }
        // What is counted but not stored yet is stored first: `heatbridge energy` then reads the same buckets.
        host.live.saveLive(host: host)
        let buckets: [EnergyBucket]
        do { buckets = try host.store.energyBuckets(device: device, fromHour: range.from, toHour: range.to) } catch {
            return reject(target, id: id, CommandRejection(.storeFailed, "energy history could not be read: \(error)"), source: source)
        }
        let history = EnergyHistory.answer(
            device: device, from: range.from, to: range.to,
            buckets: buckets.filter { meter == nil || $0.meter == meter!.id })
        let command = Command(
            id: id ?? CommandIntake.newId(), device: device, node: target.node, capability: target.capability,
            params: .object(params), source: source, receivedAt: now, validUntil: now + validFor,
            reply: source == .mqtt ? inbound?.reply : nil)
        guard host.commands.emitted(host.commands.outbox.accepted(command, inbound: inbound, at: now, extra: [:]), host: host) else {
            return reject(target, id: command.id, CommandRejection(.storeFailed, "command could not be stored"), source: source)
        }
        host.commands.finish(command, .done, code: nil, message: "\(range.to - range.from) hours", extra: ["history": history], host: host)
    }

    /// Where a node's default is kept among the bridge-local settings.
    static func storageKey(_ d: LocalDefault, device: String, node: String) -> String { "\(device)/\(node)/\(d.storageKey)" }
}

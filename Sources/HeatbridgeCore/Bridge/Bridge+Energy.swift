/// The energy history request, answered by the bridge itself from the store's hour buckets (`LiveState` keeps
/// the meters), and the bridge as `LiveState`'s host.
extension Bridge: LiveHost {
    // MARK: the history request

    /// `<device>/energy/history/set` with `from`/`to` (and `meter`): the device's hourly buckets, answered `done`
    /// on the result path with `history` (at most `EnergyHistory.maxHours` hours). No cloud call.
    func energyHistory(_ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry,
                       now: EpochSeconds, validFor: Double, source: CommandSource, inbound: Inbound?) {
        func reject(_ target: Target, id: String?, _ r: CommandRejection, source: CommandSource) {
            commands.reject(target, id: id, r, source: source, inbound: inbound, host: self)
        }
        let device = target.device
        let layout = (accounts[entry.account]?.adapter as? any EnergyMetering)?.meterLayout(entry.snapshot)
        guard live.energyBook.hasMeter(device) || layout.map({ !$0.isEmpty }) == true else {
            return reject(target, id: id, CommandRejection(.noMeter, "device \"\(device)\" has no meter: its vendor reports no power or energy"),
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
        live.saveLive(host: self)
        let buckets: [EnergyBucket]
        do { buckets = try store.energyBuckets(device: device, fromHour: range.from, toHour: range.to) } catch {
            return reject(target, id: id, CommandRejection(.storeFailed, "energy history could not be read: \(error)"), source: source)
        }
        let history = EnergyHistory.answer(device: device, from: range.from, to: range.to,
                                           buckets: buckets.filter { meter == nil || $0.meter == meter!.id })
        let command = Command(id: id ?? CommandIntake.newId(), device: device, node: target.node, capability: target.capability,
                              params: .object(params), source: source, receivedAt: now, validUntil: now + validFor,
                              reply: source == .mqtt ? inbound?.reply : nil)
        guard commands.emitted(commands.outbox.accepted(command, inbound: inbound, at: now, extra: [:]), host: self) else {
            return reject(target, id: command.id, CommandRejection(.storeFailed, "command could not be stored"), source: source)
        }
        commands.finish(command, .done, code: nil, message: "\(range.to - range.from) hours", extra: ["history": history], host: self)
    }
}

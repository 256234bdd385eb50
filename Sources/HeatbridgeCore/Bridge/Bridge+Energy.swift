/// Energy: each device's meter (`EnergyBook`) fed from polls, events and statistics reads; stored with the pushed
/// state on one coalesced timer (`liveSave`), so the flash-wear budget holds; the history request.
extension Bridge {
    static let meterSettingPrefix = "meter."

    /// Restores each device's meter as last saved, and forgets buckets older than the retention.
    func restoreMeters() {
        for (key, value) in localSettings where key.hasPrefix(Self.meterSettingPrefix) {
            energyBook.restore(String(key.dropFirst(Self.meterSettingPrefix.count)), value)
        }
        pruneEnergy()
    }

    func pruneEnergy() {
        let now = clock.now()
        energyPrunedAt = now
        do { try store.pruneEnergy(beforeHour: Int64(now / 3600) - EnergyHistory.retentionDays * 24) } catch {
            logger.warning("cannot forget old energy buckets", metadata: ["error": "\(error)"])
        }
    }

    /// The meter of a device's fresh state: the adapter's readings go into the book, the book's state into `meter`.
    func meterize(_ s: inout DeviceSnapshot, account: String, now: EpochSeconds) {
        guard let m = accounts[account]?.adapter as? any EnergyMetering else { return }
        if energyBook.apply(m.meterReadings(s), device: s.id, now: now, localTime: settings.localTime), energyBook.isDirty(s.id) { scheduleLiveSave(now) }
        s.attributes["meter"] = energyBook.stateJSON(s.id, now: now, localTime: settings.localTime)
    }

    func scheduleLiveSave(_ now: EpochSeconds) {
        if timers.deadline(.liveSave) == nil { timers.schedule(.liveSave, at: now + Self.pushSaveIntervalS) }
    }

    // MARK: statistics

    /// An account's energy statistics for one device (`AccountPoller.startStatisticsRead`).
    func takeStatistics(_ readings: [MeterReading], device: String) {
        guard devices[device] != nil else { return }
        let now = clock.now()
        guard energyBook.apply(readings, device: device, now: now, localTime: settings.localTime) else { return }
        scheduleLiveSave(now)
        if let e = devices.setAttribute(device, "meter", energyBook.stateJSON(device, now: now, localTime: settings.localTime)) {
            publishDevice(e, at: e.updatedAt)
        }
    }

    // MARK: saving

    /// Writes every device's changed pushed state and meter, and the energy buckets counted since the last save,
    /// in one transaction: a counter's total and the hours it was counted into are stored together.
    func saveLive() {
        timers.cancel(.liveSave)
        let pushIds = pushBook.takeDirty()
        let meters = energyBook.takeDirty()
        guard !pushIds.isEmpty || !meters.isEmpty else { return }
        var list: [(key: String, value: JSONValue?)] = []
        for id in pushIds { if let r = pushBook.record(id) { list.append((Self.pushSettingPrefix + id, r)) } }
        for m in meters { list.append((Self.meterSettingPrefix + m.device, m.record)) }
        do {
            try store.saveLive(settings: list, buckets: meters.flatMap(\.buckets))
            for (k, v) in list { localSettings[k] = v }
            storeWorked()
        } catch {
            logger.error("cannot store pushed state and energy", metadata: ["error": "\(error)"])
            for id in pushIds { pushBook.markDirty(id) }
            for m in meters { energyBook.giveBack(m.device, m.buckets) }
            scheduleLiveSave(clock.now())
            storeFailed(error)
        }
        for id in Set(pushIds + meters.map(\.device)).sorted() {
            guard let e = devices[id] else { continue }
            do { try store.saveDevice(DeviceRegistry.cacheRecord(e)) } catch {
                logger.error("cannot cache device state", metadata: ["device": "\(id)", "error": "\(error)"])
                storeFailed(error)
            }
        }
        if clock.now() - energyPrunedAt > 86_400 { pruneEnergy() }
    }

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
        guard energyBook.hasMeter(device) || layout.map({ !$0.isEmpty }) == true else {
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
        saveLive()
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

/// The installer's safety limits (`limits:`), checked for every command after the vendor's own validation,
/// whether it came from MQTT, Home Assistant or a local trigger.
extension Bridge {
    /// The rejection a command gets from the limits, or nil when it is within them.
    func checkLimits(_ device: String, _ node: String, _ capability: String, params: JSONValue, source: String,
                     now: EpochSeconds) -> CommandRejection? {
        let l = settings.behaviour.limits
        func f(_ v: Double) -> String { JSONValue.format(v) }
        // Setpoint bounds: a room setpoint, or either end of a comfort band.
        var setpoints: [(String, Double)] = []
        if capability == "setpoint", let v = params["setpoint"]?.doubleValue { setpoints.append(("setpoint", v)) }
        if capability == "comfort" {
            for k in ["min", "max"] { if let v = params[k]?.doubleValue { setpoints.append((k, v)) } }
        }
        for (key, v) in setpoints {
            if let hi = l.setpointMax, v > hi {
                return CommandRejection(.outOfRange, "\"\(key)\" \(f(v)) °C is above limits.setpoint.max (\(f(hi)) °C)")
            }
            if let lo = l.setpointMin, v < lo {
                return CommandRejection(.outOfRange, "\"\(key)\" \(f(v)) °C is below limits.setpoint.min (\(f(lo)) °C)")
            }
        }
        if capability == "derogation" {
            if let max = l.derogationMaxDelta, let d = params["delta"]?.intValue, abs(d) > max {
                return CommandRejection(.safetyLimit, "delta \(d) °C exceeds limits.derogation.max_delta (±\(max) °C)")
            }
            if let max = l.derogationMaxMinutes, let minutes = Self.derogationMinutes(params, tz: settings.localTime), minutes > max {
                return CommandRejection(.safetyLimit, "\(minutes) min exceeds limits.derogation.max_duration_min (\(max) min)")
            }
        }
        if let minT = l.legionellaMinTemperature, let hours = l.legionellaMaxHours, node.hasPrefix("dhw"),
           let since = legionellaLowSince[device + "/" + node], now - since >= hours * 3600,
           Self.keepsDhwLow(capability, params, minTemperature: minT) {
            return CommandRejection(.safetyLimit, "hot water has been off or below \(f(minT)) °C since \(Timestamp.iso8601(since)); limits.legionella allows \(f(hours)) h")
        }
        // The bridge's own safety actions are never held back by the spacing meant for callers.
        if let spacing = l.minSpacingS, !source.hasPrefix("limit:"), let last = lastAcceptedAt[device], now - last < spacing {
            return CommandRejection(.safetyLimit, "the last command for \(device) was \(f((now - last).rounded())) s ago; limits.min_spacing_s is \(f(spacing)) s")
        }
        return nil
    }

    /// How long a validated derogation lasts, in minutes (duration, or its explicit window).
    static func derogationMinutes(_ p: JSONValue, tz: any LocalTime) -> Int? {
        if let d = p["duration_min"]?.intValue { return d }
        guard let sd = p["start_day"]?.intValue, let s = p["start"]?.intValue, let ed = p["end_day"]?.intValue, let e = p["end"]?.intValue else { return nil }
        return Int((tz.instant(day: Int64(ed), minute: e) - tz.instant(day: Int64(sd), minute: s)) / 60)
    }

    /// Whether a DHW command would leave the water off or below `minTemperature`.
    static func keepsDhwLow(_ capability: String, _ p: JSONValue, minTemperature: Double) -> Bool {
        if capability == "mode" { return p["mode"]?.stringValue?.lowercased() == "off" }
        if capability == "setpoint", let stop = p["stop"]?.doubleValue { return stop < minTemperature }
        if capability == "charge" { return p["action"]?.stringValue == "stop" }
        return false
    }

    /// Whether a DHW node's state is off or heating to less than `minTemperature` (its active level's stop).
    static func dhwIsLow(_ state: JSONValue, minTemperature: Double) -> Bool {
        guard let mode = state["operation_mode"]?.stringValue else { return false }
        if mode == "off" { return true }
        if let stop = state["levels"]?[mode]?["stop"]?.doubleValue { return stop < minTemperature }
        return false
    }

    /// After each poll: tracks since when each DHW circuit is low, and past `max_hours` charges it once per
    /// episode (`"source":"limit:legionella"`).
    func watchLegionella(_ snapshot: DeviceSnapshot, now: EpochSeconds) {
        let l = settings.behaviour.limits
        guard let minT = l.legionellaMinTemperature, let hours = l.legionellaMaxHours else { return }
        for (node, state) in snapshot.nodes where node.hasPrefix("dhw") {
            let key = snapshot.id + "/" + node
            guard Self.dhwIsLow(state, minTemperature: minT) else {
                if legionellaLowSince.removeValue(forKey: key) != nil { saveLegionella(key, nil) }
                continue
            }
            let since = legionellaLowSince[key] ?? now
            if legionellaLowSince[key] == nil {
                legionellaLowSince[key] = since
                saveLegionella(key, ["since": .number(since), "charged": false])
            }
            let charged = localSettings["legionella/" + key]?["charged"]?.boolValue ?? false
            if now - since >= hours * 3600, !charged, accounts[devices[snapshot.id]?.account ?? ""]?.adapter.capabilities(of: node).contains("charge") == true {
                saveLegionella(key, ["since": .number(since), "charged": true])
                logger.warning("hot water low for too long: charging it", metadata: ["target": "\(key)", "since": "\(Timestamp.iso8601(since))"])
                submit(snapshot.id, node, "charge", id: "limit-legionella-\(Int64(now * 1000))", body: ["action": "start"], inboxRow: nil,
                       source: "limit:legionella", now: now)
            }
        }
    }

    func saveLegionella(_ key: String, _ value: JSONValue?) {
        let k = "legionella/" + key
        localSettings[k] = value
        do { try store.saveSetting(k, value ?? .null) } catch {
            logger.error("cannot persist the legionella watch", metadata: ["target": "\(key)", "error": "\(error)"])
        }
    }
}

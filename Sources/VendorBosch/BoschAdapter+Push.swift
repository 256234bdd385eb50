import HeatbridgeCore

/// Bosch webhook events → neutral push updates. Which data point goes where (README, "Push events"):
///
/// | data point | node | field |
/// |---|---|---|
/// | `hvac.emon.energyConsumptionTotal` (`.lowRes`) | `heatpump` | `energy.consumed_kwh` (`energy_lowres.…`), monotonic |
/// | `hvac.emon.energySupplyTotal` (`.lowRes`) | `heatpump` | `energy.supplied_kwh` |
/// | `hvac.emon.compressor.energyConsumptionTotal.<use>` (`.lowRes`) | `heatpump` | `energy.compressor_<use>_kwh` |
/// | `hvac.emon.eheater.energyConsumptionTotal.<use>.lowRes` | `heatpump` | `energy_lowres.eheater_<use>_kwh` |
/// | `hvac.emon.compressor.powerCurrent`, `…eheater.powerCurrent` | `heatpump` | `compressor.power_w`, `eheater.power_w` |
/// | `hvac.emon.compressor.operationStatus`, `…eheater…` | `heatpump` | `compressor.status` + `compressor.running` |
/// | `hvac.compressor.currentSpeed` | `heatpump` | `compressor.speed` |
/// | `hvac.cascade.hs<N>.…` | `hs<N>` | as for `heatpump` |
/// | `hvac.heatingCircuit.hc<N>.flowTemperature`, `.roomTemperature` | `hc<N>` | `flow_temperature`, `room_temperature` |
/// | `hvac.domesticHotWater.dhw<N>.cylinderTemperature`, `.chargeStatus`, `.requestedLevel` | `dhw<N>` | `temperature`, `charge.active`, `requested_level` |
/// | `hvac.system.outdoorTemperature`, `hvac.system.sensor.<s>`, `hvac.energyManagement.operationStatus` | `system` | `outdoor_temperature`, `sensors.<s>`, `energy_management` |
/// | daily aggregates | `heatpump` | `daily.<name>` = `{value, day}` |
/// | anything else | device | `vendor.<data point>` (and counted as unknown) |
extension BoschAdapter: PushDecoding {
    /// `hvac.domesticHotWater.dhwX.chargeStatus` reports a charge started or stopped [doc].
    public func confirmedByEvents(capability: String) -> Bool { Self.dhwCircuit[capability]?.confirmedByEvents == true }

    public func decodePush(_ payload: [UInt8]) -> Result<PushEvent, PushRejection> {
        guard payload.count <= BoschWire.maxEventBytes else {
            return .failure(PushRejection(.malformed, "event of \(payload.count) bytes; at most \(BoschWire.maxEventBytes)"))
        }
        let j: JSONValue
        do { j = try JSONValue.parse(payload, limits: JSONLimits(maxDepth: 8, maxMembers: 512, maxStringBytes: 4096)) } catch {
            return .failure(PushRejection(.malformed, "not JSON (\(error.reason))"))
        }
        let env: BoschWire.EventEnvelope
        switch BoschWire.envelope(j) {
        case .success(let e): env = e
        case .failure(let r): return .failure(r)
        }
        var event = PushEvent(vendorId: env.gatewayId, type: env.type, at: env.at, updates: [])
        switch env.type {
        case BoschWire.EventType.dataPoint, "DATAPOINT", "DATA_POINT_EVENT":
            let points = env.body["dataPoints"]?.arrayValue ?? [.object(env.body)]
            for p in points { Self.dataPoint(p, at: env.at, into: &event) }
            if event.updates.isEmpty, event.unknown.isEmpty {
                return .failure(
                    PushRejection(
                        .invalid,
                        event.issues.isEmpty
                            ? "a data point event without a key and value"
                            : event.issues.joined(separator: "; ")))
            }
        case BoschWire.EventType.connectivity, "CONNECTIVITY", "CONNECTIVITY_STATUS_EVENT":
            let status = (env.body["status"] ?? env.body["connectivityStatus"])?.stringValue?.uppercased()
            guard status == "ONLINE" || status == "OFFLINE" else {
                return .failure(PushRejection(.invalid, "a connectivity event whose status is not ONLINE or OFFLINE"))
            }
            event.updates.append(PushUpdate(key: "connectivity", at: env.at, target: .device, path: ["online"], value: .online(status == "ONLINE")))
        case BoschWire.EventType.applianceStatus, "APPLIANCE_STATUS_EVENT", "ERROR":
            let fault = Self.fault(env.body, at: env.at)
            event.updates.append(PushUpdate(key: "appliance_status", at: env.at, target: .device, path: ["fault"], value: .set(fault)))
            event.updates.append(
                PushUpdate(key: "appliance_status", at: env.at, target: .node(BoschNode.systemId), path: ["fault"], value: .set(fault)))
        case BoschWire.EventType.dailyAggregate:
            Self.daily(env.body, at: env.at, into: &event)
        case BoschWire.EventType.contract:
            return .failure(PushRejection(.notForBox, "contract events are the partner's (the receiver sends them to its partner topic)"))
        default:
            event.unknown.append("event type " + String(env.type.prefix(64)))
            event.updates.append(
                PushUpdate(
                    key: "event:" + env.type, at: env.at, target: .device, path: ["vendor", "events", env.type],
                    value: .set(.object(env.body.filter { $0.key.utf8.count <= 64 }))))
        }
        return .success(event)
    }

    /// Where a data point goes; nil for a key this module does not know.
    static func place(_ key: String) -> (node: String, path: [String], counter: Bool)? {
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count >= 2, parts[0] == "hvac" else { return nil }
        var rest = Array(parts.dropFirst())
        var node = BoschNode.heatPumpId
        if rest.first == "cascade", rest.count >= 3, rest[1].hasPrefix("hs"), rest[1].count > 2 {
            node = TopicLayout.sanitize(rest[1])
            rest = Array(rest.dropFirst(2))
        }
        let uses = ["centralHeating": "heating", "domesticHotWater": "dhw", "cooling": "cooling", "pool": "pool"]
        switch rest.first {
        case "emon":
            var r = Array(rest.dropFirst())
            let lowRes = r.last == "lowRes"
            if lowRes { r.removeLast() }
            let group = lowRes ? "energy_lowres" : "energy"
            switch r.first {
            case "energyConsumptionTotal" where r.count == 1: return (node, [group, "consumed_kwh"], true)
            case "energySupplyTotal" where r.count == 1: return (node, [group, "supplied_kwh"], true)
            case "compressor", "eheater":
                let part = r[0]
                guard r.count >= 2 else { return nil }
                switch r[1] {
                case "powerCurrent" where r.count == 2 && !lowRes: return (node, [part, "power_w"], false)
                case "operationStatus" where r.count == 2 && !lowRes: return (node, [part, "status"], false)
                case "energyConsumptionTotal" where r.count == 3:
                    guard let use = uses[r[2]] else { return nil }
                    return (node, [group, "\(part)_\(use)_kwh"], true)
                default: return nil
                }
            default: return nil
            }
        case "compressor" where rest.count == 2 && rest[1] == "currentSpeed":
            return (node, ["compressor", "speed"], false)
        case "heatingCircuit" where rest.count == 3 && node == BoschNode.heatPumpId:
            let field = ["flowTemperature": "flow_temperature", "roomTemperature": "room_temperature"][rest[2]]
            guard let field, rest[1].hasPrefix("hc") else { return nil }
            return (BoschAdapter.nodeId(BoschNode.hcPrefix, rest[1]), [field], false)
        case "domesticHotWater" where rest.count == 3 && node == BoschNode.heatPumpId:
            guard rest[1].hasPrefix("dhw") else { return nil }
            let dhw = BoschAdapter.nodeId(BoschNode.dhwPrefix, rest[1])
            switch rest[2] {
            case "cylinderTemperature": return (dhw, ["temperature"], false)
            case "chargeStatus": return (dhw, ["charge", "active"], false)
            case "requestedLevel": return (dhw, ["requested_level"], false)
            default: return nil
            }
        case "system" where node == BoschNode.heatPumpId:
            if rest == ["system", "outdoorTemperature"] { return (BoschNode.systemId, ["outdoor_temperature"], false) }
            if rest.count == 3, rest[1] == "sensor" { return (BoschNode.systemId, ["sensors", TopicLayout.sanitize(rest[2])], false) }
            if rest.count == 3, rest[1] == "holidayMode" { return (BoschNode.systemId, ["holiday_modes", TopicLayout.sanitize(rest[2])], false) }
            return nil
        case "energyManagement" where rest == ["energyManagement", "operationStatus"] && node == BoschNode.heatPumpId:
            return (BoschNode.systemId, ["energy_management"], false)
        default:
            return nil
        }
    }

    /// One data point (`{"key", "value", "unit"}`) → its update, or an unknown name kept under `vendor`.
    static func dataPoint(_ p: JSONValue, at: EpochSeconds, into event: inout PushEvent) {
        guard let key = (p["key"] ?? p["dataPoint"] ?? p["dataPointKey"] ?? p["name"])?.stringValue, !key.isEmpty, key.utf8.count <= 128,
            let raw = p["value"]
        else { return }
        let unit = p["unit"]?.stringValue
        guard let (node, path, counter) = place(key) else {
            event.unknown.append(key)
            event.updates.append(PushUpdate(key: key, at: at, target: .device, path: ["vendor", key], value: .set(raw)))
            return
        }
        let field = path.last ?? ""
        let numeric = counter || field.hasSuffix("_w") || field.hasSuffix("temperature") || path.first == "sensors" || field == "speed"
        if numeric {
            var n: Double
            switch raw {
            case .number(let d): n = d
            case .string(let s) where Double(s)?.isFinite == true:
                n = Double(s)!
                event.issues.append("\(key): a number sent as a string (\"\(s.prefix(20))\")")
            default:
                event.issues.append("\(key): expected a number; value dropped")
                return
            }
            guard n.isFinite else { return }
            // Power in W; a unit of kW is converted (the unit strings are Bosch's, `kWh` since 2024-03-18).
            if field.hasSuffix("_w"), unit?.lowercased() == "kw" { n *= 1000 }
            if counter, unit?.lowercased() == "wh" { n /= 1000 }
            if counter {
                guard n >= 0 else {
                    event.issues.append("\(key): a negative counter reading; dropped")
                    return
                }
                event.updates.append(PushUpdate(key: key, at: at, target: .node(node), path: path, value: .counter(n)))
            } else {
                event.updates.append(PushUpdate(key: key, at: at, target: .node(node), path: path, value: .set(.number(n))))
            }
            return
        }
        switch (field, raw) {
        case ("active", _):
            // chargeStatus: START/STOP (as the REST side), ON/OFF or a boolean.
            let on: Bool? =
                raw.boolValue
                ?? raw.stringValue.flatMap {
                    ["START": true, "ON": true, "ACTIVE": true, "STOP": false, "OFF": false, "INACTIVE": false][$0.uppercased()]
                }
            guard let on else {
                event.issues.append("\(key): not a charge status; dropped")
                return
            }
            event.updates.append(PushUpdate(key: key, at: at, target: .node(node), path: path, value: .set(.bool(on))))
        case (_, .string(let s)):
            let v = String(s.prefix(64)).lowercased()
            event.updates.append(PushUpdate(key: key, at: at, target: .node(node), path: path, value: .set(.string(v))))
            if field == "status" {
                // INFERRED enum: IDLE when off or offline (v1.12); anything else the part is working.
                let running = !["idle", "off", "standby", "stopped", "offline"].contains(v)
                event.updates.append(PushUpdate(key: key, at: at, target: .node(node), path: [path[0], "running"], value: .set(.bool(running))))
            }
        case (_, .number), (_, .bool):
            event.updates.append(PushUpdate(key: key, at: at, target: .node(node), path: path, value: .set(raw)))
        default:
            event.issues.append("\(key): expected a string or number; value dropped")
        }
    }

    /// An appliance status event → the neutral fault: active, class, cause code, text, since.
    static func fault(_ b: [String: JSONValue], at: EpochSeconds) -> JSONValue {
        let status = (b["applianceStatus"] ?? b["status"])?.stringValue?.uppercased()
        let active = !(status == nil || ["OK", "NONE", "NO_ERROR", "RESOLVED", "CLEARED"].contains(status!))
        var text: String?
        if let d = (b["description"] ?? b["errorDescription"])?.stringValue {
            text = d
        } else if let ds = b["descriptions"] {
            // A list of {language, text} or a map language → text: English first, else the first there is.
            if let list = ds.arrayValue {
                let en = list.first { $0["language"]?.stringValue?.lowercased().hasPrefix("en") == true } ?? list.first
                text = (en?["text"] ?? en?["description"])?.stringValue
            } else if let map = ds.objectValue {
                text = (map["en"] ?? map.sorted { $0.key < $1.key }.first?.value)?.stringValue
            }
        }
        func int(_ v: JSONValue?) -> JSONValue {
            if let i = v?.intValue { return .int(i) }
            if let s = v?.stringValue, let i = Int(s) { return .int(i) }
            return .null
        }
        var o: [String: JSONValue] = ["active": .bool(active), "since": .string(Timestamp.iso8601(at))]
        if let status { o["status"] = .string(String(status.prefix(32)).lowercased()) }
        let cls = int(b["faultClass"])
        let cause = int(b["causeCode"])
        if cls != .null { o["class"] = cls }
        if cause != .null { o["cause_code"] = cause }
        if let code = (b["errorCode"] ?? b["faultCode"])?.stringValue { o["code"] = .string(String(code.prefix(32))) }
        if let text { o["text"] = .string(String(text.prefix(256))) }
        // One line a front end shows (a problem sensor's text), never null.
        var summary = [cls.intValue.map { "class \($0)" }, cause.intValue.map { "cause \($0)" }].compactMap { $0 }.joined(separator: ", ")
        if let text { summary += (summary.isEmpty ? "" : ": ") + String(text.prefix(200)) }
        o["summary"] = .string(active ? (summary.isEmpty ? (status ?? "fault").lowercased() : summary) : "no fault")
        return .object(o)
    }

    /// Daily aggregates: `{"date": "2026-12-03", "properties"/"aggregates": {key: value} or [{key, value}]}`.
    static func daily(_ b: [String: JSONValue], at: EpochSeconds, into event: inout PushEvent) {
        let day =
            (b["date"] ?? b["day"])?.stringValue.flatMap { Timestamp.day($0) != nil ? $0 : nil }
            ?? Timestamp.date(Int64((at - 86_400) / 86_400))
        var pairs: [(String, JSONValue)] = []
        if let list = (b["aggregates"] ?? b["values"] ?? b["dataPoints"])?.arrayValue {
            for item in list { if let k = item["key"]?.stringValue, let v = item["value"] { pairs.append((k, v)) } }
        } else {
            for (k, v) in (b["aggregates"] ?? b["properties"])?.objectValue ?? b where k.hasPrefix("hvac.") { pairs.append((k, v)) }
        }
        let names = [
            "hvac.compressor.centralHeating.numberOfStarts": "compressor_starts_heating",
            "hvac.compressor.domesticHotWater.numberOfStarts": "compressor_starts_dhw",
            "hvac.compressor.cooling.numberOfStarts": "compressor_starts_cooling",
            "hvac.compressor.pool.numberOfStarts": "compressor_starts_pool",
            "hvac.centralHeating.waterPressure.min": "water_pressure_min",
            "hvac.centralHeating.waterPressure.max": "water_pressure_max",
            "hvac.centralHeating.waterPressure.mean": "water_pressure_mean",
        ]
        for (k, v) in pairs.sorted(by: { $0.0 < $1.0 }) {
            guard let n = v.doubleValue ?? v.stringValue.flatMap(Double.init), n.isFinite else {
                event.issues.append("\(k): expected a number; value dropped")
                continue
            }
            if let name = names[k] {
                event.updates.append(
                    PushUpdate(
                        key: "daily:" + k, at: at, target: .node(BoschNode.heatPumpId), path: ["daily", name],
                        value: .set(["value": .number(n), "day": .string(day)])))
            } else {
                event.unknown.append(k)
                event.updates.append(
                    PushUpdate(
                        key: "daily:" + k, at: at, target: .device, path: ["vendor", "daily", k],
                        value: .set(["value": .number(n), "day": .string(day)])))
            }
        }
    }
}

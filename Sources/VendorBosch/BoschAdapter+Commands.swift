import HeatbridgeCore

/// How each capability is sent and read back (the handlers in `BoschAdapter+Capabilities.swift` call these).
extension BoschAdapter {
    func patchHeatCurve(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let p = command.params
        let body = BoschWire.HeatCurve(
            controlType: p["control_type"]?.stringValue, minFlowTemperature: p["min_flow"]?.doubleValue,
            maxFlowTemperature: p["max_flow"]?.doubleValue, basepointTemperature: p["basepoint"]?.doubleValue,
            endpointTemperature: p["endpoint"]?.doubleValue, roomInfluenceTemperature: p["room_influence_k"]?.doubleValue,
            roomTemperatureOffset: p["room_offset_k"]?.doubleValue)
        _ = try await call(
            "PATCH", BoschWire.Path.heatCurve(device.vendorId, BoschNode.circuit(command.node)), body: BoschWire.encode(body),
            remoteControl: true)
        return "heat curve set: "
            + (p.objectValue ?? [:]).keys.sorted().map { "\($0) \(p[$0]!.stringValue ?? JSONValue.format(p[$0]!.doubleValue ?? 0))" }
            .joined(separator: ", ")
    }

    func patchCharge(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let circuit = BoschNode.circuit(command.node)
        let start = command.params["action"]?.stringValue == "start"
        let minutes = command.params["duration_min"]?.intValue
        let body = BoschWire.DhwCharge(
            chargeStatus: start ? BoschWire.chargeStart : BoschWire.chargeStop,
            chargeDuration: start ? minutes : nil)
        _ = try await call("PATCH", BoschWire.Path.charge(device.vendorId, circuit), body: BoschWire.encode(body), remoteControl: true)
        return start ? "charge started for \(minutes ?? 0) min" : "charge stopped"
    }

    func setDateTime(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let gw = device.vendorId
        guard let value = command.params["date_time"]?.stringValue ?? clock.map({ Self.localDateTime($0.now(), localTime) }) else {
            throw CloudError(.rejected, message: "no clock to sync the gateway to")
        }
        _ = try await call("PUT", BoschWire.Path.dateTime(gw), body: BoschWire.encode(BoschWire.DateTime(dateTime: value)), remoteControl: true)
        await answers?.forget(BoschWire.Path.dateTime(gw))
        return "gateway clock set to \(value)"
    }

    func detect(device: DeviceSnapshot) async throws(CloudError) -> String? {
        _ = try await call("POST", BoschWire.Path.components(device.vendorId))
        // The next poll reads the components again instead of the hour-old list.
        await answers?.forget(BoschWire.Path.components(device.vendorId))
        return "system detection started; components are read again on the next poll"
    }

    func setSilentMode(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let mode = command.params["mode"]?.stringValue ?? BoschWire.silentModeOff
        _ = try await call(
            "PATCH", BoschWire.Path.silentMode(device.vendorId), body: BoschWire.encode(BoschWire.SilentMode(silentMode: mode)),
            remoteControl: true)
        return "silent mode \(mode.lowercased())"
    }

    func holiday(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let p = command.params
        let gw = device.vendorId
        if p["action"]?.stringValue == "delete", let id = p["id"]?.stringValue {
            _ = try await call("DELETE", BoschWire.Path.holidayMode(gw, id), remoteControl: true)
            return "holiday mode \(id) deleted"
        }
        let h = BoschWire.HolidayMode(
            startDate: p["start"]?.stringValue ?? "", endDate: p["end"]?.stringValue ?? "",
            assignedTo: p["assigned_to"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            hcMode: p["hc_mode"]?.stringValue, dhwMode: p["dhw_mode"]?.stringValue)
        let body = try await call("POST", BoschWire.Path.holidayModes(gw), body: BoschWire.encode(h), remoteControl: true)
        let id = BoschWire.decode(BoschWire.HolidayMode.self, body)?.id
        return "holiday mode \(id ?? "") \(h.startDate)…\(h.endDate) for \(h.assignedTo.joined(separator: ", "))"
    }

    /// The auto mode's time program (`program`) or level temperatures (`levels`).
    func patchAutoMode(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let p = command.params
        let program = p["program"]?.stringValue
        let levels = program == nil ? (p.objectValue ?? [:]).compactMapValues(\.doubleValue) : nil
        let body = BoschWire.HeatingCircuitPatch(autoModeSettings: .init(timeProgramId: program, temperatureLevels: levels))
        _ = try await call(
            "PATCH", BoschWire.Path.heatingCircuit(device.vendorId, BoschNode.circuit(command.node)), body: BoschWire.encode(body),
            remoteControl: true)
        if let program { return "time program \(program) selected" }
        return "levels set: " + (levels ?? [:]).keys.sorted().map { "\($0) \(JSONValue.format(levels![$0]!)) °C" }.joined(separator: ", ")
    }

    /// A heating circuit's operation mode (`mode`) or manual setpoint (`setpoint`).
    func patchHeatingMode(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let circuit = BoschNode.circuit(command.node)
        let patch: BoschWire.HeatingCircuitPatch
        if let mode = command.params["mode"]?.stringValue {
            patch = .init(operationMode: mode)
        } else {
            patch = .init(manualModeSettings: .init(setPointTemperature: command.params["setpoint"]?.doubleValue))
        }
        _ = try await call("PATCH", BoschWire.Path.heatingCircuit(device.vendorId, circuit), body: BoschWire.encode(patch), remoteControl: true)
        // The cloud stores a mode change while an overriding mode (holiday, away, boost…) is active, but the
        // circuit ignores it until that mode ends: say so instead of pretending it took effect.
        let overriding = device.nodes[command.node]?["overriding_modes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var message =
            command.params["mode"] != nil
            ? "operation mode set to \(command.params["mode"]!.stringValue!.lowercased())"
            : "manual setpoint set to \(JSONValue.format(command.params["setpoint"]?.doubleValue ?? 0)) °C"
        if !overriding.isEmpty {
            message += "; not effective while \(overriding.joined(separator: ", ")) is active"
        } else if command.params["setpoint"] != nil, device.nodes[command.node]?["operation_mode"]?.stringValue != "manual" {
            message += "; it applies in manual mode"
        }
        return message
    }

    func patchDhwCircuit(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let circuit = BoschNode.circuit(command.node)
        var patch = BoschWire.DhwCircuitPatch()
        if let mode = command.params["mode"]?.stringValue {
            patch.operationMode = mode
        } else {
            let settings = BoschWire.DhwModeSettings(
                startSetPointTemperature: command.params["start"]?.doubleValue,
                stopSetPointTemperature: command.params["stop"]?.doubleValue)
            switch command.params["level"]?.stringValue {
            case "eco": patch.ecoModeSettings = settings
            case "low": patch.lowModeSettings = settings
            default: patch.highModeSettings = settings
            }
        }
        _ = try await call("PATCH", BoschWire.Path.dhwCircuit(device.vendorId, circuit), body: BoschWire.encode(patch), remoteControl: true)
        if let mode = command.params["mode"]?.stringValue { return "DHW mode set to \(mode.lowercased())" }
        return
            "DHW \(command.params["level"]?.stringValue ?? "") level set to \(JSONValue.format(command.params["start"]?.doubleValue ?? 0))…\(JSONValue.format(command.params["stop"]?.doubleValue ?? 0)) °C"
    }

    /// The program path and current program of a heating or DHW circuit, read fresh from the cloud.
    func currentProgram(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> (path: String, tp: String, program: WeekSchedule) {
        if BoschNode.isDhwCircuit(command.node) {
            let circuit = BoschNode.circuit(command.node)
            let d = try await get(BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(device.vendorId, circuit), remoteControl: true)
            let tp = d.autoModeSettings?.timeProgramId ?? BoschWire.defaultDhwProgram
            let path = BoschWire.Path.dhwTimeProgram(device.vendorId, circuit, tp)
            let p = try await get(BoschWire.TimeProgram.self, path, remoteControl: true)
            return (path, tp, Self.schedule(p, levels: Self.dhwLevels(d)))
        }
        let circuit = BoschNode.circuit(command.node)
        let hc = try await get(BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(device.vendorId, circuit), remoteControl: true)
        guard let tp = hc.autoModeSettings?.timeProgramId else {
            throw CloudError(.rejected, message: "\(command.node) has no selected time program")
        }
        let path = BoschWire.Path.heatingTimeProgram(device.vendorId, circuit, tp)
        let p = try await get(BoschWire.TimeProgram.self, path, remoteControl: true)
        return (path, tp, Self.schedule(p, levels: hc.autoModeSettings?.temperatureLevels ?? [:]))
    }

    /// PUT of the whole program, after checking it was not changed in the cloud since the edit was made.
    /// The budget spaces PUTs of one program 10 s apart, as documented.
    func writeSchedule(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        guard let wanted = WeekSchedule(json: ["days": command.params["days"] ?? .null, "levels": [:]]) else {
            throw CloudError(.rejected, message: "stored schedule parameters are unreadable")
        }
        let (path, tp, now) = try await currentProgram(command, device: device)
        if let base = command.params["base_version"]?.stringValue, command.params["force"]?.boolValue != true,
            now.json["version"]?.stringValue != base
        {
            throw CloudError(
                .conflict,
                message:
                    "the program changed in the cloud since version \(base) (now \(now.json["version"]?.stringValue ?? "?")); resend with the new version or \"force\":true"
            )
        }
        var points: [BoschWire.SwitchPoint] = []
        for (d, day) in wanted.days.enumerated() {
            for p in day { points.append(.init(dayOfWeek: BoschWire.days[d], time: p.minute, setpoint: p.level)) }
        }
        _ = try await call("PUT", path, body: BoschWire.encode(BoschWire.TimeProgram(id: tp, switchPoints: points)), remoteControl: true)
        return "time program \(tp) written (\(points.count) switch points)"
    }

    /// Bosch reads back every command whose repetition would matter; what `confirm` cannot tell (the clock,
    /// a detection run, a node it does not know) does no harm sent twice.
    public func resendWhenUnconfirmed(_ command: Command) -> Bool { true }

    /// What a `target` command changes, decided against the circuit as it is now: a heating circuit in manual
    /// takes the temperature as its manual setpoint, in auto as the temperature of the level its program is in
    /// now (that level for every period of it — the API has no override until the next switch point — and the
    /// circuit stays in auto); a DHW circuit on a fixed level as that level's stop, in auto as the stop of the
    /// program's level now, its start keeping its distance below. Off has no target.
    func resolveTarget(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Command {
        guard let t = command.params["temperature"]?.doubleValue else { throw CloudError(.rejected, message: "no target temperature") }
        var c = command
        let circuit = BoschNode.circuit(command.node)
        func programLevel() throws(CloudError) -> String {
            guard let program = device.schedules[command.node], let now = clock?.now(), let level = program.now(at: now, in: localTime)?.level else {
                throw CloudError(.rejected, message: "\(command.node) follows its program, whose level now is not known yet")
            }
            return level
        }
        func off() -> CloudError { CloudError(.rejected, message: "\(command.node) is off: it has no target temperature; set a mode first") }
        if BoschNode.isHeatingCircuit(command.node) {
            let hc = try await get(BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(device.vendorId, circuit), remoteControl: true)
            switch hc.operationMode?.lowercased() {
            case "manual":
                c.capability = "setpoint"
                c.params = ["setpoint": .number(t)]
            case "auto":
                let level = try programLevel()
                let current = (hc.autoModeSettings?.temperatureLevels ?? [:]).mapValues(JSONValue.number)
                do {
                    c.params = try Self.validateLevels([level: .number(t)], current: current)
                } catch {
                    throw CloudError(.rejected, message: "\(level) level: \(error.message)")
                }
                c.capability = "levels"
            default: throw off()
            }
            return c
        }
        let d = try await get(BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(device.vendorId, circuit), remoteControl: true)
        let mode = d.operationMode?.lowercased() ?? ""
        let level: String
        switch mode {
        case "eco", "low", "high": level = mode
        case "auto": level = try programLevel()
        default: throw off()
        }
        let settings = level == "eco" ? d.ecoModeSettings : level == "low" ? d.lowModeSettings : d.highModeSettings
        guard let start = settings?.startSetPointTemperature, let stop = settings?.stopSetPointTemperature else {
            throw CloudError(.rejected, message: "\(command.node) has no \(level) level")
        }
        let newStart = max(BoschWire.dhwSetpointRange.lowerBound, min(start, t - max(stop - start, 1)))
        guard newStart < t else { throw CloudError(.rejected, message: "\(JSONValue.format(t)) °C leaves no room for the charge to start below it") }
        c.capability = "setpoint"
        c.params = ["level": .string(level), "start": .number(newStart), "stop": .number(t)]
        return c
    }

    func confirmHeatCurve(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        let c = Self.curveJSON(
            try await get(
                BoschWire.HeatCurve.self, BoschWire.Path.heatCurve(device.vendorId, BoschNode.circuit(command.node)),
                remoteControl: true))
        return (command.params.objectValue ?? [:]).allSatisfy { k, v in
            k == "control_type" ? c[k]?.stringValue == v.stringValue?.lowercased() : c[k] == v
        }
    }

    /// Mode, manual setpoint, time program or levels of a heating circuit, by the parameters the command has.
    func confirmHeatingCircuit(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        let hc = try await get(
            BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(device.vendorId, BoschNode.circuit(command.node)),
            remoteControl: true)
        let p = command.params
        if let program = p["program"]?.stringValue { return hc.autoModeSettings?.timeProgramId == program }
        if let mode = p["mode"]?.stringValue { return hc.operationMode?.uppercased() == mode }
        if let setpoint = p["setpoint"]?.doubleValue { return hc.manualModeSettings?.setPointTemperature == setpoint }
        let now = hc.autoModeSettings?.temperatureLevels ?? [:]
        return (p.objectValue ?? [:]).allSatisfy { now[$0.key] == $0.value.doubleValue }
    }

    /// Mode or a level's setpoints of a DHW circuit.
    func confirmDhwCircuit(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        let d = try await get(
            BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(device.vendorId, BoschNode.circuit(command.node)),
            remoteControl: true)
        if let mode = command.params["mode"]?.stringValue { return d.operationMode?.uppercased() == mode }
        let s: BoschWire.DhwModeSettings?
        switch command.params["level"]?.stringValue {
        case "eco": s = d.ecoModeSettings
        case "low": s = d.lowModeSettings
        default: s = d.highModeSettings
        }
        return s?.startSetPointTemperature == command.params["start"]?.doubleValue
            && s?.stopSetPointTemperature == command.params["stop"]?.doubleValue
    }

    func confirmCharge(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        let now = try await get(
            BoschWire.DhwCharge.self, BoschWire.Path.charge(device.vendorId, BoschNode.circuit(command.node)), remoteControl: true)
        if command.params["action"]?.stringValue == "start" {
            return now.chargeStatus == BoschWire.chargeStart && now.chargeDuration == command.params["duration_min"]?.intValue
        }
        return now.chargeStatus == BoschWire.chargeStop
    }
}

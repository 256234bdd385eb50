import HeatbridgeCore

/// Every Bosch capability, one handler each, per node kind: the one place they are listed. A handler holds its
/// validation, what it means for the installer's limits, what a lease puts back, how it is sent and how it is read
/// back; the adapter's command interface below only looks them up.
extension BoschAdapter {
    typealias Handler = CapabilityHandler<BoschAdapter>

    static let heatingCircuit = CapabilityTable<BoschAdapter>([
        schedule(),
        Handler(
            "mode",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["mode"])
                return ["mode": .string(try CapabilityValidation.oneOf(i.body, "mode", BoschWire.heatingModes))]
            }, facts: Handler.noFacts, restore: operationMode,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchHeatingMode(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmHeatingCircuit(c, device: d) }),
        Handler(
            "setpoint",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["setpoint"])
                return ["setpoint": .number(try CapabilityValidation.temperature(i.body, "setpoint", BoschWire.roomSetpointRange))]
            }, facts: { p in CommandFacts(setpoints: p["setpoint"]?.doubleValue.map { [.init("setpoint", $0)] } ?? []) },
            restore: { node in node["manual_setpoint"]?.doubleValue.map { ["setpoint": .number($0)] } },
            execute: { a, c, d, _ throws(CloudError) in try await a.patchHeatingMode(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmHeatingCircuit(c, device: d) }),
        Handler(
            "heat-curve", validate: { i throws(CommandRejection) in try validateHeatCurve(i.body, current: i.state["heat_curve"]) },
            facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchHeatCurve(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmHeatCurve(c, device: d) }),
        Handler(
            "program",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["program"])
                guard i.state["time_program"]?.stringValue != nil else {
                    throw CommandRejection(.unsupported, "\(i.node) has no auto-mode time program (ISRC or older controller)")
                }
                return ["program": .string(try CapabilityValidation.oneOf(i.body, "program", BoschWire.heatingProgramIds))]
            }, facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchAutoMode(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmHeatingCircuit(c, device: d) }),
        Handler(
            "levels", validate: { i throws(CommandRejection) in try validateLevels(i.body, current: i.state["levels"]?.objectValue) },
            facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchAutoMode(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmHeatingCircuit(c, device: d) }),
        // A heating target is a room setpoint whichever setting it lands in (the manual setpoint or a level).
        target(
            range: BoschWire.roomSetpointRange,
            facts: { p in CommandFacts(setpoints: p["temperature"]?.doubleValue.map { [.init("setpoint", $0)] } ?? []) }),
    ])

    static let dhwCircuit = CapabilityTable<BoschAdapter>([
        Handler(
            "charge",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.startStop(
                    i.body, duration: "duration_min", maxMinutes: maxChargeMinutes, defaultMinutes: chargeDuration.initial)
            },
            facts: { p in p["action"]?.stringValue == "stop" ? CommandFacts(hotWaterTarget: 0) : CommandFacts() }, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchCharge(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmCharge(c, device: d) },
            // Its charge-status event reports it while push is live: no read-back then.
            confirmedByEvents: true, localDefault: chargeDuration, startsHotWaterCharge: ["action": "start"]),
        Handler(
            "mode",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["mode"])
                return ["mode": .string(try CapabilityValidation.oneOf(i.body, "mode", BoschWire.dhwModes))]
            }, facts: { p in p["mode"]?.stringValue?.lowercased() == "off" ? CommandFacts(hotWaterTarget: 0) : CommandFacts() },
            restore: operationMode,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchDhwCircuit(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmDhwCircuit(c, device: d) }),
        Handler(
            "setpoint",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["level", "start", "stop"])
                let level = try CapabilityValidation.oneOf(i.body, "level", BoschWire.dhwLevelModes).lowercased()
                let start = try CapabilityValidation.temperature(i.body, "start", BoschWire.dhwSetpointRange)
                let stop = try CapabilityValidation.temperature(i.body, "stop", BoschWire.dhwSetpointRange)
                guard start < stop else {
                    throw CommandRejection(
                        .outOfRange,
                        "\"start\" (\(JSONValue.format(start))) must be below \"stop\" (\(JSONValue.format(stop))): the charge starts below and stops at the upper value"
                    )
                }
                return ["level": .string(level), "start": .number(start), "stop": .number(stop)]
            }, facts: { p in CommandFacts(hotWaterTarget: p["stop"]?.doubleValue) }, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.patchDhwCircuit(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirmDhwCircuit(c, device: d) }),
        schedule(),
        target(range: BoschWire.dhwSetpointRange, facts: { p in CommandFacts(hotWaterTarget: p["temperature"]?.doubleValue) }),
    ])

    static let system = CapabilityTable<BoschAdapter>([
        Handler(
            "silent-mode",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["mode"])
                guard i.state["silent_mode"]?.stringValue != nil else { throw CommandRejection(.unsupported, "this gateway has no silent mode") }
                return ["mode": .string(try CapabilityValidation.oneOf(i.body, "mode", BoschWire.silentModes))]
            }, facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.setSilentMode(c, device: d) },
            confirm: { a, c, d throws(CloudError) in
                try await a.systemState(d.vendorId)["silent_mode"]?.stringValue == c.params["mode"]?.stringValue?.lowercased()
            }),
        Handler(
            "holiday",
            validate: { i throws(CommandRejection) in
                let out = try validateHoliday(i.body, device: i.device)
                // A holiday that is over already would be stored and never act: refused, naming the field.
                if out["action"]?.stringValue == "create", let now = i.now, let localTime = i.localTime,
                    let end = out["end"]?.stringValue, let endDay = Timestamp.day(end), endDay < localTime.components(now).day
                {
                    throw CommandRejection(.outOfRange, "\"end\" \(end) is in the past: the holiday would never take effect")
                }
                return out
            }, facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.holiday(c, device: d) },
            confirm: { a, c, d throws(CloudError) in
                let holidays = try await a.systemState(d.vendorId)["holidays"]?.arrayValue ?? []
                if c.params["action"]?.stringValue == "delete" { return !holidays.contains { $0["id"] == c.params["id"] } }
                return holidays.contains { $0["start"] == c.params["start"] && $0["end"] == c.params["end"] }
            },
            // It names the gateway's circuits: checked when it runs.
            checkedAtConfig: { _ in false }),
        // Setting the clock again or re-running detection does no harm: not read back (`nil`), sent again.
        Handler(
            "date-time", validate: { i throws(CommandRejection) in try validateDateTime(i.body, device: i.device) },
            facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.setDateTime(c, device: d) }, confirm: { _, _, _ in nil }),
        Handler(
            "detect",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, [])
                return [:]
            }, facts: Handler.noFacts, restore: nil,
            execute: { a, _, d, _ throws(CloudError) in try await a.detect(device: d) }, confirm: { _, _, _ in nil }),
    ])

    /// The table of a node kind (`BoschNode.kind`): heat source nodes take no commands.
    static func table(_ node: String) -> CapabilityTable<BoschAdapter>? {
        switch BoschNode.kind(of: node) {
        case "hc": return heatingCircuit
        case "dhw": return dhwCircuit
        case "system": return system
        default: return nil
        }
    }

    /// A circuit's week program, written whole (heating and DHW alike).
    static func schedule() -> Handler {
        Handler(
            "schedule",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.weekSchedule(i.body, current: i.device.schedules[i.node], limits: scheduleLimits)
            }, facts: Handler.noFacts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.writeSchedule(c, device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.currentProgram(c, device: d).program.json["days"] == c.params["days"] },
            // It replaces the program it was read from: checked when it runs.
            checkedAtConfig: { _ in false })
    }

    /// `{"temperature":21}`: what the circuit aims at now. Checked here against the range; which setting it
    /// changes is decided when it runs, against the circuit read fresh (`resolveTarget`), and then sent and read
    /// back as that capability.
    static func target(range: ClosedRange<Double>, facts: @escaping @Sendable (JSONValue) -> CommandFacts) -> Handler {
        Handler(
            "target",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, ["temperature"])
                return ["temperature": .number(try CapabilityValidation.temperature(i.body, "temperature", range))]
            }, facts: facts, restore: nil,
            execute: { a, c, d, _ throws(CloudError) in try await a.execute(try await a.resolveTarget(c, device: d), device: d) },
            confirm: { a, c, d throws(CloudError) in try await a.confirm(try await a.resolveTarget(c, device: d), device: d) })
    }

    /// Longest DHW charge the bridge asks for; longer requests are almost always a unit mistake (s vs min).
    static let maxChargeMinutes = 240

    /// A charge without `duration_min` (Home Assistant's "charge now" button) lasts what the installer set with
    /// `dhw<N>/charge-duration/set` `{"minutes": N}`: the bridge keeps it, shows it as `charge.default_duration_min`
    /// and announces it to Home Assistant as a number.
    static let chargeDuration = LocalDefault(
        member: "duration_min", onlyWhen: (member: "action", value: "start"), setting: "charge-duration",
        settingMember: "minutes", range: 1...maxChargeMinutes, initial: 60, stateMember: "charge", stateKey: "default_duration_min",
        storageKey: "charge_duration_min", done: { "charges without duration_min now last \($0) min" },
        entity: (name: "Hot water charge duration", id: "charge_duration", min: 5, step: 5, unit: "min"))

    /// Leasable: the mode a circuit is in now (the API has no end time for it).
    static let operationMode: @Sendable (JSONValue) -> JSONValue? = { node in node["operation_mode"]?.stringValue.map { ["mode": .string($0)] } }

    // MARK: the adapter's command interface, through the tables

    public func capabilities(of node: String) -> Set<String> { Self.table(node)?.names ?? [] }

    public func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        try Self.validate(ValidationInput(body: body, node: node, device: device, now: clock?.now(), localTime: localTime), capability: capability)
    }

    /// Also what a trigger action is checked with at config time (`BoschModule.checkAction`, without a clock).
    static func validate(_ input: ValidationInput, capability: String) throws(CommandRejection) -> JSONValue {
        guard input.device.nodes[input.node] != nil else {
            let known = input.device.nodes.keys.sorted().joined(separator: ", ")
            throw CommandRejection(
                .unknownTarget, "device \"\(input.device.id)\" has no node \"\(input.node)\"; nodes: \(known.isEmpty ? "none known" : known)")
        }
        guard let table = table(input.node) else { throw CommandRejection(.unsupported, "\"\(capability)\" is not supported on \(input.node)") }
        return try table.handler(capability, node: input.node).validate(input)
    }

    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts {
        Self.table(node)?[capability]?.facts(params) ?? CommandFacts()
    }

    public func localDefaults(of node: String) -> [LocalDefault] { Self.table(node)?.localDefaults ?? [] }

    public func hotWaterCharge(node: String) -> (capability: String, params: [String: JSONValue])? { Self.table(node)?.hotWaterCharge }

    public func restoreParams(node: String, capability: String, device: DeviceSnapshot) -> JSONValue? {
        guard let state = device.nodes[node], let restore = Self.table(node)?[capability]?.restore else { return nil }
        return restore(state)
    }

    public func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        guard let h = Self.table(command.node)?[command.capability] else {
            throw CloudError(.rejected, message: "\(command.capability) is not a Bosch capability of \(command.node)")
        }
        return try await h.execute(self, command, device) { _, _ in }
    }

    public func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        guard let h = Self.table(command.node)?[command.capability] else { return nil }
        return try await h.confirm(self, command, device)
    }
}

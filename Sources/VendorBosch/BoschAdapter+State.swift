import HeatbridgeCore

/// Bosch wire types mapped to node state and week programs, and the gateway's local time.
extension BoschAdapter {
    /// The box's local wall time at `t`, as seconds since 1970-01-01 00:00 local.
    public static func localWall(_ t: EpochSeconds, _ local: any LocalTime) -> EpochSeconds {
        let c = local.components(t)
        return EpochSeconds(c.day * 86_400 + Int64(c.minute) * 60) + (t - (t / 60).rounded(.down) * 60)
    }

    /// `2026-11-22T10:00:00`: the box's local time at `t` in the gateway's format.
    public static func localDateTime(_ t: EpochSeconds, _ local: any LocalTime) -> String {
        String(Timestamp.iso8601(localWall(t, local)).dropLast())
    }

    /// A DHW program's levels: each level's stop temperature (what the tank is heated to).
    static func dhwLevels(_ dhw: BoschWire.DhwCircuit) -> [String: Double] {
        var out: [String: Double] = [:]
        if let v = dhw.ecoModeSettings?.stopSetPointTemperature { out["eco"] = v }
        if let v = dhw.lowModeSettings?.stopSetPointTemperature { out["low"] = v }
        if let v = dhw.highModeSettings?.stopSetPointTemperature { out["high"] = v }
        return out
    }

    static func curveJSON(_ c: BoschWire.HeatCurve) -> JSONValue {
        [
            "control_type": .string(c.controlType?.lowercased()), "min_flow": .number(c.minFlowTemperature),
            "max_flow": .number(c.maxFlowTemperature),
            "basepoint": .number(c.basepointTemperature), "endpoint": .number(c.endpointTemperature),
            "room_influence_k": .number(c.roomInfluenceTemperature), "room_offset_k": .number(c.roomTemperatureOffset),
        ]
    }

    static func holidayJSON(_ h: BoschWire.HolidayMode) -> JSONValue {
        [
            "id": .string(h.id), "start": .string(h.startDate), "end": .string(h.endDate), "assigned_to": .array(h.assignedTo.map { .string($0) }),
            "hc_mode": .string(h.hcMode?.lowercased()), "dhw_mode": .string(h.dhwMode?.lowercased()),
        ]
    }

    /// `hc` + `1` → `hc1`; an id already spelled `hc1` stays as it is.
    static func nodeId(_ prefix: String, _ circuitId: String) -> String {
        TopicLayout.sanitize(circuitId.lowercased().hasPrefix(prefix) ? circuitId : prefix + circuitId)
    }

    /// Bosch switch points → the neutral week program (unknown day names are ignored).
    static func schedule(_ p: BoschWire.TimeProgram, levels: [String: Double]) -> WeekSchedule {
        var days: [[WeekSchedule.SwitchPoint]] = Array(repeating: [], count: 7)
        for sp in p.switchPoints {
            guard let d = BoschWire.days.firstIndex(of: sp.dayOfWeek), (0..<1440).contains(sp.time) else { continue }
            days[d].append(WeekSchedule.SwitchPoint(minute: sp.time, level: sp.setpoint))
        }
        return WeekSchedule(days: days, levels: levels)
    }

    static func nodeState(_ hc: BoschWire.HeatingCircuit) -> JSONValue {
        var levels: [String: JSONValue] = [:]
        for (k, v) in hc.autoModeSettings?.temperatureLevels ?? [:] { levels[k] = .number(v) }
        return [
            "kind": "heating_circuit",
            "operation_mode": .string(hc.operationMode?.lowercased()),
            "setpoint": .number(hc.currentSetPointTemperature),
            "room_temperature": .number(hc.roomTemperature),
            "manual_setpoint": .number(hc.manualModeSettings?.setPointTemperature),
            "time_program": .string(hc.autoModeSettings?.timeProgramId),
            "levels": levels.isEmpty ? .null : .object(levels),
            "overriding_modes": .array((hc.overridingModes ?? []).filter(\.active).map { .string($0.mode.lowercased()) }),
        ]
    }

    static func nodeState(_ dhw: BoschWire.DhwCircuit, charge: BoschWire.DhwCharge) -> JSONValue {
        func level(_ s: BoschWire.DhwModeSettings?) -> JSONValue {
            guard let s else { return .null }
            return ["start": .number(s.startSetPointTemperature), "stop": .number(s.stopSetPointTemperature)]
        }
        let active = charge.chargeStatus.uppercased() == BoschWire.chargeStart
        // The temperature a fixed level charges to (its stop); in auto the bridge's `schedule_now` says which
        // level the program is in, and off has none.
        let mode = dhw.operationMode?.lowercased()
        let target: Double? =
            switch mode {
            case "eco": dhw.ecoModeSettings?.stopSetPointTemperature
            case "low": dhw.lowModeSettings?.stopSetPointTemperature
            case "high": dhw.highModeSettings?.stopSetPointTemperature
            default: nil
            }
        return [
            "kind": "dhw_circuit",
            "target": .number(target),
            "operation_mode": .string(dhw.operationMode?.lowercased()),
            "temperature": .number(dhw.actualTemperature),
            "levels": ["eco": level(dhw.ecoModeSettings), "low": level(dhw.lowModeSettings), "high": level(dhw.highModeSettings)],
            "charge": [
                "active": .bool(active), "duration_min": .int(charge.chargeDuration),
                "remaining_min": .int(active ? charge.chargeRemainingTime : 0),
            ],
        ]
    }
}

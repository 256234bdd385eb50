import HeatbridgeCore

/// The longer validations of Bosch capabilities (the handlers in `BoschAdapter+Capabilities.swift` call them).
extension BoschAdapter {
    // MARK: commands

    /// Week program limits. INFERRED: the HEMS-role docs allow 2 heating switch points per day on heat pumps;
    /// other controllers take more. 6 per day on a 15-minute grid is what the km200-family gateways accept.
    static let scheduleLimits = CapabilityValidation.ScheduleLimits(maxPointsPerDay: 6, gridMinutes: 15)

    /// `{"date_time":"2026-11-22T10:00:00"}` (the gateway's local time) or `{"sync":true}` (the box's local time
    /// when the command runs, so a queued sync is not stale).
    static func validateDateTime(_ body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["date_time", "sync"])
        guard device.nodes[BoschNode.systemId]?["date_time"]?.stringValue != nil else {
            throw CommandRejection(.unsupported, "this gateway has no readable date/time")
        }
        switch (body["date_time"], body["sync"]) {
        case (nil, let sync?):
            guard sync.boolValue == true else { throw CommandRejection(.invalidPayload, "\"sync\" must be true (or send \"date_time\")") }
            return ["sync": true]
        case (let v?, nil):
            guard let text = v.stringValue, text.count == 19, let t = Timestamp.parse(text + "Z") else {
                throw CommandRejection(
                    .invalidPayload, "\"date_time\" must be local time YYYY-MM-DDTHH:MM:SS without a zone, e.g. 2026-11-22T10:00:00")
            }
            // The gateway refuses nonsense dates; so do we, before any call.
            guard (Timestamp.parse("2020-01-01T00:00:00Z")!..<Timestamp.parse("2100-01-01T00:00:00Z")!).contains(t) else {
                throw CommandRejection(.outOfRange, "\"date_time\" \(text) is outside 2020…2099")
            }
            return ["date_time": .string(text)]
        default:
            throw CommandRejection(.invalidPayload, "send either \"date_time\":\"YYYY-MM-DDTHH:MM:SS\" or \"sync\":true")
        }
    }

    /// `{"comfort":21.5,"eco":17}`: the auto-mode level temperatures, either or both, 5…30 °C in 0.5 °C steps,
    /// each level below the next warmer one (the circuit's current values count for the levels not sent).
    static func validateLevels(_ body: [String: JSONValue], current: [String: JSONValue]?) throws(CommandRejection) -> JSONValue {
        guard let current, !current.isEmpty else { throw CommandRejection(.unsupported, "this circuit has no auto-mode levels") }
        if let unknown = body.keys.sorted().first(where: { current[$0] == nil }) {
            throw CommandRejection(.invalidPayload, "unknown level \"\(unknown)\"; levels: \(current.keys.sorted().joined(separator: ", "))")
        }
        var out: [String: JSONValue] = [:]
        for k in body.keys.sorted() { out[k] = .number(try CapabilityValidation.temperature(body, k, BoschWire.roomSetpointRange)) }
        guard !out.isEmpty else { throw CommandRejection(.invalidPayload, "give at least one of \(current.keys.sorted().joined(separator: ", "))") }
        // Levels are ordered from cold to warm as the gateway names them: eco < comfort (< comfort2 …).
        func value(_ k: String) -> Double? { out[k]?.doubleValue ?? current[k]?.doubleValue }
        let order = ["eco", "comfort", "comfort2"].filter { value($0) != nil }
        for (lo, hi) in zip(order, order.dropFirst()) where value(lo)! >= value(hi)! {
            throw CommandRejection(
                .outOfRange, "\"\(lo)\" (\(JSONValue.format(value(lo)!))) must be below \"\(hi)\" (\(JSONValue.format(value(hi)!)))")
        }
        return .object(out)
    }

    /// Heat-curve fields to change (°C; the room terms in Kelvin), checked against each other with the
    /// current values for the ones not sent.
    static func validateHeatCurve(_ body: [String: JSONValue], current: JSONValue?) throws(CommandRejection) -> JSONValue {
        guard let current, current != .null else { throw CommandRejection(.unsupported, "this circuit has no heat curve") }
        guard current["control_type"]?.stringValue != "isrc" else {
            throw CommandRejection(.unsupported, "an ISRC (room-controlled) circuit has no heat curve")
        }
        let keys: [(String, ClosedRange<Double>)] = [
            ("min_flow", BoschWire.flowRange), ("max_flow", BoschWire.flowRange),
            ("basepoint", BoschWire.flowRange), ("endpoint", BoschWire.flowRange),
            ("room_influence_k", BoschWire.roomInfluenceRange), ("room_offset_k", BoschWire.roomOffsetRange),
        ]
        try CapabilityValidation.allowOnly(body, Set(keys.map(\.0) + ["control_type"]))
        var out: [String: JSONValue] = [:]
        for (k, range) in keys {
            if let v = try CapabilityValidation.optionalTemperature(body, k, range) { out[k] = .number(v) }
        }
        if body["control_type"] != nil {
            out["control_type"] = .string(try CapabilityValidation.oneOf(body, "control_type", ["WDCOPTIMIZED", "WDCSIMPLIFIED"]))
        }
        guard !out.isEmpty else {
            throw CommandRejection(.invalidPayload, "give at least one of \(keys.map(\.0).joined(separator: ", ")), control_type")
        }
        func value(_ k: String) -> Double? { out[k]?.doubleValue ?? current[k]?.doubleValue }
        if let lo = value("min_flow"), let hi = value("max_flow"), lo >= hi {
            throw CommandRejection(.outOfRange, "\"min_flow\" (\(JSONValue.format(lo))) must be below \"max_flow\" (\(JSONValue.format(hi)))")
        }
        if let b = value("basepoint"), let e = value("endpoint"), b >= e {
            throw CommandRejection(.outOfRange, "\"basepoint\" (\(JSONValue.format(b))) must be below \"endpoint\" (\(JSONValue.format(e)))")
        }
        return .object(out)
    }

    /// `{"action":"create","start":"2026-12-20","end":"2027-01-03","assigned_to":["hc1","dhw1"],"hc_mode":"eco",
    /// "dhw_mode":"off"}` or `{"action":"delete","holiday_id":"hm1"}`.
    static func validateHoliday(_ body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        guard let existing = device.nodes[BoschNode.systemId]?["holidays"]?.arrayValue else {
            throw CommandRejection(.unsupported, "this gateway has no holiday modes")
        }
        let action = try CapabilityValidation.oneOf(body, "action", ["create", "delete"])
        if action == "delete" {
            // "holiday_id", since "id" is every command's own correlation id.
            try CapabilityValidation.allowOnly(body, ["action", "holiday_id"])
            guard let id = body["holiday_id"]?.stringValue else { throw CommandRejection(.invalidPayload, "missing \"holiday_id\" (e.g. hm1)") }
            let ids = existing.compactMap { $0["id"]?.stringValue }
            guard ids.contains(id) else {
                throw CommandRejection(.unknownTarget, "no holiday mode \"\(id)\"; existing: \(ids.isEmpty ? "none" : ids.joined(separator: ", "))")
            }
            return ["action": "delete", "id": .string(id)]
        }
        try CapabilityValidation.allowOnly(body, ["action", "start", "end", "assigned_to", "hc_mode", "dhw_mode"])
        var days: [String: Int64] = [:]
        for k in ["start", "end"] {
            guard let s = body[k]?.stringValue else { throw CommandRejection(.invalidPayload, "missing \"\(k)\" (YYYY-MM-DD)") }
            guard let d = Timestamp.day(s) else { throw CommandRejection(.invalidPayload, "\"\(k)\" must be a date YYYY-MM-DD, got \"\(s)\"") }
            days[k] = d
        }
        guard days["end"]! >= days["start"]! else {
            throw CommandRejection(.outOfRange, "\"end\" \(body["end"]!.stringValue!) is before \"start\" \(body["start"]!.stringValue!)")
        }
        let circuits = device.nodes.keys.filter(BoschNode.isCircuit).sorted()
        var assigned = circuits
        if let a = body["assigned_to"] {
            guard let list = a.arrayValue?.compactMap(\.stringValue), list.count == a.arrayValue?.count, !list.isEmpty else {
                throw CommandRejection(.invalidPayload, "\"assigned_to\" must be a list of circuits, e.g. [\"hc1\", \"dhw1\"]")
            }
            if let bad = list.first(where: { !circuits.contains($0) }) {
                throw CommandRejection(.unknownTarget, "\"assigned_to\": no circuit \"\(bad)\"; circuits: \(circuits.joined(separator: ", "))")
            }
            assigned = list
        }
        guard existing.count < BoschWire.maxHolidayModes else {
            throw CommandRejection(.outOfRange, "all \(BoschWire.maxHolidayModes) holiday slots are in use; delete one first")
        }
        var out: [String: JSONValue] = [
            "action": "create", "start": body["start"]!, "end": body["end"]!,
            "assigned_to": .array(assigned.map { .string($0) }),
        ]
        if body["hc_mode"] != nil { out["hc_mode"] = .string(try CapabilityValidation.oneOf(body, "hc_mode", BoschWire.holidayHcModes)) }
        if body["dhw_mode"] != nil { out["dhw_mode"] = .string(try CapabilityValidation.oneOf(body, "dhw_mode", BoschWire.holidayDhwModes)) }
        return .object(out)
    }
}

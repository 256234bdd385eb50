import HeatbridgeCore

/// The Bosch Partner API adapter: reads gateways with their heating and DHW circuits, executes DHW charges.
public struct BoschAdapter: VendorAdapter {
    public let vendor = "bosch"
    let transport: any HTTPTransport
    let baseURL: String
    let key: BoschKey
    let userId: String
    let timeout: Double
    /// Gateway ids to bridge; nil means all the partner can access.
    let allowList: Set<String>?
    /// Client-side buckets mirroring the documented limits; nil sends without waiting (tests of the adapter).
    let budget: RateBudget?
    /// Reads that answered 404/504 recently, and static resources, are not repeated every poll; nil asks every time.
    let answers: AnswerCache?

    /// How long a 404 (resource this gateway does not have) and a 504 (gateway offline) are believed.
    public static let notFoundTTL = 600.0
    public static let offlineTTL = 60.0
    /// How long an installation property (the heating distribution type) is believed without asking again.
    public static let staticTTL = 86_400.0
    /// Components and the gateway clock are synced this often (lowest priority), not every poll.
    public static let syncTTL = 3600.0

    /// For the gateway clock's offset; nil leaves the offset out.
    let clock: (any HeatbridgeCore.Clock)?
    let localTime: any LocalTime

    public init(transport: any HTTPTransport, baseURL: String, apiKey: String, userId: String, timeout: Double,
                allowList: [String]?, budget: RateBudget? = nil, answerCache: AnswerCache? = nil, rotation: BoschKey.Rotation? = nil,
                clock: (any HeatbridgeCore.Clock)? = nil, localTime: any LocalTime = FixedOffsetTime(offsetS: 0)) {
        self.budget = budget
        self.answers = answerCache
        self.transport = transport
        self.baseURL = baseURL
        self.key = BoschKey(apiKey, rotation: rotation)
        self.clock = clock
        self.localTime = localTime
        self.userId = userId
        self.timeout = timeout
        self.allowList = allowList.map(Set.init)
    }

    /// Topic id of a gateway.
    public static func deviceId(_ gatewayId: String) -> String { TopicLayout.sanitize("bosch-\(gatewayId)") }

    // MARK: HTTP

    /// The documented limit for a request (cloud-apis.md §1.6), one burst token short of the cloud's so that
    /// clock drift between the two buckets never produces a 429.
    static func limit(method: String, path: String) -> RateBudget.Limit {
        let cloud = BoschWire.Route(path: path)?.limit(method: method) ?? BoschWire.RateLimit(capacity: 5, perSecond: 2)
        return .init(capacity: max(1, cloud.capacity - 1), perSecond: cloud.perSecond)
    }

    /// One request. `priority` lowers (never raises) the task's priority, for background sync reads.
    func call(_ method: String, _ path: String, body: [UInt8]? = nil, remoteControl: Bool = false,
              priority: RequestPriority? = nil) async throws(CloudError) -> [UInt8] {
        if let budget {
            do {
                try await budget.acquire("\(method) \(path)", Self.limit(method: method, path: path),
                                         priority: min(priority ?? RequestPriority.current, RequestPriority.current))
            } catch {
                throw CloudError(.unavailable, message: "cancelled while waiting for the rate budget")
            }
        }
        var headers = [(BoschWire.apiKeyHeader, key.current), ("Accept", "application/json")]
        if remoteControl { headers.append((BoschWire.userIdHeader, userId)) }
        let response: HTTPResponse
        do {
            response = try await transport.send(HTTPRequest(method: method, url: baseURL + path, headers: headers, body: body, timeout: timeout))
        } catch {
            throw CloudError.transport(error, api: "Bosch API", what: "\(method) \(path)", timeout: timeout)
        }
        if (200..<300).contains(response.status) { return response.body }
        throw Self.classify(response, method: method, path: path)
    }

    /// Maps a non-2xx answer to the contract's error classes (cloud-apis.md §1.3).
    static func classify(_ r: HTTPResponse, method: String, path: String) -> CloudError {
        let detail = BoschWire.decode(BoschWire.ErrorBody.self, r.body)?.message.map { String($0.prefix(200)) }
        func msg(_ fallback: String) -> String { detail.map { "\(fallback): \($0)" } ?? fallback }
        switch r.status {
        case 451: return CloudError(.consentRequired, status: 451, message: msg("the owner must accept the current consent in the Gateway Management Portal"))
        case 504: return CloudError(.deviceOffline, status: 504, message: msg("gateway offline"))
        default:
            return .status(r, api: "Bosch API", what: "\(method) \(path)", detail: detail, unauthorized: "API key rejected",
                           forbidden: "no contract for this gateway", retryAfterDefault: 2)
        }
    }

    /// A GET decoded as `T`. `keepFor` caches a successful answer that long (resources that do not change).
    func get<T: Decodable>(_ type: T.Type, _ path: String, remoteControl: Bool = false, keepFor: Double? = nil,
                           priority: RequestPriority? = nil) async throws(CloudError) -> T {
        let body: [UInt8]
        switch await answers?.lookup(path) {
        case .failure(let cached)?: throw cached
        case .success(let cached)?: body = cached
        case nil:
            do {
                body = try await call("GET", path, remoteControl: remoteControl, priority: priority)
            } catch {
                if let answers, error.status == 404 { await answers.remember(path, error, forS: Self.notFoundTTL) }
                if let answers, error.kind == .deviceOffline { await answers.remember(path, error, forS: Self.offlineTTL) }
                throw error
            }
        }
        guard let v = BoschWire.decode(type, body) else {
            throw CloudError(.badResponse, status: 200, message: "unreadable answer to GET \(path)")
        }
        if let keepFor, let answers { await answers.remember(path, body: body, forS: keepFor) }
        return v
    }

    // MARK: reading

    public func fetchDevices() async throws(CloudError) -> [DeviceSnapshot] {
        try await checkHealth()
        let gateways = try await get([BoschWire.Gateway].self, BoschWire.Path.hvacs)
        var out: [DeviceSnapshot] = []
        for gw in gateways where allowList?.contains(gw.gatewayId) ?? true {
            out.append(try await fetchGateway(gw))
        }
        return out
    }

    /// `GET /health`: when Bosch itself says the API is down, the account is offline with that reason and
    /// the poll spends no more requests (the cache keeps serving). A missing endpoint (404) or a body we cannot
    /// read (its shape is a guess) says nothing: the poll goes on and shows what really works.
    func checkHealth() async throws(CloudError) {
        let health: BoschWire.Health
        do {
            health = try await get(BoschWire.Health.self, BoschWire.Path.health)
        } catch where error.status == 404 || error.kind == .badResponse {
            return
        }
        let status = health.status.uppercased()
        guard status == "UP" || status == "OK" else {
            throw CloudError(.unavailable, message: "Bosch reports the Partner API as \(status) (GET /health)")
        }
    }

    public func refresh(_ device: DeviceSnapshot) async throws(CloudError) -> DeviceSnapshot? {
        try await fetchGateway(BoschWire.Gateway(gatewayId: device.vendorId, deviceType: device.model,
                                                 brand: device.attributes["brand"]?.stringValue))
    }

    func fetchGateway(_ gw: BoschWire.Gateway) async throws(CloudError) -> DeviceSnapshot {
        let id = Self.deviceId(gw.gatewayId)
        let attributes: [String: JSONValue] = ["brand": .string(gw.brand)]
        do {
            let status = try await get(BoschWire.GatewayStatus.self, BoschWire.Path.status(gw.gatewayId))
            let online = status.status.uppercased() == "ONLINE"
            guard online else {
                return DeviceSnapshot(id: id, vendorId: gw.gatewayId, model: gw.deviceType, online: false, attributes: attributes, nodes: [:])
            }
            var nodes: [String: JSONValue] = [:]
            var schedules: [String: WeekSchedule] = [:]
            for ref in try await get([BoschWire.CircuitRef].self, BoschWire.Path.heatingCircuits(gw.gatewayId)) {
                let hc = try await get(BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(gw.gatewayId, ref.id), remoteControl: true)
                let node = Self.nodeId("hc", ref.id)
                var state = Self.nodeState(hc).objectValue ?? [:]
                // Not every circuit has these (404: ISRC, older controllers); the rest of the circuit still counts.
                do {
                    state["heat_curve"] = Self.curveJSON(try await get(BoschWire.HeatCurve.self, BoschWire.Path.heatCurve(gw.gatewayId, ref.id),
                                                                       remoteControl: true))
                } catch where error.kind == .rejected { state["heat_curve"] = .null }
                do {
                    state["distribution"] = .string(try await get(BoschWire.HeatingDistribution.self, BoschWire.Path.distribution(gw.gatewayId, ref.id),
                                                                  remoteControl: true, keepFor: Self.staticTTL).heatingDistributionType.lowercased())
                } catch where error.kind == .rejected { state["distribution"] = .null }
                nodes[node] = .object(state)
                if let tp = hc.autoModeSettings?.timeProgramId {
                    do {
                        let program = try await get(BoschWire.TimeProgram.self,
                                                    BoschWire.Path.heatingTimeProgram(gw.gatewayId, ref.id, tp), remoteControl: true,
                                                    priority: .sync)
                        schedules[node] = Self.schedule(program, levels: hc.autoModeSettings?.temperatureLevels ?? [:])
                    } catch where error.kind == .rejected {
                        // 404 and friends: this circuit has no readable program (e.g. ISRC); the rest still counts.
                    }
                }
            }
            for ref in try await get([BoschWire.CircuitRef].self, BoschWire.Path.dhwCircuits(gw.gatewayId)) {
                let dhw = try await get(BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(gw.gatewayId, ref.id), remoteControl: true)
                let charge = try await get(BoschWire.DhwCharge.self, BoschWire.Path.charge(gw.gatewayId, ref.id), remoteControl: true)
                let node = Self.nodeId("dhw", ref.id)
                nodes[node] = Self.nodeState(dhw, charge: charge)
                let tp = dhw.autoModeSettings?.timeProgramId ?? BoschWire.defaultDhwProgram
                do {
                    let program = try await get(BoschWire.TimeProgram.self, BoschWire.Path.dhwTimeProgram(gw.gatewayId, ref.id, tp),
                                                remoteControl: true, priority: .sync)
                    schedules[node] = Self.schedule(program, levels: Self.dhwLevels(dhw))
                } catch where error.kind == .rejected {
                    // No DHW program on this controller (404): the circuit itself still counts.
                }
            }
            nodes["system"] = try await systemState(gw.gatewayId)
            return DeviceSnapshot(id: id, vendorId: gw.gatewayId, model: gw.deviceType, online: true, attributes: attributes, nodes: nodes,
                                  schedules: schedules)
        } catch {
            // Errors about this gateway alone leave the account healthy; the rest fail the whole poll.
            guard error.accountState == nil else { throw error }
            let online: Bool? = error.kind == .deviceOffline ? false : nil
            return DeviceSnapshot(id: id, vendorId: gw.gatewayId, model: gw.deviceType, online: online, attributes: attributes,
                                  nodes: [:], error: error)
        }
    }

    /// Node `system`: silent mode, holiday modes, the gateway clock and the detected components. A gateway
    /// without one of them (404: not a heat pump, an older controller) shows `null` there; the rest of the
    /// gateway is unaffected. Clock and components are synced hourly at the lowest priority.
    func systemState(_ gw: String) async throws(CloudError) -> JSONValue {
        var silent: JSONValue = .null
        var holidays: JSONValue = .null
        var clockOffset: JSONValue = .null
        var dateTime: JSONValue = .null
        var components: JSONValue = .null
        do {
            silent = .string(try await get(BoschWire.SilentMode.self, BoschWire.Path.silentMode(gw), remoteControl: true).silentMode.lowercased())
        } catch where error.kind == .rejected {}
        do {
            holidays = .array(try await get([BoschWire.HolidayMode].self, BoschWire.Path.holidayModes(gw), remoteControl: true).map(Self.holidayJSON))
        } catch where error.kind == .rejected {}
        do {
            let path = BoschWire.Path.dateTime(gw)
            let t = try await get(BoschWire.DateTime.self, path, remoteControl: true, keepFor: Self.syncTTL, priority: .sync)
            dateTime = .string(t.dateTime)
            // Measured against the box's clock when the answer arrived: both clocks advance alike, so the
            // offset stays true while the answer is cached.
            if let readAt = await answers?.storedAt(path) ?? clock?.now(), let gwWall = Timestamp.parse(t.dateTime + "Z") {
                clockOffset = .number((gwWall - Self.localWall(readAt, localTime)).rounded())
            }
        } catch where error.kind == .rejected {}
        do {
            components = .array(try await get([BoschWire.Component].self, BoschWire.Path.components(gw), keepFor: Self.syncTTL, priority: .sync)
                .map { ["id": .string($0.id), "type": .string($0.type), "software_version": .string($0.softwareVersion),
                        "serial_number": .string($0.serialNumber)] })
        } catch where error.kind == .rejected {}
        return ["kind": "system", "silent_mode": silent, "holidays": holidays, "date_time": dateTime, "clock_offset_s": clockOffset,
                "components": components]
    }

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
        ["control_type": .string(c.controlType?.lowercased()), "min_flow": .number(c.minFlowTemperature), "max_flow": .number(c.maxFlowTemperature),
         "basepoint": .number(c.basepointTemperature), "endpoint": .number(c.endpointTemperature),
         "room_influence_k": .number(c.roomInfluenceTemperature), "room_offset_k": .number(c.roomTemperatureOffset)]
    }

    static func holidayJSON(_ h: BoschWire.HolidayMode) -> JSONValue {
        ["id": .string(h.id), "start": .string(h.startDate), "end": .string(h.endDate), "assigned_to": .array(h.assignedTo.map { .string($0) }),
         "hc_mode": .string(h.hcMode?.lowercased()), "dhw_mode": .string(h.dhwMode?.lowercased())]
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
        return [
            "kind": "dhw_circuit",
            "operation_mode": .string(dhw.operationMode?.lowercased()),
            "temperature": .number(dhw.actualTemperature),
            "levels": ["eco": level(dhw.ecoModeSettings), "low": level(dhw.lowModeSettings), "high": level(dhw.highModeSettings)],
            "charge": ["active": .bool(active), "duration_min": .int(charge.chargeDuration),
                       "remaining_min": .int(active ? charge.chargeRemainingTime : 0)],
        ]
    }

    // MARK: commands

    static let capabilities: [String: Set<String>] = ["dhw": ["charge", "mode", "setpoint", "schedule"],
                                                      "hc": ["schedule", "mode", "setpoint", "heat-curve", "program", "levels"],
                                                      "system": ["silent-mode", "holiday", "date-time", "detect"]]

    /// Week program limits. INFERRED: the HEMS-role docs allow 2 heating switch points per day on heat pumps;
    /// other controllers take more. 6 per day on a 15-minute grid is what the km200-family gateways accept.
    static let scheduleLimits = CapabilityValidation.ScheduleLimits(maxPointsPerDay: 6, gridMinutes: 15)

    public func capabilities(of node: String) -> Set<String> {
        Self.capabilities[node.hasPrefix("dhw") ? "dhw" : node.hasPrefix("hc") ? "hc" : "system"] ?? []
    }

    public func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        guard device.nodes[node] != nil else {
            let known = device.nodes.keys.sorted().joined(separator: ", ")
            throw CommandRejection(.unknownTarget, "device \"\(device.id)\" has no node \"\(node)\"; nodes: \(known.isEmpty ? "none known" : known)")
        }
        let kind = node.hasPrefix("dhw") ? "dhw" : node.hasPrefix("hc") ? "hc" : "system"
        guard Self.capabilities[kind]?.contains(capability) == true else {
            let supported = (Self.capabilities[kind] ?? []).sorted().joined(separator: ", ")
            throw CommandRejection(.unsupported, "\"\(capability)\" is not supported on \(node)\(supported.isEmpty ? "" : "; supported: \(supported)")")
        }
        switch (kind, capability) {
        case ("hc", "schedule"), ("dhw", "schedule"):
            return try CapabilityValidation.weekSchedule(body, current: device.schedules[node], limits: Self.scheduleLimits)
        case ("system", "date-time"):
            return try Self.validateDateTime(body, device: device)
        case ("system", "detect"):
            try CapabilityValidation.allowOnly(body, [])
            return [:]
        case ("hc", "mode"):
            try CapabilityValidation.allowOnly(body, ["mode"])
            return ["mode": .string(try CapabilityValidation.oneOf(body, "mode", BoschWire.heatingModes))]
        case ("hc", "setpoint"):
            try CapabilityValidation.allowOnly(body, ["setpoint"])
            return ["setpoint": .number(try CapabilityValidation.temperature(body, "setpoint", BoschWire.roomSetpointRange))]
        case ("dhw", "mode"):
            try CapabilityValidation.allowOnly(body, ["mode"])
            return ["mode": .string(try CapabilityValidation.oneOf(body, "mode", BoschWire.dhwModes))]
        case ("dhw", "setpoint"):
            try CapabilityValidation.allowOnly(body, ["level", "start", "stop"])
            let level = try CapabilityValidation.oneOf(body, "level", ["ECO", "LOW", "HIGH"]).lowercased()
            let start = try CapabilityValidation.temperature(body, "start", BoschWire.dhwSetpointRange)
            let stop = try CapabilityValidation.temperature(body, "stop", BoschWire.dhwSetpointRange)
            guard start < stop else {
                throw CommandRejection(.outOfRange, "\"start\" (\(JSONValue.format(start))) must be below \"stop\" (\(JSONValue.format(stop))): the charge starts below and stops at the upper value")
            }
            return ["level": .string(level), "start": .number(start), "stop": .number(stop)]
        case ("hc", "heat-curve"):
            return try Self.validateHeatCurve(body, current: device.nodes[node]?["heat_curve"])
        case ("hc", "program"):
            try CapabilityValidation.allowOnly(body, ["program"])
            guard device.nodes[node]?["time_program"]?.stringValue != nil else {
                throw CommandRejection(.unsupported, "\(node) has no auto-mode time program (ISRC or older controller)")
            }
            return ["program": .string(try CapabilityValidation.oneOf(body, "program", BoschWire.heatingProgramIds))]
        case ("hc", "levels"):
            return try Self.validateLevels(body, current: device.nodes[node]?["levels"]?.objectValue)
        case ("system", "silent-mode"):
            try CapabilityValidation.allowOnly(body, ["mode"])
            guard device.nodes[node]?["silent_mode"]?.stringValue != nil else {
                throw CommandRejection(.unsupported, "this gateway has no silent mode")
            }
            return ["mode": .string(try CapabilityValidation.oneOf(body, "mode", BoschWire.silentModes))]
        case ("system", "holiday"):
            return try Self.validateHoliday(body, device: device)
        default:
            return try CapabilityValidation.dhwCharge(body)
        }
    }

    /// `{"date_time":"2026-11-22T10:00:00"}` (the gateway's local time) or `{"sync":true}` (the box's local time
    /// when the command runs, so a queued sync is not stale).
    static func validateDateTime(_ body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["date_time", "sync"])
        guard device.nodes["system"]?["date_time"]?.stringValue != nil else {
            throw CommandRejection(.unsupported, "this gateway has no readable date/time")
        }
        switch (body["date_time"], body["sync"]) {
        case (nil, let sync?):
            guard sync.boolValue == true else { throw CommandRejection(.invalidPayload, "\"sync\" must be true (or send \"date_time\")") }
            return ["sync": true]
        case (let v?, nil):
            guard let text = v.stringValue, text.count == 19, let t = Timestamp.parse(text + "Z") else {
                throw CommandRejection(.invalidPayload, "\"date_time\" must be local time YYYY-MM-DDTHH:MM:SS without a zone, e.g. 2026-11-22T10:00:00")
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
            throw CommandRejection(.outOfRange, "\"\(lo)\" (\(JSONValue.format(value(lo)!))) must be below \"\(hi)\" (\(JSONValue.format(value(hi)!)))")
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
        let keys: [(String, ClosedRange<Double>)] = [("min_flow", BoschWire.flowRange), ("max_flow", BoschWire.flowRange),
                                                     ("basepoint", BoschWire.flowRange), ("endpoint", BoschWire.flowRange),
                                                     ("room_influence_k", BoschWire.roomInfluenceRange), ("room_offset_k", BoschWire.roomOffsetRange)]
        try CapabilityValidation.allowOnly(body, Set(keys.map(\.0) + ["control_type"]))
        var out: [String: JSONValue] = [:]
        for (k, range) in keys {
            if let v = try CapabilityValidation.optionalTemperature(body, k, range) { out[k] = .number(v) }
        }
        if body["control_type"] != nil {
            out["control_type"] = .string(try CapabilityValidation.oneOf(body, "control_type", ["WDCOPTIMIZED", "WDCSIMPLIFIED"]))
        }
        guard !out.isEmpty else { throw CommandRejection(.invalidPayload, "give at least one of \(keys.map(\.0).joined(separator: ", ")), control_type") }
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
        guard let existing = device.nodes["system"]?["holidays"]?.arrayValue else {
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
        let circuits = device.nodes.keys.filter { $0.hasPrefix("hc") || $0.hasPrefix("dhw") }.sorted()
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
        var out: [String: JSONValue] = ["action": "create", "start": body["start"]!, "end": body["end"]!,
                                        "assigned_to": .array(assigned.map { .string($0) })]
        if body["hc_mode"] != nil { out["hc_mode"] = .string(try CapabilityValidation.oneOf(body, "hc_mode", BoschWire.holidayHcModes)) }
        if body["dhw_mode"] != nil { out["dhw_mode"] = .string(try CapabilityValidation.oneOf(body, "dhw_mode", BoschWire.holidayDhwModes)) }
        return .object(out)
    }

    public func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        if command.capability == "schedule" { return try await writeSchedule(command, device: device) }
        if command.node == "system" { return try await executeSystem(command, device: device) }
        if command.capability == "heat-curve" {
            let p = command.params
            let body = BoschWire.HeatCurve(controlType: p["control_type"]?.stringValue, minFlowTemperature: p["min_flow"]?.doubleValue,
                                           maxFlowTemperature: p["max_flow"]?.doubleValue, basepointTemperature: p["basepoint"]?.doubleValue,
                                           endpointTemperature: p["endpoint"]?.doubleValue, roomInfluenceTemperature: p["room_influence_k"]?.doubleValue,
                                           roomTemperatureOffset: p["room_offset_k"]?.doubleValue)
            _ = try await call("PATCH", BoschWire.Path.heatCurve(device.vendorId, String(command.node.dropFirst(2))), body: BoschWire.encode(body),
                               remoteControl: true)
            return "heat curve set: " + (p.objectValue ?? [:]).keys.sorted().map { "\($0) \(p[$0]!.stringValue ?? JSONValue.format(p[$0]!.doubleValue ?? 0))" }
                .joined(separator: ", ")
        }
        if command.node.hasPrefix("hc"), ["mode", "setpoint", "program", "levels"].contains(command.capability) {
            return try await patchHeatingCircuit(command, device: device)
        }
        if command.node.hasPrefix("dhw"), command.capability == "mode" || command.capability == "setpoint" {
            return try await patchDhwCircuit(command, device: device)
        }
        guard command.capability == "charge", command.node.hasPrefix("dhw") else {
            throw CloudError(.rejected, message: "\(command.capability) is not implemented for Bosch")
        }
        let circuit = String(command.node.dropFirst(3))
        let start = command.params["action"]?.stringValue == "start"
        let minutes = command.params["duration_min"]?.intValue
        let body = BoschWire.DhwCharge(chargeStatus: start ? BoschWire.chargeStart : BoschWire.chargeStop,
                                       chargeDuration: start ? minutes : nil)
        _ = try await call("PATCH", BoschWire.Path.charge(device.vendorId, circuit), body: BoschWire.encode(body), remoteControl: true)
        return start ? "charge started for \(minutes ?? 0) min" : "charge stopped"
    }

    func executeSystem(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let p = command.params
        let gw = device.vendorId
        if command.capability == "date-time" {
            guard let value = p["date_time"]?.stringValue ?? clock.map({ Self.localDateTime($0.now(), localTime) }) else {
                throw CloudError(.rejected, message: "no clock to sync the gateway to")
            }
            _ = try await call("PUT", BoschWire.Path.dateTime(gw), body: BoschWire.encode(BoschWire.DateTime(dateTime: value)), remoteControl: true)
            await answers?.forget(BoschWire.Path.dateTime(gw))
            return "gateway clock set to \(value)"
        }
        if command.capability == "detect" {
            _ = try await call("POST", BoschWire.Path.components(gw))
            // The next poll reads the components again instead of the hour-old list.
            await answers?.forget(BoschWire.Path.components(gw))
            return "system detection started; components are read again on the next poll"
        }
        if command.capability == "silent-mode" {
            let mode = p["mode"]?.stringValue ?? "OFF"
            _ = try await call("PATCH", BoschWire.Path.silentMode(gw), body: BoschWire.encode(BoschWire.SilentMode(silentMode: mode)), remoteControl: true)
            return "silent mode \(mode.lowercased())"
        }
        if p["action"]?.stringValue == "delete", let id = p["id"]?.stringValue {
            _ = try await call("DELETE", BoschWire.Path.holidayMode(gw, id), remoteControl: true)
            return "holiday mode \(id) deleted"
        }
        let h = BoschWire.HolidayMode(startDate: p["start"]?.stringValue ?? "", endDate: p["end"]?.stringValue ?? "",
                                      assignedTo: p["assigned_to"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                                      hcMode: p["hc_mode"]?.stringValue, dhwMode: p["dhw_mode"]?.stringValue)
        let body = try await call("POST", BoschWire.Path.holidayModes(gw), body: BoschWire.encode(h), remoteControl: true)
        let id = BoschWire.decode(BoschWire.HolidayMode.self, body)?.id
        return "holiday mode \(id ?? "") \(h.startDate)…\(h.endDate) for \(h.assignedTo.joined(separator: ", "))"
    }

    func patchHeatingCircuit(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let circuit = String(command.node.dropFirst(2))
        let patch: BoschWire.HeatingCircuitPatch
        if command.capability == "program" || command.capability == "levels" {
            let p = command.params
            let levels = command.capability == "levels" ? (p.objectValue ?? [:]).compactMapValues(\.doubleValue) : nil
            let body = BoschWire.HeatingCircuitPatch(autoModeSettings: .init(timeProgramId: p["program"]?.stringValue, temperatureLevels: levels))
            _ = try await call("PATCH", BoschWire.Path.heatingCircuit(device.vendorId, circuit), body: BoschWire.encode(body), remoteControl: true)
            if let program = p["program"]?.stringValue { return "time program \(program) selected" }
            return "levels set: " + (levels ?? [:]).keys.sorted().map { "\($0) \(JSONValue.format(levels![$0]!)) °C" }.joined(separator: ", ")
        }
        if let mode = command.params["mode"]?.stringValue {
            patch = .init(operationMode: mode)
        } else {
            patch = .init(manualModeSettings: .init(setPointTemperature: command.params["setpoint"]?.doubleValue))
        }
        _ = try await call("PATCH", BoschWire.Path.heatingCircuit(device.vendorId, circuit), body: BoschWire.encode(patch), remoteControl: true)
        // The cloud stores a mode change while an overriding mode (holiday, away, boost…) is active, but the
        // circuit ignores it until that mode ends: say so instead of pretending it took effect.
        let overriding = device.nodes[command.node]?["overriding_modes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var message = command.params["mode"] != nil ? "operation mode set to \(command.params["mode"]!.stringValue!.lowercased())"
                                                    : "manual setpoint set to \(JSONValue.format(command.params["setpoint"]?.doubleValue ?? 0)) °C"
        if !overriding.isEmpty {
            message += "; not effective while \(overriding.joined(separator: ", ")) is active"
        } else if command.params["setpoint"] != nil, device.nodes[command.node]?["operation_mode"]?.stringValue != "manual" {
            message += "; it applies in manual mode"
        }
        return message
    }

    func patchDhwCircuit(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let circuit = String(command.node.dropFirst(3))
        var patch = BoschWire.DhwCircuitPatch()
        if let mode = command.params["mode"]?.stringValue {
            patch.operationMode = mode
        } else {
            let settings = BoschWire.DhwModeSettings(startSetPointTemperature: command.params["start"]?.doubleValue,
                                                     stopSetPointTemperature: command.params["stop"]?.doubleValue)
            switch command.params["level"]?.stringValue {
            case "eco": patch.ecoModeSettings = settings
            case "low": patch.lowModeSettings = settings
            default: patch.highModeSettings = settings
            }
        }
        _ = try await call("PATCH", BoschWire.Path.dhwCircuit(device.vendorId, circuit), body: BoschWire.encode(patch), remoteControl: true)
        if let mode = command.params["mode"]?.stringValue { return "DHW mode set to \(mode.lowercased())" }
        return "DHW \(command.params["level"]?.stringValue ?? "") level set to \(JSONValue.format(command.params["start"]?.doubleValue ?? 0))…\(JSONValue.format(command.params["stop"]?.doubleValue ?? 0)) °C"
    }

    /// The program path and current program of a heating or DHW circuit, read fresh from the cloud.
    func currentProgram(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> (path: String, tp: String, program: WeekSchedule) {
        if command.node.hasPrefix("dhw") {
            let circuit = String(command.node.dropFirst(3))
            let d = try await get(BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(device.vendorId, circuit), remoteControl: true)
            let tp = d.autoModeSettings?.timeProgramId ?? BoschWire.defaultDhwProgram
            let path = BoschWire.Path.dhwTimeProgram(device.vendorId, circuit, tp)
            let p = try await get(BoschWire.TimeProgram.self, path, remoteControl: true)
            return (path, tp, Self.schedule(p, levels: Self.dhwLevels(d)))
        }
        let circuit = String(command.node.dropFirst(2))
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
           now.json["version"]?.stringValue != base {
            throw CloudError(.conflict, message: "the program changed in the cloud since version \(base) (now \(now.json["version"]?.stringValue ?? "?")); resend with the new version or \"force\":true")
        }
        var points: [BoschWire.SwitchPoint] = []
        for (d, day) in wanted.days.enumerated() {
            for p in day { points.append(.init(dayOfWeek: BoschWire.days[d], time: p.minute, setpoint: p.level)) }
        }
        _ = try await call("PUT", path, body: BoschWire.encode(BoschWire.TimeProgram(id: tp, switchPoints: points)), remoteControl: true)
        return "time program \(tp) written (\(points.count) switch points)"
    }

    /// Leasable: circuit modes and the manual setpoint (the API has no end time for them).
    public func restoreParams(node: String, capability: String, device: DeviceSnapshot) -> JSONValue? {
        guard let state = device.nodes[node] else { return nil }
        switch (node.hasPrefix("hc") ? "hc" : node.hasPrefix("dhw") ? "dhw" : "", capability) {
        case ("hc", "setpoint"): return state["manual_setpoint"]?.doubleValue.map { ["setpoint": .number($0)] }
        case ("hc", "mode"), ("dhw", "mode"): return state["operation_mode"]?.stringValue.map { ["mode": .string($0)] }
        default: return nil
        }
    }

    public func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        if command.capability == "heat-curve" {
            let c = Self.curveJSON(try await get(BoschWire.HeatCurve.self, BoschWire.Path.heatCurve(device.vendorId, String(command.node.dropFirst(2))),
                                                 remoteControl: true))
            return (command.params.objectValue ?? [:]).allSatisfy { k, v in
                k == "control_type" ? c[k]?.stringValue == v.stringValue?.lowercased() : c[k] == v
            }
        }
        // Setting the clock again or re-running detection does no harm: send them again.
        if command.capability == "date-time" || command.capability == "detect" { return nil }
        if command.node == "system" {
            let now = try await systemState(device.vendorId)
            if command.capability == "silent-mode" { return now["silent_mode"]?.stringValue == command.params["mode"]?.stringValue?.lowercased() }
            let holidays = now["holidays"]?.arrayValue ?? []
            if command.params["action"]?.stringValue == "delete" { return !holidays.contains { $0["id"] == command.params["id"] } }
            return holidays.contains { $0["start"] == command.params["start"] && $0["end"] == command.params["end"] }
        }
        if command.node.hasPrefix("hc"), ["mode", "setpoint", "program", "levels"].contains(command.capability) {
            let hc = try await get(BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(device.vendorId, String(command.node.dropFirst(2))),
                                   remoteControl: true)
            if let program = command.params["program"]?.stringValue { return hc.autoModeSettings?.timeProgramId == program }
            if command.capability == "levels" {
                let now = hc.autoModeSettings?.temperatureLevels ?? [:]
                return (command.params.objectValue ?? [:]).allSatisfy { now[$0.key] == $0.value.doubleValue }
            }
            if let mode = command.params["mode"]?.stringValue { return hc.operationMode?.uppercased() == mode }
            return hc.manualModeSettings?.setPointTemperature == command.params["setpoint"]?.doubleValue
        }
        if command.node.hasPrefix("dhw"), command.capability == "mode" || command.capability == "setpoint" {
            let d = try await get(BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(device.vendorId, String(command.node.dropFirst(3))),
                                  remoteControl: true)
            if let mode = command.params["mode"]?.stringValue { return d.operationMode?.uppercased() == mode }
            let s: BoschWire.DhwModeSettings?
            switch command.params["level"]?.stringValue {
            case "eco": s = d.ecoModeSettings
            case "low": s = d.lowModeSettings
            default: s = d.highModeSettings
            }
            return s?.startSetPointTemperature == command.params["start"]?.doubleValue && s?.stopSetPointTemperature == command.params["stop"]?.doubleValue
        }
        if command.capability == "schedule" {
            let (_, _, now) = try await currentProgram(command, device: device)
            return now.json["days"] == command.params["days"]
        }
        guard command.capability == "charge", command.node.hasPrefix("dhw") else { return nil }
        let circuit = String(command.node.dropFirst(3))
        let now = try await get(BoschWire.DhwCharge.self, BoschWire.Path.charge(device.vendorId, circuit), remoteControl: true)
        if command.params["action"]?.stringValue == "start" {
            return now.chargeStatus == BoschWire.chargeStart && now.chargeDuration == command.params["duration_min"]?.intValue
        }
        return now.chargeStatus == BoschWire.chargeStop
    }
}

// MARK: API key

extension BoschAdapter {
    public func credentialExpiry() -> EpochSeconds? { key.expiresAt }

    /// Rotates the key with `POST /api-keys` once it is within the configured time of its expiry: the new key
    /// is stored first (atomically, 0600) and only then used, so a crash in between loses nothing; the old
    /// key stays valid until its own expiry [pub: security].
    public func renewCredential(now: EpochSeconds) async -> CredentialRenewal? {
        guard let rotation = key.rotation, key.claimRotation(now: now) else { return nil }
        let fresh: BoschWire.NewApiKey
        do {
            fresh = try await newKey()
        } catch {
            return .failed(error.description)
        }
        if let problem = rotation.persist(fresh.apiKey) { return .failed("cannot store the new key: \(problem)") }
        key.replace(with: fresh.apiKey)
        return .renewed(expires: BoschWire.keyExpiry(fresh.apiKey) ?? fresh.expiresAt.flatMap(Timestamp.parse))
    }

    /// `POST /api-keys`: a new key valid 6 months; the caller stores it.
    public func newKey() async throws(CloudError) -> BoschWire.NewApiKey {
        let body = try await call("POST", BoschWire.Path.apiKeys)
        guard let k = BoschWire.decode(BoschWire.NewApiKey.self, body), k.apiKey.hasPrefix("xHCSAPI") else {
            throw CloudError(.badResponse, status: 200, message: "unreadable answer to POST /api-keys")
        }
        return k
    }

    /// The partner's stored keys (ids and dates, never the keys).
    public func listKeys() async throws(CloudError) -> [BoschWire.StoredApiKey] {
        try await get([BoschWire.StoredApiKey].self, BoschWire.Path.apiKeys)
    }

    public func deleteKey(_ id: String) async throws(CloudError) {
        _ = try await call("DELETE", BoschWire.Path.apiKey(id))
    }

    /// `POST /webhooks/simulation`: asks Bosch to send a test event to the partner's webhook endpoints.
    public func simulateWebhook(eventType: String, gatewayId: String?) async throws(CloudError) {
        _ = try await call("POST", BoschWire.Path.webhookSimulation,
                           body: BoschWire.encode(BoschWire.WebhookSimulation(eventType: eventType, gatewayId: gatewayId)))
    }
}

// MARK: installer tools

extension BoschAdapter {
    /// Every contract of the partner, in any status.
    public func contracts() async throws(CloudError) -> [BoschWire.Contract] {
        try await get([BoschWire.Contract].self, BoschWire.Path.contracts)
    }

    public func contract(_ gatewayId: String) async throws(CloudError) -> BoschWire.Contract {
        try await get(BoschWire.Contract.self, BoschWire.Path.contract(gatewayId))
    }

    /// ACCEPT (pending → active), REJECT (pending), REVOKE (active).
    public func changeContract(_ gatewayId: String, action: String) async throws(CloudError) -> BoschWire.Contract? {
        let body = try await call("PATCH", BoschWire.Path.contract(gatewayId), body: BoschWire.encode(BoschWire.ContractAction(action: action)))
        return BoschWire.decode(BoschWire.Contract.self, body)
    }

    /// Acknowledges a contract the end user closed.
    public func acknowledgeContract(_ gatewayId: String) async throws(CloudError) {
        _ = try await call("DELETE", BoschWire.Path.contract(gatewayId))
    }

    /// The partner's own identity (`companyId` for the portal link).
    public func identity() async throws(CloudError) -> BoschWire.KeyIdentity {
        try await get(BoschWire.KeyIdentity.self, BoschWire.Path.apiKeysMe)
    }

    /// The Gateway Management Portal link a customer opens to share a gateway with the partner. The session id
    /// must be a plain token (the portal mangles anything else) and the redirect URI https [doc].
    public static func onboardingLink(brand: String, companyId: String, redirectURI: String, sessionId: String) -> Result<String, CommandRejection> {
        guard let host = BoschWire.portalHosts[brand.lowercased()] else {
            return .failure(CommandRejection(.invalidPayload, "--brand must be one of \(BoschWire.portalHosts.keys.sorted().joined(separator: ", "))"))
        }
        guard let u = ParsedURL.parse(redirectURI), u.scheme == "https" else {
            return .failure(CommandRejection(.invalidPayload, "--redirect-uri must be an https URL (it is allow-listed at onboarding)"))
        }
        guard !sessionId.isEmpty, sessionId.count <= 128,
              sessionId.unicodeScalars.allSatisfy({ ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "_" }) else {
            return .failure(CommandRejection(.invalidPayload, "--session-id must be a plain token (letters, digits, '-' and '_', at most 128): the portal sanitises anything else"))
        }
        func enc(_ s: String) -> String {
            var out = ""
            for b in s.utf8 {
                let c = Character(UnicodeScalar(b))
                if c.isASCII && (c.isLetter || c.isNumber || "-_.~".contains(c)) { out.append(c) } else {
                    let hex = String(b, radix: 16, uppercase: true)
                    out += "%" + (hex.count == 1 ? "0" + hex : hex)
                }
            }
            return out
        }
        return .success("https://\(host)/invite?companyId=\(enc(companyId))&redirectUri=\(enc(redirectURI))&sessionId=\(enc(sessionId))")
    }
}

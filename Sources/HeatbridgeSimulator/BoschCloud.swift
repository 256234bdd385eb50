import Foundation
import HeatbridgeCore
import VendorBosch

/// A stateful fake of the Bosch Partner API, answering with `BoschWire` shapes and the documented error
/// semantics (cloud-apis.md §1): x-api-key on every call, x-user-id on remote-control calls, 403 without a
/// contract, 451 with an old consent, 504 for an offline gateway, token-bucket rate limits with 429.
public struct BoschCloud: Sendable {
    public struct Gateway: Sendable {
        public var id: String
        public var brand: String
        public var deviceType: String
        public var contract: Bool
        public var consentCurrent: Bool
        public var online: Bool
        public var heatingCircuits: [String: BoschWire.HeatingCircuit]
        public var dhwCircuits: [String: BoschWire.DhwCircuit]
        public var charges: [String: ChargeState]
        /// Heating time programs by circuit id and program id.
        public var timePrograms: [String: [String: BoschWire.TimeProgram]] = [:]
        public var silentMode = BoschWire.silentModeOff
        public var heatCurves: [String: BoschWire.HeatCurve] = [:]
        public var holidayModes: [BoschWire.HolidayMode] = []
        /// DHW time programs by circuit id and program id.
        public var dhwTimePrograms: [String: [String: BoschWire.TimeProgram]] = [:]
        /// The gateway clock's offset from the simulator's local time.
        public var clockOffsetS: Double = 0
        public var components: [BoschWire.Component] = []
        /// Components a system detection (`POST …/components`) will find in addition.
        public var undetected: [BoschWire.Component] = []
        public var detections = 0
    }

    public struct ChargeState: Sendable {
        public var active: Bool
        public var durationMin: Int
        public var startedAt: Double
    }

    public var apiKey: String
    public var rateLimitEnabled: Bool
    public var gateways: [String: Gateway]
    /// Contracts by gateway id. A gateway without an entry counts as ACTIVE when `contract` is set; one
    /// whose contract is REVOKED, REJECTED or CLOSED is no longer listed by `/hvacs`.
    public var contracts: [String: BoschWire.Contract] = [:]
    public var companyId = "C-4711"
    /// What `GET /health` reports.
    public var health = BoschWire.healthUp
    /// Keys issued by `POST /api-keys` (valid alongside `apiKey` until their expiry) [pub: security].
    public var issuedKeys: [(id: String, key: String, createdAt: Double, expiresAt: Double)] = []
    /// Event types asked for with `POST /webhooks/simulation`.
    public var webhookSimulations: [BoschWire.WebhookSimulation] = []
    var buckets: [String: TokenBucket] = [:]

    public init(apiKey: String, rateLimitEnabled: Bool, gateways: [Gateway]) {
        self.apiKey = apiKey
        self.rateLimitEnabled = rateLimitEnabled
        self.gateways = Dictionary(uniqueKeysWithValues: gateways.map { ($0.id, $0) })
    }

    /// A gateway with `hc1` and `dhw1`, as in the built-in scenario.
    public static func makeGateway(
        id: String, brand: String = "bosch", deviceType: String = "CS7001iAW", contract: Bool = true,
        consentCurrent: Bool = true, online: Bool = true, hcIds: [String] = ["1"], dhwIds: [String] = ["1"]
    ) -> Gateway {
        var hcs: [String: BoschWire.HeatingCircuit] = [:]
        for h in hcIds {
            hcs[h] = BoschWire.HeatingCircuit(
                id: h, operationMode: BoschWire.heatingModeAuto, currentSetPointTemperature: 21.0, roomTemperature: 20.5,
                manualModeSettings: .init(setPointTemperature: 20.0),
                autoModeSettings: .init(timeProgramId: "A", temperatureLevels: ["comfort": 21.0, "eco": 17.0]),
                overridingModes: [.init(mode: "HOLIDAY", active: false)])
        }
        var dhws: [String: BoschWire.DhwCircuit] = [:]
        var charges: [String: ChargeState] = [:]
        for d in dhwIds {
            dhws[d] = BoschWire.DhwCircuit(
                id: d, operationMode: BoschWire.dhwModeHigh, actualTemperature: 47.5,
                ecoModeSettings: .init(startSetPointTemperature: 40, stopSetPointTemperature: 45),
                lowModeSettings: .init(startSetPointTemperature: 45, stopSetPointTemperature: 50),
                highModeSettings: .init(startSetPointTemperature: 50, stopSetPointTemperature: 55),
                autoModeSettings: .init(operationMode: BoschWire.dhwModeHigh, timeProgramId: BoschWire.defaultDhwProgram))
            charges[d] = ChargeState(active: false, durationMin: 60, startedAt: 0)
        }
        var programs: [String: [String: BoschWire.TimeProgram]] = [:]
        for h in hcIds {
            // Weekdays 06:00 comfort, 22:00 eco; weekends 07:30 comfort, 23:00 eco.
            var points: [BoschWire.SwitchPoint] = []
            for (i, day) in BoschWire.days.enumerated() {
                points.append(.init(dayOfWeek: day, time: i < 5 ? 360 : 450, setpoint: "comfort"))
                points.append(.init(dayOfWeek: day, time: i < 5 ? 1320 : 1380, setpoint: "eco"))
            }
            // Program B: a home-office week, comfort from 07:00 to 23:00 every day.
            let office = BoschWire.days.flatMap {
                [
                    BoschWire.SwitchPoint(dayOfWeek: $0, time: 420, setpoint: "comfort"),
                    BoschWire.SwitchPoint(dayOfWeek: $0, time: 1380, setpoint: "eco"),
                ]
            }
            programs[h] = ["A": BoschWire.TimeProgram(id: "A", switchPoints: points), "B": BoschWire.TimeProgram(id: "B", switchPoints: office)]
        }
        var gw = Gateway(
            id: id, brand: brand, deviceType: deviceType, contract: contract, consentCurrent: consentCurrent,
            online: online, heatingCircuits: hcs, dhwCircuits: dhws, charges: charges)
        gw.timePrograms = programs
        for d in dhwIds {
            // Every day 05:30 high, 21:00 eco.
            var points: [BoschWire.SwitchPoint] = []
            for day in BoschWire.days {
                points.append(.init(dayOfWeek: day, time: 330, setpoint: "high"))
                points.append(.init(dayOfWeek: day, time: 1260, setpoint: "eco"))
            }
            gw.dhwTimePrograms[d] = [BoschWire.defaultDhwProgram: BoschWire.TimeProgram(id: BoschWire.defaultDhwProgram, switchPoints: points)]
        }
        gw.components = [
            BoschWire.Component(id: "gateway", type: "GATEWAY", softwareVersion: "05.04.00", serialNumber: "SN-\(id)"),
            BoschWire.Component(id: "hs1", type: "HEATPUMP", softwareVersion: "11.2.3", serialNumber: nil),
        ]
        for h in hcIds {
            gw.heatCurves[h] = BoschWire.HeatCurve(
                controlType: "WDCOPTIMIZED", minFlowTemperature: 25, maxFlowTemperature: 55,
                basepointTemperature: 25, endpointTemperature: 45, roomInfluenceTemperature: 3,
                roomTemperatureOffset: 0)
        }
        return gw
    }

    /// The built-in scenario: two gateways, each with `hc1` and `dhw1`, and a pending contract for a third.
    public static func defaultScenario() -> BoschCloud {
        var cloud = BoschCloud(
            apiKey: "xHCSAPI-demo-20270522", rateLimitEnabled: true,
            gateways: [
                makeGateway(id: "101000001", brand: "buderus", deviceType: "Logatherm WLW186i"),
                makeGateway(id: "101000002", brand: "bosch", deviceType: "Compress 7400i AW"),
            ])
        // Shared by its owner, not accepted yet: accepting it makes the gateway appear.
        cloud.contracts["101000003"] = BoschWire.Contract(
            gatewayId: "101000003", status: BoschWire.ContractState.pending, statusDate: "2026-11-20T10:00:00Z",
            userId: "owner-101000003", addressLines: ["Hauptstraße 5", "80331 München"])
        return cloud
    }

    // MARK: request handling

    struct Reply {
        var status: Int
        var body: [UInt8]
        var headers: [String: String] = [:]
        static func json(_ status: Int, _ body: [UInt8]) -> Reply { Reply(status: status, body: body) }
        static func error(_ status: Int, _ message: String) -> Reply {
            Reply(status: status, body: BoschWire.encode(BoschWire.ErrorBody(message: message, requestId: "sim-\(status)")))
        }
    }

    /// Handles one request to the Bosch API (path relative to the API base). Paths are parsed with
    /// `BoschWire.Route`, the definition the adapter renders them with, and limited by its `limit(method:)`.
    mutating func handle(method: String, path: String, headers: [String: String], body: [UInt8], now: Double) -> Reply {
        let presented = headers[BoschWire.apiKeyHeader] ?? ""
        issuedKeys.removeAll { $0.expiresAt <= now }
        guard presented == apiKey || issuedKeys.contains(where: { $0.key == presented }) else { return .error(401, "Unauthorized") }
        guard let route = BoschWire.Route(path: path) else { return .error(404, "no such resource") }
        if rateLimitEnabled {
            // One bucket per (method, path), sized by the documented limits.
            let key = "\(method) \(path)"
            let limit = route.limit(method: method)
            var bucket = buckets[key] ?? TokenBucket(capacity: limit.capacity, perSecond: limit.perSecond, now: now)
            let wait = bucket.take(now: now)
            buckets[key] = bucket
            if let wait {
                var r = Reply.error(429, "Too Many Requests")
                r.headers["retry-after"] = String(Int(wait.rounded(.up)))
                return r
            }
        }
        switch route {
        case .contracts, .contract: return contractRequest(method: method, route: route, body: body, now: now)
        case .apiKeysMe, .apiKeys, .apiKey: return keyRequest(method: method, route: route, now: now)
        case .health:
            guard method == "GET" else { return .error(405, "method not allowed") }
            return .json(200, BoschWire.encode(BoschWire.Health(status: health)))
        case .webhookSimulation:
            guard method == "POST" else { return .error(404, "no such resource") }
            guard let w = BoschWire.decode(BoschWire.WebhookSimulation.self, body), BoschWire.webhookEventTypes.contains(w.eventType) else {
                return .error(400, "eventType must be one of \(BoschWire.webhookEventTypes.joined(separator: ", "))")
            }
            webhookSimulations.append(w)
            return Reply(status: 202, body: [])
        case .gateways:
            guard method == "GET" else { return .error(405, "method not allowed") }
            let list = gateways.values.filter { !BoschWire.ContractState.ended.contains(contracts[$0.id]?.status ?? "") }.sorted { $0.id < $1.id }
                .map { BoschWire.Gateway(gatewayId: $0.id, deviceType: $0.deviceType, brand: $0.brand) }
            return .json(200, BoschWire.encode(list))
        default:
            return gatewayRequest(method: method, route: route, headers: headers, body: body, now: now)
        }
    }

    /// A request about one gateway: contract, consent and connectivity first, then the resource.
    mutating func gatewayRequest(method: String, route: BoschWire.Route, headers: [String: String], body: [UInt8], now: Double) -> Reply {
        guard let gatewayId = route.gatewayId else { return .error(404, "no such resource") }
        guard BoschWire.isGatewayId(gatewayId) else { return .error(400, "invalid gatewayId") }
        guard var gw = gateways[gatewayId] else { return .error(404, "unknown gateway") }
        guard gw.contract else { return .error(403, "Forbidden") }
        if case .status = route {
            return .json(200, BoschWire.encode(BoschWire.GatewayStatus(status: gw.online ? BoschWire.gatewayOnline : BoschWire.gatewayOffline)))
        }
        if case .components = route {
            guard gw.online else { return .error(504, "Gateway Timeout") }
            switch method {
            case "GET": return .json(200, BoschWire.encode(gw.components))
            case "POST":
                // A detection finds what was connected since the last one.
                gw.components += gw.undetected
                gw.undetected = []
                gw.detections += 1
                gateways[gatewayId] = gw
                return Reply(status: 202, body: [])
            default: return .error(405, "method not allowed")
            }
        }
        if route.isRemoteControl {
            guard let user = headers[BoschWire.userIdHeader], !user.isEmpty else { return .error(400, "missing x-user-id header") }
            guard gw.consentCurrent else { return .error(451, "Unavailable For Legal Reasons") }
        }
        guard gw.online else { return .error(504, "Gateway Timeout") }
        refreshCharges(&gw, now: now)
        defer { gateways[gatewayId] = gw }
        switch (method, route) {
        case (_, .silentMode), (_, .holidayModes), (_, .holidayMode), (_, .dateTime):
            return system(method: method, route: route, body: body, gw: &gw, now: now)
        case ("GET", .heatingCircuits):
            return .json(200, BoschWire.encode(gw.heatingCircuits.keys.sorted().map { BoschWire.CircuitRef(id: $0) }))
        case ("GET", .dhwCircuits):
            return .json(200, BoschWire.encode(gw.dhwCircuits.keys.sorted().map { BoschWire.CircuitRef(id: $0) }))
        case ("PATCH", .heatingCircuit(_, let id)):
            return patchHeatingCircuit(id, body: body, gw: &gw)
        case ("PATCH", .dhwCircuit(_, let id)):
            return patchDhwCircuit(id, body: body, gw: &gw)
        case ("GET", .heatingCircuit(_, let id)):
            guard let hc = gw.heatingCircuits[id] else { return .error(404, "no such heating circuit") }
            return .json(200, BoschWire.encode(hc))
        case ("GET", .dhwCircuit(_, let id)):
            guard let d = gw.dhwCircuits[id] else { return .error(404, "no such DHW circuit") }
            return .json(200, BoschWire.encode(d))
        case ("GET", .heatCurve(_, let id)):
            guard let c = gw.heatCurves[id] else { return .error(404, "no heat curve") }
            return .json(200, BoschWire.encode(c))
        case ("PATCH", .heatCurve(_, let id)):
            guard var c = gw.heatCurves[id], c.controlType != BoschWire.controlTypeISRC else { return .error(404, "no heat curve") }
            guard let p = BoschWire.decode(BoschWire.HeatCurve.self, body) else { return .error(400, "invalid heat curve") }
            if let v = p.minFlowTemperature { c.minFlowTemperature = v }
            if let v = p.maxFlowTemperature { c.maxFlowTemperature = v }
            if let v = p.basepointTemperature { c.basepointTemperature = v }
            if let v = p.endpointTemperature { c.endpointTemperature = v }
            if let v = p.roomInfluenceTemperature { c.roomInfluenceTemperature = v }
            if let v = p.roomTemperatureOffset { c.roomTemperatureOffset = v }
            if let t = p.controlType { c.controlType = t }
            guard (c.minFlowTemperature ?? 0) < (c.maxFlowTemperature ?? 100) else {
                return .error(400, "minFlowTemperature must be below maxFlowTemperature")
            }
            gw.heatCurves[id] = c
            return Reply(status: 204, body: [])
        case ("GET", .distribution(_, let id)):
            guard gw.heatingCircuits[id] != nil else { return .error(404, "no such heating circuit") }
            return .json(200, BoschWire.encode(BoschWire.HeatingDistribution(heatingDistributionType: "FLOOR")))
        case ("GET", .dhwTimeProgram(_, let id, let tp)):
            guard let p = gw.dhwTimePrograms[id]?[tp] else { return .error(404, "no such time program") }
            return .json(200, BoschWire.encode(p))
        case ("PUT", .dhwTimeProgram(_, let id, let tp)):
            guard gw.dhwTimePrograms[id]?[tp] != nil else { return .error(404, "no such time program") }
            guard let p = BoschWire.decode(BoschWire.TimeProgram.self, body), Self.validProgram(p, levels: BoschWire.dhwProgramLevels) else {
                return .error(400, "invalid time program")
            }
            gw.dhwTimePrograms[id]![tp] = BoschWire.TimeProgram(id: tp, switchPoints: p.switchPoints)
            return Reply(status: 204, body: [])
        case ("GET", .heatingTimeProgram(_, let id, let tp)):
            guard let p = gw.timePrograms[id]?[tp] else { return .error(404, "no such time program") }
            return .json(200, BoschWire.encode(p))
        case ("PUT", .heatingTimeProgram(_, let id, let tp)):
            guard gw.timePrograms[id]?[tp] != nil else { return .error(404, "no such time program") }
            guard let p = BoschWire.decode(BoschWire.TimeProgram.self, body), Self.validProgram(p, levels: ["comfort", "eco"]) else {
                return .error(400, "invalid time program")
            }
            gw.timePrograms[id]![tp] = BoschWire.TimeProgram(id: tp, switchPoints: p.switchPoints)
            return Reply(status: 204, body: [])
        case (_, .charge(_, let id)):
            return charge(method: method, id, body: body, gw: &gw, now: now)
        default:
            return .error(404, "no such resource")
        }
    }

    mutating func patchHeatingCircuit(_ id: String, body: [UInt8], gw: inout Gateway) -> Reply {
        guard var hc = gw.heatingCircuits[id] else { return .error(404, "no such heating circuit") }
        guard let p = BoschWire.decode(BoschWire.HeatingCircuitPatch.self, body),
            p.operationMode != nil || p.manualModeSettings != nil || p.autoModeSettings != nil
        else {
            return .error(400, "invalid heating circuit body")
        }
        if let auto = p.autoModeSettings {
            var settings = hc.autoModeSettings ?? .init(timeProgramId: nil, temperatureLevels: [:])
            if let tp = auto.timeProgramId {
                guard gw.timePrograms[id]?[tp] != nil else { return .error(400, "unknown timeProgramId") }
                settings.timeProgramId = tp
            }
            for (k, v) in auto.temperatureLevels ?? [:] {
                guard settings.temperatureLevels?[k] != nil, BoschWire.roomSetpointRange.contains(v) else {
                    return .error(400, "invalid temperature level \(k)")
                }
                settings.temperatureLevels?[k] = v
            }
            hc.autoModeSettings = settings
        }
        if let mode = p.operationMode {
            guard BoschWire.heatingModes.contains(mode) else { return .error(400, "invalid operationMode") }
            hc.operationMode = mode
        }
        if let sp = p.manualModeSettings?.setPointTemperature {
            guard BoschWire.roomSetpointRange.contains(sp) else { return .error(400, "setPointTemperature out of range") }
            hc.manualModeSettings = .init(setPointTemperature: sp)
        }
        // The circuit follows its mode: manual → the manual setpoint, auto → the comfort level, off → frost protection.
        switch hc.operationMode {
        case BoschWire.heatingModeManual: hc.currentSetPointTemperature = hc.manualModeSettings?.setPointTemperature
        case BoschWire.heatingModeOff: hc.currentSetPointTemperature = 5
        default: hc.currentSetPointTemperature = hc.autoModeSettings?.temperatureLevels?["comfort"]
        }
        gw.heatingCircuits[id] = hc
        return Reply(status: 204, body: [])
    }

    mutating func patchDhwCircuit(_ id: String, body: [UInt8], gw: inout Gateway) -> Reply {
        guard var d = gw.dhwCircuits[id] else { return .error(404, "no such DHW circuit") }
        guard let p = BoschWire.decode(BoschWire.DhwCircuitPatch.self, body) else { return .error(400, "invalid DHW circuit body") }
        if let mode = p.operationMode {
            guard BoschWire.dhwModes.contains(mode) else { return .error(400, "invalid operationMode") }
            d.operationMode = mode
        }
        // Start and stop depend on each other (clarified v1.30): start below stop, both in range.
        func valid(_ x: BoschWire.DhwModeSettings?) -> Bool {
            guard let x else { return true }
            guard let a = x.startSetPointTemperature, let b = x.stopSetPointTemperature else { return false }
            return a < b && BoschWire.dhwSetpointRange.contains(a) && BoschWire.dhwSetpointRange.contains(b)
        }
        guard valid(p.ecoModeSettings), valid(p.lowModeSettings), valid(p.highModeSettings) else {
            return .error(400, "invalid start/stop setpoints")
        }
        d.ecoModeSettings = p.ecoModeSettings ?? d.ecoModeSettings
        d.lowModeSettings = p.lowModeSettings ?? d.lowModeSettings
        d.highModeSettings = p.highModeSettings ?? d.highModeSettings
        gw.dhwCircuits[id] = d
        return Reply(status: 204, body: [])
    }

    mutating func charge(method: String, _ id: String, body: [UInt8], gw: inout Gateway, now: Double) -> Reply {
        guard let c = gw.charges[id] else { return .error(404, "no such DHW circuit") }
        if method == "GET" {
            let remaining = c.active ? max(0, c.durationMin - Int((now - c.startedAt) / 60)) : 0
            return .json(
                200,
                BoschWire.encode(
                    BoschWire.DhwCharge(
                        chargeStatus: c.active ? BoschWire.chargeStart : BoschWire.chargeStop,
                        chargeDuration: c.durationMin, chargeRemainingTime: remaining)))
        }
        guard method == "PATCH" else { return .error(405, "method not allowed") }
        guard let req = BoschWire.decode(BoschWire.DhwCharge.self, body),
            req.chargeStatus == BoschWire.chargeStart || req.chargeStatus == BoschWire.chargeStop
        else {
            return .error(400, "invalid charge body")
        }
        if let d = req.chargeDuration, !(1...240).contains(d) { return .error(400, "chargeDuration out of range") }
        if req.chargeStatus == BoschWire.chargeStart {
            gw.charges[id] = ChargeState(active: true, durationMin: req.chargeDuration ?? c.durationMin, startedAt: now)
        } else {
            gw.charges[id]?.active = false
        }
        return Reply(status: 204, body: [])
    }

    /// Days, times on the 15-minute grid, known levels, at most 6 points per day.
    static func validProgram(_ p: BoschWire.TimeProgram, levels: [String]) -> Bool {
        p.switchPoints.allSatisfy {
            BoschWire.days.contains($0.dayOfWeek) && (0..<1440).contains($0.time) && $0.time % 15 == 0 && levels.contains($0.setpoint)
        }
            && BoschWire.days.allSatisfy { d in p.switchPoints.filter { $0.dayOfWeek == d }.count <= 6 }
    }
}

/// Token bucket: `capacity` tokens, refilled at `perSecond`.
struct TokenBucket: Sendable {
    var capacity: Double
    var perSecond: Double
    var tokens: Double
    var last: Double

    init(capacity: Double, perSecond: Double, now: Double) {
        self.capacity = capacity
        self.perSecond = perSecond
        self.tokens = capacity
        self.last = now
    }

    /// Takes a token; returns nil on success or the seconds until one is available.
    mutating func take(now: Double) -> Double? {
        // Requests are counted at arrival and may reach the actor slightly out of order: time never runs back.
        tokens = min(capacity, tokens + max(0, now - last) * perSecond)
        last = max(last, now)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return (1 - tokens) / perSecond
    }
}

/// The simulator's own reading of local time, from Foundation's time-zone database: independent of the
/// daemon's glibc code on purpose, so a mistake there shows up as a clock offset instead of being mirrored.
enum SimulatorClock {
    /// Local wall time at `t`, as seconds since 1970-01-01 00:00 local.
    static func localWall(_ t: Double) -> Double {
        t + Double(TimeZone.current.secondsFromGMT(for: Date(timeIntervalSince1970: t)))
    }

    /// The instant of local wall time `minute` on day `day` (days since 1970-01-01).
    static func instant(day: Int64, minute: Int) -> Double {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        let (y, m, d) = Timestamp.civilFromDays(day)
        let parts = DateComponents(year: Int(y), month: Int(m), day: Int(d), hour: minute / 60, minute: minute % 60)
        return calendar.date(from: parts)?.timeIntervalSince1970 ?? Double(day * 86_400 + Int64(minute) * 60)
    }

    /// `2026-11-22T10:00:00`: local time at `t` in the gateway's format.
    static func localDateTime(_ t: Double) -> String {
        String(Timestamp.iso8601(localWall(t).rounded(.down)).dropLast())
    }
}

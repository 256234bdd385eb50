import HeatbridgeCore

/// The Podero Partner API adapter: the organisation's users' heat pumps as devices (`podero-<id>`, node `hp`),
/// their preferences as capabilities. Podero is a high-level surface (no low-level steering): a command
/// changes a preference with a partial `PUT` of only the fields it names.
public struct PoderoAdapter: VendorAdapter {
    public let vendor = "podero"
    let client: PoderoClient
    /// Heat-pump ids to bridge; nil means every heat pump of the organisation.
    let allowList: Set<String>?
    let clock: any Clock
    /// With an allow-list: when the organisation's listings (users, their heat pumps) are read — at start and
    /// about hourly — to learn each heat pump's owner; between them each heat pump is read by its own path.
    let companyWide: CompanyWideReads?

    public init(client: PoderoClient, allowList: [String]?, clock: any Clock, companyWide: CompanyWideReads? = nil) {
        self.client = client
        self.allowList = allowList.map(Set.init)
        self.clock = clock
        self.companyWide = allowList == nil ? nil : companyWide
    }

    /// Podero publishes no rate limits: one organisation listing per second for the whole partner is the
    /// assumption (INFERRED) a fleet's share is derived from.
    public static let companyWidePerSecond = 1.0

    /// Topic id of a heat pump.
    public static func deviceId(_ heatPumpId: String) -> String { TopicLayout.sanitize("podero-\(heatPumpId)") }

    /// The only node: the heat pump itself.
    public static let node = "hp"
    static let capabilities: Set<String> = ["optimization", "comfort", "dhw", "away", "pause"]

    // Local bounds, checked before any cloud call. INFERRED from the documented examples (comfort band
    // 19.0–21.5 °C, DHW 48/40 °C, away 16/35 °C); Podero's own limits are not published.
    static let comfortRange = 10.0...30.0
    static let dhwRange = 20.0...65.0
    static let awayRange = 5.0...25.0
    static let awayDhwRange = 10.0...60.0
    /// Longest power pause heatbridge asks for: a heat pump paused for days is a frozen house, not load shifting.
    public static let maxPauseMinutes = 1440
    /// Longest away period heatbridge accepts in one command.
    static let maxAwayDays = 366.0

    // MARK: reading

    public func fetchDevices() async throws(CloudError) -> [DeviceSnapshot] {
        if let allowList, let companyWide { return try await fetchOwnHeatPumps(allowList.sorted(), companyWide) }
        return try await listOrganisation().map { Self.snapshot($0.heatPump, owner: $0.owner) }
    }

    /// A box's own heat pumps, each by its path. The organisation's listings (to learn the owners) are a
    /// background read at `companyWide`'s times, and inline only while no owner is known (the first poll).
    /// A heat pump the listings do not name is left out (the bridge reports it as not visible); a 403/404 on
    /// one is evidence the listings changed.
    func fetchOwnHeatPumps(_ ids: [String], _ companyWide: CompanyWideReads) async throws(CloudError) -> [DeviceSnapshot] {
        guard let owners = await owners(companyWide) else {
            await companyWide.asked(ownersKey)
            // The listing carries the heat pumps themselves: no second read this poll.
            return try await listOwners(companyWide).filter { ids.contains($0.heatPump[PoderoWire.F.id]?.stringValue ?? "") }
                .map { Self.snapshot($0.heatPump, owner: $0.owner) }
        }
        var out: [DeviceSnapshot] = []
        for id in ids {
            guard let owner = owners[id] else { continue }
            do throws(CloudError) {
                let hp = try await client.request("GET", PoderoWire.Path.heatPump(client.orgId, owner, id))
                out.append(Self.snapshot(hp, owner: owner))
            } catch where error.status == 403 || error.status == 404 {
                await companyWide.evidence(ownersKey)
            }
        }
        return out
    }

    var ownersKey: String { PoderoWire.Path.users(client.orgId) }

    /// Heat-pump id → owner, from the last listing; nil before the first.
    func owners(_ companyWide: CompanyWideReads) async -> [String: String]? {
        await companyWide.answer(ownersKey).flatMap { try? JSONValue.parse($0) }?.objectValue?.compactMapValues(\.stringValue)
    }

    /// Lists the organisation (the caller marked it asked) and keeps who owns which heat pump.
    func listOwners(_ companyWide: CompanyWideReads) async throws(CloudError) -> [(heatPump: JSONValue, owner: String)] {
        do throws(CloudError) {
            let listed = try await listOrganisation()
            var owners: [String: JSONValue] = [:]
            for entry in listed { owners[entry.heatPump[PoderoWire.F.id]?.stringValue ?? ""] = .string(entry.owner) }
            await companyWide.keep(ownersKey, JSONValue.object(owners).bytes)
            return listed
        } catch {
            await companyWide.failed(ownersKey)
            throw error
        }
    }

    public func nextBackgroundRead() async -> EpochSeconds? {
        await companyWide?.nextDue([ownersKey])
    }

    public func backgroundRead() async {
        guard let companyWide, await companyWide.claim(ownersKey) else { return }
        _ = try? await listOwners(companyWide)
    }

    /// Every heat pump of the organisation with its owner: the users, then each user's heat pumps.
    func listOrganisation() async throws(CloudError) -> [(heatPump: JSONValue, owner: String)] {
        let usersJSON = try await client.request("GET", PoderoWire.Path.users(client.orgId))
        guard let users = usersJSON.arrayValue else {
            throw CloudError(.badResponse, status: 200, message: "user list is not a JSON array")
        }
        var out: [(heatPump: JSONValue, owner: String)] = []
        for user in users {
            guard let uid = user[PoderoWire.F.id]?.stringValue, user[PoderoWire.F.deletedAt]?.stringValue == nil else { continue }
            let list = try await client.request("GET", PoderoWire.Path.heatPumps(client.orgId, uid))
            guard let pumps = list.arrayValue else {
                throw CloudError(.badResponse, status: 200, message: "heat-pump list of a user is not a JSON array")
            }
            for hp in pumps {
                guard let id = hp[PoderoWire.F.id]?.stringValue, hp[PoderoWire.F.deletedAt]?.stringValue == nil,
                      allowList?.contains(id) ?? true else { continue }
                out.append((hp, uid))
            }
        }
        return out
    }

    /// One heat-pump object → a device with node `hp`.
    static func snapshot(_ hp: JSONValue, owner: String) -> DeviceSnapshot {
        typealias F = PoderoWire.F
        let id = hp[F.id]?.stringValue ?? ""
        let model = hp[F.deviceModel]
        let manufacturer = model?[F.manufacturer]?.stringValue
        let modelName = [manufacturer, model?[F.model]?.stringValue].compactMap { $0 }.joined(separator: " ")
        let lifecycle = hp[F.lifecycleState]?.stringValue
        let connection = hp[F.connectionStatus]?.stringValue
        // Podero's statuses are ok|warning|error|unknown: a warning still reaches the device.
        var online: Bool?
        switch connection {
        case PoderoWire.Status.ok, PoderoWire.Status.warning: online = true
        case PoderoWire.Status.error: online = false
        default: online = nil
        }
        if lifecycle == PoderoWire.Status.error { online = false }
        // Actions the user must take (re-authenticate with the manufacturer): code and link only.
        let actions: [JSONValue] = (hp[F.actions]?.arrayValue ?? []).map {
            ["code": $0[F.actionCode] ?? .null, "resolution_link": $0[F.resolutionLink] ?? .null]
        }
        var attributes: [String: JSONValue] = [
            "owner_id": .string(owner),
            "manufacturer": .string(manufacturer),
            "device_type": model?[F.deviceType]?[F.shortName] ?? .null,
            "lifecycle_state": .string(lifecycle),
            "lifecycle_error": hp[F.lifecycleError] ?? .null,
            "action_needed": .bool(hp[F.actionNeeded]?.boolValue ?? !actions.isEmpty),
            "actions": .array(actions),
        ]
        if attributes["lifecycle_error"]?.stringValue?.isEmpty == true { attributes["lifecycle_error"] = .null }
        return DeviceSnapshot(id: deviceId(id), vendorId: id, model: modelName.isEmpty ? nil : modelName, online: online,
                              attributes: attributes, nodes: [node: nodeState(hp)])
    }

    static func nodeState(_ hp: JSONValue) -> JSONValue {
        typealias F = PoderoWire.F
        func v(_ k: String) -> JSONValue { hp[k] ?? .null }
        // A measurement sent as a numeric string is read as the number (its meaning is clear); anything else
        // that is not a number is null rather than a string where MQTT promises a number.
        func n(_ k: String) -> JSONValue {
            switch hp[k] {
            case .number(let d)?: return .number(d)
            case .string(let s)?: return Double(s).map(JSONValue.number) ?? .null
            default: return .null
            }
        }
        return [
            "kind": "heat_pump",
            "power_w": n(F.power),
            "mode": v(F.mode),
            "temperatures": [
                "indoor": n(F.indoor), "indoor_target": n(F.indoorTarget), "outdoor": n(F.outdoor),
                "inlet": n(F.inlet), "outlet": n(F.outlet), "dhw": hp[F.dhw] != nil ? n(F.dhw) : n(F.dhwLegacy),
            ],
            "status": ["connection": v(F.connectionStatus), "monitoring": v(F.monitoringStatus), "steering": v(F.steeringStatus)],
            // One spelling on MQTT, state and commands alike: lowercase, as every other enum here (the API's
            // "Mid" is its wire spelling only; commands take any case).
            "optimization": ["active": v(F.optimizationActive), "level": .string(hp[F.optimizationLevel]?.stringValue?.lowercased()),
                             "score": v(F.optimizationScore)],
            "comfort": ["min": v(F.comfortMin), "max": v(F.comfortMax), "policy_enabled": v(F.heatingPolicy)],
            "dhw": ["standard": v(F.dhwStandard), "minimum": v(F.dhwMinimum)],
            "away": ["enabled": v(F.awayEnabled), "start": v(F.awayStart), "end": v(F.awayEnd),
                     "minimum": v(F.awayMinimum), "minimum_dhw": v(F.awayMinimumDhw)],
            "pause": ["active": v(F.pauseActive), "until": v(F.pauseUntil)],
            "state_updated_at": v(F.stateUpdatedAt),
        ]
    }

    // MARK: validation

    public func capabilities(of node: String) -> Set<String> { node == Self.node ? Self.capabilities : [] }

    public func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        try Self.validate(node: node, capability: capability, body: body, device: device, now: clock.now())
    }

    /// Also what a trigger action is checked with at config time (`PoderoModule.checkAction`).
    static func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot,
                         now: EpochSeconds) throws(CommandRejection) -> JSONValue {
        guard node == Self.node, let state = device.nodes[node] else {
            throw CommandRejection(.unknownTarget, "device \"\(device.id)\" has no node \"\(node)\"; nodes: \(Self.node)")
        }
        switch capability {
        case "optimization":
            try CapabilityValidation.allowOnly(body, ["active", "level"])
            var out: [String: JSONValue] = [:]
            if let a = try CapabilityValidation.optionalBool(body, "active") { out["active"] = .bool(a) }
            if body["level"] != nil { out["level"] = .string(try CapabilityValidation.oneOf(body, "level", PoderoWire.optimizationLevels)) }
            guard !out.isEmpty else { throw CommandRejection(.invalidPayload, "give \"active\" (true/false) and/or \"level\" (low, mid, max)") }
            return .object(out)
        case "comfort":
            try CapabilityValidation.allowOnly(body, ["min", "max"])
            let lo = try CapabilityValidation.optionalTemperature(body, "min", Self.comfortRange)
            let hi = try CapabilityValidation.optionalTemperature(body, "max", Self.comfortRange)
            guard lo != nil || hi != nil else { throw CommandRejection(.invalidPayload, "give \"min\" and/or \"max\" (°C)") }
            try Self.ordered(low: ("min", lo ?? state["comfort"]?["min"]?.doubleValue), high: ("max", hi ?? state["comfort"]?["max"]?.doubleValue), strict: true)
            var out: [String: JSONValue] = [:]
            if let lo { out["min"] = .number(lo) }
            if let hi { out["max"] = .number(hi) }
            return .object(out)
        case "dhw":
            try CapabilityValidation.allowOnly(body, ["standard", "minimum"])
            let std = try CapabilityValidation.optionalTemperature(body, "standard", Self.dhwRange)
            let min = try CapabilityValidation.optionalTemperature(body, "minimum", Self.dhwRange)
            guard std != nil || min != nil else { throw CommandRejection(.invalidPayload, "give \"standard\" and/or \"minimum\" (°C)") }
            try Self.ordered(low: ("minimum", min ?? state["dhw"]?["minimum"]?.doubleValue),
                             high: ("standard", std ?? state["dhw"]?["standard"]?.doubleValue), strict: false)
            var out: [String: JSONValue] = [:]
            if let std { out["standard"] = .number(std) }
            if let min { out["minimum"] = .number(min) }
            return .object(out)
        case "away":
            return try validateAway(body, now: now)
        case "pause":
            return try validatePause(body, now: now)
        default:
            throw CommandRejection(.unsupported, "\"\(capability)\" is not supported on \(node); supported: \(Self.capabilities.sorted().joined(separator: ", "))")
        }
    }

    /// `low` must stay below (or, when not strict, at most) `high`; either may be unknown.
    static func ordered(low: (String, Double?), high: (String, Double?), strict: Bool) throws(CommandRejection) {
        guard let l = low.1, let h = high.1 else { return }
        if strict ? l >= h : l > h {
            throw CommandRejection(.outOfRange, "\"\(low.0)\" (\(JSONValue.format(l))) must be \(strict ? "below" : "at most") \"\(high.0)\" (\(JSONValue.format(h)))")
        }
    }

    /// A required `{"action":"stop"}` form, or nil when the body is not a stop.
    static func isStop(_ body: [String: JSONValue]) throws(CommandRejection) -> Bool {
        guard let a = body["action"] else { return false }
        guard a.stringValue == "stop" else { throw CommandRejection(.invalidPayload, "\"action\" can only be \"stop\"") }
        guard body.count == 1 else { throw CommandRejection(.invalidPayload, "\"action\":\"stop\" takes no other members") }
        return true
    }

    static func time(_ body: [String: JSONValue], _ key: String) throws(CommandRejection) -> EpochSeconds? {
        guard let v = body[key] else { return nil }
        guard let s = v.stringValue, let t = Timestamp.parse(s) else {
            throw CommandRejection(.invalidPayload, "\"\(key)\" must be an ISO 8601 time with offset, e.g. \"2026-12-24T08:00:00Z\"")
        }
        return t
    }

    static func validateAway(_ body: [String: JSONValue], now: EpochSeconds) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["start", "end", "minimum", "minimum_dhw", "action"])
        if try Self.isStop(body) { return ["action": "stop"] }
        let start = try time(body, "start")
        guard let end = try time(body, "end") else { throw CommandRejection(.invalidPayload, "missing \"end\" (ISO 8601 time)") }
        guard end > now else { throw CommandRejection(.outOfRange, "\"end\" \(Timestamp.iso8601(end)) is in the past") }
        if let start, start >= end { throw CommandRejection(.outOfRange, "\"start\" must be before \"end\"") }
        guard end - (start ?? now) <= Self.maxAwayDays * 86_400 else {
            throw CommandRejection(.outOfRange, "away periods are at most \(Int(Self.maxAwayDays)) days")
        }
        var out: [String: JSONValue] = ["end": .string(Timestamp.iso8601(end))]
        if let start { out["start"] = .string(Timestamp.iso8601(start)) }
        if let m = try CapabilityValidation.optionalTemperature(body, "minimum", Self.awayRange) { out["minimum"] = .number(m) }
        if let m = try CapabilityValidation.optionalTemperature(body, "minimum_dhw", Self.awayDhwRange) { out["minimum_dhw"] = .number(m) }
        return .object(out)
    }

    static func validatePause(_ body: [String: JSONValue], now: EpochSeconds) throws(CommandRejection) -> JSONValue {
        try CapabilityValidation.allowOnly(body, ["until", "duration_min", "action"])
        if try Self.isStop(body) { return ["action": "stop"] }
        switch (body["until"], body["duration_min"]) {
        case (nil, nil): throw CommandRejection(.invalidPayload, "give \"until\" (ISO 8601 time), \"duration_min\", or \"action\":\"stop\"")
        case (.some, .some): throw CommandRejection(.invalidPayload, "give either \"until\" or \"duration_min\", not both")
        case (.some, nil):
            let until = try time(body, "until")!
            let left = until - now
            guard left > 0 else { throw CommandRejection(.outOfRange, "\"until\" \(Timestamp.iso8601(until)) is in the past") }
            guard left <= Double(Self.maxPauseMinutes) * 60 else {
                throw CommandRejection(.outOfRange, "\"until\" is more than \(Self.maxPauseMinutes / 60) h away; pauses are at most \(Self.maxPauseMinutes) min")
            }
            return ["until": .string(Timestamp.iso8601(until))]
        case (nil, .some(let d)):
            guard let m = d.intValue else { throw CommandRejection(.invalidPayload, "\"duration_min\" must be a whole number of minutes") }
            guard (1...Self.maxPauseMinutes).contains(m) else {
                throw CommandRejection(.outOfRange, "\"duration_min\" must be 1…\(Self.maxPauseMinutes), got \(m)")
            }
            // Counted from when the pause is sent, not from when the command arrived: a pause queued while
            // the cloud was away still lasts as long as asked.
            return ["duration_min": .int(m)]
        }
    }

    // MARK: commands

    /// The partial PUT body for a validated command: only the fields it changes.
    func putBody(_ c: Command) -> [String: JSONValue] {
        typealias F = PoderoWire.F
        let p = c.params
        var b: [String: JSONValue] = [:]
        switch c.capability {
        case "optimization":
            if let a = p["active"] { b[F.optimizationActive] = a }
            if let l = p["level"] { b[F.optimizationLevel] = l }
        case "comfort":
            if let v = p["min"] { b[F.comfortMin] = v }
            if let v = p["max"] { b[F.comfortMax] = v }
        case "dhw":
            if let v = p["standard"] { b[F.dhwStandard] = v }
            if let v = p["minimum"] { b[F.dhwMinimum] = v }
        case "away":
            if p["action"]?.stringValue == "stop" { b[F.awayEnabled] = false; break }
            b[F.awayEnabled] = true
            b[F.awayStart] = p["start"] ?? .string(Timestamp.iso8601(clock.now()))
            b[F.awayEnd] = p["end"]
            if let v = p["minimum"] { b[F.awayMinimum] = v }
            if let v = p["minimum_dhw"] { b[F.awayMinimumDhw] = v }
        case "pause":
            if p["action"]?.stringValue == "stop" { b[F.pauseActive] = false; break }
            b[F.pauseActive] = true
            if let m = p["duration_min"]?.doubleValue {
                b[F.pauseUntil] = .string(Timestamp.iso8601(clock.now() + m * 60))
            } else {
                b[F.pauseUntil] = p["until"]
            }
        default: break
        }
        return b
    }

    func path(_ device: DeviceSnapshot) throws(CloudError) -> String {
        guard let owner = device.attributes["owner_id"]?.stringValue else {
            throw CloudError(.rejected, message: "owner of \(device.id) unknown; wait for the next poll")
        }
        return PoderoWire.Path.heatPump(client.orgId, owner, device.vendorId)
    }

    public func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        let body = putBody(command)
        guard !body.isEmpty else { throw CloudError(.rejected, message: "\(command.capability) is not implemented for Podero") }
        _ = try await client.request("PUT", try path(device), body: .object(body))
        let p = command.params
        switch command.capability {
        case "optimization":
            return [p["active"]?.boolValue.map { $0 ? "smart optimisation on" : "smart optimisation off" },
                    p["level"]?.stringValue.map { "level \($0)" }].compactMap { $0 }.joined(separator: ", ")
        case "comfort", "dhw":
            return "\(command.capability) set: " + p.objectValue!.keys.sorted().map { "\($0) \(JSONValue.format(p[$0]?.doubleValue ?? 0)) °C" }.joined(separator: ", ")
        case "away":
            return p["action"] != nil ? "away mode off" : "away mode until \(p["end"]?.stringValue ?? "?")"
        default:
            return p["action"] != nil ? "power pause ended" : "power paused until \(body[PoderoWire.F.pauseUntil]?.stringValue ?? "?")"
        }
    }

    /// Leasable: the preferences that have no end time of their own (optimisation, comfort band, DHW).
    public func restoreParams(node: String, capability: String, device: DeviceSnapshot) -> JSONValue? {
        guard let state = device.nodes[node] else { return nil }
        let keys: [String]
        switch capability {
        case "optimization": keys = ["active", "level"]
        case "comfort": keys = ["min", "max"]
        case "dhw": keys = ["standard", "minimum"]
        default: return nil
        }
        var o: [String: JSONValue] = [:]
        for k in keys {
            guard let v = state[capability]?[k], v != .null else { return nil }
            o[k] = v
        }
        return .object(o)
    }

    public func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? {
        let hp = try await client.request("GET", try path(device))
        var wanted = putBody(command)
        // Times computed at send time cannot be compared after the fact; the flag they go with can.
        if command.params["duration_min"] != nil { wanted[PoderoWire.F.pauseUntil] = nil }
        if command.capability == "away", command.params["start"] == nil { wanted[PoderoWire.F.awayStart] = nil }
        for (k, v) in wanted {
            let now = hp[k] ?? .null
            if let a = v.stringValue, let ta = Timestamp.parse(a), let b = now.stringValue, let tb = Timestamp.parse(b) {
                if abs(ta - tb) > 1 { return false }
            } else if now != v {
                return false
            }
        }
        return true
    }

    // MARK: installer tools

    /// Creates a device onboarding session (`POST /device-onboarding`); returns the session object.
    public static func onboardingBody(user: String, language: String, priceZone: String, successURL: String, cancelURL: String,
                                      building: String?, optimize: Bool) -> JSONValue {
        var o: [String: JSONValue] = [
            PoderoWire.Onboarding.userId: .string(user), PoderoWire.Onboarding.language: .string(language),
            PoderoWire.Onboarding.priceZone: .string(priceZone),
            PoderoWire.Onboarding.successURL: .string(successURL), PoderoWire.Onboarding.cancelURL: .string(cancelURL),
            "is_smart_optimization_active_default": .bool(optimize),
        ]
        if let building { o["building_id"] = .string(building) }
        return .object(o)
    }
}

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
    static var capabilities: Set<String> { handlers.names }

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
            } catch  where error.status == 403 || error.status == 404 {
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
                    allowList?.contains(id) ?? true
                else { continue }
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
        return DeviceSnapshot(
            id: deviceId(id), vendorId: id, model: modelName.isEmpty ? nil : modelName, online: online,
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
            "optimization": [
                "active": v(F.optimizationActive), "level": .string(hp[F.optimizationLevel]?.stringValue?.lowercased()),
                "score": v(F.optimizationScore),
            ],
            "comfort": ["min": v(F.comfortMin), "max": v(F.comfortMax), "policy_enabled": v(F.heatingPolicy)],
            "dhw": ["standard": v(F.dhwStandard), "minimum": v(F.dhwMinimum)],
            "away": [
                "enabled": v(F.awayEnabled), "start": v(F.awayStart), "end": v(F.awayEnd),
                "minimum": v(F.awayMinimum), "minimum_dhw": v(F.awayMinimumDhw),
            ],
            "pause": ["active": v(F.pauseActive), "until": v(F.pauseUntil)],
            "state_updated_at": v(F.stateUpdatedAt),
        ]
    }

    // MARK: installer tools

    /// Creates a device onboarding session (`POST /device-onboarding`); returns the session object.
    public static func onboardingBody(
        user: String, language: String, priceZone: String, successURL: String, cancelURL: String,
        building: String?, optimize: Bool
    ) -> JSONValue {
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

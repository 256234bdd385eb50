import HeatbridgeCore
import VendorPodero

private typealias PF = PoderoWire.F

/// A stateful fake of the Podero Partner API v2.0 (cloud-apis.md §3), built from `PoderoWire`'s names:
/// client-credentials tokens with an expiry, users and heat pumps, state that Podero refreshes on a cadence
/// (`current_state_last_updated_at` moves only then), partial PUT with 422 validation errors in the
/// `{"detail": […]}` style, 409 for conflicting actions, onboarding sessions valid until the end of the next day.
public struct PoderoCloud: Sendable {
    public var clientId: String
    public var clientSecret: String
    public var orgId: String
    /// `expires_in` of new tokens (10 h in production; seconds in tests).
    public var tokenTTL: Double = 36_000
    /// How often the manufacturer-cloud refresh moves the state (Podero: 5–15 min).
    public var stateCadenceS: Double = 600
    public var users: [JSONValue]
    /// Heat pumps by id, each with its owner.
    public var heatPumps: [String: (owner: String, object: [String: JSONValue])]
    var tokens: [String: Double] = [:]
    var lastRefresh: Double = 0
    var refreshCount = 0
    var sessions: [String: JSONValue] = [:]
    public private(set) var tokensIssued = 0

    public init(
        clientId: String, clientSecret: String, orgId: String, users: [JSONValue],
        heatPumps: [String: (owner: String, object: [String: JSONValue])]
    ) {
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.orgId = orgId
        self.users = users
        self.heatPumps = heatPumps
    }

    /// The built-in scenario: one user with one air-to-water heat pump.
    public static func defaultScenario(now: Double = 0) -> PoderoCloud {
        let user = "7d0c2f4e-5b1a-4c3e-9f20-1a2b3c4d5e6f"
        return PoderoCloud(
            clientId: "demo-client", clientSecret: "demo-secret", orgId: "org-demo",
            users: [
                [
                    PoderoWire.F.id: .string(user), PoderoWire.F.email: "owner@example.invalid", PoderoWire.F.role: "user",
                    PoderoWire.F.deletedAt: .null,
                ]
            ],
            heatPumps: ["3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b": (user, makeHeatPump(id: "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b", now: now))])
    }

    public static func makeHeatPump(id: String, now: Double) -> [String: JSONValue] {
        typealias F = PoderoWire.F
        return [
            F.id: .string(id), F.deletedAt: .null,
            F.deviceModel: [
                F.deviceType: [F.shortName: "hp_atw", F.longName: "Heat Pump (Air-to-Water)"],
                F.manufacturer: "NIBE", F.model: "F2120", F.year: 2022,
            ],
            F.connectionStatus: .string(PoderoWire.Status.ok), F.monitoringStatus: .string(PoderoWire.Status.ok),
            F.steeringStatus: .string(PoderoWire.Status.ok), F.lifecycleState: .string(PoderoWire.Status.authenticated), F.lifecycleError: .null,
            F.actionNeeded: false, F.actions: [],
            F.power: 1450, F.mode: "mid", F.outdoor: 4.5, F.indoor: 20.8, F.indoorTarget: 21.0,
            F.inlet: 31.5, F.outlet: 36.0, F.dhw: 47.0,
            F.stateUpdatedAt: .string(Timestamp.iso8601(now)),
            F.optimizationActive: true, F.optimizationLevel: "Mid", F.optimizationScore: 82,
            F.comfortMin: 19.0, F.comfortMax: 21.5, F.heatingPolicy: true,
            F.dhwStandard: 48.0, F.dhwMinimum: 40.0,
            F.awayEnabled: false, F.awayStart: .null, F.awayEnd: .null, F.awayMinimum: 16.0, F.awayMinimumDhw: 35.0,
            F.pauseActive: false, F.pauseUntil: .null,
        ]
    }

    typealias Reply = BoschCloud.Reply

    static func detail(_ status: Int, _ text: String) -> Reply { Reply(status: status, body: PoderoWire.errorBody(text)) }

    /// Handles one request (path relative to the simulator's `/podero` mount, query included).
    mutating func handle(method: String, path fullPath: String, headers: [String: String], body: [UInt8], now: Double) -> Reply {
        refresh(now: now)
        let pathOnly = String(fullPath.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let query = fullPath.contains("?") ? String(fullPath.split(separator: "?", maxSplits: 1)[1]) : ""
        // FlyingFox drops the trailing slash the real endpoint has.
        if pathOnly == PoderoWire.tokenPath || pathOnly + "/" == PoderoWire.tokenPath {
            return token(method: method, headers: headers, body: body, now: now)
        }
        guard pathOnly.hasPrefix(PoderoWire.apiPrefix + "/") else { return Self.detail(404, "Not Found") }
        // Bearer check first: Podero answers 401 to a missing or expired token on every API path.
        guard let auth = headers["authorization"], auth.hasPrefix("Bearer "),
            let exp = tokens[String(auth.dropFirst(7))], exp > now
        else {
            return Self.detail(401, "Invalid token.")
        }
        guard let route = PoderoWire.Route(path: String(pathOnly.dropFirst(PoderoWire.apiPrefix.count))) else { return Self.detail(404, "Not Found") }
        if let org = route.org, org != orgId { return Self.detail(403, "You do not have permission to perform this action.") }
        func owned(_ user: String, _ hp: String) -> Bool { heatPumps[hp]?.owner == user }
        switch (method, route) {
        case (_, .onboarding), (_, .onboardingSession):
            return onboarding(method: method, route: route, body: body, now: now)
        case ("GET", .users):
            return Reply(status: 200, body: JSONValue.array(users).bytes)
        case ("GET", .heatPumps(_, let user)):
            let list = heatPumps.values.filter { $0.owner == user }.map { JSONValue.object($0.object) }
            guard users.contains(where: { $0[PF.id]?.stringValue == user }) else { return Self.detail(404, "User not found") }
            return Reply(status: 200, body: JSONValue.array(list.sorted { ($0[PF.id]?.stringValue ?? "") < ($1[PF.id]?.stringValue ?? "") }).bytes)
        case ("GET", .heatPump(_, let user, let hp)):
            guard let pump = heatPumps[hp], pump.owner == user else { return Self.detail(404, "Heat pump not found") }
            return Reply(status: 200, body: JSONValue.object(pump.object).bytes)
        case ("PUT", .heatPump(_, let user, let hp)):
            guard owned(user, hp) else { return Self.detail(404, "Heat pump not found") }
            return update(hp, body: body, now: now)
        case ("GET", .statistics(_, let user, let hp)):
            guard owned(user, hp) else { return Self.detail(404, "Heat pump not found") }
            return statistics(query: query, now: now)
        default:
            return Self.detail(405, "Method Not Allowed")
        }
    }

    mutating func token(method: String, headers: [String: String], body: [UInt8], now: Double) -> Reply {
        guard method == "POST" else { return Self.detail(405, "Method Not Allowed") }
        guard let auth = headers["authorization"], auth.hasPrefix("Basic "),
            let raw = Base64.decode(String(auth.dropFirst(6))),
            String(decoding: raw, as: UTF8.self) == "\(clientId):\(clientSecret)"
        else {
            return Reply(status: 401, body: JSONValue.object([PoderoWire.Token.error: .string(PoderoWire.Token.invalidClient)]).bytes)
        }
        let text = String(decoding: body, as: UTF8.self)
        let grant =
            (try? JSONValue.parse(body))?[PoderoWire.Token.grantType]?.stringValue
            ?? (text.contains("\(PoderoWire.Token.grantType)=\(PoderoWire.Token.clientCredentials)") ? PoderoWire.Token.clientCredentials : nil)
        guard grant == PoderoWire.Token.clientCredentials else {
            return Reply(status: 400, body: JSONValue.object([PoderoWire.Token.error: .string(PoderoWire.Token.unsupportedGrant)]).bytes)
        }
        tokensIssued += 1
        // 30 characters, opaque, like the real ones.
        let value = "simtok" + String(repeating: "0", count: max(0, 24 - String(tokensIssued).count)) + String(tokensIssued)
        tokens[value] = now + tokenTTL
        return Reply(
            status: 200,
            body: JSONValue.object([
                PoderoWire.Token.accessToken: .string(value), PoderoWire.Token.expiresIn: .number(tokenTTL), PoderoWire.Token.tokenType: "Bearer",
                "scope": "read write",
            ]).bytes)
    }

    /// Podero's periodic refresh from the manufacturer cloud: the state fields and their timestamp move
    /// together, and only on the cadence.
    mutating func refresh(now: Double, force: Bool = false) {
        var force = force
        if lastRefresh == 0 { force = true }
        for id in heatPumps.keys {
            // An elapsed pause ends by itself.
            if heatPumps[id]!.object[PoderoWire.F.pauseActive] == true,
                let until = heatPumps[id]!.object[PoderoWire.F.pauseUntil]?.stringValue.flatMap(Timestamp.parse), until <= now
            {
                heatPumps[id]!.object[PoderoWire.F.pauseActive] = false
                heatPumps[id]!.object[PoderoWire.F.pauseUntil] = .null
            }
        }
        guard force || now - lastRefresh >= stateCadenceS else { return }
        lastRefresh = now
        refreshCount += 1
        let wiggle = Double(refreshCount % 5) - 2
        for id in heatPumps.keys {
            typealias F = PoderoWire.F
            var o = heatPumps[id]!.object
            let paused = o[F.pauseActive] == true
            o[F.power] = .number(paused ? 0 : 1450 + wiggle * 120)
            o[F.outdoor] = .number(4.5 + wiggle * 0.5)
            o[F.indoor] = .number(20.8 + wiggle * 0.1)
            o[F.outlet] = .number(paused ? 28 : 36 + wiggle)
            o[F.stateUpdatedAt] = .string(Timestamp.iso8601(now))
            heatPumps[id]!.object = o
        }
    }

    /// Partial update: only the fields sent change. Unknown and read-only fields are ignored, as the API does.
    mutating func update(_ id: String, body: [UInt8], now: Double) -> Reply {
        typealias F = PoderoWire.F
        guard let j = try? JSONValue.parse(body), let patch = j.objectValue else {
            return Reply(status: 422, body: PoderoWire.validationBody(field: "body", "Input should be a valid dictionary"))
        }
        var o = heatPumps[id]!.object
        let writable: Set<String> = [
            F.optimizationActive, F.optimizationLevel, F.comfortMin, F.comfortMax, F.heatingPolicy, F.dhwStandard,
            F.dhwMinimum, F.awayEnabled, F.awayStart, F.awayEnd, F.awayMinimum, F.awayMinimumDhw, F.pauseActive, F.pauseUntil,
        ]
        for (k, v) in patch where writable.contains(k) {
            switch k {
            case F.optimizationLevel:
                guard let s = v.stringValue, PoderoWire.optimizationLevels.contains(s) else {
                    return Reply(status: 422, body: PoderoWire.validationBody(field: k, "Input should be 'Low', 'Mid' or 'Max'"))
                }
            case F.optimizationActive, F.heatingPolicy, F.awayEnabled, F.pauseActive:
                guard v.boolValue != nil else {
                    return Reply(status: 422, body: PoderoWire.validationBody(field: k, "Input should be a valid boolean"))
                }
            case F.awayStart, F.awayEnd, F.pauseUntil:
                guard v == .null || v.stringValue.flatMap(Timestamp.parse) != nil else {
                    return Reply(status: 422, body: PoderoWire.validationBody(field: k, "Input should be a valid datetime"))
                }
            default:
                guard let t = v.doubleValue, (0...80).contains(t) else {
                    return Reply(status: 422, body: PoderoWire.validationBody(field: k, "Input should be a valid number between 0 and 80"))
                }
            }
            o[k] = v
        }
        if let lo = o[F.comfortMin]?.doubleValue, let hi = o[F.comfortMax]?.doubleValue, lo >= hi {
            return Reply(
                status: 422, body: PoderoWire.validationBody(field: F.comfortMin, "minimum_temperature_limit must be below maximum_temperature_limit")
            )
        }
        // INFERRED conflict rule: Podero refuses to pause power while away mode already governs the device.
        if patch[F.pauseActive] == true, o[F.awayEnabled] == true {
            return Self.detail(409, "Power pause is not possible while away mode is active")
        }
        if patch[F.pauseActive] == false { o[F.pauseUntil] = .null }
        if patch[F.awayEnabled] == false {
            o[F.awayStart] = .null
            o[F.awayEnd] = .null
        }
        heatPumps[id]!.object = o
        return Reply(status: 200, body: JSONValue.object(o).bytes)
    }

    mutating func onboarding(method: String, route: PoderoWire.Route, body: [UInt8], now: Double) -> Reply {
        if method == "GET", case .onboardingSession(let sessionId) = route {
            guard let s = sessions[sessionId] else { return Self.detail(404, "Onboarding session not found") }
            return Reply(status: 200, body: s.bytes)
        }
        guard method == "POST", route == .onboarding else { return Self.detail(405, "Method Not Allowed") }
        guard let j = try? JSONValue.parse(body) else { return Reply(status: 422, body: PoderoWire.validationBody(field: "body", "Invalid JSON")) }
        for k in PoderoWire.Onboarding.required where j[k]?.stringValue == nil {
            return Reply(status: 422, body: PoderoWire.validationBody(field: k, "Field required"))
        }
        guard PoderoWire.languages.contains(j[PoderoWire.Onboarding.language]!.stringValue!) else {
            return Reply(
                status: 422,
                body: PoderoWire.validationBody(
                    field: PoderoWire.Onboarding.language, "Input should be one of \(PoderoWire.languages.joined(separator: ", "))"))
        }
        guard PoderoWire.priceZones.contains(j[PoderoWire.Onboarding.priceZone]!.stringValue!) else {
            return Reply(status: 422, body: PoderoWire.validationBody(field: PoderoWire.Onboarding.priceZone, "Input is not a valid price zone"))
        }
        guard users.contains(where: { $0[PF.id] == j[PoderoWire.Onboarding.userId] }) else { return Self.detail(404, "User not found") }
        let n = sessions.count + 1
        let id = "0b5e0000-0000-4000-8000-" + String(repeating: "0", count: 12 - String(n).count) + String(n)
        // Valid until the end of the next day [pub]; the API gives the date only.
        let day = Int64((now / 86_400).rounded(.down)) + 1
        let (y, m, d) = Timestamp.civilFromDays(day)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let session: JSONValue = [
            PF.id: .string(id), "user": j[PoderoWire.Onboarding.userId]!, PoderoWire.Onboarding.successURL: j[PoderoWire.Onboarding.successURL]!,
            PoderoWire.Onboarding.cancelURL: j[PoderoWire.Onboarding.cancelURL]!,
            PoderoWire.Onboarding.authenticationURL: .string("https://connect.podero.com?onboarding_session_id=\(id)"),
            PoderoWire.Onboarding.expirationDate: .string("\(y)-\(two(m))-\(two(d))"), "object_id": .null, "external_metadata": [:],
        ]
        sessions[id] = session
        return Reply(status: 201, body: session.bytes)
    }

    func statistics(query: String, now: Double) -> Reply {
        var resolutions = ["1DAY"]
        for item in query.split(separator: "&") where item.hasPrefix(PoderoWire.Statistics.resolution + "=") {
            resolutions = item.dropFirst(PoderoWire.Statistics.resolution.count + 1).split(separator: ",").map(String.init)
        }
        if let bad = resolutions.first(where: { !PoderoWire.resolutions.contains($0) }) {
            return Reply(status: 422, body: PoderoWire.validationBody(field: PoderoWire.Statistics.resolution, "\(bad) is not a valid resolution"))
        }
        var data: [JSONValue] = []
        if resolutions.contains("1DAY") {
            // INFERRED: one row per day, the last 7 (UTC) days, today's so far. A day's amount: 18.4 kWh plus a
            // little by weekday, so days differ.
            let today = (now / 86_400).rounded(.down)
            for back in stride(from: 6.0, through: 0, by: -1) {
                let start = (today - back) * 86_400
                let whole = 18_400 + Double(Int64(today - back) % 5) * 300
                let wh = back == 0 ? (whole * (now - start) / 86_400).rounded() : whole
                data.append([
                    PoderoWire.Statistics.resolution: "1DAY",
                    PoderoWire.Statistics.period: [
                        PoderoWire.Statistics.startPeriod: .string(Timestamp.iso8601(start)),
                        PoderoWire.Statistics.endPeriod: .string(Timestamp.iso8601(start + 86_400)),
                    ],
                    PoderoWire.Statistics.savings: [PoderoWire.Statistics.total: .number(0.62), PoderoWire.Statistics.percentage: 14.5],
                    PoderoWire.Statistics.consumption: [PoderoWire.Statistics.total: .number(wh)],
                    PoderoWire.Statistics.heatPump: [PoderoWire.Statistics.estimatedConsumption: .number((wh * 1.17).rounded())],
                ])
            }
        }
        data += resolutions.filter { $0 != "1DAY" }.map { r in
            let table: [String: Double] = ["1DAY": 1, "1WEEK": 7, "1MONTH": 30, "1QUARTER": 91, "1YEAR": 365]
            let days = table[r] ?? 1
            return [
                PoderoWire.Statistics.resolution: .string(r),
                PoderoWire.Statistics.period: [
                    PoderoWire.Statistics.startPeriod: .string(Timestamp.iso8601(now - days * 86_400)),
                    PoderoWire.Statistics.endPeriod: .string(Timestamp.iso8601(now)),
                ],
                PoderoWire.Statistics.savings: [PoderoWire.Statistics.total: .number(0.62 * days), PoderoWire.Statistics.percentage: 14.5],
                PoderoWire.Statistics.consumption: [PoderoWire.Statistics.total: .number(18_400 * days)],
                PoderoWire.Statistics.heatPump: [PoderoWire.Statistics.estimatedConsumption: .number(21_500 * days)],
            ]
        }
        return Reply(
            status: 200,
            body: JSONValue.object([
                PoderoWire.Statistics.metadata: [
                    "requested_at": .string(Timestamp.iso8601(now)), "query": [:], "units": ["consumption": "Wh"], "error": .null,
                ],
                PoderoWire.Statistics.data: .array(data),
            ]).bytes)
    }

    /// Admin view.
    public func stateJSON() -> JSONValue {
        var hps: [String: JSONValue] = [:]
        for (id, hp) in heatPumps { hps[id] = .object(hp.object.merging(["owner": .string(hp.owner)]) { a, _ in a }) }
        return [
            "heat_pumps": .object(hps), "tokens_issued": .int(tokensIssued), "sessions": .int(sessions.count),
            "token_ttl_s": .number(tokenTTL), "state_cadence_s": .number(stateCadenceS),
        ]
    }

    /// Admin: invalidates every issued token (as if they all expired).
    mutating func expireTokens() { tokens = [:] }
}

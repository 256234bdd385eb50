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
    /// With an allow-list: when the company-wide paths (`/health`, `/hvacs`) are asked — at start and about
    /// hourly instead of every poll, since all boxes of the partner share their buckets. nil asks every poll.
    let companyWide: CompanyWideReads?

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

    public init(
        transport: any HTTPTransport, baseURL: String, apiKey: String, userId: String, timeout: Double,
        allowList: [String]?, budget: RateBudget? = nil, answerCache: AnswerCache? = nil, rotation: BoschKey.Rotation? = nil,
        clock: (any HeatbridgeCore.Clock)? = nil, localTime: any LocalTime = FixedOffsetTime(offsetS: 0),
        companyWide: CompanyWideReads? = nil
    ) {
        self.budget = budget
        self.companyWide = allowList == nil ? nil : companyWide
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
    func call(
        _ method: String, _ path: String, body: [UInt8]? = nil, remoteControl: Bool = false,
        priority: RequestPriority? = nil
    ) async throws(CloudError) -> [UInt8] {
        if let budget {
            do {
                try await budget.acquire(
                    "\(method) \(path)", Self.limit(method: method, path: path),
                    priority: min(priority ?? RequestPriority.current, RequestPriority.current))
            } catch {
                throw CloudError(.unavailable, message: "cancelled while waiting for the rate budget")
            }
        }
        var headers = [("Accept", "application/json")]
        // Behind a relay the box has no key; the relay adds it.
        if !key.current.isEmpty { headers.insert((BoschWire.apiKeyHeader, key.current), at: 0) }
        if remoteControl { headers.append((BoschWire.userIdHeader, userId)) }
        let response: HTTPResponse
        do {
            response = try await transport.send(HTTPRequest(method: method, url: baseURL + path, headers: headers, body: body, timeout: timeout))
        } catch {
            throw CloudError.transport(error, api: "Bosch API", what: "\(method) \(path)", timeout: timeout)
        }
        if (200..<300).contains(response.status) { return response.body }
        throw Self.classify(response, method: method, path: path, relay: key.current.isEmpty)
    }

    /// Maps a non-2xx answer to the contract's error classes (cloud-apis.md §1.3).
    /// `relay`: the box has no key of its own, so a 401 is the relay refusing the box's certificate.
    public static func classify(_ r: HTTPResponse, method: String, path: String, relay: Bool = false) -> CloudError {
        let body = BoschWire.decode(BoschWire.ErrorBody.self, r.body)
        let detail = body?.message.map { String($0.prefix(200)) }
        func msg(_ fallback: String) -> String { detail.map { "\(fallback): \($0)" } ?? fallback }
        // Bosch tracks every request for support cases; where its id travels is INFERRED (cloud-apis.md §1.1):
        // the error body's `requestId`, else a request-id header.
        let requestId = body?.requestId ?? BoschWire.requestIdHeaders.lazy.compactMap { r.headers[$0] }.first
        var e: CloudError
        switch r.status {
        case 451:
            e = CloudError(.consentRequired, status: 451, message: msg("the owner must accept the current consent in the Gateway Management Portal"))
        case 504: e = CloudError(.deviceOffline, status: 504, message: msg("gateway offline"))
        default:
            e = .status(
                r, api: "Bosch API", what: "\(method) \(path)", detail: detail, unauthorized: relay ? CloudError.relayRefusedBox : "API key rejected",
                forbidden: "no contract for this gateway", retryAfterDefault: 2)
        }
        e.requestId = requestId.flatMap(CloudError.supportId)
        return e
    }

    /// A GET decoded as `T`. `keepFor` caches a successful answer that long (resources that do not change).
    func get<T: Decodable>(
        _ type: T.Type, _ path: String, remoteControl: Bool = false, keepFor: Double? = nil,
        priority: RequestPriority? = nil
    ) async throws(CloudError) -> T {
        let body: [UInt8]
        var fresh = false
        switch await answers?.lookup(path) {
        case .failure(let cached)?: throw cached
        case .success(let cached)?: body = cached
        case nil:
            do {
                body = try await call("GET", path, remoteControl: remoteControl, priority: priority)
                fresh = true
            } catch {
                if let answers, error.status == 404 { await answers.remember(path, error, forS: Self.notFoundTTL) }
                if let answers, error.kind == .deviceOffline { await answers.remember(path, error, forS: Self.offlineTTL) }
                throw error
            }
        }
        // Read leniently (most shapes are INFERRED): what differs is reported to the part being read, and only
        // an answer that cannot be read at all fails.
        let (value, issues) = BoschWire.decodeTolerant(type, body)
        for i in issues { WireIssues.report(WireIssue(request: "GET \(path)", field: i.field, problem: i.problem)) }
        guard let v = value else {
            let why = issues.last.map { $0.field.isEmpty ? $0.problem : "field \($0.field): \($0.problem)" } ?? "unreadable"
            throw CloudError(.badResponse, status: 200, message: "unreadable answer to GET \(path): \(why)")
        }
        WireIssues.keepUnknownFields(of: body, beside: v)
        // Only a fresh answer is remembered: re-remembering a cached one kept it (and its time) forever, so the
        // gateway clock's offset drifted by the time since the real read (−20, −41, −61 … s) and was never re-read.
        if fresh, let keepFor, let answers { await answers.remember(path, body: body, forS: keepFor) }
        return v
    }

    // MARK: reading

    public func fetchDevices() async throws(CloudError) -> [DeviceSnapshot] {
        if let allowList, let companyWide { return try await fetchOwnGateways(allowList.sorted(), companyWide) }
        try await checkHealth()
        let gateways = try await get([BoschWire.Gateway].self, BoschWire.Path.hvacs)
        var out: [DeviceSnapshot] = []
        for gw in gateways where allowList?.contains(gw.gatewayId) ?? true {
            out.append(try await fetchGateway(gw))
        }
        return out
    }

    /// A box's own gateways: per-gateway paths every poll (their buckets are per company and gateway, so boxes
    /// do not compete). `/health` and `/hvacs` are background reads at `companyWide`'s times; only the first
    /// start of a box alone asks them inline. Between two reads the last gateway list names brand and type;
    /// before the first (or when it failed) the gateways are read by id. A gateway the list does not name is
    /// left out (the bridge reports it as not visible); one that answers 403/404 shows that error and is
    /// evidence that the list changed, which is then asked again soon.
    func fetchOwnGateways(_ ids: [String], _ companyWide: CompanyWideReads) async throws(CloudError) -> [DeviceSnapshot] {
        for path in Self.companyWidePaths where await companyWide.answer(path) == nil {
            if await companyWide.claim(path) { try await readCompanyWide(path, companyWide) }
        }
        if let body = await companyWide.answer(BoschWire.Path.health) { try Self.healthVerdict(body) }
        var listed: [String: BoschWire.Gateway]?
        if let body = await companyWide.answer(BoschWire.Path.hvacs), let list = BoschWire.decode([BoschWire.Gateway].self, body) {
            listed = Dictionary(list.map { ($0.gatewayId, $0) }, uniquingKeysWith: { a, _ in a })
        }
        var out: [DeviceSnapshot] = []
        for id in ids {
            if let listed, listed[id] == nil { continue }
            let snapshot = try await fetchGateway(listed?[id] ?? BoschWire.Gateway(gatewayId: id))
            if let status = snapshot.error?.status, status == 403 || status == 404 { await companyWide.evidence(BoschWire.Path.hvacs) }
            out.append(snapshot)
        }
        return out
    }

    /// The company-wide paths a box with an allow-list reads in the background.
    static let companyWidePaths = [BoschWire.Path.health, BoschWire.Path.hvacs]

    public func nextBackgroundRead() async -> EpochSeconds? {
        await companyWide?.nextDue(Self.companyWidePaths)
    }

    public func backgroundRead() async {
        guard let companyWide else { return }
        for path in Self.companyWidePaths where await companyWide.claim(path) { try? await readCompanyWide(path, companyWide) }
    }

    /// Reads one company-wide path (claimed by the caller) at the lowest priority and keeps a good answer. A
    /// failure is tried again after the least gap (the poll goes on without it); only a rejected key is passed on.
    func readCompanyWide(_ path: String, _ companyWide: CompanyWideReads) async throws(CloudError) {
        do {
            let body = try await call("GET", path, priority: .sync)
            await companyWide.keep(path, body)
            // Bosch saying it is down is asked again soon, not in an hour.
            if path == BoschWire.Path.health, (try? Self.healthVerdict(body)) == nil { await companyWide.failed(path) }
        } catch {
            await companyWide.failed(path)
            if error.kind == .authFailed { throw error }
        }
    }

    /// A kept `/health` answer: Bosch saying the API is down takes the account offline; an answer we cannot
    /// read (its shape is a guess) says nothing.
    static func healthVerdict(_ body: [UInt8]) throws(CloudError) {
        guard let health = BoschWire.decode(BoschWire.Health.self, body) else { return }
        try healthVerdict(status: health.status)
    }

    static func healthVerdict(status reported: String) throws(CloudError) {
        let status = reported.uppercased()
        guard status == BoschWire.healthUp || status == BoschWire.healthOK else {
            throw CloudError(.unavailable, message: "Bosch reports the Partner API as \(status) (GET /health)")
        }
    }

    /// `GET /health`: when Bosch itself says the API is down, the account is offline with that reason and
    /// the poll spends no more requests (the cache keeps serving). A missing endpoint (404) or a body we cannot
    /// read (its shape is a guess) says nothing: the poll goes on and shows what really works.
    func checkHealth() async throws(CloudError) {
        let health: BoschWire.Health
        do {
            health = try await get(BoschWire.Health.self, BoschWire.Path.health)
        } catch  where error.status == 404 || error.kind == .badResponse {
            return
        }
        try Self.healthVerdict(status: health.status)
    }

    public func refresh(_ device: DeviceSnapshot) async throws(CloudError) -> DeviceSnapshot? {
        try await fetchGateway(
            BoschWire.Gateway(
                gatewayId: device.vendorId, deviceType: device.model,
                brand: device.attributes["brand"]?.stringValue))
    }

    func fetchGateway(_ gw: BoschWire.Gateway) async throws(CloudError) -> DeviceSnapshot {
        let id = Self.deviceId(gw.gatewayId)
        let attributes: [String: JSONValue] = ["brand": .string(gw.brand)]
        do {
            let status = try await get(BoschWire.GatewayStatus.self, BoschWire.Path.status(gw.gatewayId))
            let online = status.status.uppercased() == BoschWire.gatewayOnline
            guard online else {
                return DeviceSnapshot(id: id, vendorId: gw.gatewayId, model: gw.deviceType, online: false, attributes: attributes, nodes: [:])
            }
            var nodes: [String: JSONValue] = [:]
            var schedules: [String: WeekSchedule] = [:]
            // Each part is read on its own: an answer that differs from the definition marks that part (an
            // `error` naming the request and field, the rest of it still published), never the whole gateway.
            func part(_ node: String, _ read: () async throws(CloudError) -> (JSONValue, WeekSchedule?)) async throws(CloudError) {
                do {
                    let ((state, program), issues, unknown) = try await WireIssues.collecting(read)
                    var o = state.objectValue ?? [:]
                    if !issues.isEmpty { o["error"] = WireIssues.errorJSON(issues) }
                    // What the cloud sends beyond the definition, as sent (documented: `vendor` in node states).
                    if !unknown.isEmpty { o["vendor"] = .object(unknown) }
                    nodes[node] = .object(o)
                    if let program { schedules[node] = program }
                } catch  where error.kind == .badResponse {
                    nodes[node] = ["error": ["code": .string(error.code.rawValue), "message": .string(error.message)]]
                }
            }
            for ref in try await get([BoschWire.CircuitRef].self, BoschWire.Path.heatingCircuits(gw.gatewayId)) {
                let node = Self.nodeId(BoschNode.hcPrefix, ref.id)
                try await part(node) { () async throws(CloudError) -> (JSONValue, WeekSchedule?) in
                    let hc = try await get(BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(gw.gatewayId, ref.id), remoteControl: true)
                    var state = Self.nodeState(hc).objectValue ?? [:]
                    // Not every circuit has these (404: ISRC, older controllers); the rest of the circuit still counts.
                    do throws(CloudError) {
                        state["heat_curve"] = Self.curveJSON(
                            try await get(
                                BoschWire.HeatCurve.self, BoschWire.Path.heatCurve(gw.gatewayId, ref.id),
                                remoteControl: true))
                    } catch  where error.kind == .rejected { state["heat_curve"] = .null }
                    do throws(CloudError) {
                        state["distribution"] = .string(
                            try await get(
                                BoschWire.HeatingDistribution.self, BoschWire.Path.distribution(gw.gatewayId, ref.id),
                                remoteControl: true, keepFor: Self.staticTTL
                            ).heatingDistributionType.lowercased())
                    } catch  where error.kind == .rejected { state["distribution"] = .null }
                    var program: WeekSchedule?
                    if let tp = hc.autoModeSettings?.timeProgramId {
                        do throws(CloudError) {
                            let p = try await get(
                                BoschWire.TimeProgram.self,
                                BoschWire.Path.heatingTimeProgram(gw.gatewayId, ref.id, tp), remoteControl: true,
                                priority: .sync)
                            program = Self.schedule(p, levels: hc.autoModeSettings?.temperatureLevels ?? [:])
                        } catch  where error.kind == .rejected {
                            // 404 and friends: this circuit has no readable program (e.g. ISRC); the rest still counts.
                        }
                    }
                    return (.object(state), program)
                }
            }
            for ref in try await get([BoschWire.CircuitRef].self, BoschWire.Path.dhwCircuits(gw.gatewayId)) {
                let node = Self.nodeId(BoschNode.dhwPrefix, ref.id)
                try await part(node) { () async throws(CloudError) -> (JSONValue, WeekSchedule?) in
                    let dhw = try await get(BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(gw.gatewayId, ref.id), remoteControl: true)
                    let charge = try await get(BoschWire.DhwCharge.self, BoschWire.Path.charge(gw.gatewayId, ref.id), remoteControl: true)
                    let tp = dhw.autoModeSettings?.timeProgramId ?? BoschWire.defaultDhwProgram
                    var program: WeekSchedule?
                    do throws(CloudError) {
                        let p = try await get(
                            BoschWire.TimeProgram.self, BoschWire.Path.dhwTimeProgram(gw.gatewayId, ref.id, tp),
                            remoteControl: true, priority: .sync)
                        program = Self.schedule(p, levels: Self.dhwLevels(dhw))
                    } catch  where error.kind == .rejected {
                        // No DHW program on this controller (404): the circuit itself still counts.
                    }
                    return (Self.nodeState(dhw, charge: charge), program)
                }
            }
            try await part(BoschNode.systemId) { () async throws(CloudError) -> (JSONValue, WeekSchedule?) in
                (try await systemState(gw.gatewayId), nil)
            }
            return DeviceSnapshot(
                id: id, vendorId: gw.gatewayId, model: gw.deviceType, online: true, attributes: attributes, nodes: nodes,
                schedules: schedules)
        } catch {
            // Errors about this gateway alone leave the account healthy; the rest fail the whole poll.
            guard error.accountState == nil else { throw error }
            let online: Bool? = error.kind == .deviceOffline ? false : nil
            return DeviceSnapshot(
                id: id, vendorId: gw.gatewayId, model: gw.deviceType, online: online, attributes: attributes,
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
        } catch  where error.kind == .rejected {}
        do {
            holidays = .array(try await get([BoschWire.HolidayMode].self, BoschWire.Path.holidayModes(gw), remoteControl: true).map(Self.holidayJSON))
        } catch  where error.kind == .rejected {}
        do {
            let path = BoschWire.Path.dateTime(gw)
            let t = try await get(BoschWire.DateTime.self, path, remoteControl: true, keepFor: Self.syncTTL, priority: .sync)
            dateTime = .string(t.dateTime)
            // Measured against the box's clock when the answer arrived: both clocks advance alike, so the
            // offset stays true while the answer is cached.
            if let readAt = await answers?.storedAt(path) ?? clock?.now(), let gwWall = Timestamp.parse(t.dateTime + "Z") {
                clockOffset = .number((gwWall - Self.localWall(readAt, localTime)).rounded())
            }
        } catch  where error.kind == .rejected {}
        do {
            components = .array(
                try await get([BoschWire.Component].self, BoschWire.Path.components(gw), keepFor: Self.syncTTL, priority: .sync)
                    .map {
                        [
                            "id": .string($0.id), "type": .string($0.type), "software_version": .string($0.softwareVersion),
                            "serial_number": .string($0.serialNumber),
                        ]
                    })
        } catch  where error.kind == .rejected {}
        return [
            "kind": "system", "silent_mode": silent, "holidays": holidays, "date_time": dateTime, "clock_offset_s": clockOffset,
            "components": components,
        ]
    }
}

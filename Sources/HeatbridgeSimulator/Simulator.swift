import FlyingFox
import FlyingSocks
import Foundation
import HeatbridgeConfig
import HeatbridgeCore
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// FlyingFox has a JSONValue too; the simulator means Core's.
typealias JSON = HeatbridgeCore.JSONValue

/// A fault to inject into matching requests (admin API `POST /admin/faults`).
public struct Fault: Sendable {
    public var vendor: String?
    public var method: String?
    public var pathContains: String?
    /// The whole path (below the vendor prefix, without the query), when `path_contains` would match too much.
    public var path: String?
    /// Answer with this status (and `body`, or a vendor-style error body).
    public var status: Int?
    public var body: String?
    public var retryAfter: Int?
    /// Answer 200 with a body that is not JSON.
    public var malformed: Bool
    /// Delay before answering (beyond the client's timeout this is a timeout).
    public var latencyMs: Int
    /// How many requests it applies to; nil means until cleared.
    public var remaining: Int?
    /// Answer 200 with every request header echoed, in the body and as `x-echo-<name>` response headers (plus a
    /// cookie and an internal header): an upstream that reflects what it was sent.
    public var echo: Bool = false
    /// The normal answer, gzip-compressed with `Content-Encoding: gzip` and no `Vary` whenever the request
    /// accepts gzip: an upstream a cache in front of it must not be handed a box's `Accept-Encoding`.
    public var gzip: Bool = false

    static func from(_ j: JSON) -> Fault? {
        guard case .object = j else { return nil }
        return Fault(
            vendor: j["vendor"]?.stringValue, method: j["method"]?.stringValue?.uppercased(),
            pathContains: j["path_contains"]?.stringValue, path: j["path"]?.stringValue, status: j["status"]?.intValue, body: j["body"]?.stringValue,
            retryAfter: j["retry_after"]?.intValue, malformed: j["malformed"]?.boolValue ?? false,
            latencyMs: j["latency_ms"]?.intValue ?? 0, remaining: j["count"]?.intValue,
            echo: j["echo"]?.boolValue ?? false, gzip: j["gzip"]?.boolValue ?? false)
    }

    func matches(vendor v: String, method m: String, path: String) -> Bool {
        (vendor == nil || vendor == v) && (method == nil || method == m) && (pathContains.map { path.contains($0) } ?? true)
            && (self.path.map { $0 == String(path.prefix { $0 != "?" }) } ?? true)
    }
}

/// One request as the simulator saw it (admin API `GET /admin/requests`).
struct LoggedRequest: Sendable {
    var vendor: String
    var method: String
    var path: String
    var status: Int
    var hadApiKey: Bool
    var hadUserId: Bool
    var body: String
    var at: Double
    /// The names of the request's headers (lower case, sorted): what reached the cloud beside the credential.
    var headers: [String] = []
    /// Bosch's `x-user-id` as sent (who acts, for the cloud's audit).
    var userId: String?
}

/// The simulated clouds plus the admin API. Paths: `/bosch/…` (Bosch Partner API), `/podero/…` (Podero
/// Partner API and its token endpoint), `/admin/…`.
public actor Simulator {
    var bosch: BoschCloud
    let seed: BoschCloud
    var podero: PoderoCloud
    let poderoSeed: PoderoCloud
    var hsl: HSLCloud
    let hslSeed: HSLCloud
    var faults: [Fault] = []
    var log: [LoggedRequest] = []
    /// Answers per vendor and status since the last reset, never trimmed (the log keeps only the last 10,000).
    var statusCounts: [String: Int] = [:]
    /// When set, every vendor request fails as if the cloud were down (503).
    var down = false
    /// Recorded answers (`heatbridge probe --save`, or a partner's recording) by vendor and `GET <path>`:
    /// served instead of the simulated ones; everything else (writes, paths not recorded) stays simulated.
    var fixtures: [String: [String: Answer]] = [:]
    /// Webhook URLs, queued events, delivery faults and the simulated heat pumps (`Simulator+Webhooks.swift`).
    var webhooks = WebhookState()

    /// The recorded answer for a request, as `probe` names requests: relative to the vendor's API base
    /// (Podero's `/api/partners/v2.0` is part of its base URL), a HomeSmartlink read with the home it asks for.
    static func recorded(_ answers: [String: Answer], vendor: String, method: String, sub: String, body: [UInt8]) -> Answer? {
        var path = String(sub.prefix { $0 != "?" })
        if vendor == "podero", path.hasPrefix(PoderoWire.apiPrefix) { path = String(path.dropFirst(PoderoWire.apiPrefix.count)) }
        if vendor == "homesmartlink", let home = (try? JSON.parse(body))?[HSLWire.F.homeId]?.stringValue {
            return answers["\(method) \(path) {homeId: \(home)}"] ?? answers["\(method) \(path)"]
        }
        return answers["\(method) \(path)"]
    }

    /// Serves recorded answers: each `{"vendor","request","status","body"}` file as `probe --save` writes them.
    /// Returns how many were loaded.
    public func loadFixtures(_ files: [[UInt8]]) -> Int {
        var n = 0
        for bytes in files {
            guard let f = try? JSON.parse(bytes), let vendor = f["vendor"]?.stringValue, let request = f["request"]?.stringValue,
                let status = f["status"]?.intValue
            else { continue }
            let body: [UInt8] = f["body"].map { $0 == .null ? [] : ($0.stringValue.map { Array($0.utf8) } ?? $0.bytes) } ?? []
            fixtures[vendor, default: [:]][request] = Answer(status: status, headers: [:], body: body, delayMs: 0)
            n += 1
        }
        return n
    }

    public init(bosch: BoschCloud, podero: PoderoCloud = .defaultScenario(), hsl: HSLCloud = .defaultScenario()) {
        self.bosch = bosch
        self.seed = bosch
        self.podero = podero
        self.poderoSeed = podero
        self.hsl = hsl
        self.hslSeed = hsl
    }

    static let vendors = ["bosch", "podero", "homesmartlink"]

    /// A vendor-style error body for an injected fault.
    static func faultBody(vendor: String) -> [UInt8] {
        vendor == "podero"
            ? PoderoWire.errorBody("injected fault")
            : vendor == "homesmartlink"
                ? HSLWire.errorBody("injected fault")
                : BoschWire.encode(BoschWire.ErrorBody(message: "injected fault", requestId: "sim-fault"))
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    public struct Answer: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
        public var delayMs: Int
    }

    /// Handles one HTTP request.
    /// `arrivedAt`: when the request came in (the HTTP front end's time). The clouds' limits count a request when
    /// it arrives, as a cloud's edge does, not when this single actor gets to it: under load (100 boxes starting
    /// at once) requests queue here, and counting them at their turn would compress them into a burst.
    public func handle(method: String, path: String, headers: [String: String], body: [UInt8], arrivedAt: Double? = nil) -> Answer {
        let now = arrivedAt ?? Self.now()
        if path.hasPrefix("/admin/") || path == "/admin" { return admin(method: method, path: path, body: body, now: now) }
        guard let vendor = Self.vendors.first(where: { path.hasPrefix("/\($0)/") }) else {
            return Answer(status: 404, headers: [:], body: Array("{\"message\":\"unknown vendor\"}".utf8), delayMs: 0)
        }
        let sub = String(path.dropFirst(vendor.count + 1))
        var answer: Answer
        var delay = 0
        if let recorded = fixtures[vendor].flatMap({ Self.recorded($0, vendor: vendor, method: method, sub: sub, body: body) }), faults.isEmpty, !down
        {
            log.append(
                LoggedRequest(
                    vendor: vendor, method: method, path: sub, status: recorded.status, hadApiKey: true, hadUserId: true,
                    body: "", at: now))
            statusCounts["\(vendor) \(recorded.status)", default: 0] += 1
            return recorded
        }
        if let i = faults.firstIndex(where: { $0.matches(vendor: vendor, method: method, path: sub) }) {
            let f = faults[i]
            delay = f.latencyMs
            if let r = f.remaining {
                if r <= 1 { faults.remove(at: i) } else { faults[i].remaining = r - 1 }
            }
            if f.echo {
                answer = Self.echo(headers)
            } else if f.malformed {
                answer = Answer(status: 200, headers: [:], body: Array("<html>502 upstream garbage".utf8), delayMs: delay)
            } else if let status = f.status {
                var h: [String: String] = [:]
                if let ra = f.retryAfter { h["retry-after"] = String(ra) }
                let b = f.body.map { Array($0.utf8) } ?? Self.faultBody(vendor: vendor)
                answer = Answer(status: status, headers: h, body: b, delayMs: delay)
            } else {
                answer = normal(vendor: vendor, method: method, sub: sub, headers: headers, body: body, delay: delay, now: now)
            }
            if f.gzip, (headers["accept-encoding"] ?? "").contains("gzip") {
                answer.body = Gzip.stored(answer.body)
                answer.headers["content-encoding"] = "gzip"
            }
        } else {
            answer = normal(vendor: vendor, method: method, sub: sub, headers: headers, body: body, delay: delay, now: now)
        }
        // had_api_key: the vendor's credential header was present (x-api-key, or Authorization elsewhere).
        let credential = vendor == "bosch" ? headers[BoschWire.apiKeyHeader] : headers["authorization"]
        log.append(
            LoggedRequest(
                vendor: vendor, method: method, path: sub, status: answer.status,
                hadApiKey: credential != nil, hadUserId: headers[BoschWire.userIdHeader] != nil,
                body: String(decoding: body.prefix(2048), as: UTF8.self), at: now, headers: headers.keys.sorted(),
                userId: headers[BoschWire.userIdHeader]))
        if log.count > 10_000 { log.removeFirst(log.count - 10_000) }
        statusCounts["\(vendor) \(answer.status)", default: 0] += 1
        return answer
    }

    func normal(vendor: String, method: String, sub: String, headers: [String: String], body: [UInt8], delay: Int, now: Double) -> Answer {
        if down {
            return Answer(
                status: 503, headers: [:],
                body: vendor == "podero"
                    ? PoderoWire.errorBody("Service Unavailable")
                    : BoschWire.encode(BoschWire.ErrorBody(message: "Service Unavailable")), delayMs: delay)
        }
        let r =
            vendor == "podero"
            ? podero.handle(method: method, path: sub, headers: headers, body: body, now: now)
            : vendor == "homesmartlink"
                ? hsl.handle(method: method, path: sub, headers: headers, body: body, now: now)
                : boschHandle(method: method, path: sub, headers: headers, body: body, now: now)
        return Answer(status: r.status, headers: r.headers, body: r.body, delayMs: delay)
    }

    /// Bosch's answer; a webhook simulation it accepted is really sent.
    func boschHandle(method: String, path: String, headers: [String: String], body: [UInt8], now: Double) -> BoschCloud.Reply {
        let before = bosch.webhookSimulations.count
        let r = bosch.handle(method: method, path: path, headers: headers, body: body, now: now)
        if bosch.webhookSimulations.count > before, let w = bosch.webhookSimulations.last { simulateEvent(type: w.eventType, gatewayId: w.gatewayId) }
        // A charge started or stopped: the appliance reports its charge status as a data point [doc].
        let parts = path.split(separator: "/").map(String.init)
        if method == "PATCH", (200..<300).contains(r.status), parts.count == 5, parts[0] == "hvacs", parts[2] == "dhwCircuits", parts[4] == "charge",
            let c = bosch.gateways[parts[1]]?.charges[parts[3]]
        {
            enqueue(
                parts[1], type: BoschWire.EventType.dataPoint, at: now,
                payload: BoschWire.dataPointPayload(
                    key: BoschWire.DataPoint.chargeStatus("dhw\(parts[3])"),
                    value: .string(c.active ? BoschWire.chargeStart : BoschWire.chargeStop), unit: nil))
        }
        return r
    }

    /// An upstream that reflects its request: every header in the body and back as `x-echo-<name>`.
    static func echo(_ headers: [String: String]) -> Answer {
        var h = Dictionary(uniqueKeysWithValues: headers.map { ("x-echo-\($0.key)", $0.value) })
        h["set-cookie"] = "upstream-session=1"
        h["x-internal-route"] = "echo"
        return Answer(status: 200, headers: h, body: JSON.object(headers.mapValues { .string($0) }).bytes, delayMs: 0)
    }

    func ok(_ j: JSON = ["ok": true]) -> Answer { Answer(status: 200, headers: [:], body: j.bytes, delayMs: 0) }
    func bad(_ msg: String) -> Answer { Answer(status: 400, headers: [:], body: JSON.object(["error": .string(msg)]).bytes, delayMs: 0) }

    /// `now`: the request's arrival, on the same time as the clouds' (a test's clock in process).
    func admin(method: String, path: String, body: [UInt8], now: Double) -> Answer {
        let j = body.isEmpty ? JSON.object([:]) : (try? JSON.parse(body))
        if path.hasPrefix("/admin/bosch/webhooks") || path == "/admin/bosch/events", let a = webhookAdmin(method: method, path: path, j: j) {
            return a
        }
        switch (method, path) {
        case ("GET", "/admin/state"):
            return ok([
                "bosch": bosch.stateJSON(now: now), "podero": podero.stateJSON(), "homesmartlink": hsl.stateJSON(now: now),
                "down": .bool(down), "faults": .int(faults.count),
            ])
        case ("GET", "/admin/requests"):
            return ok(
                .array(
                    log.map {
                        [
                            "vendor": .string($0.vendor), "method": .string($0.method), "path": .string($0.path), "status": .int($0.status),
                            "had_api_key": .bool($0.hadApiKey), "had_user_id": .bool($0.hadUserId), "body": .string($0.body),
                            "at": .number($0.at), "headers": .array($0.headers.map { .string($0) }),
                            "user_id": $0.userId.map { .string($0) } ?? .null,
                        ]
                    }))
        case ("DELETE", "/admin/requests"):
            log = []
            statusCounts = [:]
            return ok()
        case ("GET", "/admin/stats"):
            // {"bosch 200": 1234, "bosch 429": 0, …}: what a long run answered, beyond the log's window.
            return ok(.object(statusCounts.mapValues { .int($0) }))
        case ("POST", "/admin/bosch"):
            if let v = j?["health"]?.stringValue { bosch.health = v }
            // The partner key the API accepts (besides keys issued by POST /api-keys).
            if let v = j?["api_key"]?.stringValue { bosch.apiKey = v }
            return ok()
        case ("POST", "/admin/faults"):
            guard let j, let f = Fault.from(j) else { return bad("fault must be a JSON object") }
            faults.append(f)
            return ok()
        case ("DELETE", "/admin/faults"):
            faults = []
            return ok()
        case ("POST", "/admin/down"):
            down = j?["down"]?.boolValue ?? true
            return ok()
        case ("POST", "/admin/rate-limit"):
            bosch.rateLimitEnabled = j?["enabled"]?.boolValue ?? true
            bosch.buckets = [:]
            return ok()
        case ("POST", "/admin/reset"):
            bosch = seed
            podero = poderoSeed
            hsl = hslSeed
            webhooks = WebhookState()
            faults = []
            log = []
            statusCounts = [:]
            down = false
            return ok()
        case ("POST", "/admin/podero"):
            // Knobs: token lifetime, refresh cadence, expire every token now, force a state refresh now.
            if let v = j?["token_ttl_s"]?.doubleValue { podero.tokenTTL = v }
            if let v = j?["state_cadence_s"]?.doubleValue { podero.stateCadenceS = v }
            if j?["expire_tokens"]?.boolValue == true { podero.expireTokens() }
            if let v = j?["client_secret"]?.stringValue { podero.clientSecret = v }
            if j?["refresh"]?.boolValue == true { podero.refresh(now: now, force: true) }
            return ok()
        case ("POST", "/admin/homesmartlink"):
            // Knobs: acknowledgement delay, homes that never acknowledge, diagnosis delay, client secret.
            if let v = j?["ack_delay_s"]?.doubleValue { hsl.ackDelayS = v }
            if let v = j?["never_ack"]?.arrayValue { hsl.neverAck = Set(v.compactMap(\.stringValue)) }
            if let v = j?["diagnosis_delay_s"]?.doubleValue { hsl.diagnosisDelayS = v }
            if let v = j?["client_secret"]?.stringValue { hsl.clientSecret = v }
            if let id = j?["add_home"]?.stringValue, var copy = hsl.homes.values.sorted(by: { $0.id < $1.id }).first {
                // Another home shaped like the first (same rooms and heaters), e.g. for group derogations.
                copy.id = id
                copy.email = "owner-\(id)@example.invalid"
                hsl.homes[id] = copy
            }
            return ok()
        default:
            if method == "POST", path.hasPrefix("/admin/podero/heat-pumps/") {
                // Fields set as the cloud would report them (connection_status, actions, …).
                let id = String(path.dropFirst("/admin/podero/heat-pumps/".count))
                guard podero.heatPumps[id] != nil, let fields = j?.objectValue else { return bad("unknown heat pump \(id) or bad body") }
                for (k, v) in fields { podero.heatPumps[id]!.object[k] = v }
                return ok()
            }
            if method == "POST", path.hasPrefix("/admin/bosch/contracts/") {
                // The end user changes a contract (e.g. closes it in the app): {"status":"CLOSED"}.
                let id = String(path.dropFirst("/admin/bosch/contracts/".count))
                guard let st = j?["status"]?.stringValue, BoschWire.contractStatuses.contains(st) else {
                    return bad("status must be one of \(BoschWire.contractStatuses)")
                }
                var c = bosch.allContracts().first { $0.gatewayId == id } ?? BoschWire.Contract(gatewayId: id, status: st)
                c.status = st
                c.statusDate = Timestamp.iso8601(now)
                bosch.contracts[id] = c
                if st != BoschWire.ContractState.active { bosch.gateways[id]?.contract = false }
                gatewayChanged(id, online: nil, contract: st, fault: nil)
                return ok()
            }
            if method == "POST", path.hasPrefix("/admin/bosch/gateways/"), path.contains("/programs/") {
                // /admin/bosch/gateways/<id>/programs/<hc>/<tp>: an edit made elsewhere (the vendor's app).
                let parts = path.dropFirst("/admin/bosch/gateways/".count).split(separator: "/").map(String.init)
                guard parts.count == 4, bosch.gateways[parts[0]]?.timePrograms[parts[2]]?[parts[3]] != nil,
                    let p = BoschWire.decode(BoschWire.TimeProgram.self, body)
                else { return bad("unknown program or bad body") }
                bosch.gateways[parts[0]]!.timePrograms[parts[2]]![parts[3]] = p
                return ok()
            }
            if method == "POST", path.hasPrefix("/admin/bosch/gateways/") {
                let id = String(path.dropFirst("/admin/bosch/gateways/".count))
                guard bosch.gateways[id] != nil, let j else { return bad("unknown gateway \(id)") }
                if let v = j["online"]?.boolValue {
                    if bosch.gateways[id]!.online != v { gatewayChanged(id, online: v, contract: nil, fault: nil) }
                    bosch.gateways[id]!.online = v
                }
                // {"fault": {"faultClass", "causeCode", "text", "status"}} or {"fault": null}: an appliance status event.
                if let f = j["fault"] { gatewayChanged(id, online: nil, contract: nil, fault: f) }
                if j["power_w"] != nil || j["dhw_temperature"] != nil || j["consumed_kwh"] != nil { setMeter(id, j) }
                if let v = j["contract"]?.boolValue { bosch.gateways[id]!.contract = v }
                if let v = j["consent"]?.stringValue { bosch.gateways[id]!.consentCurrent = v != "old" }
                if let v = j["clock_offset_s"]?.doubleValue { bosch.gateways[id]!.clockOffsetS = v }
                if let list = j["undetected"]?.arrayValue {
                    // Components plugged in since the last system detection: found by the next POST …/components.
                    bosch.gateways[id]!.undetected = list.compactMap { c in
                        c["type"]?.stringValue.map {
                            BoschWire.Component(
                                id: c["id"]?.stringValue, type: $0, softwareVersion: c["software_version"]?.stringValue,
                                serialNumber: c["serial_number"]?.stringValue)
                        }
                    }
                }
                return ok()
            }
            return Answer(status: 404, headers: [:], body: Array("{\"error\":\"unknown admin path\"}".utf8), delayMs: 0)
        }
    }
}

/// Serves a `Simulator` over HTTP on 127.0.0.1.
public struct SimulatorServer: HTTPHandler {
    let simulator: Simulator

    /// The CA to trust for HTTPS webhook URLs (the relay's own); nil trusts the system's store.
    let webhookCAFile: String?

    public init(simulator: Simulator, webhookCAFile: String? = nil) {
        self.simulator = simulator
        self.webhookCAFile = webhookCAFile
    }

    public func handleRequest(_ request: FlyingFox.HTTPRequest) async throws -> FlyingFox.HTTPResponse {
        var headers: [String: String] = [:]
        for (k, v) in request.headers { headers[k.rawValue.lowercased()] = v }
        let body = try await request.bodyData
        let arrived = Simulator.now()
        // The query goes along (decoded), so `…/statistics?resolution=1DAY` reaches the vendor handler.
        let query = request.query.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let path = query.isEmpty ? request.path : request.path + "?" + query
        let a = await simulator.handle(method: request.method.rawValue, path: path, headers: headers, body: Array(body), arrivedAt: arrived)
        if a.delayMs > 0 { try await Task.sleep(nanoseconds: UInt64(a.delayMs) * 1_000_000) }
        var h = HTTPHeaders()
        h[HTTPHeader("Content-Type")] = "application/json"
        for (k, v) in a.headers { h[HTTPHeader(k)] = v }
        return HTTPResponse(statusCode: HTTPStatusCode(a.status, phrase: "Status"), headers: h, body: Data(a.body))
    }

    /// Listens on 127.0.0.1:`port` until cancelled.
    public func run(port: UInt16) async throws {
        let server = HTTPServer(
            address: try sockaddr_in.inet(ip4: "127.0.0.1", port: port), timeout: 30,
            pool: NoDelayPool(HTTPServer.defaultPool()), handler: self)
        // The webhook pump runs beside the server and ends with it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await WebhookPump(simulator: simulator, caFile: webhookCAFile).run() }
            group.addTask { try await server.run() }
            try await group.next()
            group.cancelAll()
        }
    }
}

/// FlyingFox writes a response's head and body in two writes. On a kept-alive connection Nagle's algorithm then
/// holds the body until the client acknowledges the head, which a delayed ACK puts off by ~40 ms: every reused
/// connection would answer 40 ms late. Real clouds set TCP_NODELAY; so does the simulator, on each socket the
/// pool is handed (the listener and every connection, before it waits for its first request).
struct NoDelayPool<Inner: AsyncSocketPool>: AsyncSocketPool {
    let inner: Inner
    init(_ inner: Inner) { self.inner = inner }
    func prepare() async throws { try await inner.prepare() }
    func run() async throws { try await inner.run() }
    func suspendSocket(_ socket: Socket, untilReadyFor events: Socket.Events) async throws {
        try? socket.setValue(true, for: BoolSocketOption(level: Int32(IPPROTO_TCP), name: TCP_NODELAY))
        try await inner.suspendSocket(socket, untilReadyFor: events)
    }
}

/// The simulated clouds a scenario describes.
public struct ScenarioClouds: Sendable {
    public var bosch: BoschCloud
    public var podero: PoderoCloud
    public var hsl: HSLCloud = .defaultScenario()
    public static func builtIn() -> ScenarioClouds { ScenarioClouds(bosch: .defaultScenario(), podero: .defaultScenario()) }
}

/// Loads a scenario file (YAML) into the simulated clouds.
public enum Scenario {
    /// ```yaml
    /// bosch:
    ///   api_key: xHCSAPI-…
    ///   rate_limit: true
    ///   gateways:
    ///     - {id: "101000001", brand: buderus, device_type: WLW186i, contract: true, consent: current, online: true}
    /// podero:
    ///   client_id: demo-client
    ///   client_secret: demo-secret
    ///   org_id: org-demo
    ///   token_ttl_s: 36000
    ///   state_cadence_s: 600
    /// ```
    /// A vendor section left out keeps its built-in scenario.
    public static func load(path: String) throws -> ScenarioClouds {
        struct ScenarioError: Error, CustomStringConvertible { var description: String }
        guard case .success(let bytes) = FileIO.read(path) else { throw ScenarioError(description: "cannot read \(path)") }
        let root: ConfigNode
        switch YAMLReader.parse(String(decoding: bytes, as: UTF8.self), file: path) {
        case .success(let r): root = r
        case .failure(let d): throw ScenarioError(description: d.description)
        }
        func scalar(_ n: ConfigNode?) -> String? {
            if case .scalar(let s, _, _)? = n { return s }
            return nil
        }
        func entries(_ n: ConfigNode?) -> [String: ConfigNode] {
            guard case .mapping(let e, _)? = n else { return [:] }
            return Dictionary(e.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        }
        let b = entries(entries(root)["bosch"])
        var cloud = BoschCloud.defaultScenario()
        if let k = scalar(b["api_key"]) { cloud.apiKey = k }
        if let r = scalar(b["rate_limit"]) { cloud.rateLimitEnabled = r == "true" }
        if case .sequence(let items, _)? = b["gateways"] {
            var gws: [String: BoschCloud.Gateway] = [:]
            for item in items {
                let g = entries(item)
                guard let id = scalar(g["id"]) else { throw ScenarioError(description: "\(path):\(item.mark.line): gateway needs an id") }
                gws[id] = BoschCloud.makeGateway(
                    id: id, brand: scalar(g["brand"]) ?? "bosch", deviceType: scalar(g["device_type"]) ?? "CS7001iAW",
                    contract: scalar(g["contract"]) != "false", consentCurrent: scalar(g["consent"]) != "old",
                    online: scalar(g["online"]) != "false")
            }
            cloud.gateways = gws
        }
        let p = entries(entries(root)["podero"])
        var podero = PoderoCloud.defaultScenario()
        if let v = scalar(p["client_id"]) { podero.clientId = v }
        if let v = scalar(p["client_secret"]) { podero.clientSecret = v }
        if let v = scalar(p["org_id"]) { podero.orgId = v }
        if let v = scalar(p["token_ttl_s"]).flatMap(Double.init) { podero.tokenTTL = v }
        if let v = scalar(p["state_cadence_s"]).flatMap(Double.init) { podero.stateCadenceS = v }
        return ScenarioClouds(bosch: cloud, podero: podero)
    }
}

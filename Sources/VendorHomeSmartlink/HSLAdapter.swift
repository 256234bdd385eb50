import HeatbridgeCore

/// The wire's field names, spelled once in `HSLWire.F`.
private typealias F = HSLWire.F

/// The HomeSmartlink 3rd Party API adapter: each configured home is a device (`hsl-<homeId>`), each room a
/// node (`room-<roomId>`) listing its heaters; derogations (temporary setpoint offsets, the API's load
/// shedding) are sent per window and followed through the delivery report until every home acknowledged.
public struct HSLAdapter: VendorAdapter, GroupExecuting {
    public let vendor = "homesmartlink"
    let transport: any HTTPTransport
    let baseURL: String
    let clientId: String
    /// Basic auth from the client id and secret; nil behind a relay, which adds it (the box has no secret).
    let authorization: String?
    let homes: [String]
    let timeout: Double
    let clock: any Clock
    let localTime: any LocalTime
    /// How long a derogation may take to be acknowledged by every home before it fails `NOT_ACKNOWLEDGED`.
    let reportTimeoutS: Double
    /// How often the delivery report is read while waiting.
    let reportIntervalS: Double
    /// Derogations sent by this process, shown in the room state (`derogation`).
    let book = DerogationBook()
    /// Diagnoses requested and not yet answered, checked on each poll.
    let diagnoses = DiagnosisBook()
    /// A diagnosis result is asked for no sooner than this after the request, then on every poll.
    let diagnosisCheckS: Double

    public init(
        transport: any HTTPTransport, baseURL: String, clientId: String, clientSecret: String?, homes: [String], timeout: Double,
        clock: any Clock, localTime: any LocalTime, reportTimeoutS: Double = 300, reportIntervalS: Double = 10,
        diagnosisCheckS: Double = 60
    ) {
        self.diagnosisCheckS = diagnosisCheckS
        self.transport = transport
        self.baseURL = baseURL
        self.clientId = clientId
        self.authorization = clientSecret.map { Base64.basicAuthorization(user: clientId, password: $0) }
        self.homes = homes
        self.timeout = timeout
        self.clock = clock
        self.localTime = localTime
        self.reportTimeoutS = reportTimeoutS
        self.reportIntervalS = reportIntervalS
    }

    public static func deviceId(_ homeId: String) -> String { TopicLayout.sanitize("hsl-\(homeId)") }
    /// Rooms are nodes `room-<roomId>`; the home's gateway is the node `system`.
    static let roomPrefix = "room-"
    static let systemNode = "system"
    public static func nodeId(_ roomId: Int) -> String { roomPrefix + String(roomId) }
    /// The room id of a node, nil for any other node.
    static func roomId(_ node: String) -> Int? { node.hasPrefix(roomPrefix) ? Int(node.dropFirst(roomPrefix.count)) : nil }

    // MARK: HTTP

    /// One exchange with Basic auth; a non-2xx answer becomes its error class.
    func send(_ method: String, _ path: String, body: JSONValue?) async throws(CloudError) -> HTTPResponse {
        var headers = [("Content-Type", "application/json; charset=utf-8"), ("Accept", "application/json")]
        if let authorization { headers.append(("Authorization", authorization)) }
        let r: HTTPResponse
        do {
            r = try await transport.send(HTTPRequest(method: method, url: baseURL + path, headers: headers, body: body?.bytes, timeout: timeout))
        } catch {
            throw CloudError.transport(error, api: "HomeSmartlink API", what: "\(method) \(path)", timeout: timeout)
        }
        guard (200..<300).contains(r.status) else { throw Self.classify(r, what: "\(method) \(path)", relay: authorization == nil) }
        return r
    }

    /// `send`, then the answer's envelope checked and opened.
    func call(_ method: String, _ path: String, body: JSONValue?) async throws(CloudError) -> HSLWire.Envelope {
        let r = try await send(method, path, body: body)
        switch HSLWire.open(r.body, clientId: clientId) {
        case .success(let e): return e
        case .failure(.notJSON): throw CloudError(.badResponse, status: r.status, message: "unreadable answer to \(method) \(path)")
        case .failure(.missingAuthorisation):
            throw CloudError(.badResponse, status: r.status, message: "answer to \(method) \(path) has no valid authorisation block")
        case .failure(.otherClient):
            // Never act on data addressed to another partner; its id is not repeated here.
            throw CloudError(.badResponse, status: r.status, message: "answer to \(method) \(path) is addressed to another client")
        }
    }

    static func classify(_ r: HTTPResponse, what: String, relay: Bool = false) -> CloudError {
        .status(
            r, api: "HomeSmartlink API", what: what, detail: HSLWire.errorMessage(r.body),
            unauthorized: relay ? CloudError.relayRefusedBox : "client id or secret rejected",
            forbidden: "this home is not shared with the partner", retryAfterDefault: 30)
    }

    // MARK: reading

    public func fetchDevices() async throws(CloudError) -> [DeviceSnapshot] {
        var out: [DeviceSnapshot] = []
        let now = clock.now()
        for home in homes {
            let e: HSLWire.Envelope
            do {
                e = try await call("POST", HSLWire.Path.config, body: [F.homeId: .string(home)])
            } catch  where error.accountState == nil {
                // This home alone is refused (not shared, unknown): report it on its device, keep the others.
                out.append(DeviceSnapshot(id: Self.deviceId(home), vendorId: home, online: nil, nodes: [:], error: error))
                continue
            }
            guard let devices = e.response.arrayValue else {
                throw CloudError(.badResponse, status: 200, message: "device list of home \(home) is not an array")
            }
            var snap = await snapshot(home: home, devices: devices, gateway: e.root[F.gateway], now: now)
            snap.nodes[Self.systemNode] = try await systemNode(home: home, now: now)
            out.append(snap)
        }
        return out
    }

    func snapshot(home: String, devices: [JSONValue], gateway: JSONValue?, now: EpochSeconds) async -> DeviceSnapshot {
        var rooms: [Int: (name: String, heaters: [JSONValue])] = [:]
        var gatewayOnline: Bool?
        for d in devices {
            guard let room = d[F.roomId]?.intValue else { continue }
            let category = d[F.category]?.stringValue ?? "None"
            let online = d[F.online]?.boolValue ?? false
            if category == HSLWire.gatewayCategory {
                gatewayOnline = online
                continue
            }
            rooms[room, default: (d[F.roomName]?.stringValue ?? "", [])].heaters.append(d)
        }
        var nodes: [String: JSONValue] = [:]
        var schedules: [String: WeekSchedule] = [:]
        for (room, r) in rooms {
            let node = Self.nodeId(room)
            let heaters = r.heaters.sorted { ($0[F.header]?.stringValue ?? "") < ($1[F.header]?.stringValue ?? "") }
            let onlineHeaters = heaters.filter { $0[F.online]?.boolValue == true }
            let temps = onlineHeaters.compactMap { HSLWire.number($0[F.measured]) }
            let lead = onlineHeaters.first
            let derogation = await book.state(home: home, room: room, at: now)
            nodes[node] = [
                "kind": "room", "name": .string(r.name),
                "temperature": temps.isEmpty ? .null : .number((temps.reduce(0, +) / Double(temps.count) * 10).rounded() / 10),
                "setpoint": .number(HSLWire.number(lead?[F.setpoint])),
                "mode": .string(lead?[F.mode]?.stringValue?.lowercased()),
                "heaters": .array(heaters.map(Self.heater)),
                "derogation": derogation,
            ]
            if let program = heaters.lazy.compactMap({ Self.schedule($0[F.weekSchedule]) }).first {
                schedules[node] = program
            }
        }
        let anyOnline = rooms.values.contains { $0.heaters.contains { $0[F.online]?.boolValue == true } }
        // The gateway carries every command to the heaters: a home whose gateway block is missing or has no
        // token cannot be reached, whatever its heaters last reported.
        let hasGateway = !(gateway?[F.token]?.stringValue ?? "").isEmpty
        let online: Bool? = devices.isEmpty ? nil : hasGateway && (gatewayOnline ?? anyOnline)
        var attributes: [String: JSONValue] = [:]
        if let g = gateway, g.objectValue != nil {
            attributes["gateway"] = [
                "id": g[F.token] ?? .null, "version": g[F.version] ?? .null, "last_ping": g[F.lastPing] ?? .null,
                "installation_date": g[F.installationDate] ?? .null,
            ]
        }
        return DeviceSnapshot(
            id: Self.deviceId(home), vendorId: home, model: "HomeSmartlink home", online: online,
            attributes: attributes, nodes: nodes, schedules: schedules)
    }

    static func heater(_ d: JSONValue) -> JSONValue {
        return [
            "id": d[F.header] ?? .null, "category": d[F.category] ?? .null, "online": d[F.online] ?? .null,
            "mode": .string(d[F.mode]?.stringValue?.lowercased()), "setpoint": .number(HSLWire.number(d[F.setpoint])),
            "temperature": .number(HSLWire.number(d[F.measured])), "last_update": d[F.lastUpdate] ?? .null,
            "software_version": d[F.softwareVersion] ?? .null,
        ]
    }

    /// Seven days (Monday first) of comfort ranges → switch points: `comfort` at each start, `eco` at each end.
    /// The partner API gives no level temperatures, so `levels` is empty and `schedule_now` has no setpoint.
    static func schedule(_ v: JSONValue?) -> WeekSchedule? {
        guard let days = v?.arrayValue, days.count == 7 else { return nil }
        var out: [[WeekSchedule.SwitchPoint]] = []
        for day in days {
            var points: [WeekSchedule.SwitchPoint] = []
            for r in day.arrayValue ?? [] {
                guard let s = r[F.start]?.intValue, let e = r[F.end]?.intValue, (0..<1440).contains(s), s < e, e <= 1440 else { continue }
                points.removeAll { $0.minute == s }
                points.append(.init(minute: s, level: "comfort"))
                if e < 1440 { points.append(.init(minute: e, level: "eco")) }
            }
            out.append(points.sorted { $0.minute < $1.minute })
        }
        return WeekSchedule(days: out, levels: [:])
    }

    /// Node `system`: the home's diagnosis, requested with `system/diagnosis/set` and fetched here once ready.
    func systemNode(home: String, now: EpochSeconds) async throws(CloudError) -> JSONValue {
        if let p = await diagnoses.pending(home), now - p.requestedAt >= diagnosisCheckS,
            let result = try await diagnosisResult(messageId: p.messageId)
        {
            await diagnoses.complete(home, result: result, at: now)
        }
        return ["kind": "system", "diagnosis": await diagnoses.state(home)]
    }

    // MARK: commands

    /// One room's derogation: its windows, then the delivery report.
    func derogateRoom(_ command: Command, device: DeviceSnapshot, progress: @escaping ProgressSink) async throws(CloudError) -> String? {
        guard let room = Self.roomId(command.node) else { throw CloudError(.rejected, message: "\(command.node) is not a room") }
        let windows = DerogationRequest.windows(command.params, now: clock.now(), localTime: localTime)
        guard let delta = command.params["delta"]?.intValue, !windows.isEmpty else {
            throw CloudError(.rejected, message: "the derogation window is already over")
        }
        let delivery = try await derogate(items: [(device.vendorId, room)], delta: delta, windows: windows, progress: progress)
        if let error = delivery.error { throw error }
        return delivery.message
    }

    /// A group derogation: one call per window for every room of the group (the API wants all items of a call
    /// to share start and end), one delivery report; members in homes that did not acknowledge fail.
    func derogateGroup(
        _ command: Command, members: [(device: DeviceSnapshot, node: String)],
        progress: @escaping ProgressSink
    ) async -> [MemberOutcome] {
        let keys = members.map { "\($0.device.id)/\($0.node)" }
        func all(_ e: CloudError?) -> [MemberOutcome] { keys.map { MemberOutcome(member: $0, error: e) } }
        var items: [(home: String, room: Int)] = []
        for m in members {
            guard let room = Self.roomId(m.node) else { return all(CloudError(.rejected, message: "\(m.node) is not a room")) }
            items.append((m.device.vendorId, room))
        }
        let windows = DerogationRequest.windows(command.params, now: clock.now(), localTime: localTime)
        guard let delta = command.params["delta"]?.intValue, !windows.isEmpty else {
            return all(CloudError(.rejected, message: "the derogation window is already over"))
        }
        do {
            let delivery = try await derogate(items: items, delta: delta, windows: windows, progress: progress)
            guard let error = delivery.error else { return all(nil) }
            return zip(keys, items).map { key, item in MemberOutcome(member: key, error: delivery.missingHomes.contains(item.home) ? error : nil) }
        } catch {
            return all(error)
        }
    }

    /// Done once requested: the result takes minutes, and waiting here would hold this home's derogations
    /// behind it. The polls fetch it and publish it in the system node state.
    func startDiagnosis(device: DeviceSnapshot) async throws(CloudError) -> String? {
        let mid = try await requestDiagnosis(home: device.vendorId)
        await diagnoses.add(device.vendorId, messageId: mid, at: clock.now())
        return "diagnosis requested (message \(mid)); the result appears in the system state when ready (about 5 min)"
    }

    /// One derogation call per window (the API wants one start and end per call), then the delivery report of
    /// every call's start trigger until all homes acknowledged or `reportTimeoutS` passed.
    /// How a derogation's delivery ended: acknowledged everywhere (`error` nil), or not by `missingHomes`.
    struct Delivery {
        var message: String
        var missingHomes: Set<String>
        var error: CloudError?
    }

    func derogate(
        items: [(home: String, room: Int)], delta: Int, windows: [DerogationRequest.Window],
        progress: ProgressSink
    ) async throws(CloudError) -> Delivery {
        var triggers: [String] = []
        for w in windows {
            let list: [JSONValue] = items.map {
                [
                    F.homeId: .string($0.home), F.roomId: .int($0.room), F.startTime: .int(w.start), F.endTime: .int(w.end),
                    F.delta: .int(delta), F.date: .string(w.date),
                ]
            }
            let e = try await call("POST", HSLWire.Path.derogations, body: [F.derogations: .array(list)])
            guard let t = e.root[F.startTrigger]?.stringValue ?? e.root[F.startTrigger]?.intValue.map(String.init) else {
                throw CloudError(.badResponse, status: 200, message: "derogation accepted without a startTrigger; delivery cannot be followed")
            }
            triggers.append(t)
            for i in items { await book.add(home: i.home, room: i.room, from: w.from, until: w.until, delta: delta) }
        }
        let deadline = clock.now() + reportTimeoutS
        var last: JSONValue = .null
        while true {
            var requested = 0
            var sent = 0
            var received = 0
            var missing = Set<String>()
            for t in triggers {
                let r = try await call("POST", HSLWire.Path.report, body: [F.trigger: .string(t)])
                let s = r.response[F.summary]
                requested += s?[F.requested]?.intValue ?? 0
                sent += s?[F.sent]?.intValue ?? 0
                received += s?[F.received]?.intValue ?? 0
                for d in r.response[F.details]?.arrayValue ?? [] where d[F.acknowledge]?.boolValue != true {
                    if let h = d[F.homeId]?.stringValue { missing.insert(h) }
                }
                if r.response[F.details]?.arrayValue == nil, (s?[F.received]?.intValue ?? 0) < (s?[F.requested]?.intValue ?? 1) {
                    for i in items { missing.insert(i.home) }
                }
            }
            let p: JSONValue = ["requested": .int(requested), "sent": .int(sent), "received": .int(received)]
            if p != last {
                last = p
                await progress(p, "\(received) of \(requested) acknowledged")
            }
            if requested > 0 && received >= requested && missing.isEmpty {
                let span = windows.map { "\($0.date) \(WeekSchedule.hhmm($0.start))–\(WeekSchedule.hhmm(min($0.end, 1439)))" }.joined(
                    separator: " and ")
                return Delivery(
                    message: "derogation \(delta > 0 ? "+" : "")\(delta) °C \(span) acknowledged by \(received) of \(requested)",
                    missingHomes: [], error: nil)
            }
            if clock.now() >= deadline {
                let homes = missing.isEmpty ? Set(items.map(\.home)) : missing
                return Delivery(
                    message: "", missingHomes: homes,
                    error: CloudError(
                        .notAcknowledged,
                        message:
                            "not acknowledged within \(JSONValue.format(reportTimeoutS)) s by home(s) \(homes.sorted().joined(separator: ", ")) (\(received) of \(requested) received)"
                    ))
            }
            do { try await clock.sleep(seconds: reportIntervalS) } catch {
                throw CloudError(.unavailable, message: "stopped while waiting for the delivery report")
            }
        }
    }
}

/// Diagnoses per home: the pending request and the last result.
actor DiagnosisBook {
    struct Pending {
        var messageId: String
        var requestedAt: EpochSeconds
    }
    var pendingByHome: [String: Pending] = [:]
    var results: [String: JSONValue] = [:]

    func add(_ home: String, messageId: String, at: EpochSeconds) { pendingByHome[home] = Pending(messageId: messageId, requestedAt: at) }
    func pending(_ home: String) -> Pending? { pendingByHome[home] }
    func complete(_ home: String, result: JSONValue, at: EpochSeconds) {
        guard let p = pendingByHome.removeValue(forKey: home) else { return }
        results[home] = [
            "state": "ready", "message_id": .string(p.messageId), "requested_at": .string(Timestamp.iso8601(p.requestedAt)),
            "ready_at": .string(Timestamp.iso8601(at)), "result": result,
        ]
    }
    func state(_ home: String) -> JSONValue {
        if let p = pendingByHome[home] {
            return ["state": "pending", "message_id": .string(p.messageId), "requested_at": .string(Timestamp.iso8601(p.requestedAt))]
        }
        return results[home] ?? .null
    }
}

/// Derogations this process sent, so the room state can say one is active and until when. In memory only:
/// after a restart the room's setpoint (read back from the cloud) still shows the effect.
actor DerogationBook {
    struct Entry {
        var from: EpochSeconds
        var until: EpochSeconds
        var delta: Int
    }
    var entries: [String: [Entry]] = [:]

    func add(home: String, room: Int, from: EpochSeconds, until: EpochSeconds, delta: Int) {
        let key = "\(home)/\(room)"
        entries[key, default: []].removeAll { $0.from == from }
        entries[key, default: []].append(Entry(from: from, until: until, delta: delta))
    }

    func state(home: String, room: Int, at now: EpochSeconds) -> JSONValue {
        let key = "\(home)/\(room)"
        entries[key]?.removeAll { $0.until <= now }
        let list = (entries[key] ?? []).sorted { $0.from < $1.from }
        guard let current = list.first(where: { $0.from <= now }) else {
            if let next = list.first {
                return [
                    "active": false,
                    "next": [
                        "delta": .int(next.delta), "from": .string(Timestamp.iso8601(next.from)),
                        "until": .string(Timestamp.iso8601(next.until)),
                    ],
                ]
            }
            return ["active": false]
        }
        // Back-to-back windows (a split across midnight) read as one.
        var until = current.until
        for e in list where e.from <= until && e.delta == current.delta { until = max(until, e.until) }
        return ["active": true, "delta": .int(current.delta), "until": .string(Timestamp.iso8601(until))]
    }
}

// MARK: installer tools

extension HSLAdapter {
    /// Homes linked to a user's e-mail (GET INVITATIONS): what an installer puts in `homes:`.
    public func invitations(email: String) async throws(CloudError) -> [JSONValue] {
        let e = try await call("POST", HSLWire.Path.invitations, body: [F.email: .string(email)])
        guard let list = e.response.arrayValue else { throw CloudError(.badResponse, status: 200, message: "invitation list is not an array") }
        return list
    }

    /// Every user of the partner, following the pages until a short one (pages start at 1).
    public func allUsers(pageSize: Int = 50, maxPages: Int = 1000) async throws(CloudError) -> [JSONValue] {
        var out: [JSONValue] = []
        for page in 1...maxPages {
            let e = try await call("GET", HSLWire.Path.users(page: page, size: pageSize), body: nil)
            guard let list = e.response.arrayValue else { throw CloudError(.badResponse, status: 200, message: "user list is not an array") }
            out += list
            if list.count < pageSize { break }
        }
        return out
    }

    /// Starts a diagnosis of a home; returns the message id to fetch the result with.
    public func requestDiagnosis(home: String) async throws(CloudError) -> String {
        // DIAGNOSYS REQUEST answers {"status","messageId"} without the usual envelope [doc].
        let r = try await send("POST", HSLWire.Path.request, body: [F.homeId: .string(home)])
        let j = try? JSONValue.parse(r.body)
        guard j?[F.status]?.stringValue == HSLWire.requestAccepted, let id = j?[F.messageId]?.stringValue else {
            throw CloudError(.rejected, status: r.status, message: "diagnosis refused for home \(home) (status \(j?[F.status]?.stringValue ?? "?"))")
        }
        return id
    }

    /// The diagnosis result, or nil while it is not ready (the doc recommends waiting about 5 minutes).
    public func diagnosisResult(messageId: String) async throws(CloudError) -> JSONValue? {
        do {
            return try await call("PUT", HSLWire.Path.request, body: [F.messageId: .string(messageId)]).response
        } catch  where error.status == 404 {
            return nil
        }
    }
}

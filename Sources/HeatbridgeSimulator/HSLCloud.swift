import Foundation
import HeatbridgeCore
import VendorHomeSmartlink

private typealias HF = HSLWire.F

/// A stateful fake of the HomeSmartlink 3rd Party API (cloud-apis.md §2), built from `HSLWire`'s names:
/// HTTP Basic, the `authorisation` envelope with the doc's `reponse` spelling on GET DEVICES and GET
/// INVITATIONS, homes with rooms and heaters, derogations that change `sp` during their window, start
/// triggers whose delivery report fills in over time (homes in `neverAck` never acknowledge), a paginated
/// user list, and diagnoses whose result is ready after `diagnosisDelayS`.
public struct HSLCloud: Sendable {
    public struct Home: Sendable {
        public var id: String
        public var gateway: JSONValue
        public var devices: [[String: JSONValue]]
        public var email: String
    }

    struct Derogation: Sendable {
        var home: String
        var room: Int
        var from: Double
        var until: Double
        var delta: Int
    }
    struct Trigger: Sendable {
        var homes: [String]
        var createdAt: Double
    }

    public var clientId: String
    public var clientSecret: String
    public var homes: [String: Home]
    /// Seconds until a home acknowledges a derogation's start trigger.
    public var ackDelayS: Double = 1
    /// Homes whose gateway never acknowledges (fault option).
    public var neverAck: Set<String> = []
    /// Seconds until a diagnosis result is available (the doc recommends waiting about 5 min).
    public var diagnosisDelayS: Double = 300
    public var users: [JSONValue]
    var derogations: [Derogation] = []
    var triggers: [String: Trigger] = [:]
    var diagnoses: [String: (home: String, at: Double)] = [:]
    var counter = 0

    /// The built-in scenario: one home, three rooms, five heaters (one offline), and the home's gateway.
    public static func defaultScenario() -> HSLCloud {
        func heater(
            _ id: String, room: Int, name: String, category: String = HSLWire.categoryHeater, online: Bool = true, sp: Double = 19,
            pv: String = "19.5"
        ) -> [String: JSONValue] {
            var d: [String: JSONValue] = [
                HF.header: .string(id), HF.roomId: .int(room), HF.roomName: .string(name), HF.softwareVersion: 42,
                HF.category: .string(category), HF.online: .bool(online),
            ]
            if online {
                d[HF.mode] = .string(HSLWire.modeProgram)
                d[HF.setpoint] = .number(sp)
                d[HF.measured] = .string(pv)
                d[HF.lastUpdate] = "2026-11-22T06:00:00Z"
                // Weekdays comfort 06:00–08:30 and 17:00–22:00, weekends 08:00–23:00.
                let weekday: JSONValue = [[HF.start: 360, HF.end: 510], [HF.start: 1020, HF.end: 1320]]
                let weekend: JSONValue = [[HF.start: 480, HF.end: 1380]]
                d[HF.weekSchedule] = [weekday, weekday, weekday, weekday, weekday, weekend, weekend]
            }
            return d
        }
        let home = Home(
            id: "64f1c0a2e9b3",
            gateway: [
                HF.token: "GW-0042", HF.version: "3.1.7", HF.lastPing: "2026-11-20T04:12:00Z",
                HF.installationDate: "2024-10-01T00:00:00Z",
            ],
            devices: [
                [
                    HF.header: "GW-0042", HF.roomId: 0, HF.roomName: "Gateway", HF.softwareVersion: 31, HF.category: .string(HSLWire.gatewayCategory),
                    HF.online: true,
                ],
                heater("H-101", room: 1, name: "Living room", sp: 20, pv: "20.5"),
                heater("H-102", room: 1, name: "Living room", sp: 20, pv: "20"),
                heater("H-201", room: 2, name: "Bedroom", sp: 18, pv: "18.5"),
                heater("T-301", room: 3, name: "Bathroom", category: HSLWire.categoryTowelDryer, sp: 22, pv: "21.5"),
                heater("H-302", room: 3, name: "Bathroom", online: false),
            ],
            email: "owner@example.invalid")
        var users: [JSONValue] = []
        for i in 1...7 {
            users.append([
                HF.homeId: .string(i == 1 ? "64f1c0a2e9b3" : "64f1c0a2e9c\(i)"), HF.firstName: "Test", HF.lastName: .string("User \(i)"),
                HF.city: "Lyon", HF.zipCode: "69001", HF.prmId: .string("0912345678901\(i)"), HF.consentDate: "2025-01-01T00:00:00Z",
            ])
        }
        return HSLCloud(clientId: "hsl-demo", clientSecret: "hsl-demo-secret", homes: [home.id: home], users: users)
    }

    public init(clientId: String, clientSecret: String, homes: [String: Home], users: [JSONValue]) {
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.homes = homes
        self.users = users
    }

    typealias Reply = BoschCloud.Reply

    static func error(_ status: Int, _ message: String) -> Reply { Reply(status: status, body: HSLWire.errorBody(message)) }
    func ok(_ response: JSONValue, misspelled: Bool = false, extra: [String: JSONValue] = [:]) -> Reply {
        Reply(status: 200, body: HSLWire.envelope(client: clientId, response, misspelled: misspelled, extra: extra))
    }

    mutating func handle(method: String, path fullPath: String, headers: [String: String], body: [UInt8], now: Double) -> Reply {
        guard let auth = headers["authorization"], auth.lowercased().hasPrefix("basic "),
            let raw = Base64.decode(String(auth.dropFirst(6))), String(decoding: raw, as: UTF8.self) == "\(clientId):\(clientSecret)"
        else {
            return Self.error(401, "Unauthorized")
        }
        let parts = fullPath.split(separator: "?", maxSplits: 1).map(String.init)
        let path = parts[0]
        let j = body.isEmpty ? nil : try? JSONValue.parse(body)
        switch (method, path) {
        case ("POST", HSLWire.Path.config):
            guard let id = j?[HF.homeId]?.stringValue, let home = homes[id] else { return Self.error(404, "home not found") }
            return ok(.array(home.devices.map { .object(render($0, home: id, now: now)) }), misspelled: true, extra: [HF.gateway: home.gateway])
        case ("POST", HSLWire.Path.invitations):
            guard let email = j?[HF.email]?.stringValue else { return Self.error(400, "email required") }
            let list = homes.values.filter { $0.email == email }.sorted { $0.id < $1.id }.map { h -> JSONValue in
                var rooms: [Int: (String, [String])] = [:]
                for d in h.devices where d[HF.category]?.stringValue != HSLWire.gatewayCategory {
                    let r = d[HF.roomId]?.intValue ?? 0
                    rooms[r, default: (d[HF.roomName]?.stringValue ?? "", [])].1.append(d[HF.header]?.stringValue ?? "")
                }
                return [
                    HF.invitationId: .string(h.id), HF.email: .string(h.email), HF.creationDate: "2024-10-01T00:00:00Z", HF.role: 2, HF.city: "Lyon",
                    HF.gatewayEnabled: true, HF.hasGateway: true,
                    HF.rooms: .array(
                        rooms.keys.sorted().map {
                            [
                                HF.name: .string(rooms[$0]!.0), HF.roomNumber: .int($0),
                                HF.deviceCount: .string(String(rooms[$0]!.1.count)),
                                HF.accessories: .array(rooms[$0]!.1.map { .string($0) }),
                            ]
                        }),
                ]
            }
            return ok(.array(list), misspelled: true)
        case ("GET", HSLWire.Path.users):
            var page = 1
            var size = 10
            for item in (parts.count > 1 ? parts[1] : "").split(separator: "&") {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2, let v = Int(kv[1]) { if kv[0] == HF.page { page = v } else if kv[0] == HF.size { size = v } }
            }
            guard page >= 1, size >= 1 else { return Self.error(400, "page and size start at 1") }
            let from = (page - 1) * size
            return ok(.array(from < users.count ? Array(users[from..<min(users.count, from + size)]) : []))
        case ("POST", HSLWire.Path.derogations):
            return derogate(j, now: now)
        case ("POST", HSLWire.Path.report):
            guard let t = j?[HF.trigger]?.stringValue, let trig = triggers[t] else { return Self.error(404, "trigger not found") }
            let details: [JSONValue] = trig.homes.map { h in
                [HF.acknowledge: .bool(acknowledged(h, trig, now)), HF.homeId: .string(h), HF.sendAt: .string(Timestamp.iso8601(trig.createdAt))]
            }
            let received = trig.homes.filter { acknowledged($0, trig, now) }.count
            return ok([
                HF.summary: [
                    HF.requested: .int(trig.homes.count), HF.sent: .int(trig.homes.count), HF.received: .int(received),
                    HF.first: .string(Timestamp.iso8601(trig.createdAt)),
                    HF.last: .string(Timestamp.iso8601(received > 0 ? trig.createdAt + ackDelayS : trig.createdAt)),
                ],
                HF.details: .array(details),
            ])
        case ("POST", HSLWire.Path.request):
            guard let id = j?[HF.homeId]?.stringValue, homes[id] != nil else {
                return Reply(status: 200, body: JSONValue.object([HF.status: .string(HSLWire.requestRefused), HF.messageId: .null]).bytes)
            }
            counter += 1
            let mid = "msg-\(counter)"
            diagnoses[mid] = (id, now)
            return Reply(status: 200, body: JSONValue.object([HF.status: .string(HSLWire.requestAccepted), HF.messageId: .string(mid)]).bytes)
        case ("PUT", HSLWire.Path.request):
            guard let mid = j?[HF.messageId]?.stringValue, let d = diagnoses[mid] else { return Self.error(404, "message not found") }
            guard now - d.at >= diagnosisDelayS else { return Self.error(404, "result not available yet") }
            let status: [JSONValue] = (homes[d.home]?.devices ?? []).map { [HF.header: $0[HF.header] ?? .null, HF.online: $0[HF.online] ?? .null] }
            return ok([HF.createdAt: .string(Timestamp.iso8601(d.at)), HF.acknowledge: true, HF.deviceStatus: .array(status)])
        default:
            return Self.error(404, "no such endpoint")
        }
    }

    func acknowledged(_ home: String, _ t: Trigger, _ now: Double) -> Bool { !neverAck.contains(home) && now - t.createdAt >= ackDelayS }

    /// A device as the API shows it now: `sp` includes the derogations active at `now`.
    func render(_ d: [String: JSONValue], home: String, now: Double) -> [String: JSONValue] {
        var o = d
        guard let sp = d[HF.setpoint]?.doubleValue, let room = d[HF.roomId]?.intValue else { return o }
        if let active = derogations.last(where: { $0.home == home && $0.room == room && $0.from <= now && now < $0.until }) {
            o[HF.setpoint] = .number(sp + Double(active.delta))
        }
        return o
    }

    mutating func derogate(_ j: JSONValue?, now: Double) -> Reply {
        guard let items = j?[HF.derogations]?.arrayValue, !items.isEmpty else { return Self.error(400, "derogations required") }
        var parsed: [Derogation] = []
        var window: (Int, Int, String)?
        for i in items {
            guard let home = i[HF.homeId]?.stringValue, let room = i[HF.roomId]?.intValue, let s = i[HF.startTime]?.intValue,
                let e = i[HF.endTime]?.intValue, let delta = i[HF.delta]?.intValue, let date = i[HF.date]?.stringValue
            else {
                return Self.error(400, "homeId, roomId, startTime, endTime, delta and date are required")
            }
            guard s % HSLWire.gridMinutes == 0, e % HSLWire.gridMinutes == 0, (0...HSLWire.midnight).contains(s), (0...HSLWire.midnight).contains(e),
                s < e
            else {
                return Self.error(400, "startTime and endTime must be multiples of 5 within the day, start before end")
            }
            guard HSLWire.deltaRange.contains(delta) else {
                return Self.error(400, "delta must be between \(HSLWire.deltaRange.lowerBound) and \(HSLWire.deltaRange.upperBound)")
            }
            if let w = window, w != (s, e, date) { return Self.error(400, "all derogations must share startTime and endTime") }
            window = (s, e, date)
            guard let h = homes[home], h.devices.contains(where: { $0[HF.roomId]?.intValue == room }) else {
                return Self.error(400, "unknown home or room")
            }
            let dp = date.split(separator: "-").compactMap { Int64($0) }
            guard dp.count == 3 else { return Self.error(400, "date must be YYYY-MM-DD") }
            let day = Timestamp.daysFromCivil(dp[0], dp[1], dp[2])
            parsed.append(
                Derogation(
                    home: home, room: room, from: SimulatorClock.instant(day: day, minute: s),
                    until: e == HSLWire.midnight ? SimulatorClock.instant(day: day + 1, minute: 0) : SimulatorClock.instant(day: day, minute: e),
                    delta: delta))
        }
        derogations.append(contentsOf: parsed)
        counter += 1
        let start = "trg-\(counter)-start"
        let end = "trg-\(counter)-end"
        let homesTargeted = Array(Set(parsed.map(\.home))).sorted()
        triggers[start] = Trigger(homes: homesTargeted, createdAt: now)
        triggers[end] = Trigger(homes: homesTargeted, createdAt: now)
        return ok(.array(parsed.map { _ in "OK" }), extra: [HF.startTrigger: .string(start), HF.endTrigger: .string(end)])
    }

    public func stateJSON(now: Double) -> JSONValue {
        var hs: [String: JSONValue] = [:]
        for (id, h) in homes { hs[id] = .array(h.devices.map { .object(render($0, home: id, now: now)) }) }
        return [
            "homes": .object(hs),
            "derogations": .array(
                derogations.map {
                    [
                        "home": .string($0.home), "room": .int($0.room), "from": .string(Timestamp.iso8601($0.from)),
                        "until": .string(Timestamp.iso8601($0.until)), "delta": .int($0.delta),
                    ]
                }), "ack_delay_s": .number(ackDelayS), "never_ack": .array(neverAck.sorted().map { .string($0) }),
        ]
    }
}

import Foundation
import HeatbridgeCore
import HeatbridgeHTTP
import VendorBosch

/// The Bosch fake's webhooks: events delivered as Bosch would, to the URLs given with `POST /admin/bosch/webhooks`,
/// without retry. Data points on change beyond their documented thresholds (power and temperatures walk, counters
/// rise), connectivity on online/offline, appliance status when a fault is set, contract status on contract
/// changes, daily aggregates when the local day turns; `POST /webhooks/simulation` sends the asked type. Delivery
/// faults drop, duplicate, delay and reorder.
struct WebhookState: Sendable {
    var urls: [String] = []
    var headers: [String: String] = [:]
    var intervalS: Double = 5
    /// Whether power, temperatures and counters move by themselves (off: only what the admin API sets).
    var walk = true
    /// Next deliveries to drop (never sent), to send twice, to send in reverse order (per batch).
    var drop = 0
    var duplicate = 0
    var reorder = 0
    var delayMs = 0
    var queue: [(gateway: String, bytes: [UInt8])] = []
    var sent = 0, failed = 0, dropped = 0, duplicated = 0
    var lastStatus: Int?
    /// Recently sent events (id, type, gateway, key), newest last, at most 500.
    var recent: [JSONValue] = []
    var nextId = 1
    var meters: [String: Meter] = [:]
    var lastTick: Double?
    var lastDay: Int64?
    var faults: [String: JSONValue] = [:]
}

/// One gateway's simulated heat pump: what walks and rises, and what was last sent (thresholds apply to that).
struct Meter: Sendable {
    var powerW: Double = 1200
    var consumedKWh: Double = 1234.5
    var suppliedKWh: Double = 4321.0
    var cylinderC: Double = 47.5
    var flowC: Double = 34.0
    var outdoorC: Double = 4.0
    var sent: [String: Double] = [:]
    var starts = 0
}

extension Simulator {
    /// Data point thresholds as Bosch documents them (§1.7): 100 W, 0.1 kWh, 1 °C.
    static let thresholds: [String: Double] = [
        BoschWire.DataPoint.compressorPower: 100, BoschWire.DataPoint.energyConsumptionTotal: 0.1, BoschWire.DataPoint.energySupplyTotal: 0.1,
        BoschWire.DataPoint.cylinderTemperature("dhw1"): 1, BoschWire.DataPoint.flowTemperature("hc1"): 1, BoschWire.DataPoint.outdoorTemperature: 1,
    ]

    func webhookAdmin(method: String, path: String, j: JSON?) -> Answer? {
        switch (method, path) {
        case ("POST", "/admin/bosch/webhooks"):
            guard let urls = j?["urls"]?.arrayValue?.compactMap(\.stringValue) else { return bad("urls must be a list of URLs") }
            webhooks.urls = urls
            webhooks.headers = (j?["headers"]?.objectValue ?? [:]).compactMapValues(\.stringValue)
            if let v = j?["interval_s"]?.doubleValue, v > 0 { webhooks.intervalS = v }
            if let v = j?["walk"]?.boolValue { webhooks.walk = v }
            webhooks.lastTick = nil
            for id in bosch.gateways.keys { webhooks.meters[id]?.sent = [:] }
            return ok()
        case ("DELETE", "/admin/bosch/webhooks"):
            webhooks.urls = []
            webhooks.queue = []
            return ok()
        case ("POST", "/admin/bosch/webhooks/faults"):
            webhooks.drop = j?["drop"]?.intValue ?? webhooks.drop
            webhooks.duplicate = j?["duplicate"]?.intValue ?? webhooks.duplicate
            webhooks.reorder = j?["reorder"]?.intValue ?? webhooks.reorder
            webhooks.delayMs = j?["delay_ms"]?.intValue ?? webhooks.delayMs
            return ok()
        case ("GET", "/admin/bosch/webhooks"):
            let w = webhooks
            return ok([
                "urls": .array(w.urls.map { .string($0) }), "sent": .int(w.sent), "failed": .int(w.failed), "dropped": .int(w.dropped),
                "duplicated": .int(w.duplicated), "queued": .int(w.queue.count), "last_status": .int(w.lastStatus),
                "recent": .array(w.recent),
                "meters": .object(
                    w.meters.mapValues {
                        [
                            "power_w": .number($0.powerW), "consumed_kwh": .number($0.consumedKWh),
                            "supplied_kwh": .number($0.suppliedKWh), "cylinder_c": .number($0.cylinderC),
                        ]
                    }),
            ])
        case ("POST", "/admin/bosch/events"):
            // One event now: {"gateway_id", "type", "payload"} (payload as the type has it), or a data point
            // {"gateway_id", "key", "value", "unit"}; "timestamp" overrides the time (ISO 8601).
            guard let gw = j?["gateway_id"]?.stringValue else { return bad("gateway_id is required") }
            let at = j?["timestamp"]?.stringValue.flatMap(Timestamp.parse) ?? Self.now()
            if let key = j?["key"]?.stringValue {
                enqueue(
                    gw, type: BoschWire.EventType.dataPoint, at: at,
                    payload: BoschWire.dataPointPayload(key: key, value: j?["value"] ?? .null, unit: j?["unit"]?.stringValue))
            } else {
                guard let type = j?["type"]?.stringValue else { return bad("type or key is required") }
                enqueue(gw, type: type, at: at, payload: j?["payload"] ?? [:])
            }
            return ok(["queued": .int(webhooks.queue.count)])
        default:
            return nil
        }
    }

    func enqueue(_ gateway: String, type: String, at: Double, payload: JSON) {
        guard !webhooks.urls.isEmpty else { return }
        let id = "evt-\(webhooks.nextId)"
        webhooks.nextId += 1
        let e = BoschWire.event(type: type, gatewayId: gateway, at: at, id: id, payload: payload)
        webhooks.queue.append((gateway, e.bytes))
        webhooks.recent.append(["id": .string(id), "type": .string(type), "gateway_id": .string(gateway), "key": payload["key"] ?? .null])
        if webhooks.recent.count > 500 { webhooks.recent.removeFirst(webhooks.recent.count - 500) }
    }

    /// A data point when it moved beyond its threshold since it was last sent (or was never sent).
    func dataPoint(_ gw: String, _ key: String, _ value: Double, unit: String, now: Double, force: Bool) {
        let last = webhooks.meters[gw]?.sent[key]
        if !force, let last, abs(value - last) < (Self.thresholds[key] ?? 0) { return }
        webhooks.meters[gw]?.sent[key] = value
        let rounded = unit == "kWh" ? (value * 100).rounded() / 100 : (value * 10).rounded() / 10
        enqueue(gw, type: BoschWire.EventType.dataPoint, at: now, payload: BoschWire.dataPointPayload(key: key, value: .number(rounded), unit: unit))
    }

    /// Moves every reachable gateway's heat pump on by the time since the last tick and queues the events that makes.
    func tick(now: Double) {
        guard !webhooks.urls.isEmpty else { return }
        let dt = min(now - (webhooks.lastTick ?? now), 3600)
        let first = webhooks.lastTick == nil
        webhooks.lastTick = now
        for id in bosch.gateways.keys.sorted() {
            guard let gw = bosch.gateways[id], gw.online, gw.contract else { continue }
            var m = webhooks.meters[id] ?? Meter()
            if !first, webhooks.walk {
                m.powerW = min(max(m.powerW + Double.random(in: -400...400), 0), 4000)
                m.consumedKWh += m.powerW * dt / 3_600_000
                m.suppliedKWh += m.powerW * 3.5 * dt / 3_600_000
                m.cylinderC = min(max(m.cylinderC + Double.random(in: -0.6...0.8), 35), 60)
                m.flowC = min(max(m.flowC + Double.random(in: -1...1), 25), 55)
                m.outdoorC = min(max(m.outdoorC + Double.random(in: -0.5...0.5), -15), 25)
            }
            webhooks.meters[id] = m
            // What the REST side reads follows the same tank (a poll and an event agree).
            if bosch.gateways[id]?.dhwCircuits["1"] != nil {
                bosch.gateways[id]!.dhwCircuits["1"]!.actualTemperature = (m.cylinderC * 10).rounded() / 10
            }
            let wasRunning = (m.sent[BoschWire.DataPoint.compressorPower] ?? 0) > 200
            dataPoint(id, BoschWire.DataPoint.compressorPower, m.powerW, unit: "W", now: now, force: first)
            let running = (webhooks.meters[id]?.sent[BoschWire.DataPoint.compressorPower] ?? 0) > 200
            if first || running != wasRunning {
                enqueue(
                    id, type: BoschWire.EventType.dataPoint, at: now,
                    payload: BoschWire.dataPointPayload(
                        key: BoschWire.DataPoint.compressorStatus, value: .string(running ? "HEATING" : "IDLE"), unit: nil))
                if running { webhooks.meters[id]?.starts += 1 }
            }
            dataPoint(id, BoschWire.DataPoint.energyConsumptionTotal, m.consumedKWh, unit: "kWh", now: now, force: first)
            dataPoint(id, BoschWire.DataPoint.energySupplyTotal, m.suppliedKWh, unit: "kWh", now: now, force: first)
            if gw.dhwCircuits["1"] != nil {
                dataPoint(id, BoschWire.DataPoint.cylinderTemperature("dhw1"), m.cylinderC, unit: "°C", now: now, force: first)
            }
            if gw.heatingCircuits["1"] != nil {
                dataPoint(id, BoschWire.DataPoint.flowTemperature("hc1"), m.flowC, unit: "°C", now: now, force: first)
            }
            dataPoint(id, BoschWire.DataPoint.outdoorTemperature, m.outdoorC, unit: "°C", now: now, force: first)
        }
        // Daily aggregates once the local day turned (the simulator's clock).
        let day = Int64((now + Double(TimeZone.current.secondsFromGMT())) / 86_400)
        if let last = webhooks.lastDay, day > last {
            for id in bosch.gateways.keys.sorted() where bosch.gateways[id]!.online && bosch.gateways[id]!.contract {
                let starts = webhooks.meters[id]?.starts ?? 0
                webhooks.meters[id]?.starts = 0
                enqueue(
                    id, type: BoschWire.EventType.dailyAggregate, at: now,
                    payload: [
                        "date": .string(Timestamp.date(last)),
                        "aggregates": [
                            ["key": "hvac.compressor.centralHeating.numberOfStarts", "value": .int(starts)],
                            ["key": "hvac.centralHeating.waterPressure.min", "value": 1.4],
                            ["key": "hvac.centralHeating.waterPressure.max", "value": 1.9],
                            ["key": "hvac.centralHeating.waterPressure.mean", "value": 1.6],
                        ],
                    ])
            }
        }
        webhooks.lastDay = day
    }

    /// The events to deliver now, with the delivery faults applied; the pump sends them outside the actor.
    func takeDeliveries(now: Double) -> (urls: [String], headers: [String: String], events: [[UInt8]], delayMs: Int) {
        tick(now: now)
        var out: [[UInt8]] = []
        for e in webhooks.queue {
            if webhooks.drop > 0 {
                webhooks.drop -= 1
                webhooks.dropped += 1
                continue
            }
            out.append(e.bytes)
            if webhooks.duplicate > 0 {
                webhooks.duplicate -= 1
                webhooks.duplicated += 1
                out.append(e.bytes)
            }
        }
        webhooks.queue = []
        if webhooks.reorder > 0, out.count > 1 {
            webhooks.reorder -= 1
            out.reverse()
        }
        return (webhooks.urls, webhooks.headers, out, webhooks.delayMs)
    }

    func delivered(ok: Int, failed: Int, lastStatus: Int?) {
        webhooks.sent += ok
        webhooks.failed += failed
        if let lastStatus { webhooks.lastStatus = lastStatus }
    }

    var webhookInterval: Double { webhooks.intervalS }

    /// The simulated `POST /webhooks/simulation`: an event of the asked type, really sent.
    func simulateEvent(type: String, gatewayId: String?) {
        guard let gw = gatewayId ?? bosch.gateways.keys.sorted().first else { return }
        let now = Self.now()
        switch type {
        case BoschWire.EventType.connectivity:
            enqueue(gw, type: type, at: now, payload: ["status": .string(bosch.gateways[gw]?.online == false ? "OFFLINE" : "ONLINE")])
        case BoschWire.EventType.applianceStatus:
            enqueue(
                gw, type: type, at: now,
                payload: [
                    "applianceStatus": "WARNING", "faultClass": 2, "causeCode": 1001,
                    "descriptions": [["language": "en", "text": "Simulated event"]],
                ])
        case BoschWire.EventType.contract:
            enqueue(gw, type: type, at: now, payload: ["from": "ACTIVE", "to": "ACTIVE"])
        case BoschWire.EventType.dailyAggregate:
            enqueue(
                gw, type: type, at: now,
                payload: [
                    "date": .string(Timestamp.date(Int64(now / 86_400) - 1)),
                    "aggregates": [["key": "hvac.compressor.centralHeating.numberOfStarts", "value": 3]],
                ])
        default:
            let m = webhooks.meters[gw] ?? Meter()
            enqueue(
                gw, type: BoschWire.EventType.dataPoint, at: now,
                payload: BoschWire.dataPointPayload(key: BoschWire.DataPoint.compressorPower, value: .number(m.powerW.rounded()), unit: "W"))
        }
    }

    /// Sets a gateway's simulated values (`POST /admin/bosch/gateways/<id>` with `power_w`, `dhw_temperature`,
    /// `consumed_kwh`); the next tick sends what moved beyond its threshold.
    func setMeter(_ id: String, _ j: JSON) {
        var m = webhooks.meters[id] ?? Meter()
        if let v = j["power_w"]?.doubleValue { m.powerW = v }
        if let v = j["dhw_temperature"]?.doubleValue {
            m.cylinderC = v
            if bosch.gateways[id]?.dhwCircuits["1"] != nil { bosch.gateways[id]!.dhwCircuits["1"]!.actualTemperature = v }
        }
        if let v = j["consumed_kwh"]?.doubleValue { m.consumedKWh = v }
        webhooks.meters[id] = m
    }

    /// A gateway's online, contract or fault changed through the admin API: Bosch's events for it.
    func gatewayChanged(_ id: String, online: Bool?, contract: String?, fault: JSON?) {
        let now = Self.now()
        if let online { enqueue(id, type: BoschWire.EventType.connectivity, at: now, payload: ["status": .string(online ? "ONLINE" : "OFFLINE")]) }
        if let contract { enqueue(id, type: BoschWire.EventType.contract, at: now, payload: ["to": .string(contract)]) }
        if let fault {
            var p: [String: JSON] = ["applianceStatus": fault == .null ? "OK" : .string(fault["status"]?.stringValue ?? "ERROR")]
            if let c = fault["faultClass"] { p["faultClass"] = c }
            if let c = fault["causeCode"] { p["causeCode"] = c }
            if let t = fault["text"]?.stringValue { p["descriptions"] = [["language": "en", "text": .string(t)]] }
            enqueue(id, type: BoschWire.EventType.applianceStatus, at: now, payload: .object(p))
        }
    }
}

/// Delivers the simulator's webhook events: every `interval_s`, or within 5 ms of an event the admin API queued.
/// One POST per event (Bosch sends them singly), no retry; over libcurl, trusting `caFile` for an HTTPS endpoint
/// (the relay's webhook listener with its own CA).
struct WebhookPump: Sendable {
    let simulator: Simulator
    let caFile: String?

    func run() async {
        let http = CurlTransport(maxIdleHandles: 4)
        var lastTick = 0.0
        while !Task.isCancelled {
            let now = Simulator.now()
            let interval = await simulator.webhookInterval
            let queued = await simulator.webhooks.queue.count
            guard queued > 0 || now - lastTick >= interval else {
                try? await Task.sleep(nanoseconds: 5_000_000)
                continue
            }
            lastTick = now
            let (urls, headers, events, delayMs) = await simulator.takeDeliveries(now: now)
            if events.isEmpty || urls.isEmpty { continue }
            if delayMs > 0 { try? await Task.sleep(nanoseconds: UInt64(delayMs) * 1_000_000) }
            var ok = 0
            var failed = 0
            var last: Int?
            for e in events {
                for u in urls {
                    var r = HTTPRequest(
                        method: "POST", url: u, headers: [("Content-Type", "application/json")] + headers.map { ($0.key, $0.value) },
                        body: e, timeout: 10)
                    r.connection = ConnectionOptions(caFile: caFile)
                    do {
                        let a = try await http.send(r)
                        last = a.status
                        if (200..<300).contains(a.status) { ok += 1 } else { failed += 1 }
                    } catch {
                        failed += 1
                    }
                }
            }
            await simulator.delivered(ok: ok, failed: failed, lastStatus: last)
        }
    }
}

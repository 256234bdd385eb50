import Foundation
import HeatbridgeCore
import VendorBosch

/// The simulated Bosch partner resources (API keys, contracts), the gateway's system node, and the admin view.
extension BoschCloud {
    /// `/api-keys`: `me`, list, rotate (`POST`), delete. New keys end in their expiry date like real ones.
    mutating func keyRequest(method: String, route: BoschWire.Route, now: Double) -> Reply {
        switch (method, route) {
        case ("GET", .apiKeysMe): return .json(200, BoschWire.encode(BoschWire.KeyIdentity(companyId: companyId)))
        case ("GET", .apiKeys):
            var list = [BoschWire.StoredApiKey(keyId: "key-0", createdAt: nil, expiresAt: BoschWire.keyExpiry(apiKey).map(Timestamp.iso8601))]
            list += issuedKeys.map {
                BoschWire.StoredApiKey(keyId: $0.id, createdAt: Timestamp.iso8601($0.createdAt), expiresAt: Timestamp.iso8601($0.expiresAt))
            }
            return .json(200, BoschWire.encode(list))
        case ("POST", .apiKeys):
            guard issuedKeys.count + 1 < BoschWire.maxValidKeys else {
                return .error(409, "at most \(BoschWire.maxValidKeys) valid keys per partner")
            }
            let expires = ((now + 182 * 86_400) / 86_400).rounded(.down) * 86_400
            let stamp = Timestamp.date(Int64(expires / 86_400)).replacingOccurrences(of: "-", with: "")
            let id = "key-\(issuedKeys.count + 1)"
            let key = "xHCSAPI-sim\(issuedKeys.count + 1)-\(stamp)"
            issuedKeys.append((id, key, now, expires))
            return .json(201, BoschWire.encode(BoschWire.NewApiKey(keyId: id, apiKey: key, expiresAt: Timestamp.iso8601(expires))))
        case ("DELETE", .apiKey(let keyId)):
            guard let i = issuedKeys.firstIndex(where: { $0.id == keyId }) else { return .error(404, "no such key") }
            issuedKeys.remove(at: i)
            return Reply(status: 204, body: [])
        default:
            return .error(405, "method not allowed")
        }
    }

    /// `…/system/silentMode`, `…/system/holidayModes[/{id}]` and `…/system/dateTime`.
    mutating func system(method: String, route: BoschWire.Route, body: [UInt8], gw: inout Gateway, now: Double) -> Reply {
        switch (method, route) {
        case ("GET", .dateTime):
            return .json(200, BoschWire.encode(BoschWire.DateTime(dateTime: SimulatorClock.localDateTime(now + gw.clockOffsetS))))
        case ("PUT", .dateTime):
            guard let d = BoschWire.decode(BoschWire.DateTime.self, body), d.dateTime.count == 19, let wall = Timestamp.parse(d.dateTime + "Z") else {
                return .error(400, "dateTime must be YYYY-MM-DDTHH:MM:SS")
            }
            gw.clockOffsetS = (wall - SimulatorClock.localWall(now)).rounded()
            return Reply(status: 204, body: [])
        case ("GET", .silentMode): return .json(200, BoschWire.encode(BoschWire.SilentMode(silentMode: gw.silentMode)))
        case ("PATCH", .silentMode):
            guard let m = BoschWire.decode(BoschWire.SilentMode.self, body), BoschWire.silentModes.contains(m.silentMode) else {
                return .error(400, "silentMode must be ON, OFF or AUTO")
            }
            gw.silentMode = m.silentMode
            return Reply(status: 204, body: [])
        case ("GET", .holidayModes): return .json(200, BoschWire.encode(gw.holidayModes))
        case ("POST", .holidayModes):
            guard var h = BoschWire.decode(BoschWire.HolidayMode.self, body), h.startDate <= h.endDate, !h.assignedTo.isEmpty else {
                return .error(400, "invalid holiday mode")
            }
            guard gw.holidayModes.count < BoschWire.maxHolidayModes else { return .error(409, "all holiday slots are in use") }
            let used = Set(gw.holidayModes.compactMap(\.id))
            h.id = (1...BoschWire.maxHolidayModes).map { "hm\($0)" }.first { !used.contains($0) }
            gw.holidayModes.append(h)
            return .json(201, BoschWire.encode(h))
        case ("DELETE", .holidayMode(_, let holidayId)):
            guard let i = gw.holidayModes.firstIndex(where: { $0.id == holidayId }) else { return .error(404, "no such holiday mode") }
            gw.holidayModes.remove(at: i)
            return Reply(status: 204, body: [])
        default:
            return .error(404, "no such resource")
        }
    }

    /// `/contracts…`: list, get, PATCH with ACCEPT/REJECT/REVOKE, DELETE to acknowledge a CLOSED one.
    mutating func contractRequest(method: String, route: BoschWire.Route, body: [UInt8], now: Double) -> Reply {
        let date = Timestamp.iso8601(now)
        guard case .contract(let id) = route else {
            guard method == "GET" else { return .error(405, "method not allowed") }
            return .json(200, BoschWire.encode(allContracts().sorted { $0.gatewayId < $1.gatewayId }))
        }
        guard var c = allContracts().first(where: { $0.gatewayId == id }) else { return .error(404, "no contract for this gateway") }
        switch method {
        case "GET": return .json(200, BoschWire.encode(c))
        case "PATCH":
            guard let a = BoschWire.decode(BoschWire.ContractAction.self, body), BoschWire.contractActions.contains(a.action) else {
                return .error(400, "action must be ACCEPT, REJECT or REVOKE")
            }
            switch (a.action, c.status) {
            case (BoschWire.ContractVerb.accept, BoschWire.ContractState.pending): c.status = BoschWire.ContractState.active
            case (BoschWire.ContractVerb.reject, BoschWire.ContractState.pending): c.status = BoschWire.ContractState.rejected
            case (BoschWire.ContractVerb.revoke, BoschWire.ContractState.active): c.status = BoschWire.ContractState.revoked
            default: return .error(409, "cannot \(a.action) a \(c.status) contract")
            }
            c.statusDate = date
            contracts[id] = c
            if c.status == BoschWire.ContractState.active {
                if gateways[id] == nil { gateways[id] = Self.makeGateway(id: id) }
                gateways[id]!.contract = true
            } else {
                gateways[id]?.contract = false
            }
            return .json(200, BoschWire.encode(c))
        case "DELETE":
            guard c.status == BoschWire.ContractState.closed else { return .error(409, "only a CLOSED contract is acknowledged") }
            contracts[id] = nil
            gateways[id] = nil
            return Reply(status: 204, body: [])
        default:
            return .error(405, "method not allowed")
        }
    }

    /// Explicit contracts plus an ACTIVE one for every contracted gateway without an entry.
    func allContracts() -> [BoschWire.Contract] {
        var out = contracts
        for gw in gateways.values where out[gw.id] == nil && gw.contract {
            out[gw.id] = BoschWire.Contract(
                gatewayId: gw.id, status: BoschWire.ContractState.active, statusDate: "2026-01-15T09:00:00Z", userId: "owner-\(gw.id)",
                addressLines: ["Musterstraße 1", "70173 Stuttgart"])
        }
        return Array(out.values)
    }

    func refreshCharges(_ gw: inout Gateway, now: Double) {
        for (id, c) in gw.charges where c.active && now - c.startedAt >= Double(c.durationMin) * 60 {
            gw.charges[id]?.active = false
        }
    }

    /// State for the admin API.
    public func stateJSON(now: Double) -> JSONValue {
        var out: [String: JSONValue] = [:]
        for gw in gateways.values {
            var charges: [String: JSONValue] = [:]
            for (id, c) in gw.charges {
                let active = c.active && now - c.startedAt < Double(c.durationMin) * 60
                charges[id] = ["active": .bool(active), "duration_min": .int(c.durationMin)]
            }
            var programs: [String: JSONValue] = [:]
            for (hc, byId) in gw.timePrograms {
                for (tp, p) in byId {
                    programs["\(hc)/\(tp)"] = .array(
                        p.switchPoints.map { ["day": .string($0.dayOfWeek), "time": .int($0.time), "level": .string($0.setpoint)] })
                }
            }
            for (d, byId) in gw.dhwTimePrograms {
                for (tp, p) in byId {
                    programs["dhw\(d)/\(tp)"] = .array(
                        p.switchPoints.map { ["day": .string($0.dayOfWeek), "time": .int($0.time), "level": .string($0.setpoint)] })
                }
            }
            out[gw.id] = [
                "online": .bool(gw.online), "contract": .bool(gw.contract), "consent_current": .bool(gw.consentCurrent),
                "charges": .object(charges), "programs": .object(programs), "clock_offset_s": .number(gw.clockOffsetS),
                "detections": .int(gw.detections), "components": .array(gw.components.map { .string($0.type) }),
            ]
        }
        return [
            "api_key_set": .bool(!apiKey.isEmpty), "rate_limit": .bool(rateLimitEnabled), "gateways": .object(out),
            "issued_keys": .int(issuedKeys.count), "health": .string(health),
            "webhook_simulations": .array(webhookSimulations.map { ["event_type": .string($0.eventType), "gateway_id": .string($0.gatewayId)] }),
        ]
    }
}

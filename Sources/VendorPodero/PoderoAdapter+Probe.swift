import HeatbridgeCore

/// `heatbridge probe` for Podero: the organisation's user list, each user's heat-pump list (only the box's
/// own heat pumps are compared when the account names them) and each own heat pump, against `PoderoWire`'s
/// field names as shapes.
extension PoderoAdapter: Probing {
    typealias F = PoderoWire.F

    static let statuses: WireShape = .nullable(.oneOf([PoderoWire.Status.ok, PoderoWire.Status.warning, PoderoWire.Status.error, "unknown"]))

    /// The heat-pump object as the adapter reads it (cloud-apis.md §3; `dhw_actual_temperature` is the older
    /// name of `dhw_temperature`, so neither is required).
    static let heatPumpShape: WireShape = .object(
        [
            F.id: .string, F.deletedAt: .nullable(.string),
            F.deviceModel: .nullable(
                .object([
                    F.deviceType: .nullable(.object([F.shortName: .nullable(.string), F.longName: .nullable(.string)])),
                    F.manufacturer: .nullable(.string), F.model: .nullable(.string), F.year: .nullable(.number),
                ])),
            F.connectionStatus: statuses, F.monitoringStatus: statuses, F.steeringStatus: statuses,
            F.lifecycleState: .nullable(.string), F.lifecycleError: .nullable(.string), F.actionNeeded: .nullable(.bool),
            F.actions: .nullable(.list(.object([F.actionCode: .nullable(.string), F.resolutionLink: .nullable(.string)]))),
            F.power: .nullable(.number), F.mode: .nullable(.oneOf(PoderoWire.modes)), F.outdoor: .nullable(.number), F.indoor: .nullable(.number),
            F.indoorTarget: .nullable(.number), F.inlet: .nullable(.number), F.outlet: .nullable(.number), F.dhw: .nullable(.number),
            F.stateUpdatedAt: .nullable(.string),
            F.optimizationActive: .nullable(.bool), F.optimizationLevel: .nullable(.oneOf(PoderoWire.optimizationLevels)),
            F.optimizationScore: .nullable(.number), F.comfortMin: .nullable(.number), F.comfortMax: .nullable(.number),
            F.heatingPolicy: .nullable(.bool), F.dhwStandard: .nullable(.number), F.dhwMinimum: .nullable(.number),
            F.awayEnabled: .nullable(.bool), F.awayStart: .nullable(.string), F.awayEnd: .nullable(.string), F.awayMinimum: .nullable(.number),
            F.awayMinimumDhw: .nullable(.number), F.pauseActive: .nullable(.bool), F.pauseUntil: .nullable(.string),
        ], required: [F.id])

    static let userShape: WireShape = .object(
        [F.id: .string, F.email: .nullable(.string), F.role: .nullable(.string), F.deletedAt: .nullable(.string)],
        required: [F.id])

    public func probe() async -> [ProbeAnswer] {
        await RequestPriority.$current.withValue(.sync) { await probeAll() }
    }

    private func probeAll() async -> [ProbeAnswer] {
        var out: [ProbeAnswer] = []
        let (users, usersJSON) = await probeGET(PoderoWire.Path.users(client.orgId), shape: .list(Self.userShape))
        out.append(users)
        var owners: [String: String] = [:]
        for user in (usersJSON?.arrayValue ?? []).prefix(200) {
            guard let uid = user[F.id]?.stringValue, user[F.deletedAt]?.stringValue == nil else { continue }
            let path = PoderoWire.Path.heatPumps(client.orgId, uid)
            // Another customer's heat pumps are not this box's business: listed for the owners, compared only
            // where they are the box's own.
            var (answer, list) = await probeGET(path, shape: .any)
            if case .array(let pumps)? = list {
                var own: [JSONValue] = []
                for (i, hp) in pumps.enumerated() {
                    guard let id = hp[F.id]?.stringValue, allowList?.contains(id) ?? true else { continue }
                    owners[id] = uid
                    own.append(hp)
                    answer.findings += Self.heatPumpShape.check(hp, path: String(i))
                }
                // What is kept (and saved as a fixture) is the box's own part of the listing only.
                answer.body = JSONValue.array(own).bytes
                if own.isEmpty && allowList != nil { continue }
            } else if list != nil {
                answer.findings.append(
                    ProbeFinding(field: "", kind: .type, detail: "expected a list, found \(list.map { WireShape.kindName($0) } ?? "nothing")"))
            }
            out.append(answer)
        }
        // The user list, likewise, keeps only the owners of the box's own heat pumps.
        if allowList != nil, let all = usersJSON?.arrayValue {
            let keep = Set(owners.values)
            out[0].body = JSONValue.array(all.filter { keep.contains($0[F.id]?.stringValue ?? "") }).bytes
        }
        for (id, owner) in owners.sorted(by: { $0.key < $1.key }).prefix(50) {
            out.append(await probeGET(PoderoWire.Path.heatPump(client.orgId, owner, id), shape: Self.heatPumpShape).0)
        }
        return out
    }

    func probeGET(_ path: String, shape: WireShape) async -> (ProbeAnswer, JSONValue?) {
        do {
            let v = try await client.request("GET", path)
            return (ProbeAnswer(request: "GET \(path)", status: 200, body: v.bytes, findings: shape.check(v)), v)
        } catch {
            let finding = ProbeFinding(
                field: "", kind: .status, detail: error.status.map { "HTTP \($0), expected 200: \(error.message)" } ?? "no answer: \(error.message)")
            return (ProbeAnswer(request: "GET \(path)", status: error.status, body: [], findings: [finding]), nil)
        }
    }
}

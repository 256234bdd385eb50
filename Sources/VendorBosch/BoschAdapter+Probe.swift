import FoundationEssentials
import HeatbridgeCore

/// `heatbridge probe` for Bosch: every read endpoint heatbridge uses, for the account's gateways, compared with
/// the wire definitions in `BoschWire` (most of them INFERRED: cloud-apis.md). The daemon reads the same
/// answers leniently (`decodeTolerant`); the probe says exactly where they differ.
extension BoschAdapter: Probing {
    public func probe() async -> [ProbeAnswer] {
        await RequestPriority.$current.withValue(.sync) { await probeAll() }
    }

    private func probeAll() async -> [ProbeAnswer] {
        var out: [ProbeAnswer] = []
        let (health, _) = await probeGET(
            BoschWire.Health.self, BoschWire.Path.health, expected: [200, 404],
            enums: ["status": [BoschWire.healthUp, BoschWire.healthOK, "DOWN"]])
        out.append(health)
        let (list, gateways) = await probeGET([BoschWire.Gateway].self, BoschWire.Path.hvacs)
        out.append(list)
        let own = (gateways ?? []).filter { allowList?.contains($0.gatewayId) ?? true }
        for gw in own.prefix(20) {
            let g = gw.gatewayId
            let (status, _) = await probeGET(
                BoschWire.GatewayStatus.self, BoschWire.Path.status(g),
                enums: ["status": [BoschWire.gatewayOnline, "OFFLINE"]])
            out.append(status)
            let (hcs, hcList) = await probeGET([BoschWire.CircuitRef].self, BoschWire.Path.heatingCircuits(g))
            out.append(hcs)
            for ref in hcList ?? [] {
                let (a, hc) = await probeGET(
                    BoschWire.HeatingCircuit.self, BoschWire.Path.heatingCircuit(g, ref.id), remoteControl: true,
                    enums: ["operationMode": BoschWire.heatingModes])
                out.append(a)
                out.append(
                    await probeGET(BoschWire.HeatCurve.self, BoschWire.Path.heatCurve(g, ref.id), remoteControl: true, expected: [200, 404]).0)
                out.append(
                    await probeGET(
                        BoschWire.HeatingDistribution.self, BoschWire.Path.distribution(g, ref.id), remoteControl: true,
                        expected: [200, 404]
                    ).0)
                if let tp = hc?.autoModeSettings?.timeProgramId {
                    out.append(
                        await probeGET(
                            BoschWire.TimeProgram.self, BoschWire.Path.heatingTimeProgram(g, ref.id, tp), remoteControl: true,
                            expected: [200, 404]
                        ).0)
                }
            }
            let (dhws, dhwList) = await probeGET([BoschWire.CircuitRef].self, BoschWire.Path.dhwCircuits(g))
            out.append(dhws)
            for ref in dhwList ?? [] {
                let (a, dhw) = await probeGET(
                    BoschWire.DhwCircuit.self, BoschWire.Path.dhwCircuit(g, ref.id), remoteControl: true,
                    enums: ["operationMode": BoschWire.dhwModes])
                out.append(a)
                out.append(
                    await probeGET(
                        BoschWire.DhwCharge.self, BoschWire.Path.charge(g, ref.id), remoteControl: true,
                        enums: ["chargeStatus": [BoschWire.chargeStart, BoschWire.chargeStop]]
                    ).0)
                let tp = dhw?.autoModeSettings?.timeProgramId ?? BoschWire.defaultDhwProgram
                out.append(
                    await probeGET(
                        BoschWire.TimeProgram.self, BoschWire.Path.dhwTimeProgram(g, ref.id, tp), remoteControl: true,
                        expected: [200, 404]
                    ).0)
            }
            out.append(
                await probeGET(
                    BoschWire.SilentMode.self, BoschWire.Path.silentMode(g), remoteControl: true, expected: [200, 404],
                    enums: ["silentMode": BoschWire.silentModes]
                ).0)
            out.append(await probeGET([BoschWire.HolidayMode].self, BoschWire.Path.holidayModes(g), remoteControl: true, expected: [200, 404]).0)
            out.append(await probeGET(BoschWire.DateTime.self, BoschWire.Path.dateTime(g), remoteControl: true, expected: [200, 404]).0)
            out.append(await probeGET([BoschWire.Component].self, BoschWire.Path.components(g), expected: [200, 404]).0)
        }
        return out
    }

    /// One GET: its status against `expected`, and its body against the definition `T` (types and required
    /// fields by the lenient decoder; missing and extra fields by comparing the answer with `T`'s stored
    /// properties; enum values against `enums`, keyed by field name).
    func probeGET<T: Decodable>(
        _ type: T.Type, _ path: String, remoteControl: Bool = false, expected: Set<Int> = [200],
        enums: [String: [String]] = [:]
    ) async -> (ProbeAnswer, T?) {
        let request = "GET \(path)"
        let body: [UInt8]
        do {
            body = try await call("GET", path, remoteControl: remoteControl, priority: .sync)
        } catch {
            var findings: [ProbeFinding] = []
            if let s = error.status {
                if !expected.contains(s) {
                    findings.append(
                        ProbeFinding(
                            field: "", kind: .status,
                            detail: "HTTP \(s), expected \(expected.sorted().map(String.init).joined(separator: " or ")): \(error.message)"))
                }
            } else {
                findings.append(ProbeFinding(field: "", kind: .status, detail: "no answer: \(error.message)"))
            }
            return (ProbeAnswer(request: request, status: error.status, body: [], findings: findings), nil)
        }
        var findings: [ProbeFinding] = []
        let (value, issues) = BoschWire.decodeTolerant(type, body)
        for i in issues {
            // A required field missing makes the whole answer unreadable for the daemon: drift, not a note.
            let required = i.problem == "required field is missing"
            let kind: ProbeFinding.Kind = required ? .missing : i.field.isEmpty ? .unreadable : .type
            findings.append(ProbeFinding(field: i.field, kind: kind, detail: i.problem, isDrift: required ? true : nil))
        }
        if let value, let json = try? JSONValue.parse(body) {
            Self.compare(json, Mirror(reflecting: value), path: "", enums: enums, into: &findings)
        }
        return (ProbeAnswer(request: request, status: 200, body: body, findings: findings), value)
    }

    /// The answer against the decoded value's shape: keys the type has no property for are extra; optional
    /// properties the answer lacks are missing; strings of a known enum field outside its values are named.
    static func compare(_ json: JSONValue, _ m: Mirror, path: String, enums: [String: [String]], into findings: inout [ProbeFinding]) {
        func at(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }
        switch (m.displayStyle, json) {
        case (.struct?, .object(let o)):
            var labels: Set<String> = []
            for child in m.children {
                guard let label = child.label else { continue }
                labels.insert(label)
                let inner = Mirror(reflecting: child.value)
                let isNil = inner.displayStyle == .optional && inner.children.isEmpty
                guard let v = o[label], v != .null else {
                    if isNil, o[label] == nil {
                        findings.append(ProbeFinding(field: at(label), kind: .missing, detail: "not in the answer (read as null)"))
                    }
                    continue
                }
                if let allowed = enums[label], let s = v.stringValue, !allowed.contains(where: { $0.uppercased() == s.uppercased() }) {
                    findings.append(
                        ProbeFinding(
                            field: at(label), kind: .enumValue,
                            detail: "\"\(s.prefix(40))\" is not one of \(allowed.joined(separator: ", ")) (kept as its string)"))
                }
                let unwrapped = inner.displayStyle == .optional ? inner.children.first.map { Mirror(reflecting: $0.value) } : inner
                if let unwrapped { compare(v, unwrapped, path: at(label), enums: enums, into: &findings) }
            }
            for k in o.keys.sorted() where !labels.contains(k) {
                findings.append(ProbeFinding(field: at(k), kind: .extra, detail: "not in the definition (ignored)"))
            }
        case (.collection?, .array(let a)):
            for (i, (child, v)) in zip(m.children, a).enumerated() {
                compare(v, Mirror(reflecting: child.value), path: at(String(i)), enums: enums, into: &findings)
            }
        default:
            return
        }
    }
}

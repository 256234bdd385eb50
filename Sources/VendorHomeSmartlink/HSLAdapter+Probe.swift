import HeatbridgeCore

/// `heatbridge probe` for HomeSmartlink: each configured home's device list (POST config, the read the daemon
/// polls with) against the DeviceDTO and gateway fields of `HSLWire` as shapes. The envelope is checked as
/// the daemon checks it (an answer addressed to another client is refused, not compared).
extension HSLAdapter: Probing {
    typealias W = HSLWire.F

    static let deviceShape: WireShape = .object(
        [
            // Required by the doc: header, roomId, roomName, softwareVersion (an int), category, online; the rest only
            // while the device is online (their absence is a note).
            W.header: .string, W.roomId: .number, W.roomName: .string, W.softwareVersion: .number,
            W.category: .oneOf(HSLWire.categories), W.online: .bool, W.mode: .nullable(.oneOf(HSLWire.modes)),
            W.setpoint: .nullable(.number),
            // The measured temperature is a string on the wire [doc]; the daemon reads a number as well.
            W.measured: .nullable(.string), W.lastUpdate: .nullable(.string),
            W.weekSchedule: .nullable(.list(.list(.object([W.start: .number, W.end: .number], required: [W.start, W.end])))),
        ], required: [W.header, W.roomId, W.roomName, W.softwareVersion, W.category, W.online])

    static let gatewayShape: WireShape = .object([
        W.token: .nullable(.string), W.version: .nullable(.string), W.lastPing: .nullable(.string),
        W.installationDate: .nullable(.string),
    ])

    public func probe() async -> [ProbeAnswer] {
        var out: [ProbeAnswer] = []
        for home in homes.prefix(50) {
            let request = "POST \(HSLWire.Path.config) {homeId: \(home)}"
            do {
                let e = try await call("POST", HSLWire.Path.config, body: [W.homeId: .string(home)])
                var findings = WireShape.list(Self.deviceShape).check(e.response, path: "response")
                if let g = e.root[W.gateway] { findings += Self.gatewayShape.check(g, path: W.gateway) }
                let known: Set<String> = ["authorisation", "response", "reponse", W.gateway]
                for k in (e.root.objectValue ?? [:]).keys.sorted() where !known.contains(k) {
                    findings.append(ProbeFinding(field: k, kind: .extra, detail: "not in the definition (ignored)"))
                }
                out.append(ProbeAnswer(request: request, status: 200, body: e.root.bytes, findings: findings))
            } catch {
                let detail = error.status.map { "HTTP \($0), expected 200: \(error.message)" } ?? error.message
                out.append(
                    ProbeAnswer(
                        request: request, status: error.status, body: [],
                        findings: [ProbeFinding(field: "", kind: error.kind == .badResponse ? .unreadable : .status, detail: detail)]))
            }
        }
        return out
    }
}

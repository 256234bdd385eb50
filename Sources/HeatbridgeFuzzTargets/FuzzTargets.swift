import Dispatch
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import HeatbridgeVendors
import Synchronization
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// The fuzz targets (SQLite and mosquitto do the same under OSS-Fuzz): each takes arbitrary bytes and must
/// neither crash nor break a property. `heatbridge-fuzz` runs them under libFuzzer (`Scripts/fuzz`); the
/// regression tests replay the seed corpus and every input a run ever found (`Fuzz/`) through the same code.
public enum FuzzTargets {
    /// A target by name: `json`, `command`, `config`.
    public static func named(_ name: String) -> (@Sendable ([UInt8]) -> Void)? {
        switch name {
        case "json": return json
        case "command": return command
        case "config": return config
        default: return nil
        }
    }

    public static let names = ["json", "command", "config"]

    /// The JSON reader, with both limit sets: what parses serialises to text that parses to the same value.
    @Sendable public static func json(_ bytes: [UInt8]) {
        for limits in [JSONLimits.documents, .commands] {
            guard let v = try? JSONValue.parse(bytes, limits: limits) else { continue }
            let text = v.serialized
            guard let again = try? JSONValue.parse(text) else { fatalError("serialised JSON does not parse: \(text.prefix(200))") }
            guard again == v else { fatalError("JSON round trip changed the value: \(text.prefix(200))") }
        }
    }

    /// One MQTT message on a command topic: the intake (size, JSON, id, retained), then the vendor's own
    /// validation of the parameters for every node and capability of the simulator's devices. The first byte
    /// picks the flags (retained, oversize); the rest is the payload.
    @Sendable public static func command(_ bytes: [UInt8]) {
        guard let flags = bytes.first else { return }
        let payload = Array(bytes.dropFirst())
        let topics = TopicLayout(base: "heatbridge")
        let devices = Fixtures.shared
        let pick = Int(flags >> 2) % max(devices.targets.count, 1)
        guard devices.targets.indices.contains(pick) else { return }
        let (adapter, device, node, capability) = devices.targets[pick]
        let message = MQTTMessage(
            topic: "heatbridge/\(device.id)/\(node)/\(capability)/set", payload: payload, retained: flags & 1 == 1,
            oversize: flags & 2 == 2 ? payload.count : nil)
        switch CommandIntake.parse(message, topics: topics, maxPayloadBytes: 4096) {
        case .command(let target, _, let body):
            precondition(target.device == device.id && target.node == node && target.capability == capability, "the intake changed the target")
            _ = CommandIntake.validity(body, default: 600)
            _ = try? adapter.validate(node: node, capability: capability, body: CommandIntake.parameters(body), device: device)
        case .rejected(_, _, let rejection, _):
            precondition(rejection.message.count <= CommandRejection.maxMessageCharacters + 1, "a rejection echoes too much")
        case .notCommand, .deletion:
            break
        }
    }

    /// The config: YAML reader and decoder with every vendor's keys. Errors are expected; crashes and hangs
    /// (the depth, size and linearity bounds) are not.
    @Sendable public static func config(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch YAMLReader.parse(text, file: "fuzz.yaml") {
        case .failure(let d): _ = d.description
        case .success(let root):
            let (_, diagnostics) = ConfigDecoder.decode(root, file: "fuzz.yaml", vendors: HeatbridgeVendors.all)
            _ = ConfigErrors(diagnostics).lines()
        }
    }
}

/// Real devices to validate commands against: the simulator's scenarios, read once through the adapters
/// in the same process (no socket).
final class Fixtures: Sendable {
    let targets: [(any VendorAdapter, DeviceSnapshot, String, String)]

    static let shared = Fixtures()

    init() {
        let box = Mutex<[(any VendorAdapter, DeviceSnapshot, String, String)]>([])
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let now = 1_800_000_000.0
            let clock = ManualClock(start: now)
            let podero = PoderoCloud.defaultScenario(now: now)
            let hsl = HSLCloud.defaultScenario()
            let sim = Simulator(bosch: .defaultScenario(), podero: podero, hsl: hsl)
            let t = InProcessTransport(sim)
            let base = "http://sim.test/podero" + PoderoWire.apiPrefix
            let session = PoderoSession(
                transport: t, tokenURL: PoderoWire.tokenURL(forBase: base), clientId: podero.clientId,
                clientSecret: podero.clientSecret, timeout: 2, clock: clock)
            let adapters: [any VendorAdapter] = [
                BoschAdapter(
                    transport: t, baseURL: "http://sim.test/bosch", apiKey: BoschCloud.defaultScenario().apiKey, userId: "u1",
                    timeout: 2, allowList: nil),
                HSLAdapter(
                    transport: t, baseURL: "http://sim.test/homesmartlink", clientId: hsl.clientId, clientSecret: hsl.clientSecret,
                    homes: Array(hsl.homes.keys), timeout: 2, clock: clock, localTime: FixedOffsetTime(offsetS: 3600)),
                PoderoAdapter(
                    client: PoderoClient(transport: t, baseURL: base, orgId: podero.orgId, session: session, timeout: 2),
                    allowList: nil, clock: clock),
            ]
            var out: [(any VendorAdapter, DeviceSnapshot, String, String)] = []
            for a in adapters {
                guard let devices = try? await a.fetchDevices() else { continue }
                for d in devices {
                    for node in d.nodes.keys.sorted() {
                        for capability in a.capabilities(of: node).sorted() { out.append((a, d, node, capability)) }
                    }
                }
            }
            box.withLock { $0 = out }
            done.signal()
        }
        done.wait()
        targets = box.withLock { $0 }
        precondition(!targets.isEmpty, "the simulator gave no devices to validate commands against")
    }
}

import HeatbridgeCore
import HeatbridgeStore
import VendorBosch

/// What one webhook POST becomes: every event checked (a request with one bad event is refused whole, so nothing
/// of it is stored), routed to its box's topic by the scope map, to the partner's topic (contract changes), or
/// counted and dropped (a gateway of no box). Pure: the server stores what this returns.
public struct Intake: Sendable {
    public var scope: ScopeMap
    /// `partner/boxes/{box}/heatbridge/push/bosch/{gateway}`; `{box}` and `{gateway}` are filled in.
    public var topicTemplate: String
    /// Where contract events go (the partner's back office); nil counts and drops them.
    public var partnerTopic: String?

    public init(scope: ScopeMap, topicTemplate: String, partnerTopic: String?) {
        self.scope = scope
        self.topicTemplate = topicTemplate
        self.partnerTopic = partnerTopic
    }

    /// Most events a request may carry.
    public static let maxEventsPerRequest = 500

    public enum Route: Sendable, Equatable {
        case box(String)
        case partner
        /// A gateway in no box's scope: remembered (its repeats are dropped too), not forwarded.
        case noBox
    }

    public struct Routed: Sendable {
        public var item: EventSpool.Item
        public var route: Route
        public var type: String
        public var gatewayId: String
    }

    /// A refused request: HTTP status and a message that quotes nothing of the body.
    public struct Refusal: Error, Sendable, Equatable {
        public var status: Int
        public var message: String
    }

    /// Reads a body: one event object, a list of them, or `{"events": [...]}`.
    public func route(_ body: [UInt8]) -> Result<[Routed], Refusal> {
        let j: JSONValue
        do { j = try JSONValue.parse(body, limits: JSONLimits(maxDepth: 10, maxMembers: 4096, maxStringBytes: 8192)) } catch {
            return .failure(Refusal(status: 400, message: error.reason.hasPrefix("duplicate key") ? "a key named twice" : "not JSON"))
        }
        let events: [JSONValue]
        switch j {
        case .array(let a): events = a
        case .object(let o) where o["events"]?.arrayValue != nil && o["eventType"] == nil: events = o["events"]!.arrayValue!
        case .object: events = [j]
        default: return .failure(Refusal(status: 400, message: "not an event (a JSON object or a list of them)"))
        }
        guard !events.isEmpty else { return .failure(Refusal(status: 400, message: "no event")) }
        guard events.count <= Self.maxEventsPerRequest else {
            return .failure(Refusal(status: 413, message: "\(events.count) events; at most \(Self.maxEventsPerRequest) per request"))
        }
        var out: [Routed] = []
        for (i, e) in events.enumerated() {
            let env: BoschWire.EventEnvelope
            switch BoschWire.envelope(e) {
            case .success(let v): env = v
            case .failure(let r): return .failure(Refusal(status: 400, message: "event \(i): \(r.message)"))
            }
            let bytes = e.bytes  // re-serialised: sorted keys, so a repeat is the same bytes however it was spaced
            guard bytes.count <= BoschWire.maxEventBytes else {
                return .failure(Refusal(status: 413, message: "event \(i): \(bytes.count) bytes; at most \(BoschWire.maxEventBytes)"))
            }
            let fingerprint = String(fnv1a64(bytes), radix: 16) + "-" + String(bytes.count)
            let route: Route
            var topic = ""
            if env.type == BoschWire.EventType.contract {
                route = .partner
                topic = partnerTopic.map { $0.replacing("{gateway}", with: env.gatewayId) } ?? ""
            } else if let box = scope.boxOf[env.gatewayId] {
                route = .box(box)
                topic = topicTemplate.replacing("{box}", with: box).replacing("{gateway}", with: env.gatewayId)
            } else {
                route = .noBox
            }
            out.append(
                Routed(
                    item: EventSpool.Item(fingerprint: fingerprint, topic: topic, payload: bytes), route: route, type: env.type,
                    gatewayId: env.gatewayId))
        }
        return .success(out)
    }
}

import HeatbridgeCore

extension BoschWire {
    // MARK: paths [doc]

    /// Every endpoint heatbridge uses, as a value: the adapter renders it (`path`), the simulator parses it
    /// (`init?(path:)`), and both take its rate limit from `limit(method:)`. A path is spelled only here.
    public enum Route: Equatable, Sendable {
        case gateways
        case status(String)
        case components(String)
        case heatingCircuits(String)
        case heatingCircuit(String, String)
        case heatCurve(String, String)
        case distribution(String, String)
        case heatingTimeProgram(String, String, String)
        case dhwCircuits(String)
        case dhwCircuit(String, String)
        case charge(String, String)
        case dhwTimeProgram(String, String, String)
        case silentMode(String)
        case holidayModes(String)
        case holidayMode(String, String)
        case dateTime(String)
        case contracts
        case contract(String)
        case apiKeysMe
        /// `POST` rotates, `GET` lists (path INFERRED: the release note's path is cut off).
        case apiKeys
        case apiKey(String)
        case health
        case webhookSimulation

        static let hvacs = "hvacs", heatingCircuitsSegment = "heatingCircuits", dhwCircuitsSegment = "dhwCircuits"
        static let systemSegment = "system", timePrograms = "timePrograms"

        /// The segments after the API base.
        public var segments: [String] {
            let hc = Self.heatingCircuitsSegment
            let dhw = Self.dhwCircuitsSegment
            let sys = Self.systemSegment
            switch self {
            case .gateways: return [Self.hvacs]
            case .status(let gw): return [Self.hvacs, gw, "status"]
            case .components(let gw): return [Self.hvacs, gw, "components"]
            case .heatingCircuits(let gw): return [Self.hvacs, gw, hc]
            case .heatingCircuit(let gw, let id): return [Self.hvacs, gw, hc, id]
            case .heatCurve(let gw, let id): return [Self.hvacs, gw, hc, id, "heatCurve"]
            case .distribution(let gw, let id): return [Self.hvacs, gw, hc, id, "heatingDistributionType"]
            case .heatingTimeProgram(let gw, let id, let tp): return [Self.hvacs, gw, hc, id, Self.timePrograms, tp]
            case .dhwCircuits(let gw): return [Self.hvacs, gw, dhw]
            case .dhwCircuit(let gw, let id): return [Self.hvacs, gw, dhw, id]
            case .charge(let gw, let id): return [Self.hvacs, gw, dhw, id, "charge"]
            case .dhwTimeProgram(let gw, let id, let tp): return [Self.hvacs, gw, dhw, id, Self.timePrograms, tp]
            case .silentMode(let gw): return [Self.hvacs, gw, sys, "silentMode"]
            case .holidayModes(let gw): return [Self.hvacs, gw, sys, "holidayModes"]
            case .holidayMode(let gw, let id): return [Self.hvacs, gw, sys, "holidayModes", id]
            case .dateTime(let gw): return [Self.hvacs, gw, sys, "dateTime"]
            case .contracts: return ["contracts"]
            case .contract(let gw): return ["contracts", gw]
            case .apiKeysMe: return ["api-keys", "me"]
            case .apiKeys: return ["api-keys"]
            case .apiKey(let id): return ["api-keys", id]
            case .health: return ["health"]
            case .webhookSimulation: return ["webhooks", "simulation"]
            }
        }

        /// `/hvacs/101000001/dhwCircuits/1/charge`.
        public var path: String { "/" + segments.joined(separator: "/") }

        /// The route a path names; nil for a path the API does not have.
        public init?(path: String) {
            let p = path.split(separator: "/").map(String.init)
            let hc = Self.heatingCircuitsSegment
            let dhw = Self.dhwCircuitsSegment
            let sys = Self.systemSegment
            guard let first = p.first else { return nil }
            if first != Self.hvacs {
                let fixed: [Route] = [.contracts, .apiKeysMe, .apiKeys, .health, .webhookSimulation]
                if let r = fixed.first(where: { $0.segments == p }) {
                    self = r
                    return
                }
                switch (p.count, first) {
                case (2, "contracts"): self = .contract(p[1])
                case (2, "api-keys"): self = .apiKey(p[1])
                default: return nil
                }
                return
            }
            guard p.count > 1 else {
                self = .gateways
                return
            }
            let gw = p[1]
            let rest = Array(p.dropFirst(2))
            switch rest.count {
            case 0: return nil
            case 1:
                switch rest[0] {
                case "status": self = .status(gw)
                case "components": self = .components(gw)
                case hc: self = .heatingCircuits(gw)
                case dhw: self = .dhwCircuits(gw)
                default: return nil
                }
            case 2:
                switch (rest[0], rest[1]) {
                case (hc, let id): self = .heatingCircuit(gw, id)
                case (dhw, let id): self = .dhwCircuit(gw, id)
                case (sys, "silentMode"): self = .silentMode(gw)
                case (sys, "holidayModes"): self = .holidayModes(gw)
                case (sys, "dateTime"): self = .dateTime(gw)
                default: return nil
                }
            case 3:
                switch (rest[0], rest[2]) {
                case (hc, "heatCurve"): self = .heatCurve(gw, rest[1])
                case (hc, "heatingDistributionType"): self = .distribution(gw, rest[1])
                case (dhw, "charge"): self = .charge(gw, rest[1])
                case (sys, _) where rest[1] == "holidayModes": self = .holidayMode(gw, rest[2])
                default: return nil
                }
            case 4 where rest[2] == Self.timePrograms:
                switch rest[0] {
                case hc: self = .heatingTimeProgram(gw, rest[1], rest[3])
                case dhw: self = .dhwTimeProgram(gw, rest[1], rest[3])
                default: return nil
                }
            default: return nil
            }
        }

        /// The gateway a route is about; nil for the company-wide ones.
        public var gatewayId: String? { segments.first == Self.hvacs && segments.count > 1 ? segments[1] : nil }

        /// Remote-control endpoints (a circuit, its charge and programs, `system/*`) need `x-user-id` and a current
        /// consent [doc]; the gateway itself, its status, components and circuit lists do not.
        public var isRemoteControl: Bool {
            let s = segments
            return s.count >= 4 && [Self.heatingCircuitsSegment, Self.dhwCircuitsSegment, Self.systemSegment].contains(s[2])
        }

        /// The documented limit of a request (cloud-apis.md §1.6), per company and path: 2 per second with bursts of
        /// 5 for paths without a gateway id; per gateway and path 1 per 2 s with bursts of 3; `PUT` of a time
        /// program 1 per 10 s.
        public func limit(method: String) -> RateLimit {
            if method == "PUT", case .heatingTimeProgram = self { return RateLimit(capacity: 1, perSecond: 0.1) }
            if method == "PUT", case .dhwTimeProgram = self { return RateLimit(capacity: 1, perSecond: 0.1) }
            return gatewayId == nil ? BoschWire.companyWideLimit : RateLimit(capacity: 3, perSecond: 0.5)
        }

        /// Counted per company (every box of the partner shares its bucket), not per company and gateway.
        public var isCompanyWide: Bool { gatewayId == nil }
    }

    /// A token bucket's size and refill rate.
    /// Endpoints without a gateway id: 2 requests/s sustained, burst 5, per (company, endpoint, path) [pub: §1.6].
    public static let companyWideLimit = RateLimit(capacity: 5, perSecond: 2)

    public struct RateLimit: Equatable, Sendable {
        public var capacity: Double
        public var perSecond: Double
    }

    /// The paths the adapter calls, rendered from `Route`.
    public enum Path {
        public static let hvacs = Route.gateways.path
        public static func status(_ gw: String) -> String { Route.status(gw).path }
        public static func heatingCircuits(_ gw: String) -> String { Route.heatingCircuits(gw).path }
        public static func heatingCircuit(_ gw: String, _ id: String) -> String { Route.heatingCircuit(gw, id).path }
        public static func dhwCircuits(_ gw: String) -> String { Route.dhwCircuits(gw).path }
        public static func dhwCircuit(_ gw: String, _ id: String) -> String { Route.dhwCircuit(gw, id).path }
        public static func charge(_ gw: String, _ id: String) -> String { Route.charge(gw, id).path }
        public static func heatingTimeProgram(_ gw: String, _ id: String, _ tp: String) -> String { Route.heatingTimeProgram(gw, id, tp).path }
        public static func heatCurve(_ gw: String, _ id: String) -> String { Route.heatCurve(gw, id).path }
        public static func distribution(_ gw: String, _ id: String) -> String { Route.distribution(gw, id).path }
        public static func silentMode(_ gw: String) -> String { Route.silentMode(gw).path }
        public static func holidayModes(_ gw: String) -> String { Route.holidayModes(gw).path }
        public static func holidayMode(_ gw: String, _ id: String) -> String { Route.holidayMode(gw, id).path }
        public static let contracts = Route.contracts.path
        public static func contract(_ gw: String) -> String { Route.contract(gw).path }
        public static let apiKeysMe = Route.apiKeysMe.path
        public static let apiKeys = Route.apiKeys.path
        public static func apiKey(_ id: String) -> String { Route.apiKey(id).path }
        public static let health = Route.health.path
        public static let webhookSimulation = Route.webhookSimulation.path
        public static func dateTime(_ gw: String) -> String { Route.dateTime(gw).path }
        public static func components(_ gw: String) -> String { Route.components(gw).path }
        public static func dhwTimeProgram(_ gw: String, _ id: String, _ tp: String) -> String { Route.dhwTimeProgram(gw, id, tp).path }
    }
}

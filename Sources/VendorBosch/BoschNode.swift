import HeatbridgeCore

/// The nodes of a Bosch gateway as they appear in topics: heating circuits `hc<N>`, DHW circuits `dhw<N>` and
/// the gateway's `system`, and the heat sources that only push events feed: `heatpump` (the appliance's energy
/// meter and compressor) and `hs<N>` (one per heat source of a cascade). One parse here instead of prefix tests
/// all over the adapter.
enum BoschNode: Equatable {
    case heatingCircuit(String)
    case dhwCircuit(String)
    case system
    /// `""` for the appliance (`heatpump`), the heat source id in a cascade (`hs2` → `"2"`).
    case heatSource(String)

    static let hcPrefix = "hc"
    static let dhwPrefix = "dhw"
    static let systemId = "system"
    static let heatPumpId = "heatpump"
    static let cascadePrefix = "hs"

    /// The node a topic id names; nil for anything else.
    init?(_ id: String) {
        if id == Self.systemId {
            self = .system
        } else if id == Self.heatPumpId {
            self = .heatSource("")
        } else if id.hasPrefix(Self.cascadePrefix), id.count > Self.cascadePrefix.count {
            self = .heatSource(String(id.dropFirst(Self.cascadePrefix.count)))
        } else if id.hasPrefix(Self.dhwPrefix), id.count > Self.dhwPrefix.count {
            self = .dhwCircuit(String(id.dropFirst(Self.dhwPrefix.count)))
        } else if id.hasPrefix(Self.hcPrefix), id.count > Self.hcPrefix.count {
            self = .heatingCircuit(String(id.dropFirst(Self.hcPrefix.count)))
        } else {
            return nil
        }
    }

    static func isHeatingCircuit(_ node: String) -> Bool { if case .heatingCircuit? = BoschNode(node) { true } else { false } }
    static func isDhwCircuit(_ node: String) -> Bool { if case .dhwCircuit? = BoschNode(node) { true } else { false } }
    static func isCircuit(_ node: String) -> Bool { isHeatingCircuit(node) || isDhwCircuit(node) }
    static func isSystem(_ node: String) -> Bool { BoschNode(node) == .system }

    /// The circuit id of an `hc<N>` or `dhw<N>` node; the node itself for anything else (validation lets no
    /// such command through).
    static func circuit(_ node: String) -> String {
        switch BoschNode(node) {
        case .heatingCircuit(let id)?, .dhwCircuit(let id)?: return id
        default: return node
        }
    }

    /// The capability-table key of any node id: `hc`, `dhw`, `heatsource`, else `system`.
    static func kind(of node: String) -> String { BoschNode(node)?.kind ?? systemId }

    /// `hc`, `dhw`, `system` or `heatsource`: the key of the capability table (heat sources take no commands).
    var kind: String {
        switch self {
        case .heatingCircuit: return Self.hcPrefix
        case .dhwCircuit: return Self.dhwPrefix
        case .system: return Self.systemId
        case .heatSource: return "heatsource"
        }
    }
}

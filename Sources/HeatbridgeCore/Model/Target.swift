/// What a command is for: a capability of one node of one device, or of a group (`device` is then
/// `group` and `node` the group's name, as in `<base>/group/<name>/<capability>/set`).
public struct Target: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var device: String
    public var node: String
    public var capability: String

    public init(device: String, node: String, capability: String) {
        self.device = device
        self.node = node
        self.capability = capability
    }

    /// A group's target.
    public static func group(_ name: String, _ capability: String) -> Target {
        Target(device: groupDevice, node: name, capability: capability)
    }

    /// The pseudo device of group commands.
    public static let groupDevice = "group"

    public var isGroup: Bool { device == Self.groupDevice }
    /// `<device>/<node>/<capability>`: the key of leases and log lines.
    public var key: String { "\(device)/\(node)/\(capability)" }
    public var description: String { key }

    /// The same capability on another node (a group's member).
    public func member(_ device: String, _ node: String) -> Target { Target(device: device, node: node, capability: capability) }
}

/// Where a command came from. Its results say so (`"source":"trigger:<name>"`) unless it came over MQTT.
public enum CommandSource: Sendable, Equatable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// Published on a `…/set` topic.
    case mqtt
    /// Issued by the local trigger of this name.
    case trigger(String)
    /// Issued by the bridge for the lease of this command (a restore or a re-assertion).
    case lease(String)
    /// Issued by the bridge for one of the installer's limits (e.g. `legionella`).
    case limit(String)

    /// `mqtt`, `trigger:<name>`, `lease:<id>`, `limit:<name>`: how the store and the results spell it.
    public var rawValue: String {
        switch self {
        case .mqtt: return "mqtt"
        case .trigger(let n): return "trigger:\(n)"
        case .lease(let id): return "lease:\(id)"
        case .limit(let n): return "limit:\(n)"
        }
    }

    public init(rawValue: String) {
        func rest(_ prefix: String) -> String? { rawValue.hasPrefix(prefix) ? String(rawValue.dropFirst(prefix.count)) : nil }
        if let n = rest("trigger:") {
            self = .trigger(n)
        } else if let id = rest("lease:") {
            self = .lease(id)
        } else if let n = rest("limit:") {
            self = .limit(n)
        } else {
            self = .mqtt
        }
    }

    public init(stringLiteral value: String) { self.init(rawValue: value) }

    public var description: String { rawValue }
    public var isLimit: Bool { if case .limit = self { return true } else { return false } }
    public var isLease: Bool { if case .lease = self { return true } else { return false } }
}

/// A command the bridge issues itself (a trigger's action, a lease's restore, a limit's charge): it goes
/// through the same validation and pipeline as one from MQTT.
struct Submission: Sendable {
    var target: Target
    var id: String
    var body: [String: JSONValue]
    var source: CommandSource
}

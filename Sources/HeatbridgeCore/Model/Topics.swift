/// The topic layout of the MQTT contract under one base topic.
public struct TopicLayout: Sendable, Equatable {
    public let base: String

    public init(base: String) { self.base = base }

    public var bridgeState: String { "\(base)/bridge/state" }
    public var bridgeInfo: String { "\(base)/bridge/info" }
    public var bridgeHealth: String { "\(base)/bridge/health" }
    /// The last command that ended (any device), for dashboards.
    public var bridgeLastResult: String { "\(base)/bridge/last_result" }
    /// Local triggers with their state and next fire times.
    public var bridgeTriggers: String { "\(base)/bridge/triggers" }
    public func account(_ name: String) -> String { "\(base)/bridge/account/\(name)" }
    /// Bridge requests (`status`, `poll`, …) and where each is answered.
    public var bridgeRequestFilter: String { "\(base)/bridge/request/+" }
    public func bridgeResponse(_ name: String) -> String { "\(base)/bridge/response/\(name)" }
    /// The name of a bridge request topic, or nil for any other topic.
    public func parseBridgeRequest(_ topic: String) -> String? {
        let prefix = base + "/bridge/request/"
        guard topic.hasPrefix(prefix) else { return nil }
        let name = topic.dropFirst(prefix.count)
        return name.contains("/") ? nil : String(name)
    }
    public func deviceState(_ device: String) -> String { "\(base)/\(device)/state" }
    public func availability(_ device: String) -> String { "\(base)/\(device)/availability" }
    public func nodeState(_ device: String, _ node: String) -> String { "\(base)/\(device)/\(node)/state" }
    public func nodeSchedule(_ device: String, _ node: String) -> String { "\(base)/\(device)/\(node)/schedule" }
    public func result(device: String, node: String, capability: String) -> String {
        "\(base)/\(device)/\(node)/\(capability)/result"
    }
    /// Where the partner's receiver delivers a vendor's pushed events for one device: `<base>/push/<vendor>/<vendor id>`.
    public func push(vendor: String, vendorId: String) -> String { "\(base)/push/\(vendor)/\(vendorId)" }
    /// The subscription for one vendor's pushed events.
    public func pushFilter(vendor: String) -> String { "\(base)/push/\(vendor)/+" }

    /// A push topic split into vendor and vendor id, or nil for any other topic.
    public func parsePush(_ topic: String) -> (vendor: String, vendorId: String)? {
        let prefix = base + "/push/"
        guard topic.hasPrefix(prefix) else { return nil }
        let parts = topic.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    /// The subscription that catches every command (`<base>/<device>/<node>/<capability>/set`, groups included).
    public var commandFilter: String { "\(base)/+/+/+/set" }

    /// A command topic split into its parts, or nil when `topic` is not a command topic of this layout.
    public func parseCommand(_ topic: String) -> (device: String, node: String, capability: String)? {
        let prefix = base + "/"
        guard topic.hasPrefix(prefix) else { return nil }
        let parts = topic.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[3] == "set", !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            return nil
        }
        return (String(parts[0]), String(parts[1]), String(parts[2]))
    }

    /// Maps any text to a topic identifier `[a-z0-9_-]+`: lower-cased, other characters become `_`.
    public static func sanitize(_ raw: String) -> String {
        var out = ""
        for scalar in raw.lowercased().unicodeScalars {
            switch scalar {
            case "a"..."z", "0"..."9", "_", "-": out.unicodeScalars.append(scalar)
            default: out += "_"
            }
        }
        return out.isEmpty ? "_" : out
    }
}

/// What a capability's validation sees: the command's body, the device it is for (the node's state and programs,
/// the other nodes), and the time now and the box's local time, when there is a clock (not when a trigger action
/// is checked at config time).
public struct ValidationInput: Sendable {
    public var body: [String: JSONValue]
    public var node: String
    public var device: DeviceSnapshot
    public var now: EpochSeconds?
    public var localTime: (any LocalTime)?

    public init(body: [String: JSONValue], node: String, device: DeviceSnapshot, now: EpochSeconds? = nil, localTime: (any LocalTime)? = nil) {
        self.body = body
        self.node = node
        self.device = device
        self.now = now
        self.localTime = localTime
    }

    /// The node's current state (`null` when the device has no such node).
    public var state: JSONValue { device.nodes[node] ?? .null }
}

/// One capability of one node kind, complete: how its parameters are checked, what it means for the installer's
/// limits, how a lease puts it back, how it is sent and how it is read back. A vendor registers one handler per
/// capability in one table (`CapabilityTable`); its adapter's `validate`, `facts`, `restoreParams`, `execute` and
/// `confirm` look the handler up, so a capability cannot be half-added: every part is a required argument here
/// (zigbee2mqtt's converters keep a key's set and get together the same way).
public struct CapabilityHandler<Adapter: Sendable>: Sendable {
    public typealias Validate = @Sendable (_ input: ValidationInput) throws(CommandRejection) -> JSONValue
    /// `progress` publishes a non-terminal `progress` result, for commands whose delivery the cloud reports in steps.
    public typealias Execute =
        @Sendable (
            _ adapter: Adapter, _ command: Command, _ device: DeviceSnapshot,
            _ progress: @escaping ProgressSink
        ) async throws(CloudError) -> String?
    /// One command for several members at once (a group), with one outcome per member.
    public typealias ExecuteGroup =
        @Sendable (
            _ adapter: Adapter, _ command: Command, _ members: [(device: DeviceSnapshot, node: String)],
            _ progress: @escaping ProgressSink
        ) async -> [MemberOutcome]
    public typealias Confirm = @Sendable (_ adapter: Adapter, _ command: Command, _ device: DeviceSnapshot) async throws(CloudError) -> Bool?

    public let name: String
    public let validate: Validate
    /// What validated parameters mean for the installer's limits (`CommandFacts()` for nothing).
    public let facts: @Sendable (_ params: JSONValue) -> CommandFacts
    /// The parameters that would put the capability back to the node's current value (a lease's end); nil for a
    /// capability that cannot be leased (`restore: nil`).
    public let restore: (@Sendable (_ node: JSONValue) -> JSONValue?)?
    public let execute: Execute
    /// Whether the command already took effect (true/false) or cannot tell (nil): asked before a command that may
    /// have reached the cloud is sent again.
    public let confirm: Confirm
    /// How a group command runs (nil: the capability cannot be sent to a group).
    public let executeGroup: ExecuteGroup?
    /// When `confirm` cannot tell: send it again (true: setting a clock, starting a diagnosis) or end `IN_DOUBT`
    /// (false: a derogation sent twice is two derogations).
    public let resendWhenUnconfirmed: Bool
    /// While pushed events arrive, they report this capability's effect: no read-back after it (a DHW charge's
    /// charge-status event).
    public let confirmedByEvents: Bool
    /// Whether a trigger action's parameters can be checked at config time: false for what depends on the device
    /// or on when it runs (a holiday names the gateway's circuits; an away period's start and end are times).
    public let checkedAtConfig: @Sendable (_ params: [String: JSONValue]) -> Bool
    /// A member whose value the bridge keeps per node for commands that leave it out (nil: none).
    public let localDefault: LocalDefault?
    /// The parameters that make this capability start a hot water charge: the legionella limit sends them
    /// (nil: the capability does not charge hot water).
    public let startsHotWaterCharge: [String: JSONValue]?

    public init(
        _ name: String, validate: @escaping Validate, facts: @escaping @Sendable (JSONValue) -> CommandFacts,
        restore: (@Sendable (JSONValue) -> JSONValue?)?, execute: @escaping Execute, confirm: @escaping Confirm,
        group: ExecuteGroup? = nil, resendWhenUnconfirmed: Bool = false, confirmedByEvents: Bool = false,
        checkedAtConfig: @escaping @Sendable ([String: JSONValue]) -> Bool = { _ in true }, localDefault: LocalDefault? = nil,
        startsHotWaterCharge: [String: JSONValue]? = nil
    ) {
        // The default belongs to the capability that declares it: its name is this handler's, not a second copy.
        self.localDefault = localDefault.map {
            var d = $0
            d.capability = name
            return d
        }
        self.startsHotWaterCharge = startsHotWaterCharge
        self.confirmedByEvents = confirmedByEvents
        self.checkedAtConfig = checkedAtConfig
        self.executeGroup = group
        self.resendWhenUnconfirmed = resendWhenUnconfirmed
        self.name = name
        self.validate = validate
        self.facts = facts
        self.restore = restore
        self.execute = execute
        self.confirm = confirm
    }

    /// For capabilities that mean nothing to the installer's limits.
    public static func noFacts(_ params: JSONValue) -> CommandFacts { CommandFacts() }
}

/// A node kind's capabilities, by name: the one place a vendor lists them.
public struct CapabilityTable<Adapter: Sendable>: Sendable {
    public let handlers: [String: CapabilityHandler<Adapter>]
    /// The members whose defaults the bridge keeps, of every capability here (by capability name).
    public let localDefaults: [LocalDefault]
    /// The capability that starts a hot water charge here, and its parameters.
    public let hotWaterCharge: (capability: String, params: [String: JSONValue])?

    /// Two handlers with one name is a programming error, found by the first test that builds the table.
    public init(_ list: [CapabilityHandler<Adapter>]) {
        handlers = Dictionary(list.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in preconditionFailure("capability \(a.name) registered twice") })
        // Read on every command and every published state: worked out once, here.
        let sorted = list.sorted { $0.name < $1.name }
        localDefaults = sorted.compactMap(\.localDefault)
        hotWaterCharge = sorted.lazy.compactMap { h in h.startsHotWaterCharge.map { (h.name, $0) } }.first
    }

    public var names: Set<String> { Set(handlers.keys) }

    public subscript(_ name: String) -> CapabilityHandler<Adapter>? { handlers[name] }

    /// The handler of `capability`, or `UNSUPPORTED` naming the node's capabilities.
    public func handler(_ capability: String, node: String) throws(CommandRejection) -> CapabilityHandler<Adapter> {
        guard let h = handlers[capability] else {
            throw CommandRejection(
                .unsupported, "\"\(capability)\" is not supported on \(node); supported: \(names.sorted().joined(separator: ", "))")
        }
        return h
    }
}

/// A member of a capability's commands whose value the bridge keeps per node, for commands that leave it out: a
/// hot water charge's duration, which Home Assistant's "charge now" button does not send. A vendor declares it on
/// the capability's handler; the bridge does the rest without knowing the capability: it fills the member in,
/// answers the command that sets it (`<node>/<setting>/set` `{"<settingMember>": N}`, no cloud call), keeps the
/// value in the store, shows it in the node's state (`<stateMember>.<stateKey>`) and announces a Home Assistant
/// number for it.
public struct LocalDefault: Sendable {
    /// The capability whose commands take the member: set by the handler that declares it.
    public internal(set) var capability = ""
    /// The member the bridge fills in.
    public var member: String
    /// The default applies to commands whose `onlyWhen.member` is `onlyWhen.value` (a charge's start), or to all.
    public var onlyWhen: (member: String, value: String)?
    /// The capability that sets the default, and the member it takes.
    public var setting: String
    public var settingMember: String
    public var range: ClosedRange<Int>
    /// The value until one is set.
    public var initial: Int
    /// Where the node's state shows it: `<stateMember>.<stateKey>`, on nodes whose state has `stateMember`.
    public var stateMember: String
    public var stateKey: String
    /// The key in the store's settings, under `<device>/<node>/` (kept as it is across versions).
    public var storageKey: String
    /// What the setting's `done` says, given the value.
    public var done: @Sendable (Int) -> String
    /// Home Assistant's number entity: its name, its object id's last part, and its slider.
    public var entity: (name: String, id: String, min: Int, step: Int, unit: String)

    public init(
        member: String, onlyWhen: (member: String, value: String)?, setting: String, settingMember: String,
        range: ClosedRange<Int>, initial: Int, stateMember: String, stateKey: String, storageKey: String,
        done: @escaping @Sendable (Int) -> String, entity: (name: String, id: String, min: Int, step: Int, unit: String)
    ) {
        self.member = member
        self.onlyWhen = onlyWhen
        self.setting = setting
        self.settingMember = settingMember
        self.range = range
        self.initial = initial
        self.stateMember = stateMember
        self.stateKey = stateKey
        self.storageKey = storageKey
        self.done = done
        self.entity = entity
    }

    /// Whether a command with these parameters gets the default (it leaves the member out).
    public func applies(to params: [String: JSONValue]) -> Bool {
        guard params[member] == nil else { return false }
        guard let onlyWhen else { return true }
        return params[onlyWhen.member]?.stringValue == onlyWhen.value
    }
}

/// Everything the daemon and the CLI need to know of one cloud, in one value: how its part of an account in
/// the config is read, how its device ids look, and how its adapter is built. The list of modules is the one
/// place that names the vendors (`HeatbridgeVendors.all`); Core and the config decoder take it as a parameter.
public protocol VendorModule: Sendable {
    /// The `vendor:` value in the config that names this module.
    var name: String { get }
    /// Config keys of an account of this vendor besides the common ones.
    var accountKeys: [String] { get }
    /// Secret keys an installer might type inline, with the keys to use instead (`api_key` → `api_key_file…`).
    var inlineSecrets: [String: String] { get }
    /// `poll_interval_s` when the account does not set it.
    var defaultPollIntervalS: Double { get }
    /// Topic ids of this vendor's devices start with this (e.g. `<vendor>-`).
    var deviceIdPrefix: String { get }
    /// True when the account's credentials reach every customer of the partner: its accounts must then say
    /// which devices are this box's (`devices:`, or an explicit `devices: all`).
    var requiresScope: Bool { get }
    /// True when the vendor's cloud pushes events (Bosch webhooks) and its adapter is `PushDecoding`: its
    /// accounts may set `push:`.
    var pushesEvents: Bool { get }
    /// Reads the vendor's keys of one account; mistakes are reported on `decoder` with their position.
    /// `common` holds what every account has (name, base URL, devices…).
    func decodeAccount(
        _ entries: ConfigDecoder.Entries, at mark: SourceMark, common: AccountConfig,
        decoder: inout ConfigDecoder
    ) -> (any VendorAccountSettings)?
    /// Why the vendor id `id` cannot be a device of any of `accounts` (this vendor's accounts), nil when it can:
    /// for trigger targets, checked at config time.
    func outOfScope(_ id: String, accounts: [AccountConfig]) -> String?
    /// Builds the adapter of one configured account.
    func makeAdapter(_ account: AccountConfig, context: VendorContext) -> Result<any VendorAdapter, VendorSetupError>
    /// A trigger action checked at config time with the validators MQTT commands use: the node kind, the
    /// capability, and the parameters as far as they do not depend on the device's state or the time it
    /// fires (those are checked when it fires). nil when nothing is wrong.
    func checkAction(node: String, capability: String, params: [String: JSONValue]) -> CommandRejection?
    /// Whether a command of `capability` on `node` can carry a lease (`duration_min`/`duration_s`), i.e. the
    /// adapter restores it (`VendorAdapter.restoreParams`): the lease members are then the bridge's, not the
    /// vendor's, when a trigger action is checked.
    func isLeasable(node: String, capability: String) -> Bool
    /// The members of `node`'s commands whose defaults the bridge keeps (`LocalDefault`): a trigger action that
    /// sets one is the bridge's own command, not the vendor's.
    func localDefaults(of node: String) -> [LocalDefault]
}

extension VendorModule {
    public var pushesEvents: Bool { false }
    public func checkAction(node: String, capability: String, params: [String: JSONValue]) -> CommandRejection? { nil }
    public func isLeasable(node: String, capability: String) -> Bool { false }
    public func localDefaults(of node: String) -> [LocalDefault] { [] }

    /// For `checkAction`: a validation run against a device that has only `node`, with no state. Only the
    /// errors about the parameters themselves count; what needs the device's state is for when it fires.
    public static func parameterError(_ run: () throws(CommandRejection) -> Void) -> CommandRejection? {
        do { try run() } catch {
            return error.code == .invalidPayload || error.code == .outOfRange ? error : nil
        }
        return nil
    }

    public var inlineSecrets: [String: String] { [:] }
    public var defaultPollIntervalS: Double { 60 }
    public var requiresScope: Bool { false }

    /// The default scope check: an account with `devices:` bridges only those.
    public func outOfScope(_ id: String, accounts: [AccountConfig]) -> String? {
        if accounts.allSatisfy({ $0.devices != nil }), !accounts.contains(where: { $0.devices!.map(TopicLayout.sanitize).contains(id) }) {
            return "\(id) is not in any \(name) account's devices"
        }
        return nil
    }
}

/// A vendor's own part of one account's config (keys, secrets), decoded by its module.
public protocol VendorAccountSettings: Sendable {
    /// Every secret the account references, so the loader can check each is readable.
    var secretRefs: [SecretRef] { get }
    func isEqual(to other: any VendorAccountSettings) -> Bool
}

extension VendorAccountSettings where Self: Equatable {
    public func isEqual(to other: any VendorAccountSettings) -> Bool { (other as? Self) == self }
}

/// What an adapter is built with: the real parts in the daemon and the CLI, fakes in tests.
public struct VendorContext: Sendable {
    public var transport: any HTTPTransport
    public var clock: any Clock
    public var localTime: any LocalTime
    /// Reads a secret the config references; nil when it cannot be read.
    public var readSecret: @Sendable (SecretRef) -> String?
    /// Replaces a secret file (a rotated key); returns why it failed, nil on success.
    public var writeSecret: @Sendable (_ path: String, _ secret: String) -> String?
    /// Bridge-local settings that outlive a restart (e.g. an OAuth token); nil in one-shot CLI runs.
    public var settings: SettingsPersistence?
    /// Boxes sharing the partner accounts (`fleet.boxes`): company-wide reads are spaced by it.
    public var fleetBoxes: Int?

    public init(
        transport: any HTTPTransport, clock: any Clock, localTime: any LocalTime,
        readSecret: @escaping @Sendable (SecretRef) -> String?,
        writeSecret: @escaping @Sendable (String, String) -> String? = { _, _ in "secrets cannot be written here" },
        settings: SettingsPersistence? = nil
    ) {
        self.transport = transport
        self.clock = clock
        self.localTime = localTime
        self.readSecret = readSecret
        self.writeSecret = writeSecret
        self.settings = settings
    }
}

/// Load and save one bridge-local setting by key (the store's settings table in the daemon).
public struct SettingsPersistence: Sendable {
    public var load: @Sendable (String) -> JSONValue?
    public var save: @Sendable (String, JSONValue) -> Void
    public init(load: @escaping @Sendable (String) -> JSONValue?, save: @escaping @Sendable (String, JSONValue) -> Void) {
        self.load = load
        self.save = save
    }
}

/// Why an account's adapter could not be built (its secret unreadable…); never contains the secret.
public struct VendorSetupError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Array where Element == any VendorModule {
    /// The module of a `vendor:` value.
    public func module(_ name: String) -> (any VendorModule)? { first { $0.name == name } }
}

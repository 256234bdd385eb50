/// The state of one cloud account as published on `<base>/bridge/account/<name>`.
public enum AccountState: String, Sendable, Equatable {
    case starting, ready, degraded
    case rateLimited = "rate_limited"
    case authRequired = "auth_required"
    case offline
}

/// A cloud call that did not succeed, classified the way the MQTT contract reports it.
public struct CloudError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// 401: the key or token is missing, wrong or expired.
        case authFailed
        /// 403: no contract / no access to this device.
        case forbidden
        /// 451: the owner's consent is too old for remote control.
        case consentRequired
        /// 504 from the cloud: the device itself is offline.
        case deviceOffline
        /// 429: try again after `retryAfter` seconds.
        case rateLimited(retryAfter: Double)
        /// 5xx, timeouts, refused connections.
        case unavailable
        /// 4xx the adapter did not expect (the cloud refused the request as sent).
        case rejected
        /// A 2xx whose body could not be understood.
        case badResponse
        /// The device's state changed since the command was based on it (e.g. a week program edited meanwhile).
        case conflict
        /// The cloud took the command but not every targeted device confirmed receipt in time.
        case notAcknowledged
    }

    public var kind: Kind
    /// HTTP status when there was one.
    public var status: Int?
    /// Human-readable detail; never contains a secret.
    public var message: String
    /// Whether the cloud may have acted on the request although it did not say so: no answer (a timeout or
    /// a connection lost after sending), a 2xx whose body could not be read, or a 500/502/504 (an upstream
    /// that may have gone on). Such a command is read back before it is sent again, never re-sent blind.
    /// False for definite answers (4xx, 429, 503, the vendor's "device offline") and unsent requests.
    public var mayHaveApplied: Bool
    /// The cloud's own id of the failed request (where the vendor sends one), for the partner to quote to the
    /// vendor's support; in logs and as `cloud_request_id` in command results.
    public var requestId: String?

    public init(_ kind: Kind, status: Int? = nil, message: String, mayHaveApplied: Bool? = nil, requestId: String? = nil) {
        self.kind = kind
        self.status = status
        self.message = message
        self.mayHaveApplied = mayHaveApplied ?? Self.mayHaveApplied(kind, status)
        self.requestId = requestId.flatMap(Self.supportId)
    }

    /// A request id as the cloud sent it, if it looks like one: at most 128 characters of letters, digits and
    /// `-_.:`; anything else is dropped rather than echoed into results and logs.
    public static func supportId(_ s: String) -> String? {
        guard !s.isEmpty, s.utf8.count <= 128,
            s.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || "-_.:".utf8.contains($0) })
        else { return nil }
        return s
    }

    static func mayHaveApplied(_ kind: Kind, _ status: Int?) -> Bool {
        if kind == .deviceOffline { return false }
        guard let status else { return true }
        return (200..<300).contains(status) || [500, 502, 504].contains(status)
    }

    /// A failure worth trying again later (5xx, timeouts, lost connections): the cloud, not the command, is
    /// at fault. 429 is retried on its own terms (`Retry-After`).
    public var isTransient: Bool { kind == .unavailable }

    public var description: String {
        (status.map { "HTTP \($0): \(message)" } ?? message) + (requestId.map { " (request id \($0))" } ?? "")
    }

    /// The result code a command failing with this error gets.
    public var code: ResultCode {
        switch kind {
        case .authFailed: return .authFailed
        case .forbidden: return .forbidden
        case .consentRequired: return .consentRequired
        case .deviceOffline: return .deviceOffline
        case .rateLimited: return .rateLimited
        case .unavailable: return .cloudUnavailable
        case .rejected: return .cloudRejected
        case .badResponse: return .badResponse
        case .conflict: return .conflict
        case .notAcknowledged: return .notAcknowledged
        }
    }

    /// What this error says about the whole account, or nil when it concerns one device only.
    public var accountState: AccountState? {
        switch kind {
        case .authFailed: return .authRequired
        case .rateLimited: return .rateLimited
        case .unavailable: return .offline
        case .badResponse: return .degraded
        case .forbidden, .consentRequired, .deviceOffline, .rejected, .conflict, .notAcknowledged: return nil
        }
    }
}

/// One device as a vendor adapter reads it from its cloud.
public struct DeviceSnapshot: Sendable, Equatable {
    /// Topic id, e.g. `bosch-101000001`.
    public var id: String
    /// The vendor's own id (gateway id, home id, heat pump id).
    public var vendorId: String
    public var model: String?
    /// The cloud's view of the device's connectivity; nil when unknown.
    public var online: Bool?
    /// Device-level fields for `<device>/state` besides the common ones.
    public var attributes: [String: JSONValue]
    /// Node id (`hc1`, `dhw1`, …) → node state JSON.
    public var nodes: [String: JSONValue]
    /// Set when the device could not be read (no contract, consent, offline): its nodes may be empty.
    public var error: CloudError?
    /// Week programs by node, in the neutral format.
    public var schedules: [String: WeekSchedule]

    public init(
        id: String, vendorId: String, model: String? = nil, online: Bool?, attributes: [String: JSONValue] = [:],
        nodes: [String: JSONValue], error: CloudError? = nil, schedules: [String: WeekSchedule] = [:]
    ) {
        self.schedules = schedules
        self.id = id
        self.vendorId = vendorId
        self.model = model
        self.online = online
        self.attributes = attributes
        self.nodes = nodes
        self.error = error
    }
}

/// One cloud vendor's adapter: reads devices and executes commands. Adapters hold no MQTT or store
/// knowledge; the bridge does the rest.
public protocol VendorAdapter: Sendable {
    /// `bosch`, `homesmartlink`, `podero`.
    var vendor: String { get }
    /// Reads every accessible device with its nodes. Throws when the account as a whole failed;
    /// per-device failures are reported in `DeviceSnapshot.error`.
    func fetchDevices() async throws(CloudError) -> [DeviceSnapshot]
    /// The command capabilities a node has (`charge`, `mode`, …).
    func capabilities(of node: String) -> Set<String>
    /// What a node offers a front end (Home Assistant discovery), given its state and capabilities.
    func exposes(node: String, state: JSONValue, capabilities: Set<String>) -> [Expose]
    /// Validates a command for a node of this vendor and returns normalised parameters.
    /// Throws `UNKNOWN_TARGET`/`UNSUPPORTED`/`INVALID_PAYLOAD`/`OUT_OF_RANGE` rejections.
    func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue
    /// Executes a validated command; returns a short message for the `done` result.
    func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String?
    /// The same, for commands whose delivery the cloud reports in steps: `progress` publishes a non-terminal
    /// `progress` result (e.g. `{"requested":3,"sent":3,"received":1}`). Defaults to `execute`.
    func execute(_ command: Command, device: DeviceSnapshot, progress: @escaping ProgressSink) async throws(CloudError) -> String?
    /// Reads the device back to tell whether `command` already took effect: true (applied), false (not), or
    /// nil (cannot tell). Used for commands that may have reached the cloud before the daemon died.
    func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool?
    /// Whether `command`, when `confirm` cannot tell, may be sent again (setting a clock, starting a
    /// diagnosis) or ends `failed` `IN_DOUBT` instead (a derogation sent twice is two derogations).
    func resendWhenUnconfirmed(_ command: Command) -> Bool
    /// The parameters of a command that would put `capability` back to the node's current value, for leases
    /// on capabilities without a native end; nil when the capability cannot be leased.
    func restoreParams(node: String, capability: String, device: DeviceSnapshot) -> JSONValue?
    /// Reads one device again (the read-back after a command); nil when the adapter can only read them all.
    func refresh(_ device: DeviceSnapshot) async throws(CloudError) -> DeviceSnapshot?
    /// When the account's credential stops working, for credentials that say so (Bosch API keys).
    func credentialExpiry() -> EpochSeconds?
    /// Renews a credential close to its expiry when the installer enabled it; nil when nothing was due.
    /// Called after every poll, so it must be cheap when there is nothing to do.
    func renewCredential(now: EpochSeconds) async -> CredentialRenewal?
    /// When the adapter next wants to do its background reads (company-wide listings a fleet shares: asked at
    /// their own, randomly spread times rather than in step with polls); nil when it has none.
    func nextBackgroundRead() async -> EpochSeconds?
    /// Does the background reads that are due; the bridge calls it at `nextBackgroundRead()`.
    func backgroundRead() async
    /// What a validated command means for the installer's limits (setpoints, offsets, hot water), read from
    /// this vendor's parameter shapes.
    func facts(node: String, capability: String, params: JSONValue) -> CommandFacts
    /// The temperature a hot-water node heats to in `state` (0 when off, `.infinity` when it cannot tell); nil
    /// for nodes that are not hot water. The legionella limit watches these.
    func hotWaterTarget(node: String, state: JSONValue) -> Double?
    /// The members of `node`'s commands whose defaults the bridge keeps (`LocalDefault`).
    func localDefaults(of node: String) -> [LocalDefault]
    /// The capability, and its parameters, that start a hot water charge on `node` (the legionella limit sends
    /// them); nil: the node cannot charge.
    func hotWaterCharge(node: String) -> (capability: String, params: [String: JSONValue])?
    /// How a front end names the device and its maker (Home Assistant's device name and manufacturer): the
    /// brand on the box, the model or label a person recognises, and an id short enough to read.
    func frontEndName(_ device: DeviceSnapshot) -> FrontEndName
}

/// A device's name and manufacturer as a front end shows them.
public struct FrontEndName: Sendable, Equatable {
    public var manufacturer: String
    public var name: String
    public init(manufacturer: String, name: String) {
        self.manufacturer = manufacturer
        self.name = name
    }
}

/// What `renewCredential` did.
public enum CredentialRenewal: Sendable, Equatable {
    /// A new credential is in use and stored; it expires at this time (when known).
    case renewed(expires: EpochSeconds?)
    /// Renewal was due but failed; the old credential stays in use. Never contains the secret.
    case failed(String)
}

/// Receives delivery progress of a running command.
public typealias ProgressSink = @Sendable (_ progress: JSONValue, _ message: String?) async -> Void

extension VendorAdapter {
    public func restoreParams(node: String, capability: String, device: DeviceSnapshot) -> JSONValue? { nil }

    public func execute(_ command: Command, device: DeviceSnapshot, progress: @escaping ProgressSink) async throws(CloudError) -> String? {
        try await execute(command, device: device)
    }

    public func confirm(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> Bool? { nil }
    public func resendWhenUnconfirmed(_ command: Command) -> Bool { false }
    public func refresh(_ device: DeviceSnapshot) async throws(CloudError) -> DeviceSnapshot? { nil }
    public func credentialExpiry() -> EpochSeconds? { nil }
    public func renewCredential(now: EpochSeconds) async -> CredentialRenewal? { nil }
    public func nextBackgroundRead() async -> EpochSeconds? { nil }
    public func backgroundRead() async {}
    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts { CommandFacts() }
    public func exposes(node: String, state: JSONValue, capabilities: Set<String>) -> [Expose] { [] }
    public func hotWaterTarget(node: String, state: JSONValue) -> Double? { nil }
    public func localDefaults(of node: String) -> [LocalDefault] { [] }
    public func hotWaterCharge(node: String) -> (capability: String, params: [String: JSONValue])? { nil }
    public func frontEndName(_ device: DeviceSnapshot) -> FrontEndName {
        let maker = vendor.prefix(1).uppercased() + vendor.dropFirst()
        return FrontEndName(manufacturer: maker, name: "\(maker) \(device.vendorId)")
    }
}

/// What became of one member of a group command.
public struct MemberOutcome: Sendable {
    /// `<device>/<node>`.
    public var member: String
    /// nil when the member's part succeeded.
    public var error: CloudError?
    public init(member: String, error: CloudError?) {
        self.member = member
        self.error = error
    }
}

/// Adapters that can send one command to several nodes at once (HomeSmartlink: one derogation call for
/// every room sharing a window). Others get a group's members one by one.
public protocol GroupExecuting: VendorAdapter {
    /// Runs a validated command for all `members` (all of this adapter's account) and reports each one.
    func executeGroup(
        _ command: Command, members: [(device: DeviceSnapshot, node: String)],
        progress: @escaping ProgressSink
    ) async -> [MemberOutcome]
}

extension CloudError {
    /// No HTTP answer at all: the cloud counts as unavailable.
    public static func transport(_ e: HTTPTransportError, api: String, what: String, timeout: Double) -> CloudError {
        switch e {
        case .timeout: return CloudError(.unavailable, message: "no answer within \(JSONValue.format(timeout)) s (\(what))")
        case .connection(let why): return CloudError(.unavailable, message: "cannot reach the \(api): \(why)")
        case .unsent(let why): return CloudError(.unavailable, message: "cannot reach the \(api): \(why)", mayHaveApplied: false)
        }
    }

    /// What a 401 means behind a relay: the relay, not the cloud, refused the box's client certificate
    /// (expired, revoked, or of another CA). Every vendor reports it in these words.
    public static let relayRefusedBox = "the relay refused this box (its client certificate)"

    /// The statuses every vendor answers alike: 401, 403, 429 (`Retry-After` clamped to 1…3600 s), 5xx and
    /// other 4xx. Vendors map their own extras (Bosch 451/504, Podero 409/422) before falling back to this.
    /// `detail` is the cloud's own message, already cut short; it never holds a secret we sent.
    public static func status(
        _ r: HTTPResponse, api: String, what: String, detail: String?, unauthorized: String, forbidden: String,
        retryAfterDefault: Double
    ) -> CloudError {
        func msg(_ fallback: String) -> String { detail.map { "\(fallback): \($0)" } ?? fallback }
        switch r.status {
        case 401: return CloudError(.authFailed, status: 401, message: msg(unauthorized))
        case 403: return CloudError(.forbidden, status: 403, message: msg(forbidden))
        case 429:
            let retry = r.headers["retry-after"].flatMap(Double.init) ?? retryAfterDefault
            return CloudError(.rateLimited(retryAfter: min(max(retry, 1), 3600)), status: 429, message: msg("rate limit exceeded"))
        case 500...599: return CloudError(.unavailable, status: r.status, message: msg("\(api) error"))
        default: return CloudError(.rejected, status: r.status, message: msg("\(what) refused"))
        }
    }
}

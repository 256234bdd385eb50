import HeatbridgeCore

/// Bosch's part of an account: the partner API key, the `x-user-id`, and whether the key is rotated.
public struct BoschAccountSettings: VendorAccountSettings, Equatable {
    /// nil behind a relay (`client_cert_file`): the relay injects the key, the box never holds it.
    public var apiKey: SecretRef?
    /// Sent as `x-user-id` on remote-control calls.
    public var userId: String
    /// Rotate the API key with `POST /api-keys` 30 days before it expires and write the new key to
    /// `api_key_file` (which therefore must be a file the daemon may replace).
    public var rotateKey: Bool

    public var secretRefs: [SecretRef] { apiKey.map { [$0] } ?? [] }
}

/// The Bosch Home Comfort Partner API as heatbridge knows it.
public struct BoschModule: VendorModule {
    public init() {}

    public let name = "bosch"
    public let accountKeys = ["api_key_file", "api_key_credential", "user_id", "rotate_key"]
    public let inlineSecrets = ["api_key": "api_key_file or api_key_credential"]
    public let deviceIdPrefix = "bosch-"
    public let requiresScope = true
    public let pushesEvents = true

    public func decodeAccount(
        _ m: ConfigDecoder.Entries, at mark: SourceMark, common: AccountConfig,
        decoder d: inout ConfigDecoder
    ) -> (any VendorAccountSettings)? {
        // Behind a relay (mutual TLS with the box's certificate) the relay holds the partner key.
        let relay = common.connection.isRelay
        let apiKey = d.partnerSecret(m, base: "api_key", at: mark, common: common, what: "API key", hint: "the partner x-api-key")
        let userId = d.string(m, "user_id")
        if userId == nil && d.value(m, "user_id") == nil {
            d.error(mark, "bosch account needs \"user_id\"", hint: "sent as x-user-id on remote-control calls")
        }
        var rotateKey = false
        if let (r, rmark) = d.bool(m, "rotate_key") {
            rotateKey = r
            if r, relay { d.error(rmark, "\"rotate_key\" does not apply behind a relay", hint: "the partner's keys are rotated at the relay") }
            if r, let ref = apiKey, case .credential = ref.source {
                d.error(
                    rmark, "\"rotate_key\" needs \"api_key_file\": a systemd credential is read-only",
                    hint: "keep the key in a file owned by the heatbridge user, mode 0600")
            }
        }
        guard apiKey != nil || relay, let userId else { return nil }
        return BoschAccountSettings(apiKey: apiKey, userId: userId, rotateKey: rotateKey && !relay)
    }

    public func makeAdapter(_ account: AccountConfig, context: VendorContext) -> Result<any VendorAdapter, VendorSetupError> {
        adapter(account, context: context).map { $0 }
    }

    /// The account's adapter. `oneShot` (a CLI run): every gateway, no rate budget, no answer cache, no rotation.
    public func adapter(_ a: AccountConfig, context c: VendorContext, oneShot: Bool = false) -> Result<BoschAdapter, VendorSetupError> {
        guard let s = a.settings(as: BoschAccountSettings.self), let key = s.apiKey.map(c.readSecret) ?? "" else {
            return .failure(VendorSetupError("account \(a.name): cannot read the API key"))
        }
        if oneShot {
            return .success(
                BoschAdapter(
                    transport: c.transport, baseURL: a.baseURL, apiKey: key, userId: s.userId, timeout: a.timeoutS,
                    allowList: nil))
        }
        var rotation: BoschKey.Rotation?
        if s.rotateKey, case .file(let path)? = s.apiKey?.source {
            // The new key goes to the configured file before it is used; it is never logged.
            let write = c.writeSecret
            rotation = BoschKey.Rotation(persist: { newKey in write(path, newKey).map { "\(path): \($0)" } })
        }
        return .success(
            BoschAdapter(
                transport: c.transport, baseURL: a.baseURL, apiKey: key, userId: s.userId, timeout: a.timeoutS,
                allowList: a.devices, budget: a.rateLimit ? RateBudget(clock: c.clock) : nil,
                answerCache: AnswerCache(clock: c.clock), rotation: rotation, clock: c.clock, localTime: c.localTime,
                companyWide: CompanyWideReads(
                    clock: c.clock, boxes: c.fleetBoxes,
                    perSecond: BoschWire.companyWideLimit.perSecond)))
    }
}

extension BoschModule {
    /// What a lease can put back: the handlers with a `restore` (circuit modes and the manual setpoint).
    public func isLeasable(node: String, capability: String) -> Bool {
        BoschNode(node) != nil && BoschAdapter.table(node)?[capability]?.restore != nil
    }

    /// The charge's duration default, on hot water nodes.
    public func localDefaults(of node: String) -> [LocalDefault] { BoschNode(node) != nil ? BoschAdapter.table(node)?.localDefaults ?? [] : [] }

    /// Node kinds and capabilities as the adapter knows them; parameters through the adapter's own validation
    /// (a holiday names the gateway's circuits and a week program replaces the one it was read from: both
    /// are only checked when they run).
    public func checkAction(node: String, capability: String, params: [String: JSONValue]) -> CommandRejection? {
        guard BoschNode(node) != nil else {
            return CommandRejection(.unknownTarget, "\"\(node)\" is not a Bosch node; nodes are hc<N>, dhw<N> and system")
        }
        let caps = BoschAdapter.table(node)?.names ?? []
        guard let handler = BoschAdapter.table(node)?[capability] else {
            return CommandRejection(
                .unsupported, "\"\(capability)\" is not supported on \(node); supported: \(caps.sorted().joined(separator: ", "))")
        }
        guard handler.checkedAtConfig(params) else { return nil }
        let device = DeviceSnapshot(id: "bosch-check", vendorId: "check", online: true, nodes: [node: .object([:])])
        return Self.parameterError { () throws(CommandRejection) in
            _ = try BoschAdapter.validate(ValidationInput(body: params, node: node, device: device), capability: capability)
        }
    }
}

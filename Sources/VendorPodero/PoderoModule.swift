import HeatbridgeCore

/// Podero's part of an account: the OAuth client and the organisation.
public struct PoderoAccountSettings: VendorAccountSettings, Equatable {
    public var clientId: String
    /// Only from a file or a systemd credential; nil behind a relay, which holds the OAuth client.
    public var clientSecret: SecretRef?
    public var orgId: String
    /// The token endpoint; nil derives `<scheme://host[/prefix]>/oauth2/token/` from `base_url`.
    public var tokenURL: String?

    public var secretRefs: [SecretRef] { clientSecret.map { [$0] } ?? [] }
}

/// The Podero Partner API as heatbridge knows it.
public struct PoderoModule: VendorModule {
    public init() {}

    public let name = "podero"
    public let accountKeys = ["client_id", "client_secret_file", "client_secret_credential", "org_id", "token_url"]
    public let inlineSecrets = ["client_secret": "client_secret_file or client_secret_credential"]
    public let deviceIdPrefix = "podero-"
    public let requiresScope = true
    /// Podero refreshes heat-pump state from the manufacturer cloud every 5–15 min: polling faster only
    /// repeats the same answer.
    public let defaultPollIntervalS = 300.0

    public func decodeAccount(
        _ m: ConfigDecoder.Entries, at mark: SourceMark, common: AccountConfig,
        decoder d: inout ConfigDecoder
    ) -> (any VendorAccountSettings)? {
        let clientId = d.string(m, "client_id")
        let clientSecret = d.partnerSecret(
            m, base: "client_secret", at: mark, common: common, what: "client secret",
            hint: "the OAuth client secret, in a file readable only by heatbridge")
        let orgId = d.string(m, "org_id")
        var tokenURL: String?
        if let (u, umark) = d.stringWithMark(m, "token_url") {
            if common.connection.isRelay {
                d.error(umark, "\"token_url\" does not apply behind a relay", hint: "the relay obtains the Podero token itself")
            } else if let p = ParsedURL.parse(u), p.scheme == "http" || p.scheme == "https" {
                tokenURL = u
            } else {
                d.error(umark, "bad token_url \"\(ConfigText.redactedURL(u))\"", hint: "use https://HOST[:PORT]/oauth2/token/")
            }
        }
        if clientId == nil && d.value(m, "client_id") == nil {
            d.error(mark, "podero account needs \"client_id\"", hint: "the OAuth application's client id")
        }
        if orgId == nil && d.value(m, "org_id") == nil {
            d.error(mark, "podero account needs \"org_id\"", hint: "the organisation id from the Podero back office")
        }
        guard let clientId, clientSecret != nil || common.connection.isRelay, let orgId else { return nil }
        return PoderoAccountSettings(clientId: clientId, clientSecret: clientSecret, orgId: orgId, tokenURL: tokenURL)
    }

    public func makeAdapter(_ account: AccountConfig, context: VendorContext) -> Result<any VendorAdapter, VendorSetupError> {
        client(account, context: context).map {
            PoderoAdapter(
                client: $0, allowList: account.devices, clock: context.clock,
                companyWide: CompanyWideReads(clock: context.clock, boxes: context.fleetBoxes, perSecond: PoderoAdapter.companyWidePerSecond))
        }
    }

    /// The account's API client. With `context.settings` the token outlives a restart (a 10 h token is worth
    /// keeping), under `token/<account>`; it is never logged.
    public func client(_ a: AccountConfig, context c: VendorContext) -> Result<PoderoClient, VendorSetupError> {
        guard let s = a.settings(as: PoderoAccountSettings.self) else {
            return .failure(VendorSetupError("account \(a.name): not a podero account"))
        }
        guard let ref = s.clientSecret else {
            // Behind a relay: no token on the box, the relay adds its own.
            return .success(PoderoClient(transport: c.transport, baseURL: a.baseURL, orgId: s.orgId, session: nil, timeout: a.timeoutS))
        }
        guard let secret = c.readSecret(ref) else {
            return .failure(VendorSetupError("account \(a.name): cannot read the client secret"))
        }
        var persistence = TokenPersistence.none
        if let store = c.settings {
            let key = "token/\(a.name)"
            persistence = TokenPersistence(load: { store.load(key).flatMap(BearerToken.init(json:)) }, save: { store.save(key, $0.json) })
        }
        let session = PoderoSession(
            transport: c.transport, tokenURL: s.tokenURL ?? PoderoWire.tokenURL(forBase: a.baseURL),
            clientId: s.clientId, clientSecret: secret, timeout: a.timeoutS, clock: c.clock,
            persistence: persistence)
        return .success(PoderoClient(transport: c.transport, baseURL: a.baseURL, orgId: s.orgId, session: session, timeout: a.timeoutS))
    }
}

extension PoderoModule {
    /// The heat pump node and its capabilities; parameters through the adapter's validation, except the
    /// absolute times of an away period or a pause `until` (a rule fires again and again: they are checked
    /// against the time it fires).
    /// As `PoderoAdapter.restoreParams`: the preferences without an end time of their own.
    public func isLeasable(node: String, capability: String) -> Bool {
        node == PoderoAdapter.node && PoderoAdapter.handlers[capability]?.restore != nil
    }

    public func checkAction(node: String, capability: String, params: [String: JSONValue]) -> CommandRejection? {
        guard node == PoderoAdapter.node else {
            return CommandRejection(.unknownTarget, "\"\(node)\" is not a Podero node; the node is \(PoderoAdapter.node)")
        }
        guard let handler = PoderoAdapter.handlers[capability] else {
            return CommandRejection(
                .unsupported,
                "\"\(capability)\" is not supported on \(node); supported: \(PoderoAdapter.capabilities.sorted().joined(separator: ", "))")
        }
        guard handler.checkedAtConfig(params) else { return nil }
        let device = DeviceSnapshot(id: "podero-check", vendorId: "check", online: true, nodes: [node: .object([:])])
        return Self.parameterError { () throws(CommandRejection) in
            _ = try PoderoAdapter.validate(node: node, capability: capability, body: params, device: device, now: 0)
        }
    }
}

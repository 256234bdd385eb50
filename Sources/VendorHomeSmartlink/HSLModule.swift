import HeatbridgeCore

/// HomeSmartlink's part of an account: the partner client and the homes to bridge.
public struct HSLAccountSettings: VendorAccountSettings, Equatable {
    public var clientId: String
    /// Only from a file or a systemd credential; nil behind a relay, which adds the Basic auth itself.
    public var clientSecret: SecretRef?
    /// The home ids to bridge (the API has no "list my homes" for partners).
    public var homes: [String]
    /// How long a derogation may wait for every home's acknowledgement.
    public var reportTimeoutS: Double = 300
    /// How often the delivery report is read meanwhile.
    public var reportIntervalS: Double = 10
    /// How long after a diagnosis request its result is first asked for (then every poll).
    public var diagnosisCheckS: Double = 60

    public var secretRefs: [SecretRef] { clientSecret.map { [$0] } ?? [] }
}

/// The HomeSmartlink 3rd Party API as heatbridge knows it.
public struct HSLModule: VendorModule {
    public init() {}

    public let name = "homesmartlink"
    public let accountKeys = [
        "client_id", "client_secret_file", "client_secret_credential", "homes", "report_timeout_s",
        "report_interval_s", "diagnosis_check_s",
    ]
    public let inlineSecrets = ["client_secret": "client_secret_file or client_secret_credential"]
    public let deviceIdPrefix = "hsl-"

    public func decodeAccount(
        _ m: ConfigDecoder.Entries, at mark: SourceMark, common: AccountConfig,
        decoder d: inout ConfigDecoder
    ) -> (any VendorAccountSettings)? {
        let clientId = d.string(m, "client_id")
        // The client id stays on the box even behind a relay: it is no secret, and the box checks every answer's
        // `authorisation.client` against it.
        let clientSecret = d.partnerSecret(
            m, base: "client_secret", at: mark, common: common, what: "client secret",
            hint: "the ClientSecret, in a file readable only by heatbridge")
        let homes = d.scalarList(m, "homes", what: "HomeSmartlink home ids") ?? []
        if clientId == nil && d.value(m, "client_id") == nil {
            d.error(mark, "homesmartlink account needs \"client_id\"", hint: "the ClientId received at partner registration")
        }
        if homes.isEmpty && d.value(m, "homes") == nil {
            d.error(mark, "homesmartlink account needs \"homes\"", hint: "the home ids to bridge; heatbridge homesmartlink homes --email lists them")
        }
        let reportTimeout = d.number(m, "report_timeout_s", range: 1...3600) ?? 300
        let reportInterval = d.number(m, "report_interval_s", range: 0.2...600) ?? 10
        let diagnosisCheck = d.number(m, "diagnosis_check_s", range: 0...3600) ?? 60
        guard let clientId, clientSecret != nil || common.connection.isRelay else { return nil }
        return HSLAccountSettings(
            clientId: clientId, clientSecret: clientSecret, homes: homes, reportTimeoutS: reportTimeout,
            reportIntervalS: reportInterval, diagnosisCheckS: diagnosisCheck)
    }

    /// A home must be in some account's `homes`, then in its `devices` when those are given.
    public func outOfScope(_ id: String, accounts: [AccountConfig]) -> String? {
        let homes = accounts.compactMap { $0.settings(as: HSLAccountSettings.self) }.flatMap(\.homes).map(TopicLayout.sanitize)
        if !homes.contains(id) { return "home \(id) is not in any account's homes" }
        if accounts.allSatisfy({ $0.devices != nil }), !accounts.contains(where: { $0.devices!.map(TopicLayout.sanitize).contains(id) }) {
            return "\(id) is not in any \(name) account's devices"
        }
        return nil
    }

    public func makeAdapter(_ account: AccountConfig, context: VendorContext) -> Result<any VendorAdapter, VendorSetupError> {
        adapter(account, context: context).map { $0 }
    }

    public func adapter(_ a: AccountConfig, context c: VendorContext) -> Result<HSLAdapter, VendorSetupError> {
        guard let s = a.settings(as: HSLAccountSettings.self) else {
            return .failure(VendorSetupError("account \(a.name): not a homesmartlink account"))
        }
        var secret: String?
        if let ref = s.clientSecret {
            guard let value = c.readSecret(ref) else { return .failure(VendorSetupError("account \(a.name): cannot read the client secret")) }
            secret = value
        }
        return .success(
            HSLAdapter(
                transport: c.transport, baseURL: a.baseURL, clientId: s.clientId, clientSecret: secret, homes: s.homes,
                timeout: a.timeoutS, clock: c.clock, localTime: c.localTime, reportTimeoutS: s.reportTimeoutS,
                reportIntervalS: s.reportIntervalS, diagnosisCheckS: s.diagnosisCheckS))
    }
}

extension HSLModule {
    /// Rooms take derogations, `system` a diagnosis. A derogation's parameters are checked as at 00:00 UTC of
    /// a fixed day, so a window given by times is never "already over" here (it is checked when it fires).
    public func checkAction(node: String, capability: String, params: [String: JSONValue]) -> CommandRejection? {
        guard let table = HSLAdapter.table(node) else {
            return CommandRejection(.unknownTarget, "\"\(node)\" is not a HomeSmartlink node; nodes are room-<id> and system")
        }
        let handler: CapabilityHandler<HSLAdapter>
        do { handler = try table.handler(capability, node: node) } catch { return error }
        let device = DeviceSnapshot(id: "hsl-check", vendorId: "check", online: true, nodes: [node: .object([:])])
        return Self.parameterError { () throws(CommandRejection) in
            _ = try handler.validate(
                ValidationInput(body: params, node: node, device: device, now: Self.referenceDay, localTime: FixedOffsetTime(offsetS: 0)))
        }
    }

    /// 2026-01-05T00:00:00Z, a Monday.
    static let referenceDay: EpochSeconds = 1_767_571_200
}

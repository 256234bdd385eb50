import ArgumentParser
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeStore
import HeatbridgeSystem
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

extension BoschAdapter {
    /// An adapter for one configured Bosch account, for a single CLI run.
    static func forCLI(_ a: AccountConfig) throws -> BoschAdapter { try cliBuilt(BoschModule().adapter(a, context: .cli(a), oneShot: true)) }
}

/// `heatbridge contracts …`: the Bosch contracts (the owners' consent to this partner), and acting on them.
struct Contracts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List and act on Bosch contracts: list, show GATEWAY, accept/reject GATEWAY (pending), revoke GATEWAY (active), ack GATEWAY (closed by the owner)."
    )
    @OptionGroup var account: AccountOption
    @Argument(help: "list, show, accept, reject, revoke or ack.") var action: String
    @Argument(help: "The gateway id (all but list).") var gateway: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    static func line(_ c: BoschWire.Contract) -> String {
        "\(c.gatewayId)  \(c.status)  since \(c.statusDate ?? "?")\(c.addressLines.map { "  " + $0.joined(separator: ", ") } ?? "")"
    }

    func run() throws {
        let actions = ["list", "show", "accept", "reject", "revoke", "ack"]
        guard actions.contains(action) else { throw usageError("unknown action \"\(action)\"; one of \(actions.joined(separator: ", "))") }
        if action != "list" {
            guard let g = gateway else { throw usageError("\(action) needs a gateway id") }
            guard BoschWire.isGatewayId(g) else { throw usageError("gateway id \"\(g)\" must be 9 digits") }
        }
        let (a, _) = try account.resolve(vendor: BoschModule().name)
        let adapter = try BoschAdapter.forCLI(a)
        let action = action
        let gateway = gateway ?? ""
        let json = json
        try runCloud("contracts \(action)") { () async throws(CloudError) -> Int32 in
            switch action {
            case "list":
                let list = try await adapter.contracts()
                if json {
                    print(String(decoding: BoschWire.encode(list), as: UTF8.self))
                    return 0
                }
                if list.isEmpty { print("no contracts") }
                for c in list { print(Self.line(c)) }
            case "show":
                let c = try await adapter.contract(gateway)
                print(json ? String(decoding: BoschWire.encode(c), as: UTF8.self) : Self.line(c))
            case "ack":
                try await adapter.acknowledgeContract(gateway)
                print("\(gateway): closed contract acknowledged")
            default:
                let c = try await adapter.changeContract(gateway, action: action.uppercased())
                print(c.map(Self.line) ?? "\(gateway): \(action) sent")
            }
            return 0
        }
    }
}

struct OnboardBosch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bosch",
        abstract: "Print the Gateway Management Portal link a customer opens to share a gateway with this partner.")
    @OptionGroup var account: AccountOption
    @Option(help: "bosch, buderus or ivt (picks the portal).") var brand: String
    @Option(name: .customLong("redirect-uri"), help: "Where the portal sends the customer afterwards (https, allow-listed at onboarding).")
    var redirectURI: String
    @Option(name: .customLong("session-id"), help: "Your plain token to recognise the customer when they come back.") var sessionId: String

    func run() throws {
        // Checked before any call: a bad link is worse than none.
        if case .failure(let e) = BoschAdapter.onboardingLink(brand: brand, companyId: "x", redirectURI: redirectURI, sessionId: sessionId) {
            throw usageError(e.message)
        }
        let (a, _) = try account.resolve(vendor: BoschModule().name)
        let adapter = try BoschAdapter.forCLI(a)
        let brand = brand
        let redirectURI = redirectURI
        let sessionId = sessionId
        try runCloud("onboarding") { () async throws(CloudError) -> Int32 in
            let me = try await adapter.identity()
            guard
                case .success(let link) = BoschAdapter.onboardingLink(
                    brand: brand, companyId: me.companyId, redirectURI: redirectURI,
                    sessionId: sessionId)
            else { return 2 }
            print("company \(me.companyId)")
            print("  open: \(link)")
            print(
                "  afterwards the portal redirects to \(redirectURI) with gatewayId and contractStatus; accept with: heatbridge contracts accept <gatewayId>"
            )
            return 0
        }
    }
}

/// `heatbridge bosch …`: Bosch partner tools (API keys, webhook test events).
struct BoschTools: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bosch", abstract: "Bosch Partner API tools for installers.",
        subcommands: [BoschKeys.self, BoschWebhookTest.self])
}

/// `heatbridge bosch keys list|rotate|delete ID`. Keys are never printed: only their ids and dates.
struct BoschKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List the partner's API keys, rotate the configured key (the new one is written to api_key_file, 0600), or delete one by id.")
    @OptionGroup var account: AccountOption
    @Argument(help: "list, rotate or delete.") var action: String
    @Argument(help: "The key id (delete).") var keyId: String?
    @Flag(help: "Delete the key even when it is the one the config uses (the account then fails AUTH_FAILED).") var force = false

    func run() throws {
        guard ["list", "rotate", "delete"].contains(action) else { throw usageError("unknown action \"\(action)\"; one of list, rotate, delete") }
        if action == "delete" {
            guard let id = keyId, !id.isEmpty, id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw usageError("delete needs a key id as listed by `heatbridge bosch keys list`")
            }
        }
        let (a, secret) = try account.resolve(vendor: BoschModule().name)
        var keyFile: String?
        if action == "rotate" {
            guard let ref = a.settings(as: BoschAccountSettings.self)?.apiKey, case .file(let path) = ref.source else {
                throw usageError("rotate writes the new key to api_key_file; account \(a.name) reads its key from a systemd credential")
            }
            keyFile = path
        }
        let adapter = try BoschAdapter.forCLI(a)
        let action = action
        let keyId = keyId ?? ""
        let keyPath = keyFile ?? ""
        let force = force
        let accountName = a.name
        // Bosch keys embed their expiry date and the listing gives each key's: that date is how the configured
        // key is recognised in the list (the key itself is never shown or sent anywhere but to Bosch).
        let configuredExpiry = BoschWire.keyExpiry(secret).map { String(Timestamp.iso8601($0).prefix(10)) }
        @Sendable func inUse(_ k: BoschWire.StoredApiKey) -> Bool {
            configuredExpiry != nil && k.expiresAt?.prefix(10) == configuredExpiry?.prefix(10)
        }
        try runCloud("keys \(action)") { () async throws(CloudError) -> Int32 in
            switch action {
            case "list":
                let keys = try await adapter.listKeys()
                if let exp = BoschWire.keyExpiry(secret) { print("configured key expires \(Timestamp.iso8601(exp))") }
                for k in keys {
                    print(
                        "\(k.keyId)  created \(k.createdAt ?? "?")  expires \(k.expiresAt ?? "?")\(inUse(k) ? "  (in use by account \(accountName))" : "")"
                    )
                }
                if keys.count >= BoschWire.maxValidKeys - 1 { print("note: Bosch allows \(BoschWire.maxValidKeys) valid keys; delete unused ones") }
            case "rotate":
                let fresh = try await adapter.newKey()
                // Stored before anything else is said: the key exists only in this process until then.
                if case .failure(let e) = FileIO.writeSecret(keyPath, fresh.apiKey) {
                    printErr("the new key \(fresh.keyId ?? "") could not be written to \(keyPath): \(e); the old key stays in use")
                    return 1
                }
                let exp = BoschWire.keyExpiry(fresh.apiKey).map(Timestamp.iso8601) ?? fresh.expiresAt ?? "?"
                print("new key \(fresh.keyId ?? "") written to \(keyPath) (expires \(exp)); the old key stays valid until its own expiry")
                print("  apply it: systemctl reload heatbridge")
            default:
                let keys = try await adapter.listKeys()
                if !force, let k = keys.first(where: { $0.keyId == keyId }), inUse(k) {
                    // Keys made the same day expire the same day: then it may be this one or another.
                    let alike = keys.filter(inUse).map(\.keyId)
                    let which = alike.count == 1 ? "is the one" : "may be the one (\(alike.joined(separator: ", ")) expire the same day)"
                    printErr(
                        """
                        key \(keyId) \(which) account \(accountName) uses (it expires \(k.expiresAt ?? "?"), as the configured key does): \
                        deleting it makes every call fail AUTH_FAILED. Rotate first (heatbridge bosch keys rotate, then \
                        systemctl reload heatbridge), or pass --force to delete it anyway.
                        """)
                    return 2
                }
                try await adapter.deleteKey(keyId)
                print("key \(keyId) deleted")
            }
            return 0
        }
    }
}

/// `heatbridge bosch webhook-test --event TYPE [--gateway ID]`: Bosch sends a simulated event to the
/// partner's webhook endpoints (configured at onboarding), to check the receiving side end to end.
struct BoschWebhookTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-test",
        abstract: "Ask Bosch to send a simulated webhook event (POST /webhooks/simulation) to the partner's endpoints.")
    @OptionGroup var account: AccountOption
    @Option(help: "Event type: \(BoschWire.webhookEventTypes.joined(separator: ", ")).") var event: String
    @Option(help: "Gateway id the event is about (9 digits).") var gateway: String?

    func run() throws {
        guard let type = BoschWire.webhookEventTypes.first(where: { $0 == event.uppercased() }) else {
            throw usageError("--event \"\(event)\" is not an event type; valid: \(BoschWire.webhookEventTypes.joined(separator: ", "))")
        }
        if let g = gateway, !BoschWire.isGatewayId(g) { throw usageError("--gateway \"\(g)\" must be 9 digits") }
        let (a, _) = try account.resolve(vendor: BoschModule().name)
        let adapter = try BoschAdapter.forCLI(a)
        let gateway = gateway
        try runCloud("webhook-test") { () async throws(CloudError) -> Int32 in
            try await adapter.simulateWebhook(eventType: type, gatewayId: gateway)
            print("\(type) event requested\(gateway.map { " for \($0)" } ?? ""); Bosch sends it to the webhook endpoints set at onboarding")
            return 0
        }
    }
}

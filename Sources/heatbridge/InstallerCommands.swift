import ArgumentParser
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeStore
import HeatbridgeSystem
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// `heatbridge onboard …`: installer steps that connect a customer's device to the partner account.
struct Onboard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start connecting a customer's device to a vendor account (prints the link the customer opens).",
        subcommands: [OnboardBosch.self, OnboardPodero.self])
}

/// `heatbridge podero …`: on-demand Podero tools.
struct PoderoTools: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "podero", abstract: "Podero tools for installers.",
                                                    subcommands: [PoderoStats.self])
}

/// Which configured account a vendor command uses.
struct AccountOption: ParsableArguments {
    @OptionGroup var options: ConfigOption
    @Option(help: "Account name from the config (default: the only account of that vendor).") var account: String?

    func resolve(vendor: VendorKind) throws -> (AccountConfig, String) {
        let config = try options.loadOrExit()
        let candidates = config.accounts.filter { $0.vendor == vendor && (account == nil || $0.name == account) }
        guard candidates.count == 1, let a = candidates.first else {
            let names = config.accounts.filter { $0.vendor == vendor }.map(\.name)
            printErr(candidates.isEmpty
                ? "no \(vendor.rawValue) account\(account.map { " named \"\($0)\"" } ?? "") in \(options.path)\(names.isEmpty ? "" : "; \(vendor.rawValue) accounts: \(names.joined(separator: ", "))")"
                : "several \(vendor.rawValue) accounts (\(names.joined(separator: ", "))); choose one with --account")
            throw ExitCode(1)
        }
        guard let ref = a.clientSecret ?? a.apiKey,
              case .success(let secret) = ConfigLoader.readSecret(ref, environment: ProcessEnvironment.all()) else {
            printErr("account \(a.name): cannot read its secret (run as the heatbridge user or root)")
            throw ExitCode(1)
        }
        return (a, secret)
    }
}

extension PoderoClient {
    /// A client for one configured Podero account, for a single CLI run (token not persisted).
    static func forCLI(_ a: AccountConfig, secret: String) -> PoderoClient {
        let transport = CurlTransport()
        let session = PoderoSession(transport: transport, tokenURL: a.tokenURL ?? PoderoWire.tokenURL(forBase: a.baseURL),
                                    clientId: a.clientId ?? "", clientSecret: secret, timeout: a.timeoutS, clock: SystemClock())
        return PoderoClient(transport: transport, baseURL: a.baseURL, orgId: a.orgId ?? "", session: session, timeout: a.timeoutS)
    }
}

/// Runs a CLI command's cloud work: a cloud error is printed with its code and the command exits 1; the
/// body's own code (0 ok, others its own meaning) becomes the exit status.
func runCloud(_ what: String, _ body: @escaping @Sendable () async throws(CloudError) -> Int32) throws {
    let code = blockOn {
        do throws(CloudError) {
            return try await body()
        } catch {
            printErr("\(what) failed: \(error.code.rawValue): \(error.message)")
            return 1
        }
    }
    if code != 0 { throw ExitCode(code) }
}

extension ConfigOption {
    /// The config, or every error printed and exit 1.
    func loadOrExit() throws -> HeatbridgeConfig {
        switch ConfigLoader.load(path: path, environment: ProcessEnvironment.all()) {
        case .success(let l): return l.config
        case .failure(let errors):
            for d in errors.diagnostics { printErr(d.description) }
            throw ExitCode(1)
        }
    }
}

/// Exit code 2: the installer's input is wrong (nothing was sent).
func usageError(_ message: String) -> ExitCode {
    printErr("error: \(message)")
    return ExitCode(2)
}

/// A UUID in its canonical 8-4-4-4-12 hex form.
func isUUID(_ s: String) -> Bool {
    let groups = s.split(separator: "-", omittingEmptySubsequences: false)
    return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
}

struct OnboardPodero: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "podero",
        abstract: "Create a Podero device-onboarding session and print its authentication URL and expiry.")
    @OptionGroup var account: AccountOption
    @Option(help: "The Podero user (UUID) the device will belong to.") var user: String
    @Option(help: "Language of the Connect pages: \(PoderoWire.languages.joined(separator: ", ")).") var language: String
    @Option(name: .customLong("price-zone"), help: "Default price zone: \(PoderoWire.priceZones.joined(separator: ", ")).") var priceZone: String
    @Option(name: .customLong("success-url"), help: "Where the browser goes after success (https).") var successURL: String
    @Option(name: .customLong("cancel-url"), help: "Where the browser goes after cancelling (https).") var cancelURL: String
    @Option(help: "Building (UUID) to attach the device to.") var building: String?
    @Flag(name: .customLong("heat-pumps-only"), help: "Skip the device-type choice: go straight to heat pumps.") var heatPumpsOnly = false
    @Flag(name: .customLong("no-optimization"), help: "Start with smart optimisation off.") var noOptimization = false

    /// Checks every argument before anything is sent; the message names the argument and the valid values.
    func validated() throws -> (language: String, zone: String) {
        guard isUUID(user) else { throw usageError("--user \"\(user)\" is not a UUID (8-4-4-4-12 hex digits)") }
        if let b = building, !isUUID(b) { throw usageError("--building \"\(b)\" is not a UUID") }
        guard let lang = PoderoWire.languages.first(where: { $0 == language.lowercased() }) else {
            throw usageError("--language \"\(language)\" is not supported; valid: \(PoderoWire.languages.joined(separator: ", "))")
        }
        guard let zone = PoderoWire.priceZones.first(where: { $0 == priceZone.uppercased() }) else {
            let hint = priceZone.uppercased() == "DE" ? " (Germany is DE_LU)" : ""
            throw usageError("--price-zone \"\(priceZone)\" is not a Podero price zone\(hint); valid: \(PoderoWire.priceZones.joined(separator: ", "))")
        }
        for (name, url) in [("--success-url", successURL), ("--cancel-url", cancelURL)] {
            guard let p = ParsedURL.parse(url), p.scheme == "https" || p.scheme == "http" else {
                throw usageError("\(name) \"\(url)\" is not an http(s) URL")
            }
            guard url.utf8.count <= 8000 else { throw usageError("\(name) is longer than 8000 characters") }
        }
        return (lang, zone)
    }

    func run() throws {
        let (lang, zone) = try validated()
        let (a, secret) = try account.resolve(vendor: .podero)
        let client = PoderoClient.forCLI(a, secret: secret)
        let body = PoderoAdapter.onboardingBody(user: user, language: lang, priceZone: zone, successURL: successURL,
                                                cancelURL: cancelURL, building: building, optimize: !noOptimization)
        let heatPumpsOnly = heatPumpsOnly
        try runCloud("onboarding") { () async throws(CloudError) -> Int32 in
            let s = try await client.request("POST", PoderoWire.Path.onboarding, body: body)
            guard var url = s["authentication_url"]?.stringValue else {
                printErr("Podero answered without an authentication_url")
                return 1
            }
            if heatPumpsOnly, let q = url.firstIndex(of: "?") {
                // The Connect page for heat pumps takes the same session id and skips the type choice [doc].
                let base = url[..<q].hasSuffix("/") ? String(url[..<q].dropLast()) : String(url[..<q])
                url = base + PoderoWire.heatPumpConnectPath + String(url[q...])
            }
            print("onboarding session \(s["id"]?.stringValue ?? "?") for user \(s["user"]?.stringValue ?? "?")")
            print("  open:    \(url)")
            print("  expires: end of \(s["expiration_date"]?.stringValue ?? "?") (valid until the end of the next day)")
            return 0
        }
    }
}

struct PoderoStats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats",
                                                    abstract: "Print a heat pump's consumption and savings.")
    @OptionGroup var account: AccountOption
    @Argument(help: "Device: podero-<heat pump id> or the heat pump id.") var device: String
    @Option(help: "Comma-separated: \(PoderoWire.resolutions.joined(separator: ", ")).") var resolution = "1DAY"
    @Flag(help: "Print Podero's JSON answer.") var json = false

    func run() throws {
        let resolutions = resolution.split(separator: ",").map { $0.uppercased() }
        if let bad = resolutions.first(where: { !PoderoWire.resolutions.contains($0) }) {
            throw usageError("--resolution \"\(bad)\" is not valid; valid: \(PoderoWire.resolutions.joined(separator: ", "))")
        }
        let (a, secret) = try account.resolve(vendor: .podero)
        let client = PoderoClient.forCLI(a, secret: secret)
        let adapter = PoderoAdapter(client: client, allowList: nil, clock: SystemClock())
        let wanted = device, json = json
        try runCloud("stats") { () async throws(CloudError) -> Int32 in
            let devices = try await adapter.fetchDevices()
            guard let d = devices.first(where: { $0.id == wanted || $0.vendorId == wanted }),
                  let owner = d.attributes["owner_id"]?.stringValue else {
                printErr("no heat pump \"\(wanted)\" in organisation \(client.orgId); known: \(devices.map(\.id).joined(separator: ", "))")
                return 1
            }
            let path = PoderoWire.Path.statistics(client.orgId, owner, d.vendorId) + "?resolution=\(resolutions.joined(separator: ","))&keywords=savings,consumption"
            let stats = try await client.request("GET", path)
            if json {
                print(stats.serialized)
                return 0
            }
            print("\(d.id) (\(d.model ?? "heat pump"))")
            for row in stats["data"]?.arrayValue ?? [] {
                let kwh = row["consumption"]?["total"]?.doubleValue.map { JSONValue.format(($0 / 100).rounded() / 10) + " kWh" } ?? "?"
                let savings = row["savings"]?["total"]?.doubleValue.map(JSONValue.format) ?? "?"
                let pct = row["savings"]?["percentage"]?.doubleValue.map { " (\(JSONValue.format($0)) %)" } ?? ""
                print("  \(row["resolution"]?.stringValue ?? "?")  \(row["period"]?["start_period"]?.stringValue ?? "?") → \(row["period"]?["end_period"]?.stringValue ?? "?")  consumption \(kwh), savings \(savings)\(pct)")
            }
            return 0
        }
    }
}

/// `heatbridge homesmartlink …`: find the home ids to configure, and diagnose a home.
struct HomeSmartlinkTools: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "homesmartlink", abstract: "HomeSmartlink tools for installers.",
                                                    subcommands: [HSLHomes.self, HSLUsers.self, HSLDiagnose.self])
}

extension HSLAdapter {
    /// An adapter for one configured HomeSmartlink account, for a single CLI run.
    static func forCLI(_ a: AccountConfig, secret: String) -> HSLAdapter {
        HSLAdapter(transport: CurlTransport(), baseURL: a.baseURL, clientId: a.clientId ?? "", clientSecret: secret, homes: a.homes,
                   timeout: a.timeoutS, clock: SystemClock(), localTime: GlibcLocalTime())
    }
}

struct HSLHomes: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "homes", abstract: "List the homes linked to a user's e-mail address.")
    @OptionGroup var account: AccountOption
    @Option(help: "The home owner's e-mail address.") var email: String

    func run() throws {
        guard email.contains("@"), !email.contains(" ") else { throw usageError("--email \"\(email)\" is not an e-mail address") }
        let (a, secret) = try account.resolve(vendor: .homesmartlink)
        let adapter = HSLAdapter.forCLI(a, secret: secret)
        let email = email
        try runCloud("homes") { () async throws(CloudError) -> Int32 in
            let homes = try await adapter.invitations(email: email)
            if homes.isEmpty { print("no home is linked to \(email)") }
            for h in homes {
                print("home \(h["_id"]?.stringValue ?? "?")  \(h["city"]?.stringValue ?? "")  gateway \(h["hasGateway"]?.boolValue == true ? "yes" : "no")\(h["role"]?.intValue == 2 ? "  (admin)" : "")")
                for r in h["rooms"]?.arrayValue ?? [] {
                    print("  room-\(r["roomNumber"]?.intValue.map(String.init) ?? "?")  \(r["name"]?.stringValue ?? "")  \(r["deviceCount"]?.stringValue ?? r["deviceCount"]?.intValue.map(String.init) ?? "?") device(s)")
                }
            }
            return 0
        }
    }
}

struct HSLUsers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "users", abstract: "List every user of the partner account (all pages).")
    @OptionGroup var account: AccountOption
    @Option(help: "Page size used while reading.") var pageSize = 50

    func run() throws {
        guard (1...500).contains(pageSize) else { throw usageError("--page-size must be 1…500") }
        let (a, secret) = try account.resolve(vendor: .homesmartlink)
        let adapter = HSLAdapter.forCLI(a, secret: secret)
        let size = pageSize
        try runCloud("users") { () async throws(CloudError) -> Int32 in
            let users = try await adapter.allUsers(pageSize: size)
            for u in users {
                print("home \(u["homeId"]?.stringValue ?? "?")  \(u["firstName"]?.stringValue ?? "") \(u["lastName"]?.stringValue ?? "")  \(u["zipCode"]?.stringValue ?? "") \(u["city"]?.stringValue ?? "")")
            }
            print("\(users.count) user(s)")
            return 0
        }
    }
}

struct HSLDiagnose: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "diagnose",
                                                    abstract: "Diagnose a home: request, then wait for the result (about 5 min).")
    @OptionGroup var account: AccountOption
    @Argument(help: "Home id (or hsl-<home id>).") var home: String
    @Option(help: "Give up waiting after this many seconds (the message id is printed to fetch it later).") var waitS = 600.0
    @Option(help: "Seconds between result checks.") var intervalS = 15.0

    func run() throws {
        let (a, secret) = try account.resolve(vendor: .homesmartlink)
        let adapter = HSLAdapter.forCLI(a, secret: secret)
        let id = home.hasPrefix("hsl-") ? String(home.dropFirst(4)) : home
        let waitS = waitS, intervalS = max(intervalS, 0.2)
        try runCloud("diagnosis") { () async throws(CloudError) -> Int32 in
            let mid = try await adapter.requestDiagnosis(home: id)
            print("diagnosis requested for home \(id): message \(mid)")
            let deadline = SystemClock().now() + waitS
            while SystemClock().now() < deadline {
                if let r = try await adapter.diagnosisResult(messageId: mid) {
                    print(r.serialized)
                    return 0
                }
                try? await Task.sleep(nanoseconds: UInt64(intervalS * 1e9))
            }
            printErr("no result within \(JSONValue.format(waitS)) s; message id \(mid)")
            return 3
        }
    }
}

/// `heatbridge triggers`: the config's rules with their stored state, next fire times and recent firings.
struct Triggers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the local triggers: each rule, its condition state, next fire time and last firings (works while the daemon runs).")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "How many recent firings to show.") var last = 10

    func run() throws {
        let config = try options.loadOrExit()
        var states: [String: JSONValue] = [:]
        var fires: [(name: String, at: EpochSeconds, commandId: String, reason: String)] = []
        do {
            let store = try SQLiteStore(path: config.store.path, readOnly: true)
            states = try store.loadSettings()
            fires = try store.triggerFires(limit: max(1, last))
        } catch {
            // No store yet (the daemon never ran): the rules and their next times still make sense.
            printErr("note: cannot read the store \(config.store.path): \(error)")
        }
        let now = SystemClock().now()
        let tz = GlibcLocalTime()
        var rules: [JSONValue] = []
        for r in config.bridge.triggers {
            let s = states["trigger/\(r.name)"] ?? [:]
            var o: [String: JSONValue] = ["name": .string(r.name), "target": .string(r.action.target),
                                          "last_fired": s["last_fired"]?.doubleValue.map { .string(Timestamp.iso8601($0)) } ?? .null]
            switch r.kind {
            case .time(let spec):
                o["kind"] = "time"
                let after = max(now, s["last_fired"]?.doubleValue ?? 0)
                o["next_fire"] = spec.next(after: after, in: tz).map { .string(Timestamp.iso8601($0)) } ?? .null
            case .condition(let c):
                o["kind"] = "condition"
                o["condition"] = ["topic": .string(c.topic), "value": s["value"] ?? .null, "held": s["held"] ?? false,
                                  "since": s["since"]?.doubleValue.map { .string(Timestamp.iso8601($0)) } ?? .null,
                                  "fired": s["fired"] ?? false, "hold_s": .number(c.holdS)]
            }
            rules.append(.object(o))
        }
        let recent: [JSONValue] = fires.map { ["trigger": .string($0.name), "at": .string(Timestamp.iso8601($0.at)),
                                               "command_id": .string($0.commandId), "reason": .string($0.reason)] }
        if json {
            print(JSONValue.object(["triggers": .array(rules), "recent": .array(recent)]).serialized)
            return
        }
        if rules.isEmpty { print("no triggers in \(options.path)") }
        for r in rules {
            var line = "\(r["name"]?.stringValue ?? "?")  → \(r["target"]?.stringValue ?? "?")  last fired \(r["last_fired"]?.stringValue ?? "never")"
            if let n = r["next_fire"]?.stringValue { line += "  next \(n)" }
            if let c = r["condition"] {
                line += "  [\(c["topic"]?.stringValue ?? "") = \(c["value"]?.serialized ?? "null"), \(c["held"]?.boolValue == true ? "holding since \(c["since"]?.stringValue ?? "?")" : "not holding")\(c["fired"]?.boolValue == true ? ", fired" : "")]"
            }
            print(line)
        }
        if !recent.isEmpty {
            print("recent firings:")
            for f in recent {
                print("  \(f["at"]?.stringValue ?? "")  \(f["trigger"]?.stringValue ?? "")  \(f["command_id"]?.stringValue ?? "")  (\(f["reason"]?.stringValue ?? ""))")
            }
        }
    }
}

extension BoschAdapter {
    /// An adapter for one configured Bosch account, for a single CLI run.
    static func forCLI(_ a: AccountConfig, secret: String) -> BoschAdapter {
        BoschAdapter(transport: CurlTransport(), baseURL: a.baseURL, apiKey: secret, userId: a.userId ?? "", timeout: a.timeoutS, allowList: nil)
    }
}

/// `heatbridge contracts …`: the Bosch contracts (the owners' consent to this partner), and acting on them.
struct Contracts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and act on Bosch contracts: list, show GATEWAY, accept/reject GATEWAY (pending), revoke GATEWAY (active), ack GATEWAY (closed by the owner).")
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
        let (a, secret) = try account.resolve(vendor: .bosch)
        let adapter = BoschAdapter.forCLI(a, secret: secret)
        let action = action, gateway = gateway ?? "", json = json
        try runCloud("contracts \(action)") { () async throws(CloudError) -> Int32 in
            switch action {
            case "list":
                let list = try await adapter.contracts()
                if json { print(String(decoding: BoschWire.encode(list), as: UTF8.self)); return 0 }
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
    @Option(name: .customLong("redirect-uri"), help: "Where the portal sends the customer afterwards (https, allow-listed at onboarding).") var redirectURI: String
    @Option(name: .customLong("session-id"), help: "Your plain token to recognise the customer when they come back.") var sessionId: String

    func run() throws {
        // Checked before any call: a bad link is worse than none.
        if case .failure(let e) = BoschAdapter.onboardingLink(brand: brand, companyId: "x", redirectURI: redirectURI, sessionId: sessionId) {
            throw usageError(e.message)
        }
        let (a, secret) = try account.resolve(vendor: .bosch)
        let adapter = BoschAdapter.forCLI(a, secret: secret)
        let brand = brand, redirectURI = redirectURI, sessionId = sessionId
        try runCloud("onboarding") { () async throws(CloudError) -> Int32 in
            let me = try await adapter.identity()
            guard case .success(let link) = BoschAdapter.onboardingLink(brand: brand, companyId: me.companyId, redirectURI: redirectURI,
                                                                      sessionId: sessionId) else { return 2 }
            print("company \(me.companyId)")
            print("  open: \(link)")
            print("  afterwards the portal redirects to \(redirectURI) with gatewayId and contractStatus; accept with: heatbridge contracts accept <gatewayId>")
            return 0
        }
    }
}

/// `heatbridge bosch …`: Bosch partner tools (API keys, webhook test events).
struct BoschTools: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bosch", abstract: "Bosch Partner API tools for installers.",
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

    func run() throws {
        guard ["list", "rotate", "delete"].contains(action) else { throw usageError("unknown action \"\(action)\"; one of list, rotate, delete") }
        if action == "delete" {
            guard let id = keyId, !id.isEmpty, id.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw usageError("delete needs a key id as listed by `heatbridge bosch keys list`")
            }
        }
        let (a, secret) = try account.resolve(vendor: .bosch)
        var keyFile: String?
        if action == "rotate" {
            guard let ref = a.apiKey, case .file(let path) = ref.source else {
                throw usageError("rotate writes the new key to api_key_file; account \(a.name) reads its key from a systemd credential")
            }
            keyFile = path
        }
        let adapter = BoschAdapter.forCLI(a, secret: secret)
        let action = action, keyId = keyId ?? "", keyPath = keyFile ?? ""
        try runCloud("keys \(action)") { () async throws(CloudError) -> Int32 in
            switch action {
            case "list":
                let keys = try await adapter.listKeys()
                if let exp = BoschWire.keyExpiry(secret) { print("configured key expires \(Timestamp.iso8601(exp))") }
                for k in keys { print("\(k.keyId)  created \(k.createdAt ?? "?")  expires \(k.expiresAt ?? "?")") }
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
        let (a, secret) = try account.resolve(vendor: .bosch)
        let adapter = BoschAdapter.forCLI(a, secret: secret)
        let gateway = gateway
        try runCloud("webhook-test") { () async throws(CloudError) -> Int32 in
            try await adapter.simulateWebhook(eventType: type, gatewayId: gateway)
            print("\(type) event requested\(gateway.map { " for \($0)" } ?? ""); Bosch sends it to the webhook endpoints set at onboarding")
            return 0
        }
    }
}

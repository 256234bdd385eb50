import ArgumentParser
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeStore
import HeatbridgeSystem
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// `heatbridge podero …`: on-demand Podero tools.
struct PoderoTools: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "podero", abstract: "Podero tools for installers.",
        subcommands: [PoderoStats.self])
}

extension PoderoClient {
    /// A client for one configured Podero account, for a single CLI run (token not persisted).
    static func forCLI(_ a: AccountConfig) throws -> PoderoClient { try cliBuilt(PoderoModule().client(a, context: .cli(a))) }
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

    /// Checks every argument before anything is sent, and reports every bad one at once (as check-config
    /// does), each naming the argument and the valid values.
    func validated() throws -> (language: String, zone: String) {
        var problems: [String] = []
        if !isUUID(user) { problems.append("--user \"\(user)\" is not a UUID (8-4-4-4-12 hex digits)") }
        if let b = building, !isUUID(b) { problems.append("--building \"\(b)\" is not a UUID (8-4-4-4-12 hex digits)") }
        let lang = PoderoWire.languages.first(where: { $0 == language.lowercased() })
        if lang == nil { problems.append("--language \"\(language)\" is not supported; valid: \(PoderoWire.languages.joined(separator: ", "))") }
        let zone = PoderoWire.priceZones.first(where: { $0 == priceZone.uppercased() })
        if zone == nil {
            let hint = priceZone.uppercased() == "DE" ? " (Germany is DE_LU)" : ""
            problems.append(
                "--price-zone \"\(priceZone)\" is not a Podero price zone\(hint); valid: \(PoderoWire.priceZones.joined(separator: ", "))")
        }
        for (name, url) in [("--success-url", successURL), ("--cancel-url", cancelURL)] {
            if let p = ParsedURL.parse(url), p.scheme == "https" || p.scheme == "http" {
                if url.utf8.count > 8000 { problems.append("\(name) is longer than 8000 characters") }
            } else {
                problems.append("\(name) \"\(url)\" is not an http(s) URL, e.g. https://partner.example/podero/done")
            }
        }
        guard let lang, let zone, problems.isEmpty else {
            for p in problems.dropLast() { printErr("error: \(p)") }
            throw usageError(problems.last!)
        }
        return (lang, zone)
    }

    func run() throws {
        let (lang, zone) = try validated()
        let (a, _) = try account.resolve(vendor: PoderoModule().name)
        let client = try PoderoClient.forCLI(a)
        let body = PoderoAdapter.onboardingBody(
            user: user, language: lang, priceZone: zone, successURL: successURL,
            cancelURL: cancelURL, building: building, optimize: !noOptimization)
        let heatPumpsOnly = heatPumpsOnly
        try runCloud("onboarding") { () async throws(CloudError) -> Int32 in
            let s = try await client.request("POST", PoderoWire.Path.onboarding, body: body)
            guard var url = s[PoderoWire.Onboarding.authenticationURL]?.stringValue else {
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
            print("  expires: end of \(s[PoderoWire.Onboarding.expirationDate]?.stringValue ?? "?") (valid until the end of the next day)")
            return 0
        }
    }
}

struct PoderoStats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
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
        let (a, _) = try account.resolve(vendor: PoderoModule().name)
        let client = try PoderoClient.forCLI(a)
        let adapter = PoderoAdapter(client: client, allowList: nil, clock: SystemClock())
        let wanted = device
        let json = json
        try runCloud("stats") { () async throws(CloudError) -> Int32 in
            let devices = try await adapter.fetchDevices()
            guard let d = devices.first(where: { $0.id == wanted || $0.vendorId == wanted }),
                let owner = d.attributes["owner_id"]?.stringValue
            else {
                printErr("no heat pump \"\(wanted)\" in organisation \(client.orgId); known: \(devices.map(\.id).joined(separator: ", "))")
                return 1
            }
            let path =
                PoderoWire.Path.statistics(client.orgId, owner, d.vendorId)
                + PoderoWire.Statistics.query(resolutions: resolutions, keywords: [PoderoWire.Statistics.savings, PoderoWire.Statistics.consumption])
            let stats = try await client.request("GET", path)
            if json {
                print(stats.serialized)
                return 0
            }
            print("\(d.id) (\(d.model ?? "heat pump"))")
            for row in stats[PoderoWire.Statistics.data]?.arrayValue ?? [] {
                let kwh =
                    row[PoderoWire.Statistics.consumption]?[PoderoWire.Statistics.total]?.doubleValue.map {
                        JSONValue.format(($0 / 100).rounded() / 10) + " kWh"
                    } ?? "?"
                let savings = row[PoderoWire.Statistics.savings]?[PoderoWire.Statistics.total]?.doubleValue.map(JSONValue.format) ?? "?"
                let pct =
                    row[PoderoWire.Statistics.savings]?[PoderoWire.Statistics.percentage]?.doubleValue.map { " (\(JSONValue.format($0)) %)" } ?? ""
                print(
                    "  \(row[PoderoWire.Statistics.resolution]?.stringValue ?? "?")  \(row[PoderoWire.Statistics.period]?[PoderoWire.Statistics.startPeriod]?.stringValue ?? "?") → \(row[PoderoWire.Statistics.period]?[PoderoWire.Statistics.endPeriod]?.stringValue ?? "?")  consumption \(kwh), savings \(savings)\(pct)"
                )
            }
            return 0
        }
    }
}

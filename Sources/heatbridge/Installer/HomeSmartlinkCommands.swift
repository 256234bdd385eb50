import ArgumentParser
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeStore
import HeatbridgeSystem
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// `heatbridge homesmartlink …`: find the home ids to configure, and diagnose a home.
struct HomeSmartlinkTools: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "homesmartlink", abstract: "HomeSmartlink tools for installers.",
        subcommands: [HSLHomes.self, HSLUsers.self, HSLDiagnose.self])
}

extension HSLAdapter {
    /// An adapter for one configured HomeSmartlink account, for a single CLI run.
    static func forCLI(_ a: AccountConfig) throws -> HSLAdapter { try cliBuilt(HSLModule().adapter(a, context: .cli(a))) }
}

struct HSLHomes: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "homes", abstract: "List the homes linked to a user's e-mail address.")
    @OptionGroup var account: AccountOption
    @Option(help: "The home owner's e-mail address.") var email: String

    func run() throws {
        guard email.contains("@"), !email.contains(" ") else { throw usageError("--email \"\(email)\" is not an e-mail address") }
        let (a, _) = try account.resolve(vendor: HSLModule().name)
        let adapter = try HSLAdapter.forCLI(a)
        let email = email
        try runCloud("homes") { () async throws(CloudError) -> Int32 in
            let homes = try await adapter.invitations(email: email)
            if homes.isEmpty { print("no home is linked to \(email)") }
            for h in homes {
                print(
                    "home \(h["_id"]?.stringValue ?? "?")  \(h["city"]?.stringValue ?? "")  gateway \(h["hasGateway"]?.boolValue == true ? "yes" : "no")\(h["role"]?.intValue == 2 ? "  (admin)" : "")"
                )
                for r in h["rooms"]?.arrayValue ?? [] {
                    print(
                        "  room-\(r["roomNumber"]?.intValue.map(String.init) ?? "?")  \(r["name"]?.stringValue ?? "")  \(r["deviceCount"]?.stringValue ?? r["deviceCount"]?.intValue.map(String.init) ?? "?") device(s)"
                    )
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
        let (a, _) = try account.resolve(vendor: HSLModule().name)
        let adapter = try HSLAdapter.forCLI(a)
        let size = pageSize
        try runCloud("users") { () async throws(CloudError) -> Int32 in
            let users = try await adapter.allUsers(pageSize: size)
            for u in users {
                print(
                    "home \(u["homeId"]?.stringValue ?? "?")  \(u["firstName"]?.stringValue ?? "") \(u["lastName"]?.stringValue ?? "")  \(u["zipCode"]?.stringValue ?? "") \(u["city"]?.stringValue ?? "")"
                )
            }
            print("\(users.count) user(s)")
            return 0
        }
    }
}

struct HSLDiagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Diagnose a home: request, then wait for the result (about 5 min).")
    @OptionGroup var account: AccountOption
    @Argument(help: "Home id (or hsl-<home id>).") var home: String
    @Option(help: "Give up waiting after this many seconds (the message id is printed to fetch it later).") var waitS = 600.0
    @Option(help: "Seconds between result checks.") var intervalS = 15.0

    func run() throws {
        let (a, _) = try account.resolve(vendor: HSLModule().name)
        let adapter = try HSLAdapter.forCLI(a)
        let id = home.hasPrefix("hsl-") ? String(home.dropFirst(4)) : home
        let waitS = waitS
        let intervalS = max(intervalS, 0.2)
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

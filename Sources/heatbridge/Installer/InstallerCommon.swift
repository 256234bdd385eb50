import ArgumentParser
import HeatbridgeApp
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeStore
import HeatbridgeSystem
import HeatbridgeVendors
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// `heatbridge onboard …`: installer steps that connect a customer's device to the partner account.
struct Onboard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start connecting a customer's device to a vendor account (prints the link the customer opens).",
        subcommands: [OnboardBosch.self, OnboardPodero.self])
}

extension VendorContext {
    /// What vendor modules build adapters with for a single CLI run: real HTTP and time, secrets from the
    /// config's files or credentials, nothing persisted.
    static var cli: VendorContext {
        AppServices.vendorContext(Daemon.ports(environment: ProcessEnvironment.all(), transport: CurlTransport(), accounts: 0), store: nil)
    }

    /// The CLI's context for one account: its connection options (CA, client certificate, proxy) as the daemon uses them.
    static func cli(_ account: AccountConfig) -> VendorContext {
        var c = cli
        c.transport = AccountTransport(c.transport, options: account.connection)
        return c
    }
}

/// The adapter or client a vendor module built for a CLI run, or its reason printed and exit 1.
func cliBuilt<T>(_ r: Result<T, VendorSetupError>) throws -> T {
    switch r {
    case .success(let v): return v
    case .failure(let e):
        printErr("\(e) (run as the heatbridge user or root)")
        throw ExitCode(1)
    }
}

/// Which configured account a vendor command uses.
struct AccountOption: ParsableArguments {
    @OptionGroup var options: ConfigOption
    @Option(help: "Account name from the config (default: the only account of that vendor).") var account: String?

    func resolve(vendor: String) throws -> (AccountConfig, String) {
        let config = try options.loadOrExit()
        let candidates = config.accounts.filter { $0.vendor == vendor && (account == nil || $0.name == account) }
        guard candidates.count == 1, let a = candidates.first else {
            let names = config.accounts.filter { $0.vendor == vendor }.map(\.name)
            printErr(
                candidates.isEmpty
                    ? "no \(vendor) account\(account.map { " named \"\($0)\"" } ?? "") in \(options.path)\(names.isEmpty ? "" : "; \(vendor) accounts: \(names.joined(separator: ", "))")"
                    : "several \(vendor) accounts (\(names.joined(separator: ", "))); choose one with --account")
            throw ExitCode(1)
        }
        guard let ref = a.vendorSettings.secretRefs.first,
            case .success(let secret) = ConfigLoader.readSecret(ref, environment: ProcessEnvironment.all())
        else {
            printErr("account \(a.name): cannot read its secret (run as the heatbridge user or root)")
            throw ExitCode(1)
        }
        return (a, secret)
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
        switch ConfigLoader.load(path: path, environment: ProcessEnvironment.all(), vendors: HeatbridgeVendors.all) {
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

import ArgumentParser
import FoundationEssentials
import Glibc
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeVendors
import VendorBosch

/// `heatbridge probe ACCOUNT [--json] [--save DIR]`: for installers and support. Reads every read endpoint
/// heatbridge uses for the account's devices (lowest priority, within the account's rate budget) and says
/// where the cloud's answers differ from heatbridge's wire definitions. Exit 0 when nothing drifted, 1 when
/// something did, 2 when it cannot run. `--save` writes each answer as a fixture, with secrets, e-mail
/// addresses, names, addresses, serial numbers and user ids replaced by stable placeholders.
struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a cloud's answers with heatbridge's wire definitions: a drift report; exit 0 when nothing differs.")
    @OptionGroup var options: ConfigOption
    @Argument(help: "The account name from the config.") var account: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "Write each answer as a redacted fixture into this directory.") var save: String?

    func run() throws {
        let config = try options.loadOrExit()
        guard let a = config.accounts.first(where: { $0.name == account }) else {
            printErr("error: no account \"\(account)\" in \(options.path); accounts: \(config.accounts.map(\.name).joined(separator: ", "))")
            throw ExitCode(2)
        }
        let built = try cliBuilt(
            HeatbridgeVendors.all.module(a.vendor)?.makeAdapter(a, context: .cli(a))
                ?? .failure(VendorSetupError("unknown vendor \(a.vendor)")))
        guard let adapter = built as? any Probing else {
            printErr("error: \(a.vendor) accounts cannot be probed")
            throw ExitCode(2)
        }
        let secrets = a.vendorSettings.secretRefs.compactMap { ref -> String? in
            if case .success(let s) = ConfigLoader.readSecret(ref, environment: ProcessEnvironment.all()) { return s }
            return nil
        }
        let known = secrets + [a.settings(as: BoschAccountSettings.self)?.userId].compactMap { $0 }
        let name = a.name
        let vendor = a.vendor
        let json = json
        let save = save
        let code = blockOn { () async -> Int32 in
            let answers = await adapter.probe()
            if let dir = save, case .failure(let why) = Self.saveFixtures(answers, vendor: vendor, to: dir, known: known) {
                printErr("error: cannot write the fixtures to \(dir): \(why.text)")
                return 2
            }
            Self.report(answers, account: name, vendor: vendor, json: json)
            return answers.contains(where: \.drifted) ? 1 : 0
        }
        if code != 0 { throw ExitCode(code) }
    }

    static func report(_ answers: [ProbeAnswer], account: String, vendor: String, json: Bool) {
        let drifted = answers.filter(\.drifted)
        if json {
            let report: JSONValue = [
                "account": .string(account), "vendor": .string(vendor), "requests": .int(answers.count), "drifted": .int(drifted.count),
                "answers": .array(
                    answers.map {
                        [
                            "request": .string($0.request), "status": $0.status.map { .int($0) } ?? .null,
                            "findings": .array($0.findings.map(\.json)),
                        ]
                    }),
            ]
            print(report.serialized)
            return
        }
        print(
            "probe \(account) (\(vendor)): \(answers.count) requests, \(drifted.isEmpty ? "no drift" : "\(drifted.count) differ from the definition")"
        )
        for d in answers where !d.findings.isEmpty {
            print("  \(d.request)\(d.status.map { " → \($0)" } ?? "")")
            for f in d.findings {
                print("    \(f.isDrift ? "" : "(note) ")\(f.kind.rawValue)  \(f.field.isEmpty ? "(answer)" : f.field): \(f.detail)")
            }
        }
        if !drifted.isEmpty { print("send this report (heatbridge probe \(account) --json --save DIR, and DIR) to the heatbridge project") }
    }

    struct SaveError: Error { var text: String }

    /// One file per answer: `{"request","status","body"}` with the body redacted; the file name is the
    /// request with the known ids replaced, so it gives nothing away either.
    static func saveFixtures(_ answers: [ProbeAnswer], vendor: String, to dir: String, known: [String]) -> Result<Void, SaveError> {
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { return .failure(SaveError(text: String(cString: strerror(errno)))) }
        var redactor = FixtureRedactor(known: known)
        for (i, a) in answers.enumerated() {
            var body = JSONValue.null
            if !a.body.isEmpty {
                if let parsed = try? JSONValue.parse(a.body) {
                    body = redactor.redact(parsed)
                } else {
                    body = .string(redactor.redactText(String(decoding: a.body.prefix(2048), as: UTF8.self)))
                }
            }
            let request = redactor.redactText(a.request)
            let status: JSONValue = a.status.map { .int($0) } ?? .null
            let fixture: JSONValue = ["vendor": .string(vendor), "request": .string(request), "status": status, "body": body]
            let safe: [Character] = request.map { c -> Character in c.isLetter || c.isNumber ? c : "_" }
            let number = String(i + 1000).dropFirst()
            let name = "\(number)-\(String(safe.prefix(100))).json"
            if case .failure(let e) = FileIO.writeAtomically(dir + "/" + name, fixture.bytes, mode: 0o600) {
                return .failure(SaveError(text: "\(e)"))
            }
        }
        return .success(())
    }
}

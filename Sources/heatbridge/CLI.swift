import ArgumentParser
import Dispatch
import Glibc
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeStore
import HeatbridgeVendors
import Synchronization

/// The version string shown by `heatbridge version` and in `bridge/info`.
let heatbridgeVersion = "0.1.0"

struct HeatbridgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heatbridge",
        abstract: "Bridges heating-vendor clouds (Bosch, HomeSmartlink, Podero) to local MQTT.",
        // No default subcommand: a bare `heatbridge` shows this help instead of starting a daemon in the foreground
        // (the unit and the scripts say `run`).
        subcommands: [
            Run.self, CheckConfig.self, Status.self, Energy.self, Triggers.self, Contracts.self, Onboard.self, Probe.self, BoschTools.self,
            PoderoTools.self, HomeSmartlinkTools.self, Version.self,
        ])
}

struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "Config file (default $HEATBRIDGE_CONFIG or /etc/heatbridge/heatbridge.yaml).")
    var config: String?

    var path: String {
        config ?? ProcessEnvironment.value("HEATBRIDGE_CONFIG") ?? "/etc/heatbridge/heatbridge.yaml"
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon in the foreground (systemd Type=notify).")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let code = blockOn { await Daemon.run(configPath: options.path) }
        if code != 0 { throw ExitCode(code) }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the config file: every error with file:line:column and a hint. Exits non-zero on any error.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        switch ConfigLoader.load(path: options.path, environment: ProcessEnvironment.all(), vendors: HeatbridgeVendors.all) {
        case .failure(let errors):
            let diagnostics = errors.diagnostics
            for line in errors.lines() { printErr(line) }
            printErr("\(diagnostics.count) error\(diagnostics.count == 1 ? "" : "s") in \(options.path)")
            throw ExitCode(1)
        case .success(let loaded):
            let c = loaded.config
            print("\(options.path): OK (config \(loaded.hash.prefix(12)))")
            print(
                "  mqtt: \(c.mqtt.tls ? "mqtts" : "mqtt")://\(c.mqtt.host):\(c.mqtt.port) base topic \(c.mqtt.baseTopic), client id \(c.mqtt.clientId)"
            )
            let storeDir = c.store.path.contains("/") ? String(c.store.path[..<c.store.path.lastIndex(of: "/")!]) : "."
            var st = stat()
            let missing = !storeDir.isEmpty && stat(storeDir, &st) != 0
            print("  store: \(c.store.path)\(missing ? " (its directory is created at the first start)" : "")")
            for a in c.accounts {
                let scope = a.devices.map { "\($0.count) device\($0.count == 1 ? "" : "s")" } ?? "every device"
                print(
                    "  account \(a.name): \(a.vendor) at \(ConfigText.redactedURL(a.baseURL)), poll every \(JSONValue.format(a.pollIntervalS)) s, \(scope)"
                )
                if a.allDevices {
                    printErr(
                        "warning: account \(a.name) has devices: all: it bridges every device of the partner account; "
                            + "only for a partner's own back-office box, never on a customer's box")
                }
            }
            if let n = c.fleet.boxes, n > 1 { print("  fleet: \(n) boxes share the partner accounts") }
            for g in c.bridge.groups.keys.sorted() { print("  group \(g): \(c.bridge.groups[g]!.map(\.key).joined(separator: ", "))") }
            for t in c.bridge.triggers { print("  trigger \(t.name): \(t.action.target)") }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show accounts, devices, the outbox and the last commands from the store (works while the daemon runs).")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "How many recent commands to show.") var last = 10

    func run() throws {
        var config = HeatbridgeConfig()
        if case .success(let l) = ConfigLoader.load(path: options.path, environment: ProcessEnvironment.all(), vendors: HeatbridgeVendors.all) {
            config = l.config
        } else {
            // Only the store path matters here; secrets may be unreadable for this user.
            config.store.path = try storePath(options)
        }
        var report: JSONValue
        do {
            let store = try SQLiteStore(path: config.store.path, readOnly: true)
            report = try store.statusReport(limit: max(1, last), now: SystemClock().now())
        } catch {
            printErr("cannot read the store \(config.store.path): \(error)")
            throw ExitCode(1)
        }
        let daemon = DaemonRecord.describe(report["daemon"].flatMap { $0 == .null ? nil : $0 })
        if json {
            if case .object(var o) = report {
                o["daemon"] = ["running": .bool(daemon.running), "record": report["daemon"] ?? .null]
                report = .object(o)
            }
            print(report.serialized)
            return
        }
        print(daemon.line)
        if let freeBytes = SQLiteStore.freeBytes(path: config.store.path) {
            let free = Double(freeBytes)
            print(
                "store: \(config.store.path), \(JSONValue.format((free / 1_048_576 * 10).rounded() / 10)) MiB free\(free < 8 * 1_048_576 ? "  LOW" : "")"
            )
        }
        if let r = report["store_recovered"], r != .null {
            print(
                "store: DAMAGED at \(r["at"]?.stringValue ?? "?") (\(r["reason"]?.stringValue ?? "?")); started fresh, the damaged file is kept as \(r["kept_as"]?.stringValue ?? "?")"
            )
        }
        // While the daemon is stopped, what the store has is the last state it saw, not the accounts' state now.
        print(daemon.running ? "accounts:" : "accounts (as last seen; the daemon is not running):")
        for a in report["accounts"]?.arrayValue ?? [] {
            let err = a["error"]?.stringValue.map { " (\($0))" } ?? ""
            print("  \(a["name"]?.stringValue ?? "?")  \(a["state"]?.stringValue ?? "?") since \(a["since"]?.stringValue ?? "?")\(err)")
        }
        print("devices:")
        for d in report["devices"]?.arrayValue ?? [] {
            let age = d["age_s"]?.intValue ?? 0
            let stale = Double(age) > config.bridge.staleAfterS ? "  STALE" : ""
            print(
                "  \(d["device"]?.stringValue ?? "?")  \(d["availability"]?.stringValue ?? "unknown")  updated \(d["updated_at"]?.stringValue ?? "?") (\(age) s ago)\(stale)"
            )
        }
        print(
            "outbox: \(report["outbox_depth"]?.intValue ?? 0) open command(s), \(report["unpublished_results"]?.intValue ?? 0) result(s) not yet published"
        )
        print("last commands:")
        for c in report["commands"]?.arrayValue ?? [] {
            let steps = (c["results"]?.arrayValue ?? []).map { r in
                [r["status"]?.stringValue, r["code"]?.stringValue].compactMap { $0 }.joined(separator: " ")
            }.joined(separator: " -> ")
            print("  \(c["received_at"]?.stringValue ?? "")  \(c["id"]?.stringValue ?? "")  \(c["target"]?.stringValue ?? "")  \(steps)")
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("heatbridge \(heatbridgeVersion)") }
}

func printErr(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Runs `body` on the concurrency pool and blocks the calling (main) thread until it returns.
func blockOn(_ body: @escaping @Sendable () async -> Int32) -> Int32 {
    let result = Mutex<Int32>(0)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let code = await body()
        result.withLock { $0 = code }
        done.signal()
    }
    done.wait()
    return result.withLock { $0 }
}

/// The process environment without Foundation.
enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    static func all() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}

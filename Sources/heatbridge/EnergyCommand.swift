import ArgumentParser
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeStore
import HeatbridgeVendors

/// `heatbridge energy DEVICE`: the device's hourly energy from the store, as the MQTT history request answers it
/// (`--json` prints exactly that answer's `history`).
struct Energy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a device's hourly energy (kWh per counter and hour) from the store; works while the daemon runs.")
    @OptionGroup var options: ConfigOption
    @Argument(help: "The device's topic id, e.g. podero-hp-1 or bosch-101000001.") var device: String
    @Option(help: "Start (UTC), e.g. 2026-12-01 or 2026-12-01T06:00:00Z; default 24 h before --to.") var from: String?
    @Option(help: "End (UTC, exclusive); default the end of the current hour.") var to: String?
    @Flag(help: "Print the MQTT history answer (JSON).") var json = false
    @Flag(help: "Print CSV: one line per hour, one column per counter.") var csv = false

    func run() throws {
        var body: [String: JSONValue] = [:]
        if let from { body["from"] = .string(from) }
        if let to { body["to"] = .string(to) }
        let range: (from: Int64, to: Int64)
        do { range = try EnergyHistory.range(body, now: SystemClock().now()) } catch {
            printErr("\(error.code.rawValue): \(error.message)")
            throw ExitCode(2)
        }
        let path = try storePath(options)
        let buckets: [EnergyBucket]
        do {
            let store = try SQLiteStore(path: path, readOnly: true)
            guard try store.loadDevices().contains(where: { $0.deviceId == device }) else {
                printErr("UNKNOWN_TARGET: no device \"\(device)\" in the store \(path)")
                throw ExitCode(1)
            }
            buckets = try store.energyBuckets(device: device, fromHour: range.from, toHour: range.to)
        } catch let e as ExitCode {
            throw e
        } catch {
            printErr("cannot read the store \(path): \(error)")
            throw ExitCode(1)
        }
        let answer = EnergyHistory.answer(device: device, from: range.from, to: range.to, buckets: buckets)
        if json { return print(answer.serialized) }
        let meters = (answer["meters"]?.objectValue ?? [:]).keys.sorted {
            (MeterKey(id: $0) ?? .electricityTotal) < (MeterKey(id: $1) ?? .electricityTotal)
        }
        func cell(_ m: String, _ i: Int) -> String {
            answer["meters"]?[m]?.arrayValue?[i].doubleValue.map(JSONValue.format) ?? ""
        }
        if csv {
            print((["hour"] + meters).joined(separator: ","))
            for i in 0..<Int(range.to - range.from) {
                print(([Timestamp.iso8601(Double(range.from + Int64(i)) * 3600)] + meters.map { cell($0, i) }).joined(separator: ","))
            }
            return
        }
        print("\(device): kWh per hour, \(answer["from"]?.stringValue ?? "") to \(answer["to"]?.stringValue ?? "") (UTC)")
        guard !meters.isEmpty else { return print("  no energy recorded in this range") }
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(1, n - s.count)) }
        print(pad("hour", 22) + meters.map { pad($0, max(14, $0.count + 2)) }.joined())
        for i in 0..<Int(range.to - range.from) where meters.contains(where: { !cell($0, i).isEmpty }) {
            print(pad(Timestamp.iso8601(Double(range.from + Int64(i)) * 3600), 22) + meters.map { pad(cell($0, i), max(14, $0.count + 2)) }.joined())
        }
        print(pad("total", 22) + meters.map { pad(answer["totals"]?[$0]?.doubleValue.map(JSONValue.format) ?? "", max(14, $0.count + 2)) }.joined())
    }
}

/// The store of the config at `options` — from the loaded config, or, when secrets cannot be read by this user, from
/// the file's `store.path` alone.
func storePath(_ options: ConfigOption) throws -> String {
    switch ConfigLoader.load(path: options.path, environment: ProcessEnvironment.all(), vendors: HeatbridgeVendors.all) {
    case .success(let l): return l.config.store.path
    case .failure(let errors):
        guard let path = ConfigLoader.storePath(path: options.path) else {
            for line in errors.lines() { printErr(line) }
            throw ExitCode(1)
        }
        return path
    }
}

import ArgumentParser
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeStore
import HeatbridgeSystem
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

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
            var o: [String: JSONValue] = [
                "name": .string(r.name), "target": .string(r.action.target),
                "last_fired": s["last_fired"]?.doubleValue.map { .string(Timestamp.iso8601($0)) } ?? .null,
            ]
            switch r.kind {
            case .time(let spec):
                o["kind"] = "time"
                let after = max(now, s["last_fired"]?.doubleValue ?? 0)
                o["next_fire"] = spec.next(after: after, in: tz).map { .string(Timestamp.iso8601($0)) } ?? .null
            case .condition(let c):
                o["kind"] = "condition"
                o["condition"] = [
                    "topic": .string(c.topic), "value": s["value"] ?? .null, "held": s["held"] ?? false,
                    "since": s["since"]?.doubleValue.map { .string(Timestamp.iso8601($0)) } ?? .null,
                    "fired": s["fired"] ?? false, "hold_s": .number(c.holdS),
                ]
            }
            rules.append(.object(o))
        }
        let recent: [JSONValue] = fires.map {
            [
                "trigger": .string($0.name), "at": .string(Timestamp.iso8601($0.at)),
                "command_id": .string($0.commandId), "reason": .string($0.reason),
            ]
        }
        if json {
            print(JSONValue.object(["triggers": .array(rules), "recent": .array(recent)]).serialized)
            return
        }
        if rules.isEmpty { print("no triggers in \(options.path)") }
        for r in rules {
            var line = "\(r["name"]?.stringValue ?? "?")  → \(r["target"]?.stringValue ?? "?")  last fired \(r["last_fired"]?.stringValue ?? "never")"
            if let n = r["next_fire"]?.stringValue { line += "  next \(n)" }
            if let c = r["condition"] {
                line +=
                    "  [\(c["topic"]?.stringValue ?? "") = \(c["value"]?.serialized ?? "null"), \(c["held"]?.boolValue == true ? "holding since \(c["since"]?.stringValue ?? "?")" : "not holding")\(c["fired"]?.boolValue == true ? ", fired" : "")]"
            }
            print(line)
        }
        if !recent.isEmpty {
            print("recent firings:")
            for f in recent {
                print(
                    "  \(f["at"]?.stringValue ?? "")  \(f["trigger"]?.stringValue ?? "")  \(f["command_id"]?.stringValue ?? "")  (\(f["reason"]?.stringValue ?? ""))"
                )
            }
        }
    }
}

import Glibc
import HeatbridgeCore
import HeatbridgeStore
import Logging

/// The daemon's own record in its store (`settings` key `daemon`): its pid and start time while it runs, its stop
/// time after a clean stop. `heatbridge status` reads it to say whether the daemon runs, instead of showing the
/// last account states as if they were live.
enum DaemonRecord {
    static let key = "daemon"

    static func started(_ store: SQLiteStore, logger: Logger) {
        save(store, ["state": "running", "pid": .int(Int(getpid())), "started_at": .string(Timestamp.iso8601(SystemClock().now()))], logger)
    }

    static func stopped(_ store: SQLiteStore, logger: Logger) {
        var r = (try? store.loadSettings())?[key]?.objectValue ?? [:]
        r["state"] = "stopped"
        r["stopped_at"] = .string(Timestamp.iso8601(SystemClock().now()))
        save(store, .object(r), logger)
    }

    static func save(_ store: SQLiteStore, _ value: JSONValue, _ logger: Logger) {
        do { try store.saveSetting(key, value) } catch {
            logger.warning("cannot record the daemon's state in the store", metadata: ["error": "\(error)"])
        }
    }

    /// One line for `heatbridge status`: whether the daemon of this store runs now. A record saying "running" whose
    /// process is gone (or is not heatbridge) was a daemon that stopped without a clean shutdown (kill -9, power cut).
    static func describe(_ record: JSONValue?) -> (running: Bool, line: String) {
        guard let r = record else { return (false, "daemon: not running (no daemon has run on this store yet)") }
        let started = r["started_at"]?.stringValue ?? "?"
        if r["state"]?.stringValue == "stopped" {
            return (false, "daemon: not running (stopped at \(r["stopped_at"]?.stringValue ?? "?"), started \(started))")
        }
        if let pid = r["pid"]?.intValue, isHeatbridge(pid: Int32(pid)) {
            return (true, "daemon: running (pid \(pid), since \(started))")
        }
        return (false, "daemon: not running (started \(started), ended without a clean stop)")
    }

    /// Whether `pid` is alive and runs a heatbridge binary (a reused pid of another program is not the daemon).
    static func isHeatbridge(pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let f = fopen("/proc/\(pid)/comm", "r") else { return true }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 64)
        guard fgets(&buf, 64, f) != nil else { return true }
        let comm = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return comm.hasPrefix("heatbridge")
    }
}

import Glibc
import Logging
import Synchronization

/// The process-wide log level: a reload changes it for every logger at once.
let currentLogLevel = Mutex<Logger.Level>(.info)

/// Writes one line per event to stderr with a syslog priority prefix (`<6>`), which journald turns into the
/// entry's priority. Metadata follows as `key=value`. Nothing here knows secrets: callers never log them.
struct JournaldLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    let label: String

    /// Reads (and sets) the process-wide level, so a config reload applies to loggers already handed out.
    var logLevel: Logger.Level {
        get { currentLogLevel.withLock { $0 } }
        set { currentLogLevel.withLock { $0 = newValue } }
    }

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    func log(event: LogEvent) {
        var line = "<\(Self.priority(event.level))>\(event.message)"
        var all = metadata
        if let m = event.metadata { all.merge(m) { _, new in new } }
        for key in all.keys.sorted() {
            let v = "\(all[key]!)"
            line += v.contains(" ") ? " \(key)=\"\(v)\"" : " \(key)=\(v)"
        }
        line += "\n"
        // One write(2) per line so lines from different threads never interleave.
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}

import Glibc
import Logging
import Synchronization

/// The process-wide log level: a reload changes it for every logger at once.
let currentLogLevel = Mutex<Logger.Level>(.info)
/// The config's `log.level`: where a level raised by a `log_level` bridge request falls back to.
let configuredLogLevel = Mutex<String>("info")

/// Writes one line per event to stderr with a syslog priority prefix (`<6>`), which journald turns into the
/// entry's priority. Metadata follows as `key=value`. Nothing here knows secrets: callers never log them.
///
/// Values come from MQTT clients and clouds (command ids, topics, error texts): every control character is
/// escaped and quotes inside a quoted value too, so no value can end the line, start a forged one
/// (`\n<0>FORGED` would be an emergency entry for journald) or forge a `key=value`; long values are cut.
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

    /// Longest value written, in characters; the rest is replaced by "…".
    static let maxValueCharacters = 512

    /// `s` with C0/C1 control characters, DEL and the Unicode line separators escaped (`\n`, `\u{1b}`).
    static func escaped(_ s: String) -> String {
        func unsafe(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || (0x7F...0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029 }
        var t = s.count > maxValueCharacters ? String(s.prefix(maxValueCharacters)) + "…" : s
        guard t.unicodeScalars.contains(where: unsafe) else { return t }
        var out = String.UnicodeScalarView()
        for u in t.unicodeScalars {
            switch u {
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case _ where unsafe(u): out.append(contentsOf: "\\u{\(String(u.value, radix: 16))}".unicodeScalars)
            default: out.append(u)
            }
        }
        t = String(out)
        return t
    }

    /// ` key=value`, quoted when the value has a space, a quote, an `=` or nothing at all.
    static func field(_ key: String, _ value: String) -> String {
        let v = escaped(value)
        guard v.isEmpty || v.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else { return " \(escaped(key))=\(v)" }
        let quoted = String(v.flatMap { $0 == "\"" ? ["\\", "\""] : [$0] })
        return " \(escaped(key))=\"\(quoted)\""
    }

    func log(event: LogEvent) {
        var line = "<\(Self.priority(event.level))>\(Self.escaped("\(event.message)"))"
        var all = metadata
        if let m = event.metadata { all.merge(m) { _, new in new } }
        for key in all.keys.sorted() { line += Self.field(key, "\(all[key]!)") }
        line += "\n"
        // One write(2) per line so lines from different threads never interleave.
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// The bridge request API: `<base>/bridge/request/<name>` answered on `<base>/bridge/response/<name>` (and on
/// an MQTT v5 response topic), zigbee2mqtt's convention: `{"status": "ok", "data": {…}}` or
/// `{"status": "error", "code": "…", "error": "…"}`, with the request's `transaction` echoed.
public enum BridgeRequests {
    /// The names a box answers, in the order the README lists them.
    public static let names = ["status", "health_check", "poll", "config", "log_level"]
    /// A request's `transaction` longer than this is not echoed (it is the client's, but the answer is ours).
    static let maxTransactionCharacters = 128
    /// Levels `log_level` takes (swift-log's, as in `log.level`).
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// `log_level`'s `duration_s`: default and bounds. A raised level always falls back by itself: a forgotten
    /// `debug` on 10,000 boxes would fill every journal.
    public static let logLevelDefaultS = 600.0
    public static let logLevelMaxS = 3600.0
    /// `poll` for one account at most this often: a backend looping over its boxes must not spend the rate budget.
    public static let pollMinGapS = 10.0

    /// A request that can be carried out, or the error to answer with.
    public struct Parsed: Sendable {
        public var name: String
        public var body: [String: JSONValue]
        public var transaction: JSONValue?
    }

    public struct Failure: Error, Sendable {
        public var code: ResultCode
        public var message: String
        public var transaction: JSONValue?
        public var extra: [String: JSONValue] = [:]
        public init(_ code: ResultCode, _ message: String, transaction: JSONValue? = nil, extra: [String: JSONValue] = [:]) {
            self.code = code
            self.message = message
            self.transaction = transaction
            self.extra = extra
        }
    }

    /// Reads a request message; the name comes from the topic.
    public static func parse(_ m: MQTTMessage, name: String, maxPayloadBytes: Int) -> Result<Parsed, Failure> {
        if let size = m.oversize ?? (m.payload.count > maxPayloadBytes ? m.payload.count : nil) {
            return .failure(Failure(.payloadTooLarge, "request of \(size) bytes; at most \(maxPayloadBytes)"))
        }
        var body: [String: JSONValue] = [:]
        if !m.payload.isEmpty {
            guard let parsed = try? JSONValue.parse(m.payload), case .object(let o) = parsed else {
                return .failure(Failure(.invalidPayload, "a request's payload is a JSON object (or empty)"))
            }
            body = o
        }
        let transaction = body.removeValue(forKey: "transaction").flatMap(echoable)
        if m.retained {
            return .failure(
                Failure(
                    .retainedRequest, "retained request ignored: publish requests without the retain flag",
                    transaction: transaction))
        }
        guard names.contains(name) else {
            return .failure(
                Failure(
                    .unknownRequest, "unknown request \"\(String(name.prefix(64)))\"; requests: \(names.joined(separator: ", "))",
                    transaction: transaction))
        }
        return .success(Parsed(name: name, body: body, transaction: transaction))
    }

    /// A transaction is echoed when it is a short string or a number; anything else is left out.
    static func echoable(_ v: JSONValue) -> JSONValue? {
        switch v {
        case .string(let s) where s.count <= maxTransactionCharacters: return v
        case .number: return v
        default: return nil
        }
    }

    /// The answer for a topic level: a name that could not be a request name is answered under `invalid`, so a
    /// client's odd bytes never become part of a topic the bridge publishes.
    public static func responseName(_ name: String) -> String {
        let ok =
            !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2d }
        return ok ? name : "invalid"
    }

    public static func ok(_ data: JSONValue, transaction: JSONValue?) -> JSONValue {
        var o: [String: JSONValue] = ["status": "ok", "data": data]
        if let transaction { o["transaction"] = transaction }
        return .object(o)
    }

    public static func error(_ f: Failure) -> JSONValue {
        var o: [String: JSONValue] = ["status": "error", "code": .string(f.code.rawValue), "error": .string(f.message), "data": .object(f.extra)]
        if let transaction = f.transaction { o["transaction"] = transaction }
        return .object(o)
    }

    /// `log_level`'s body: the level (nil: back to the config's) and for how long.
    public static func logLevel(_ body: [String: JSONValue]) -> Result<(level: String?, durationS: Double), Failure> {
        let duration: Double
        switch body["duration_s"] {
        case nil: duration = logLevelDefaultS
        case let v?:
            guard let d = v.doubleValue else { return .failure(Failure(.invalidPayload, "\"duration_s\" must be a number of seconds")) }
            guard d >= 1 && d <= logLevelMaxS else {
                return .failure(Failure(.outOfRange, "\"duration_s\" must be 1…\(Int(logLevelMaxS)), got \(JSONValue.format(d))"))
            }
            duration = d
        }
        switch body["level"] {
        case nil, .null?: return .success((nil, duration))
        case .string(let s)? where logLevels.contains(s): return .success((s, duration))
        default: return .failure(Failure(.invalidPayload, "\"level\" must be one of \(logLevels.joined(separator: ", ")), or null for the config's"))
        }
    }
}

/// How the bridge changes the process's log level for `log_level` (the daemon's logger reads one shared level).
public struct LogLevelControl: Sendable {
    /// Sets a level; nil goes back to the config's.
    public var set: @Sendable (_ level: String?) -> Void
    /// The level in force now.
    public var current: @Sendable () -> String
    public init(set: @escaping @Sendable (String?) -> Void, current: @escaping @Sendable () -> String) {
        self.set = set
        self.current = current
    }
}

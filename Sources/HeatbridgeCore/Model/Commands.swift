/// The staged statuses of the MQTT contract: `accepted` or `rejected` first, then optionally `queued`,
/// then any number of `progress` (delivery reports, e.g. HomeSmartlink derogations), then exactly one of
/// `done`, `failed`, `expired`.
public enum CommandStatus: String, Sendable, Equatable {
    case accepted, rejected, queued, progress, done, failed, expired

    /// Terminal statuses end a command; nothing follows them.
    public var isTerminal: Bool {
        switch self {
        case .rejected, .done, .failed, .expired: return true
        case .accepted, .queued, .progress: return false
        }
    }
}

/// Stable UPPER_SNAKE result codes. They are part of the MQTT contract: never rename one.
public struct ResultCode: RawRepresentable, Sendable, Equatable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let invalidPayload = ResultCode(rawValue: "INVALID_PAYLOAD")
    public static let payloadTooLarge = ResultCode(rawValue: "PAYLOAD_TOO_LARGE")
    public static let outOfRange = ResultCode(rawValue: "OUT_OF_RANGE")
    public static let unknownTarget = ResultCode(rawValue: "UNKNOWN_TARGET")
    public static let unsupported = ResultCode(rawValue: "UNSUPPORTED")
    public static let retainedCommand = ResultCode(rawValue: "RETAINED_COMMAND")
    public static let rateLimited = ResultCode(rawValue: "RATE_LIMITED")
    public static let authFailed = ResultCode(rawValue: "AUTH_FAILED")
    public static let forbidden = ResultCode(rawValue: "FORBIDDEN")
    public static let consentRequired = ResultCode(rawValue: "CONSENT_REQUIRED")
    public static let deviceOffline = ResultCode(rawValue: "DEVICE_OFFLINE")
    public static let cloudUnavailable = ResultCode(rawValue: "CLOUD_UNAVAILABLE")
    public static let cloudRejected = ResultCode(rawValue: "CLOUD_REJECTED")
    public static let badResponse = ResultCode(rawValue: "BAD_RESPONSE")
    public static let expired = ResultCode(rawValue: "EXPIRED")
    public static let superseded = ResultCode(rawValue: "SUPERSEDED")
    public static let conflict = ResultCode(rawValue: "CONFLICT")
    public static let storeFailed = ResultCode(rawValue: "STORE_FAILED")
    /// The command may have reached the cloud before the daemon stopped, and the vendor cannot be read back.
    public static let inDoubt = ResultCode(rawValue: "IN_DOUBT")
    public static let notAcknowledged = ResultCode(rawValue: "NOT_ACKNOWLEDGED")
    /// The `id` names an earlier command (of the last 24 h) with another target or other parameters.
    public static let duplicateId = ResultCode(rawValue: "DUPLICATE_ID")
    public static let safetyLimit = ResultCode(rawValue: "SAFETY_LIMIT")
    /// An energy history request for a device that has no meter (its vendor reports no energy).
    public static let noMeter = ResultCode(rawValue: "NO_METER")
    /// `bridge/request/<name>` with a name the bridge does not answer.
    public static let unknownRequest = ResultCode(rawValue: "UNKNOWN_REQUEST")
    /// A bridge request published retained: not carried out (it would run again at every reconnect).
    public static let retainedRequest = ResultCode(rawValue: "RETAINED_REQUEST")
}

/// A command as it moves through the pipeline and the store.
public struct Command: Sendable, Equatable {
    /// Correlation id: the sender's `"id"`, or generated.
    public var id: String
    public var device: String
    public var node: String
    public var capability: String
    /// Validated, normalised parameters (what the adapter executes).
    public var params: JSONValue
    /// Where it came from.
    public var source: CommandSource
    public var receivedAt: EpochSeconds
    /// After this instant a queued command ends `expired` instead of running late.
    public var validUntil: EpochSeconds
    public var status: CommandStatus
    public var attempts: Int
    /// Not to be tried before this instant (set while rate-limited).
    public var notBefore: EpochSeconds?
    /// The MQTT v5 Response Topic (and Correlation Data) the command came with: every result goes there too.
    public var reply: ReplyAddress?

    public init(
        id: String, device: String, node: String, capability: String, params: JSONValue, source: CommandSource,
        receivedAt: EpochSeconds, validUntil: EpochSeconds, status: CommandStatus = .accepted,
        attempts: Int = 0, notBefore: EpochSeconds? = nil, reply: ReplyAddress? = nil
    ) {
        self.reply = reply
        self.id = id
        self.device = device
        self.node = node
        self.capability = capability
        self.params = params
        self.source = source
        self.receivedAt = receivedAt
        self.validUntil = validUntil
        self.status = status
        self.attempts = attempts
        self.notBefore = notBefore
    }

    /// Device, node and capability together.
    public var target: Target {
        get { Target(device: device, node: node, capability: capability) }
        set {
            device = newValue.device
            node = newValue.node
            capability = newValue.capability
        }
    }

    /// The topic its results go to.
    public func resultTopic(_ topics: TopicLayout) -> String {
        topics.result(device: device, node: node, capability: capability)
    }
}

/// Why a command was refused before it was accepted.
public struct CommandRejection: Error, Sendable, Equatable {
    public var code: ResultCode
    public var message: String
    /// Messages quote what the command said (a key, a value); they are cut at this many characters so a
    /// hostile payload is not echoed whole into results and logs.
    public static let maxMessageCharacters = 300
    /// The `id` exactly as the command sent it, when it is not a string (a number): the rejection echoes it
    /// as sent so the sender can match it.
    public var idAsSent: JSONValue?
    public init(_ code: ResultCode, _ message: String, idAsSent: JSONValue? = nil) {
        self.code = code
        self.message = message.count > Self.maxMessageCharacters ? String(message.prefix(Self.maxMessageCharacters)) + "…" : message
        self.idAsSent = idAsSent
    }
}

/// Builds the JSON of one staged result.
public enum CommandResultPayload {
    /// The answer to a message repeating a command already taken (a broker redelivery, the sender's retry):
    /// status `repeated`, never a second first answer; `current` is the command's latest result.
    public static func repeated(id: String, current: JSONValue, firstAt: EpochSeconds, at: EpochSeconds) -> JSONValue {
        [
            "id": .string(id), "status": "repeated", "code": .null,
            "message": .string(
                "the same command again (a redelivery or a retry), first taken at \(Timestamp.iso8601(firstAt)): not run again; its latest result is under current"
            ),
            "current": current, "ts": .string(Timestamp.iso8601(at)),
        ]
    }

    public static func make(
        id: String, status: CommandStatus, code: ResultCode?, message: String?, at: EpochSeconds,
        extra: [String: JSONValue] = [:]
    ) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(id), "status": .string(status.rawValue), "code": .string(code?.rawValue),
            "message": .string(message), "ts": .string(Timestamp.iso8601(at)),
        ]
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }
}

/// Validation shared by every vendor for capabilities whose meaning is the same everywhere.
public enum CapabilityValidation {
    /// `{"action":"start","<duration>":N}` or `{"action":"stop"}` → normalised parameters (N in minutes, within
    /// `1…maxMinutes`, `defaultMinutes` when the start names none). The vendor names the member.
    public static func startStop(
        _ body: [String: JSONValue], duration: String, maxMinutes: Int, defaultMinutes: Int
    ) throws(CommandRejection) -> JSONValue {
        try allowOnly(body, ["action", duration])
        guard let actionValue = body["action"] else {
            throw CommandRejection(.invalidPayload, "missing \"action\" (\"start\" or \"stop\")")
        }
        guard let action = actionValue.stringValue, action == "start" || action == "stop" else {
            throw CommandRejection(.invalidPayload, "\"action\" must be \"start\" or \"stop\"")
        }
        if action == "stop" {
            if body[duration] != nil {
                throw CommandRejection(.invalidPayload, "\"\(duration)\" only goes with \"action\":\"start\"")
            }
            return ["action": "stop"]
        }
        var minutes = defaultMinutes
        if let d = body[duration] {
            guard let m = d.intValue else {
                throw CommandRejection(.invalidPayload, "\"\(duration)\" must be a whole number of minutes")
            }
            guard (1...maxMinutes).contains(m) else {
                throw CommandRejection(.outOfRange, "\"\(duration)\" must be 1…\(maxMinutes), got \(m)")
            }
            minutes = m
        }
        return ["action": "start", duration: .int(minutes)]
    }

    /// Limits a vendor puts on week programs.
    public struct ScheduleLimits: Sendable {
        public var maxPointsPerDay: Int
        /// Switch times must be multiples of this many minutes.
        public var gridMinutes: Int
        public init(maxPointsPerDay: Int, gridMinutes: Int) {
            self.maxPointsPerDay = maxPointsPerDay
            self.gridMinutes = gridMinutes
        }
    }

    /// `<node>/schedule/set`: a whole week in the neutral format, checked against the device's limits and
    /// the levels of its current program. Optional `"version"` (the program the edit was based on) and
    /// `"force"`. Normalised to `{"days":…,"base_version":…,"force":…}`.
    public static func weekSchedule(_ body: [String: JSONValue], current: WeekSchedule?, limits: ScheduleLimits) throws(CommandRejection) -> JSONValue
    {
        try allowOnly(body, ["days", "levels", "version", "force"])
        guard let current else {
            throw CommandRejection(.unsupported, "no week program is known for this node yet; wait for the first poll")
        }
        guard let days = body["days"]?.objectValue else {
            throw CommandRejection(.invalidPayload, "\"days\" must be an object with mon…sun")
        }
        if let extra = days.keys.sorted().first(where: { !WeekSchedule.dayNames.contains($0) }) {
            throw CommandRejection(.invalidPayload, "unknown day \"\(extra)\"; days are \(WeekSchedule.dayNames.joined(separator: ", "))")
        }
        var out: [[WeekSchedule.SwitchPoint]] = []
        for name in WeekSchedule.dayNames {
            guard let points = days[name]?.arrayValue else {
                throw CommandRejection(.invalidPayload, "\"days\" needs all seven days; \"\(name)\" is missing (send [] for none)")
            }
            guard points.count <= limits.maxPointsPerDay else {
                throw CommandRejection(.outOfRange, "\(name): \(points.count) switch points, at most \(limits.maxPointsPerDay) per day")
            }
            var day: [WeekSchedule.SwitchPoint] = []
            for p in points {
                guard let atText = p["at"]?.stringValue, let at = WeekSchedule.minutes(atText) else {
                    throw CommandRejection(.invalidPayload, "\(name): each switch point needs \"at\":\"HH:MM\"")
                }
                guard at % limits.gridMinutes == 0 else {
                    throw CommandRejection(.outOfRange, "\(name) \(atText): switch times must be on the \(limits.gridMinutes)-minute grid")
                }
                guard let level = p["level"]?.stringValue else {
                    throw CommandRejection(.invalidPayload, "\(name) \(atText): missing \"level\"")
                }
                guard current.levels[level] != nil else {
                    throw CommandRejection(
                        .outOfRange, "\(name) \(atText): unknown level \"\(level)\"; levels: \(current.levels.keys.sorted().joined(separator: ", "))")
                }
                if day.contains(where: { $0.minute == at }) {
                    throw CommandRejection(.invalidPayload, "\(name) \(atText): two switch points at the same time")
                }
                day.append(.init(minute: at, level: level))
            }
            out.append(day)
        }
        if let levels = body["levels"], levels != WeekSchedule(days: out, levels: current.levels).json["levels"] {
            throw CommandRejection(.unsupported, "level temperatures cannot be changed through the schedule; leave \"levels\" out")
        }
        var version: JSONValue = .null
        if let v = body["version"] {
            guard let s = v.stringValue, !s.isEmpty else {
                throw CommandRejection(.invalidPayload, "\"version\" must be the program's version string")
            }
            version = .string(s)
        }
        var force = false
        if let f = body["force"] {
            guard let b = f.boolValue else { throw CommandRejection(.invalidPayload, "\"force\" must be true or false") }
            force = b
        }
        let program = WeekSchedule(days: out, levels: current.levels)
        return ["days": program.json["days"]!, "base_version": version, "force": .bool(force)]
    }

    /// A required string member from `allowed`, matched case-insensitively; returns the spelling in `allowed`.
    public static func oneOf(_ body: [String: JSONValue], _ key: String, _ allowed: [String]) throws(CommandRejection) -> String {
        let names = allowed.map { $0.lowercased() }.joined(separator: ", ")
        guard let v = body[key] else { throw CommandRejection(.invalidPayload, "missing \"\(key)\"; one of \(names)") }
        guard let s = v.stringValue, let match = allowed.first(where: { $0.lowercased() == s.lowercased() }) else {
            throw CommandRejection(.invalidPayload, "\"\(key)\" must be one of \(names)")
        }
        return match
    }

    /// A required temperature in °C within `range`, on a `step` grid (0.5 °C unless the vendor takes finer).
    public static func temperature(
        _ body: [String: JSONValue], _ key: String, _ range: ClosedRange<Double>,
        step: Double = 0.5
    ) throws(CommandRejection) -> Double {
        guard let v = body[key] else { throw CommandRejection(.invalidPayload, "missing \"\(key)\" (°C)") }
        guard let t = v.doubleValue else { throw CommandRejection(.invalidPayload, "\"\(key)\" must be a number of °C") }
        guard range.contains(t) else {
            throw CommandRejection(
                .outOfRange,
                "\"\(key)\" must be \(JSONValue.format(range.lowerBound))…\(JSONValue.format(range.upperBound)) °C, got \(JSONValue.format(t))")
        }
        guard ((t / step).rounded() * step - t).magnitude < 1e-9 else {
            throw CommandRejection(.outOfRange, "\"\(key)\" must be in \(JSONValue.format(step)) °C steps, got \(JSONValue.format(t))")
        }
        return t
    }

    /// Like `temperature`, but nil when the member is absent.
    public static func optionalTemperature(
        _ body: [String: JSONValue], _ key: String, _ range: ClosedRange<Double>,
        step: Double = 0.5
    ) throws(CommandRejection) -> Double? {
        body[key] == nil ? nil : try temperature(body, key, range, step: step)
    }

    /// An optional boolean member.
    public static func optionalBool(_ body: [String: JSONValue], _ key: String) throws(CommandRejection) -> Bool? {
        guard let v = body[key] else { return nil }
        guard let b = v.boolValue else { throw CommandRejection(.invalidPayload, "\"\(key)\" must be true or false") }
        return b
    }

    /// Rejects members other than `allowed` (the envelope members `id` and `valid_for_s` are removed earlier).
    public static func allowOnly(_ body: [String: JSONValue], _ allowed: Set<String>) throws(CommandRejection) {
        if let unknown = body.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw CommandRejection(.invalidPayload, "unknown member \"\(unknown)\"; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }
}

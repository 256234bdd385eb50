/// One MQTT message on the command path, passed along explicitly (never kept on the bridge): where its answers
/// go besides the result topic, and the inbox row it still holds. The first result stored for it removes the row in
/// the same transaction (`takeInboxRow`); a message that needs no result has its row removed when its handling ends.
final class Inbound {
    /// The v5 Response Topic (checked) and Correlation Data: the command and every result go there too.
    let reply: ReplyAddress?
    /// The inbox row not consumed yet.
    private(set) var inboxRow: Int64?

    init(inboxRow: Int64?, reply: ReplyAddress?) {
        self.inboxRow = inboxRow
        self.reply = reply
    }

    /// The row for the transaction that stores the first result; nil once taken.
    func takeInboxRow() -> Int64? {
        defer { inboxRow = nil }
        return inboxRow
    }

    /// Puts a taken row back (the transaction failed: the row is still in the inbox).
    func restore(_ row: Int64?) { if inboxRow == nil { inboxRow = row } }
}

/// The first step of the command path: what an MQTT message on a `…/set` topic is, before any device is looked
/// at. Pure rules of the MQTT contract (JSON object, the `id`, retained commands, `valid_for_s`). Public for the
/// fuzz targets (`Fuzz/`), which feed it hostile payloads.
public enum CommandIntake {
    public enum Outcome: Equatable, Sendable {
        /// Not a command topic of this layout.
        case notCommand
        /// An empty payload: how MQTT deletes a retained message (we send one ourselves when clearing a retained
        /// command). It is not a command.
        case deletion
        /// Refused before anything else; `clearRetained` when the message was retained and must be deleted.
        case rejected(Target, id: String?, CommandRejection, clearRetained: Bool)
        case command(Target, id: String?, body: [String: JSONValue])
    }

    /// Longest `id` accepted, in bytes.
    public static let maxIdBytes = 128

    public static func parse(_ m: MQTTMessage, topics: TopicLayout, maxPayloadBytes: Int = MQTTConfig.defaultMaxPayloadBytes) -> Outcome {
        guard let (device, node, capability) = topics.parseCommand(m.topic) else { return .notCommand }
        let target = Target(device: device, node: node, capability: capability)
        func reject(_ id: String?, _ code: ResultCode, _ message: String) -> Outcome {
            .rejected(target, id: id, CommandRejection(code, message), clearRetained: m.retained)
        }
        // Refused before parsing (and, by the MQTT client, before copying or persisting): its id is not read.
        if let size = m.oversize ?? (m.payload.count > maxPayloadBytes ? m.payload.count : nil) {
            return reject(nil, .payloadTooLarge, "payload of \(size) bytes is above the limit of \(maxPayloadBytes) bytes (mqtt.max_payload_bytes)")
        }
        if m.payload.isEmpty { return .deletion }
        let body: [String: JSONValue]
        do {
            guard case .object(let o) = try JSONValue.parse(m.payload, limits: .commands) else {
                return reject(nil, .invalidPayload, "command must be a JSON object")
            }
            body = o
        } catch  where error.overLimit {
            return reject(nil, .payloadTooLarge, "payload is too complex: \(error)")
        } catch {
            return reject(nil, .invalidPayload, "payload is not JSON: \(error)")
        }
        var id: String?
        if let v = body["id"] {
            if let s = v.stringValue, !s.isEmpty, s.utf8.count <= maxIdBytes {
                id = s
            } else if case .number = v {
                // Ids are strings: a number would come back as a string (4711 → "4711") and a client matching
                // results by JSON value would miss it. Refused, with the id echoed exactly as sent.
                return .rejected(
                    target, id: nil,
                    CommandRejection(
                        .invalidPayload, "\"id\" must be a string: send \"\(v.serialized)\" instead of \(v.serialized)",
                        idAsSent: v), clearRetained: m.retained)
            } else {
                return reject(nil, .invalidPayload, "\"id\" must be a non-empty string of at most \(maxIdBytes) bytes")
            }
        }
        if m.retained {
            return reject(id, .retainedCommand, "retained commands are never executed; publish commands without the retain flag")
        }
        return .command(target, id: id, body: body)
    }

    /// Longest v5 Response Topic accepted, in bytes.
    public static let maxResponseTopicBytes = 256

    /// The v5 Response Topic and Correlation Data of a command message, checked: the daemon publishes there
    /// on the sender's word, so it must be a plain topic (no wildcards, not `$…`) outside the daemon's own
    /// namespaces (`forbiddenPrefixes`: its base topic and the discovery prefix), or any client allowed to
    /// send commands could forge device state or Home Assistant configs.
    public static func replyAddress(_ m: MQTTMessage, forbiddenPrefixes: [String]) -> Result<ReplyAddress?, CommandRejection> {
        guard let topic = m.responseTopic else { return .success(nil) }
        func refuse(_ why: String) -> Result<ReplyAddress?, CommandRejection> {
            .failure(CommandRejection(.invalidPayload, "response topic \(why)"))
        }
        if topic.isEmpty { return refuse("is empty") }
        if topic.utf8.count > maxResponseTopicBytes { return refuse("is longer than \(maxResponseTopicBytes) bytes") }
        if topic.contains("+") || topic.contains("#") { return refuse("must not contain wildcards (+ or #)") }
        if topic.hasPrefix("$") { return refuse("must not start with $") }
        if topic.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return refuse("must not contain control characters") }
        for p in forbiddenPrefixes where topic == p || topic.hasPrefix(p + "/") {
            return refuse("must not be under \"\(p)/\" (the bridge's own topics); use a topic of your own, e.g. \"ems/replies\"")
        }
        return .success(ReplyAddress(topic: topic, correlationData: m.correlationData))
    }

    /// How long a command may wait: its `valid_for_s`, else `defaultS`.
    public static func validity(_ body: [String: JSONValue], default defaultS: Double) -> Result<Double, CommandRejection> {
        guard let v = body["valid_for_s"] else { return .success(defaultS) }
        guard let d = v.doubleValue else {
            return .failure(CommandRejection(.invalidPayload, "\"valid_for_s\" must be a number of seconds"))
        }
        guard d >= 1 && d <= 604_800 else {
            return .failure(CommandRejection(.outOfRange, "\"valid_for_s\" must be 1…604800, got \(JSONValue.format(d))"))
        }
        return .success(d)
    }

    /// The command's parameters: its body without the envelope members.
    public static func parameters(_ body: [String: JSONValue]) -> [String: JSONValue] {
        var params = body
        params["id"] = nil
        params["valid_for_s"] = nil
        return params
    }

    /// A generated correlation id for commands that came without one.
    static func newId() -> String {
        let v = UInt64.random(in: 0...UInt64.max)
        let hex = String(v, radix: 16)
        return "hb-" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}

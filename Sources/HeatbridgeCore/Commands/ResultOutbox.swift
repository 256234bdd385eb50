import Logging

/// The outbox of the MQTT contract's results: every result is written to the store (with the command's new
/// state and, for its first answer, the consumption of its inbox row, in one transaction) before it is
/// published, so one the broker never took is sent again after the next connect or restart (`flushUnpublished`).
/// A terminal result the store refuses is kept (`unrecorded`) and written before anything else is sent, since a
/// restart would otherwise resume the command and send it again.
///
/// It owns no timer and no readiness: each call says what the store did (`Emitted.store`), and the bridge keeps
/// its health from that. A value on the bridge's actor, like the other books.
struct ResultOutbox {
    let store: any StatePort
    let mqtt: any MQTTPort
    let topics: TopicLayout
    let logger: Logger
    /// The last commands and their results, for the status page and the `status` request.
    private(set) var recent = RecentCommands()
    /// Terminal results the store refused, by command id.
    private(set) var unrecorded: [String: UnrecordedResult] = [:]

    init(store: any StatePort, mqtt: any MQTTPort, topics: TopicLayout, logger: Logger) {
        self.store = store
        self.mqtt = mqtt
        self.topics = topics
        self.logger = logger
    }

    /// What the store did with a write.
    enum StoreEffect {
        /// Nothing was written.
        case untouched
        case worked
        case failed(any Error)
    }

    /// The outcome of one result.
    struct Emitted {
        /// The store has it (false: it was published unrecorded, or, for a command's first answer, not at all).
        var stored: Bool
        var store: StoreEffect
        /// The retained `bridge/last_result` summary, when the result ended its command.
        var ended: JSONValue?
    }

    /// Results of commands the bridge issued itself say so (`"source":"trigger:<name>"`); MQTT commands' do not.
    static func sourceExtra(_ source: CommandSource) -> [String: JSONValue] { source == .mqtt ? [:] : ["source": .string(source.rawValue)] }

    // MARK: the contract's results

    /// A new command's first answer (`accepted`), stored with the command itself and its inbox row consumed. On a
    /// store failure nothing is published: the caller rejects the command `STORE_FAILED`.
    mutating func accepted(_ c: Command, inbound: Inbound?, at now: EpochSeconds, extra: [String: JSONValue]) -> Emitted {
        let payload = CommandResultPayload.make(id: c.id, status: .accepted, code: nil, message: nil, at: now, extra: extra)
        return emit(
            commandId: c.id, topic: c.resultTopic(topics), payload: payload, reply: c.reply, command: c, isNew: true, inbound: inbound, at: now)
    }

    /// A refused command's only answer, on the topic it was sent to (sanitised) and its response topic.
    mutating func rejected(_ target: Target, id: String, _ r: CommandRejection, source: CommandSource, inbound: Inbound?, at now: EpochSeconds)
        -> Emitted
    {
        let topic = topics.result(
            device: TopicLayout.sanitize(target.device), node: TopicLayout.sanitize(target.node),
            capability: TopicLayout.sanitize(target.capability))
        var extra = Self.sourceExtra(source)
        if let sent = r.idAsSent { extra["id"] = sent }
        let payload = CommandResultPayload.make(id: id, status: .rejected, code: r.code, message: r.message, at: now, extra: extra)
        return emit(
            commandId: id, topic: topic, payload: payload, reply: source == .mqtt ? inbound?.reply : nil, command: nil, isNew: false,
            inbound: inbound, at: now)
    }

    /// `c` (already carrying its new status) recorded together with its result.
    mutating func result(
        _ c: Command, _ status: CommandStatus, code: ResultCode?, message: String?, extra: [String: JSONValue],
        at now: EpochSeconds
    ) -> Emitted {
        let payload = CommandResultPayload.make(
            id: c.id, status: status, code: code, message: message, at: now,
            extra: extra.merging(Self.sourceExtra(c.source)) { a, _ in a })
        return emit(commandId: c.id, topic: c.resultTopic(topics), payload: payload, reply: c.reply, command: c, isNew: false, inbound: nil, at: now)
    }

    /// A delivery report while the command runs. Stored and published like every result, but the command's own
    /// row keeps its status, so a restart still finds it open.
    mutating func progress(_ c: Command, _ progress: JSONValue, message: String?, at now: EpochSeconds) -> Emitted {
        let payload = CommandResultPayload.make(
            id: c.id, status: .progress, code: nil, message: message, at: now,
            extra: ["progress": progress].merging(Self.sourceExtra(c.source)) { a, _ in a })
        return emit(
            commandId: c.id, topic: c.resultTopic(topics), payload: payload, reply: c.reply, command: nil, isNew: false, inbound: nil, at: now)
    }

    /// The same command again (a broker redelivery, or the sender's retry): told where it is under a status of its
    /// own (`repeated`), never a second first answer, and not stored (it changes nothing).
    func repeated(_ prior: PriorCommand, target: Target, id: String, inbound: Inbound?, at now: EpochSeconds) {
        let current = prior.lastResult.flatMap { try? JSONValue.parse($0.payload) } ?? .null
        let payload = CommandResultPayload.repeated(id: id, current: current, firstAt: prior.command.receivedAt, at: now)
        let topic =
            prior.lastResult?.topic
            ?? topics.result(
                device: TopicLayout.sanitize(target.device), node: TopicLayout.sanitize(target.node),
                capability: TopicLayout.sanitize(target.capability))
        mqtt.publish(topic: topic, payload: payload.bytes, qos: 1, retain: false)
        if let reply = inbound?.reply { mqtt.publishReply(topic: reply.topic, payload: payload.bytes, correlationData: reply.correlationData) }
    }

    // MARK: the protocol

    /// Stores, then publishes. A first answer (`isNew`) the store refuses is not published.
    private mutating func emit(
        commandId: String, topic: String, payload: JSONValue, reply: ReplyAddress?, command: Command?, isNew: Bool,
        inbound: Inbound?, at now: EpochSeconds
    ) -> Emitted {
        let bytes = payload.bytes
        recent.record(commandId: commandId, topic: topic, payload: payload, base: topics.base, at: now)
        var rowId: Int64?
        var replyRow: Int64?
        var effect = StoreEffect.worked
        let inboxRow = inbound?.takeInboxRow()
        do {
            (rowId, replyRow) = try store.appendResult(
                commandId: commandId, topic: topic, payload: bytes, reply: reply, command: command,
                isNew: isNew, inboxRow: inboxRow)
        } catch {
            inbound?.restore(inboxRow)
            logger.error("cannot persist result", metadata: ["id": "\(commandId)", "error": "\(error)"])
            if isNew { return Emitted(stored: false, store: .failed(error)) }
            effect = .failed(error)
        }
        var ended: JSONValue?
        if let st = payload["status"]?.stringValue, CommandStatus(rawValue: st)?.isTerminal == true {
            // Retained summary of the last command that ended, e.g. for a Home Assistant sensor.
            var target = String(topic.dropFirst(topics.base.count + 1))
            if target.hasSuffix("/result") { target.removeLast("/result".count) }
            var last = payload.objectValue ?? [:]
            last["target"] = .string(target)
            ended = .object(last)
        }
        let published = mqtt.publish(topic: topic, payload: bytes, qos: 1, retain: false)
        if published, let rowId { markPublished(rowId, commandId) }
        let replied = reply.map { mqtt.publishReply(topic: $0.topic, payload: bytes, correlationData: $0.correlationData) } ?? false
        if replied, let replyRow { markPublished(replyRow, commandId) }
        if rowId == nil, let command, command.status.isTerminal {
            // The command ended (its cloud call may have succeeded) but the store still has it open: a restart
            // would resume it and send it again. Kept until the store takes it (`recordUnrecorded`).
            unrecorded[commandId] = UnrecordedResult(
                command: command, topic: topic, payload: bytes, reply: reply,
                published: published, replied: replied)
        }
        return Emitted(stored: rowId != nil, store: effect, ended: ended)
    }

    private func markPublished(_ row: Int64, _ commandId: String) {
        do {
            try store.markResultPublished(row)
        } catch {
            logger.error("cannot mark result published", metadata: ["id": "\(commandId)", "error": "\(error)"])
        }
    }

    /// Writes the terminal results the store refused earlier, oldest command first; each that lands is marked as
    /// published where it was. What still fails stays for the next try.
    mutating func recordUnrecorded() -> StoreEffect {
        guard !unrecorded.isEmpty else { return .untouched }
        for (id, u) in unrecorded.sorted(by: { $0.value.command.receivedAt < $1.value.command.receivedAt }) {
            do {
                let (row, replyRow) = try store.appendResult(
                    commandId: id, topic: u.topic, payload: u.payload, reply: u.reply, command: u.command,
                    isNew: false, inboxRow: nil)
                unrecorded[id] = nil
                logger.notice("result recorded late: the store refused it when the command ended", metadata: ["id": "\(id)"])
                if u.published { markPublished(row, id) }
                if u.replied, let replyRow { markPublished(replyRow, id) }
            } catch {
                return .failed(error)
            }
        }
        return .worked
    }

    /// Sends again every stored result the broker has not taken (after a connect: a restarted broker may have lost
    /// them), until the first the client cannot hand over.
    func flushUnpublished() {
        do {
            for r in try store.unpublishedResults() {
                let sent =
                    r.reply.map { mqtt.publishReply(topic: $0.topic, payload: r.payload, correlationData: $0.correlationData) }
                    ?? mqtt.publish(topic: r.topic, payload: r.payload, qos: 1, retain: false)
                guard sent else { return }
                // At-least-once: the broker may have had it already (the daemon stopped before marking it); the
                // same bytes again, which a client tells by their identity, not a new answer.
                let j = try? JSONValue.parse(r.payload)
                logger.info(
                    "result sent again from the outbox",
                    metadata: ["id": "\(j?["id"]?.stringValue ?? "?")", "status": "\(j?["status"]?.stringValue ?? "?")"])
                try store.markResultPublished(r.rowId)
            }
        } catch {
            logger.error("cannot read pending results from the store", metadata: ["error": "\(error)"])
        }
    }
}

/// A terminal result the store could not take when it was published.
struct UnrecordedResult: Sendable {
    var command: Command
    var topic: String
    var payload: [UInt8]
    var reply: ReplyAddress?
    var published: Bool
    var replied: Bool
}

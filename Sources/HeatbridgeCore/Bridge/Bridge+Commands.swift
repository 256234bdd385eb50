/// Where messages meet the command path: every MQTT message is routed here (push events, bridge requests, Home
/// Assistant's status, trigger conditions, commands); a command goes on to `CommandPipeline` with its `Inbound`
/// (inbox row and reply address). The bridge is the pipeline's `CommandHost`.
extension Bridge: CommandHost {
    func handleMessage(_ m: MQTTMessage) {
        var reply: ReplyAddress?
        var badReply: CommandRejection?
        switch CommandIntake.replyAddress(m, forbiddenPrefixes: [topics.base] + (discovery.prefix.map { [$0] } ?? [])) {
        case .success(let r): reply = r
        case .failure(let r): badReply = r
        }
        let inbound = Inbound(inboxRow: m.inboxRow, reply: reply)
        var keepInInbox = false
        defer {
            // Every way out of here either stored a result (which consumed the row) or needs none.
            if !keepInInbox, let row = inbound.takeInboxRow() {
                do { try store.inboxRemove(row) } catch {
                    logger.error("cannot clear the command inbox", metadata: ["error": "\(error)"])
                }
            }
        }
        if let (vendor, vendorId) = topics.parsePush(m.topic) { return live.handlePush(m, vendor: vendor, vendorId: vendorId, host: self) }
        if let name = topics.parseBridgeRequest(m.topic) { return RequestDesk.handle(m, name: name, host: self) }
        if m.topic == discovery.statusTopic {
            if String(decoding: m.payload, as: UTF8.self) == "online" { scheduleRediscovery() }
            return
        }
        if !m.payload.isEmpty { automation.evaluateConditions(m, host: self) }
        let outcome = CommandIntake.parse(m, topics: topics, maxPayloadBytes: settings.maxPayloadBytes)
        switch outcome {
        case .notCommand, .deletion:
            return
        case .rejected(let target, let id, let rejection, let clear):
            commands.reject(target, id: id, rejection, inbound: inbound, host: self)
            if clear { mqtt.publish(topic: m.topic, payload: [], qos: 1, retain: true) }
        case .command(let target, let id, _) where badReply != nil:
            // A refused response topic is not answered there: the rejection goes to the result topic only.
            commands.reject(target, id: id, badReply!, inbound: Inbound(inboxRow: inbound.takeInboxRow(), reply: nil), host: self)
        case .command(let target, let id, let body):
            if (devices[target.device] == nil || target.isGroup) && !allFirstPollsDone {
                deferred.append(m)
                keepInInbox = true  // still to be handled
                return
            }
            commands.submit(target, id: id, body: body, inbound: inbound, source: .mqtt, now: clock.now(), host: self)
        }
    }

    var allFirstPollsDone: Bool { book.firstPollDone.count >= accounts.count }

    // MARK: CommandHost

    /// Issues a command the bridge decided on itself (trigger, lease, limit).
    func submit(_ s: Submission) { commands.submit(s, host: self) }

    /// Runs the next command of `device`, unless one is running (`CommandPipeline.pump`).
    func pump(_ device: String) { commands.pump(device, host: self) }

    func startExecution(_ c: Command) {
        spawner.spawn { await self.execute(c) }
    }

    private func execute(_ c: Command) async { await commands.execute(c, host: self) }

    func wake(_ device: String, at: EpochSeconds) { timers.scheduleEarliest(.wake(device: device), at: at) }

    func reportProgress(_ c: Command, _ progress: JSONValue, message: String?) {
        commands.publishProgress(c, progress, message: message, host: self)
    }

    func publishLastResult(_ summary: JSONValue) { retained.publish(topics.bridgeLastResult, summary) }

    func answerLocally(
        _ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry, now: EpochSeconds,
        validFor: Double, source: CommandSource, inbound: Inbound?
    ) -> Bool {
        LocalAnswers.answer(target, id: id, params: params, entry: entry, now: now, validFor: validFor, source: source, inbound: inbound, host: self)
    }

    func localDefault(_ d: LocalDefault, device: String, node: String) -> Int {
        localSettings[LocalAnswers.storageKey(d, device: device, node: node)]?.intValue ?? d.initial
    }
}

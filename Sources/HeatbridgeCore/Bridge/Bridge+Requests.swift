/// The bridge request API (`BridgeRequests`) and the one status document it, the status page and `/metrics`
/// are made from.
extension Bridge {
    func handleRequest(_ m: MQTTMessage, name: String) {
        if m.retained && m.payload.isEmpty { return }  // a retained request being cleared
        let responseName = BridgeRequests.responseName(name)
        var reply: ReplyAddress?
        if case .success(let r) = CommandIntake.replyAddress(m, forbiddenPrefixes: [topics.base]) { reply = r }
        let answer: JSONValue
        switch BridgeRequests.parse(m, name: name, maxPayloadBytes: settings.maxPayloadBytes) {
        case .failure(let f):
            answer = BridgeRequests.error(f)
            if f.code == .retainedRequest { mqtt.publish(topic: m.topic, payload: [], qos: 1, retain: true) }
            logger.notice("bridge request refused", metadata: ["request": "\(responseName)", "code": "\(f.code.rawValue)"])
        case .success(let r):
            switch carryOut(r) {
            case .success(let data): answer = BridgeRequests.ok(data, transaction: r.transaction)
            case .failure(var f):
                f.transaction = r.transaction
                answer = BridgeRequests.error(f)
            }
            logger.info("bridge request", metadata: ["request": "\(r.name)", "status": "\(answer["status"]?.stringValue ?? "")"])
        }
        let bytes = answer.bytes
        mqtt.publish(topic: topics.bridgeResponse(responseName), payload: bytes, qos: 1, retain: false)
        if let reply { _ = mqtt.publishReply(topic: reply.topic, payload: bytes, correlationData: reply.correlationData) }
    }

    func carryOut(_ r: BridgeRequests.Parsed) -> Result<JSONValue, BridgeRequests.Failure> {
        switch r.name {
        case "status": return .success(statusDocument())
        case "health_check": return .success(healthCheck())
        case "poll": return pollRequest(r.body)
        case "config":
            guard let doc = settings.configDocument else { return .failure(.init(.unsupported, "this bridge was started without a config file")) }
            return .success(["hash": .string(settings.configHash), "config": doc])
        case "log_level": return logLevelRequest(r.body)
        default: return .failure(.init(.unknownRequest, "unknown request \"\(r.name)\""))
        }
    }

    /// Healthy: the store writes, the broker is connected, and no account is locked out or offline.
    public func healthCheck() -> JSONValue {
        var problems: [String] = []
        if !storeHealth.writable { problems.append("the store cannot write") }
        if !mqttConnected { problems.append("the broker is not connected") }
        for a in settings.accounts {
            let state = book.status[a.name]?.state
            if state == .offline || state == .authRequired { problems.append("account \(a.name) is \(state!.rawValue)") }
        }
        return ["healthy": .bool(problems.isEmpty), "problems": .array(problems.map { .string($0) }),
                "uptime_s": .number((clock.now() - startedAt).rounded())]
    }

    /// `poll`: `{}` every account, `{"account": name}` one, `{"device": id}` one device's read-back. Each account
    /// at most once per `pollMinGapS`; the reads themselves still take their place in the rate budget.
    func pollRequest(_ body: [String: JSONValue]) -> Result<JSONValue, BridgeRequests.Failure> {
        var names: [String]
        var device: String?
        if let d = body["device"] {
            guard let id = d.stringValue, let entry = devices[id] else {
                return .failure(.init(.unknownTarget, "unknown device \(d.stringValue.map { "\"\(String($0.prefix(64)))\"" } ?? "(not a string)")"))
            }
            device = id
            names = [entry.account]
        } else if let a = body["account"] {
            guard let name = a.stringValue, accounts[name] != nil else {
                return .failure(.init(.unknownTarget, "unknown account; accounts: \(settings.accounts.map(\.name).joined(separator: ", "))"))
            }
            names = [name]
        } else {
            names = settings.accounts.map(\.name)
        }
        if let (name, wait) = poller.readOnRequest(names, device: device, host: self) {
            return .failure(.init(.rateLimited, "account \(name) was polled on request \(Int(BridgeRequests.pollMinGapS - wait)) s ago",
                                  extra: ["retry_after_s": .number(wait.rounded(.up))]))
        }
        var data: [String: JSONValue] = ["accounts": .array(names.map { .string($0) })]
        if let device { data["device"] = .string(device) }
        return .success(.object(data))
    }

    func logLevelRequest(_ body: [String: JSONValue]) -> Result<JSONValue, BridgeRequests.Failure> {
        guard let control = settings.logLevel else { return .failure(.init(.unsupported, "this bridge's log level is fixed")) }
        let parsed: (level: String?, durationS: Double)
        switch BridgeRequests.logLevel(body) {
        case .success(let p): parsed = p
        case .failure(let f): return .failure(f)
        }
        control.set(parsed.level)
        var data: [String: JSONValue] = ["level": .string(control.current())]
        if parsed.level != nil {
            let until = clock.now() + parsed.durationS
            timers.schedule(.logLevelBack, at: until)
            data["until"] = .string(Timestamp.iso8601(until))
            logger.notice("log level raised on request", metadata: ["level": "\(control.current())", "until": "\(Timestamp.iso8601(until))"])
        } else {
            timers.cancel(.logLevelBack)
        }
        return .success(.object(data))
    }

    func logLevelBack() {
        settings.logLevel?.set(nil)
        logger.notice("log level back to the config's", metadata: ["level": "\(settings.logLevel?.current() ?? "")"])
    }

    /// One snapshot of the bridge: what `bridge/request/status` answers, and what the status page and `/metrics`
    /// render. Holds no secret: account errors are the clouds' words, which never carry a key.
    public func statusDocument() -> JSONValue {
        let now = clock.now()
        var accountList: [JSONValue] = []
        for a in settings.accounts {
            var o: [String: JSONValue] = ["name": .string(a.name), "vendor": .string(a.vendor)]
            if let s = book.status[a.name] {
                let (payload, _) = AccountBook.payload(s, keyExpiry: a.adapter.credentialExpiry(), notVisible: book.notVisible[a.name] ?? [], now: now)
                for (k, v) in payload.objectValue ?? [:] { o[k] = v }
            }
            if let p = live.pushJSON(a.name, host: self) { o["push"] = p }
            o["stats"] = book.healthJSON(accounts: [a.name])[a.name] ?? .null
            accountList.append(.object(o))
        }
        let deviceList: [JSONValue] = devices.ids.compactMap { id in
            guard let e = devices[id] else { return nil }
            let s = e.snapshot
            // The name Home Assistant shows for it, so the page and the dashboard agree.
            let name = accounts[e.account]?.adapter.frontEndName(s).name
            return ["id": .string(id), "name": .string(name), "account": .string(e.account),
                    "vendor": .string(accounts[e.account]?.vendor), "model": .string(s.model),
                    "online": s.online.map(JSONValue.bool) ?? .null, "source": .string(e.source),
                    "updated_at": .string(Timestamp.iso8601(e.updatedAt)), "age_s": .number((now - e.updatedAt).rounded()),
                    "stale": .bool(now - e.updatedAt > live.staleAfter(account: e.account, host: self)),
                    "error": s.error.map { ["code": .string($0.code.rawValue), "message": .string($0.message)] } ?? .null,
                    "nodes": .array(s.nodes.keys.sorted().map { .string($0) })]
        }
        return ["version": .string(settings.version), "config_hash": .string(settings.configHash),
                "started_at": .string(Timestamp.iso8601(startedAt)), "now": .string(Timestamp.iso8601(now)),
                "health": healthJSON(), "accounts": .array(accountList), "devices": .array(deviceList),
                "commands": commands.outbox.recent.json, "commands_ended": commands.outbox.recent.endedJSON, "log_level": .string(settings.logLevel?.current())]
    }
}

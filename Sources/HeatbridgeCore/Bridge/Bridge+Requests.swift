/// The one status document the bridge request API, the status page and `/metrics` are made from, and the bridge as
/// `RequestDesk`'s host.
extension Bridge: RequestHost {
    func publish(_ topic: String, _ payload: [UInt8], retain: Bool) { mqtt.publish(topic: topic, payload: payload, qos: 1, retain: retain) }

    func publishReply(_ reply: ReplyAddress, _ payload: [UInt8]) {
        _ = mqtt.publishReply(topic: reply.topic, payload: payload, correlationData: reply.correlationData)
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

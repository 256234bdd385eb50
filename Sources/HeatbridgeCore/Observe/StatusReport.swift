/// What the bridge says about itself, computed from its state: `bridge/info`, `bridge/health`, the `health_check`
/// answer and the status document (the `status` request, the status page and `/metrics` render it). Holds no
/// secret: account errors are the clouds' words, which never carry a key.
enum StatusReport {
    /// `bridge/info`: version, config, accounts, devices, what a client may send.
    static func info(host: isolated some StatusHost) -> JSONValue {
        let accountList: [JSONValue] = host.settings.accounts.map { a in
            ["name": .string(a.name), "vendor": .string(a.vendor), "state": .string(host.book.status[a.name]?.state.rawValue)]
        }
        let info: JSONValue = [
            "version": .string(host.settings.version),
            "started_at": .string(Timestamp.iso8601(host.startedAt)),
            "config_hash": .string(host.settings.configHash),
            "accounts": .array(accountList),
            "devices": .array(host.devices.ids.map { .string($0) }),
            // What a client may send: a burst beyond the window waits at the broker (max_queued_messages).
            "mqtt": ["receive_maximum": .int(MQTTConnectLimits.receiveMaximum), "max_payload_bytes": .int(host.settings.maxPayloadBytes)],
        ]
        return info
    }

    /// `bridge/health`'s payload, also part of the status document.
    static func health(host: isolated some StatusHost) -> JSONValue {
        var o = host.processStats()
        o["uptime_s"] = .number((host.clock.now() - host.startedAt).rounded())
        // Ready: the bridge can take commands and keep its promises (a store that cannot write cannot).
        o["ready"] = .bool(host.storeHealth.writable)
        o["store"] = store(o["store"], host: host)
        o["outbox_depth"] = .int(host.commands.queue.depth)
        var perAccount = host.book.healthJSON(accounts: host.settings.accounts.map(\.name)).objectValue ?? [:]
        for a in host.settings.accounts {
            if let p = host.live.pushJSON(a.name, host: host), case .object(var ao)? = perAccount[a.name] {
                ao["push"] = p
                perAccount[a.name] = .object(ao)
            }
        }
        o["accounts"] = .object(perAccount)
        let m = host.mqttCounters
        o["mqtt"] = [
            "connects": .int(m.connects), "published": .int(m.published), "publish_failures": .int(m.publishFailures),
            "received": .int(m.received),
        ]
        return .object(o)
    }

    /// The store's part of `bridge/health`, over what the store reports of itself.
    static func store(_ reported: JSONValue?, host: isolated some StatusHost) -> JSONValue {
        var o = reported?.objectValue ?? [:]
        o["writable"] = .bool(host.storeHealth.writable)
        if let p = host.storeHealth.problem { o["problem"] = .string(p) }
        if let since = host.storeHealth.since { o["not_writable_since"] = .string(Timestamp.iso8601(since)) }
        if !host.commands.outbox.unrecorded.isEmpty { o["unrecorded_results"] = .int(host.commands.outbox.unrecorded.count) }
        return .object(o)
    }

    /// Healthy: the store writes, the broker is connected, and no account is locked out or offline.
    static func healthCheck(host: isolated some StatusHost) -> JSONValue {
        var problems: [String] = []
        if !host.storeHealth.writable { problems.append("the store cannot write") }
        if !host.mqttConnected { problems.append("the broker is not connected") }
        for a in host.settings.accounts {
            let state = host.book.status[a.name]?.state
            if state == .offline || state == .authRequired { problems.append("account \(a.name) is \(state!.rawValue)") }
        }
        return [
            "healthy": .bool(problems.isEmpty), "problems": .array(problems.map { .string($0) }),
            "uptime_s": .number((host.clock.now() - host.startedAt).rounded()),
        ]
    }

    /// One snapshot of the bridge: what `bridge/request/status` answers, and what the status page and `/metrics`
    /// render. Holds no secret: account errors are the clouds' words, which never carry a key.
    static func document(host: isolated some StatusHost) -> JSONValue {
        let now = host.clock.now()
        var accountList: [JSONValue] = []
        for a in host.settings.accounts {
            var o: [String: JSONValue] = ["name": .string(a.name), "vendor": .string(a.vendor)]
            if let s = host.book.status[a.name] {
                let (payload, _) = AccountBook.payload(
                    s, keyExpiry: a.adapter.credentialExpiry(), notVisible: host.book.notVisible[a.name] ?? [], now: now)
                for (k, v) in payload.objectValue ?? [:] { o[k] = v }
            }
            if let p = host.live.pushJSON(a.name, host: host) { o["push"] = p }
            o["stats"] = host.book.healthJSON(accounts: [a.name])[a.name] ?? .null
            accountList.append(.object(o))
        }
        let deviceList: [JSONValue] = host.devices.ids.compactMap { id in
            guard let e = host.devices[id] else { return nil }
            let s = e.snapshot
            // The name Home Assistant shows for it, so the page and the dashboard agree.
            let name = host.accounts[e.account]?.adapter.frontEndName(s).name
            return [
                "id": .string(id), "name": .string(name), "account": .string(e.account),
                "vendor": .string(host.accounts[e.account]?.vendor), "model": .string(s.model),
                "online": s.online.map(JSONValue.bool) ?? .null, "source": .string(e.source),
                "updated_at": .string(Timestamp.iso8601(e.updatedAt)), "age_s": .number((now - e.updatedAt).rounded()),
                "stale": .bool(now - e.updatedAt > host.live.staleAfter(account: e.account, host: host)),
                "error": s.error.map { ["code": .string($0.code.rawValue), "message": .string($0.message)] } ?? .null,
                "nodes": .array(s.nodes.keys.sorted().map { .string($0) }),
            ]
        }
        return [
            "version": .string(host.settings.version), "config_hash": .string(host.settings.configHash),
            "started_at": .string(Timestamp.iso8601(host.startedAt)), "now": .string(Timestamp.iso8601(now)),
            "health": health(host: host), "accounts": .array(accountList), "devices": .array(deviceList),
            "commands": host.commands.outbox.recent.json, "commands_ended": host.commands.outbox.recent.endedJSON,
            "log_level": .string(host.settings.logLevel?.current()),
        ]
    }
}

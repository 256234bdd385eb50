import Logging

/// The bridge request API carried out (`<base>/bridge/request/<name>` → `<base>/bridge/response/<name>`): parsed and
/// bounded by `BridgeRequests`, answered from the host's status document, health, poller and log level.
enum RequestDesk {
    static func handle(_ m: MQTTMessage, name: String, host: isolated some RequestHost) {
        if m.retained && m.payload.isEmpty { return }  // a retained request being cleared
        let responseName = BridgeRequests.responseName(name)
        var reply: ReplyAddress?
        if case .success(let r) = CommandIntake.replyAddress(m, forbiddenPrefixes: [host.topics.base]) { reply = r }
        let answer: JSONValue
        switch BridgeRequests.parse(m, name: name, maxPayloadBytes: host.settings.maxPayloadBytes) {
        case .failure(let f):
            answer = BridgeRequests.error(f)
            if f.code == .retainedRequest { host.publish(m.topic, [], retain: true) }
            host.logger.notice("bridge request refused", metadata: ["request": "\(responseName)", "code": "\(f.code.rawValue)"])
        case .success(let r):
            switch carryOut(r, host: host) {
            case .success(let data): answer = BridgeRequests.ok(data, transaction: r.transaction)
            case .failure(var f):
                f.transaction = r.transaction
                answer = BridgeRequests.error(f)
            }
            host.logger.info("bridge request", metadata: ["request": "\(r.name)", "status": "\(answer["status"]?.stringValue ?? "")"])
        }
        let bytes = answer.bytes
        host.publish(host.topics.bridgeResponse(responseName), bytes, retain: false)
        if let reply { host.publishReply(reply, bytes) }
    }

    static func carryOut(_ r: BridgeRequests.Parsed, host: isolated some RequestHost) -> Result<JSONValue, BridgeRequests.Failure> {
        switch r.name {
        case "status": return .success(host.statusDocument())
        case "health_check": return .success(host.healthCheck())
        case "poll": return pollRequest(r.body, host: host)
        case "config":
            guard let doc = host.settings.configDocument else {
                return .failure(.init(.unsupported, "this bridge was started without a config file"))
            }
            return .success(["hash": .string(host.settings.configHash), "config": doc])
        case "log_level": return logLevelRequest(r.body, host: host)
        default: return .failure(.init(.unknownRequest, "unknown request \"\(r.name)\""))
        }
    }

    /// `poll`: `{}` every account, `{"account": name}` one, `{"device": id}` one device's read-back. Each account
    /// at most once per `pollMinGapS`; the reads themselves still take their place in the rate budget.
    static func pollRequest(_ body: [String: JSONValue], host: isolated some RequestHost) -> Result<JSONValue, BridgeRequests.Failure> {
        var names: [String]
        var device: String?
        if let d = body["device"] {
            guard let id = d.stringValue, let entry = host.devices[id] else {
                return .failure(.init(.unknownTarget, "unknown device \(d.stringValue.map { "\"\(String($0.prefix(64)))\"" } ?? "(not a string)")"))
            }
            device = id
            names = [entry.account]
        } else if let a = body["account"] {
            guard let name = a.stringValue, host.accounts[name] != nil else {
                return .failure(.init(.unknownTarget, "unknown account; accounts: \(host.settings.accounts.map(\.name).joined(separator: ", "))"))
            }
            names = [name]
        } else {
            names = host.settings.accounts.map(\.name)
        }
        if let (name, wait) = host.poller.readOnRequest(names, device: device, host: host) {
            return .failure(
                .init(
                    .rateLimited, "account \(name) was polled on request \(Int(BridgeRequests.pollMinGapS - wait)) s ago",
                    extra: ["retry_after_s": .number(wait.rounded(.up))]))
        }
        var data: [String: JSONValue] = ["accounts": .array(names.map { .string($0) })]
        if let device { data["device"] = .string(device) }
        return .success(.object(data))
    }

    static func logLevelRequest(_ body: [String: JSONValue], host: isolated some RequestHost) -> Result<JSONValue, BridgeRequests.Failure> {
        guard let control = host.settings.logLevel else { return .failure(.init(.unsupported, "this bridge's log level is fixed")) }
        let parsed: (level: String?, durationS: Double)
        switch BridgeRequests.logLevel(body) {
        case .success(let p): parsed = p
        case .failure(let f): return .failure(f)
        }
        control.set(parsed.level)
        var data: [String: JSONValue] = ["level": .string(control.current())]
        if parsed.level != nil {
            let until = host.clock.now() + parsed.durationS
            host.timers.schedule(.logLevelBack, at: until)
            data["until"] = .string(Timestamp.iso8601(until))
            host.logger.notice("log level raised on request", metadata: ["level": "\(control.current())", "until": "\(Timestamp.iso8601(until))"])
        } else {
            host.timers.cancel(.logLevelBack)
        }
        return .success(.object(data))
    }

    static func logLevelBack(host: isolated some RequestHost) {
        host.settings.logLevel?.set(nil)
        host.logger.notice("log level back to the config's", metadata: ["level": "\(host.settings.logLevel?.current() ?? "")"])
    }
}

/// Persisted state of one trigger (`trigger/<name>` in the store's settings): what it last did and, for a
/// topic condition, whether the condition holds, since when, and whether it fired for this episode.
struct TriggerState: Sendable, Equatable {
    var lastFired: EpochSeconds?
    var value: JSONValue?
    var held = false
    var since: EpochSeconds?
    var fired = false

    var json: JSONValue {
        ["last_fired": lastFired.map(JSONValue.number) ?? .null, "value": value ?? .null, "held": .bool(held),
         "since": since.map(JSONValue.number) ?? .null, "fired": .bool(fired)]
    }

    init() {}
    init(json: JSONValue) {
        lastFired = json["last_fired"]?.doubleValue
        value = json["value"].flatMap { $0 == .null ? nil : $0 }
        held = json["held"]?.boolValue ?? false
        since = json["since"]?.doubleValue
        fired = json["fired"]?.boolValue ?? false
    }
}

extension Bridge {
    static func triggerKey(_ name: String) -> String { "trigger/\(name)" }

    /// (Re)starts every rule: restores its state, runs a missed time under its `run_if_within_s` policy,
    /// arms the next fire time, and subscribes to the condition topics.
    func startTriggers() {
        for t in triggerTimers.values { t.cancel() }
        triggerTimers = [:]
        let now = clock.now()
        let rules = settings.behaviour.triggers
        var restored: [String: TriggerState] = [:]
        for rule in rules {
            var state = triggerStates[rule.name] ?? localSettings[Self.triggerKey(rule.name)].map(TriggerState.init(json:)) ?? TriggerState()
            if case .time(let spec) = rule.kind {
                if let last = state.lastFired, let missed = spec.last(before: now, since: last, in: settings.localTime) {
                    if let window = rule.runIfWithinS, now - missed <= window {
                        queueFire(rule, reason: "missed at \(Timestamp.iso8601(missed)) while the daemon was down; within run_if_within_s")
                        state.lastFired = missed
                    } else {
                        logger.notice("trigger time missed while the daemon was down; skipped",
                                      metadata: ["trigger": "\(rule.name)", "missed": "\(Timestamp.iso8601(missed))"])
                        state.lastFired = missed
                    }
                } else if state.lastFired == nil {
                    // First start with this rule: its history begins now, nothing counts as missed.
                    state.lastFired = now
                }
            }
            restored[rule.name] = state
            saveTriggerState(rule.name, state)
            armTimeRule(rule)
        }
        triggerStates = restored
        if mqttConnected { subscribeTriggerTopics() }
        publishTriggers()
    }

    func subscribeTriggerTopics() {
        for rule in settings.behaviour.triggers {
            if case .condition(let c) = rule.kind { mqtt.subscribe(c.topic, qos: 1) }
        }
    }

    func saveTriggerState(_ name: String, _ state: TriggerState) {
        triggerStates[name] = state
        localSettings[Self.triggerKey(name)] = state.json
        do { try store.saveSetting(Self.triggerKey(name), state.json) } catch {
            logger.error("cannot persist trigger state", metadata: ["trigger": "\(name)", "error": "\(error)"])
        }
    }

    func armTimeRule(_ rule: TriggerRule) {
        guard case .time(let spec) = rule.kind else { return }
        let after = max(clock.now(), triggerStates[rule.name]?.lastFired ?? 0)
        guard let at = spec.next(after: after, in: settings.localTime) else { return }
        triggerTimers[rule.name]?.cancel()
        triggerTimers[rule.name] = Task {
            try? await clock.sleep(seconds: max(0, at - clock.now()))
            guard !Task.isCancelled else { return }
            self.timeRuleDue(rule.name, at: at)
        }
    }

    func timeRuleDue(_ name: String, at: EpochSeconds) {
        guard let rule = settings.behaviour.triggers.first(where: { $0.name == name }) else { return }
        var state = triggerStates[name] ?? TriggerState()
        // The scheduled time, not "now", is what fired: a restart right after never fires it again.
        if (state.lastFired ?? 0) < at {
            state.lastFired = at
            saveTriggerState(name, state)
            queueFire(rule, reason: "time \(Timestamp.iso8601(at))")
        }
        armTimeRule(rule)
        publishTriggers()
    }

    /// A topic message: updates every matching condition, fires the ones that held long enough.
    func evaluateConditions(_ m: MQTTMessage) {
        let now = clock.now()
        var matched = false
        for rule in settings.behaviour.triggers {
            guard case .condition(let c) = rule.kind, mqttTopic(m.topic, matches: c.topic), let v = c.value(of: m.payload) else { continue }
            matched = true
            var state = triggerStates[rule.name] ?? TriggerState()
            let previous = state.value
            if case .changes = c.test {
                if let previous, previous != v {
                    state.held = true
                    state.since = now
                    state.fired = false
                } else if previous == nil {
                    state.held = false  // the first value seen is the baseline, not a change
                }
            } else {
                let holds = c.holds(v, wasHeld: state.held)
                if holds && !state.held {
                    state.held = true
                    state.since = now
                    state.fired = false
                } else if !holds {
                    // Not holding (any more): a later return starts a new episode, with the hold time again.
                    state.held = false
                    state.since = nil
                    state.fired = false
                }
            }
            state.value = v
            saveTriggerState(rule.name, state)
            checkCondition(rule)
        }
        // Every MQTT message (commands too) passes here: only a matched condition changes the trigger view.
        if matched { publishTriggers() }
    }

    /// Fires a condition that has held for its hold time, or wakes up when it will have.
    func checkCondition(_ rule: TriggerRule) {
        guard case .condition(let c) = rule.kind, var state = triggerStates[rule.name], state.held, !state.fired, let since = state.since else { return }
        let now = clock.now()
        if now - since >= c.holdS {
            state.fired = true
            state.lastFired = now
            saveTriggerState(rule.name, state)
            let held = c.holdS > 0 ? " for \(JSONValue.format(c.holdS)) s" : ""
            queueFire(rule, reason: "\(c.topic) = \(state.value?.serialized ?? "?")\(held)")
            publishTriggers()
            return
        }
        triggerTimers[rule.name]?.cancel()
        triggerTimers[rule.name] = Task {
            try? await clock.sleep(seconds: since + c.holdS - clock.now())
            guard !Task.isCancelled else { return }
            self.checkCondition(rule)
        }
    }

    /// Fires now, or once every account has been read (a target is unknown before).
    func queueFire(_ rule: TriggerRule, reason: String) {
        if firstPollDone.count < accounts.count {
            pendingFires.append((rule, reason))
        } else {
            fire(rule, reason: reason)
        }
    }

    /// Issues the rule's command through the normal pipeline, with `"source":"trigger:<name>"` on its results.
    func fire(_ rule: TriggerRule, reason: String) {
        let now = clock.now()
        let a = rule.action
        var body = a.params
        if let v = a.validForS { body["valid_for_s"] = .number(v) }
        let id = "trigger-\(rule.name)-\(Int64(now * 1000))"
        logger.info("trigger fired", metadata: ["trigger": "\(rule.name)", "target": "\(a.target)", "reason": "\(reason)", "id": "\(id)"])
        do { try store.recordTriggerFire(name: rule.name, at: now, commandId: id, reason: reason) } catch {
            logger.error("cannot audit trigger firing", metadata: ["trigger": "\(rule.name)", "error": "\(error)"])
        }
        submit(a.device, a.node, a.capability, id: id, body: body, inboxRow: nil, source: "trigger:\(rule.name)", now: now)
    }

    /// Retained `<base>/bridge/triggers`: every rule with its state and next fire time.
    func publishTriggers() {
        guard !settings.behaviour.triggers.isEmpty else { return }
        let now = clock.now()
        var list: [JSONValue] = []
        for rule in settings.behaviour.triggers {
            let state = triggerStates[rule.name] ?? TriggerState()
            var o: [String: JSONValue] = ["name": .string(rule.name), "target": .string(rule.action.target),
                                          "last_fired": state.lastFired.map { .string(Timestamp.iso8601($0)) } ?? .null]
            switch rule.kind {
            case .time(let spec):
                o["kind"] = "time"
                o["next_fire"] = spec.next(after: max(now, state.lastFired ?? 0), in: settings.localTime).map { .string(Timestamp.iso8601($0)) } ?? .null
            case .condition(let c):
                o["kind"] = "condition"
                o["condition"] = ["topic": .string(c.topic), "value": state.value ?? .null, "held": .bool(state.held),
                                  "since": state.since.map { .string(Timestamp.iso8601($0)) } ?? .null, "fired": .bool(state.fired),
                                  "hold_s": .number(c.holdS)]
            }
            list.append(.object(o))
        }
        publishRetained(topics.bridgeTriggers, ["triggers": .array(list)])
    }
}

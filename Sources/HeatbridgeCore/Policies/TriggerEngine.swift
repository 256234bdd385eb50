/// Persisted state of one trigger (`trigger/<name>` in the store's settings): what it last did and, for a
/// topic condition, whether the condition holds, since when, and whether it fired for this episode.
struct TriggerState: Sendable, Equatable {
    var lastFired: EpochSeconds?
    var value: JSONValue?
    var held = false
    var since: EpochSeconds?
    var fired = false

    var json: JSONValue {
        [
            "last_fired": lastFired.map(JSONValue.number) ?? .null, "value": value ?? .null, "held": .bool(held),
            "since": since.map(JSONValue.number) ?? .null, "fired": .bool(fired),
        ]
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

/// The local triggers (`triggers:`): their state, when each is due, and which fire. Returns decisions; the
/// bridge persists the states, arms the timers and issues the commands.
struct TriggerEngine {
    private(set) var rules: [TriggerRule]
    private(set) var states: [String: TriggerState] = [:]
    /// The time each time rule is armed for: what fired when its timer comes.
    private var armedAt: [String: EpochSeconds] = [:]

    static let storagePrefix = "trigger/"
    static func storageKey(_ name: String) -> String { storagePrefix + name }

    init(rules: [TriggerRule]) { self.rules = rules }

    /// What one step of the engine decided.
    struct Outcome {
        /// Rules to fire now, with why.
        var fires: [(rule: TriggerRule, reason: String)] = []
        /// Rules whose state changed and must be persisted.
        var changed: [String] = []
        /// Timers to arm (rule name → when).
        var timers: [(name: String, at: EpochSeconds)] = []
        /// Time rules whose time passed while the daemon was down and that were skipped (outside `run_if_within_s`).
        var skipped: [(name: String, missed: EpochSeconds)] = []
    }

    /// (Re)starts with `rules`: restores each rule's state (kept in memory, else `persisted`), runs a missed time
    /// under its `run_if_within_s` policy and arms the next fire time. The caller first drops every trigger timer.
    mutating func start(rules: [TriggerRule], persisted: (String) -> JSONValue?, now: EpochSeconds, localTime: any LocalTime) -> Outcome {
        self.rules = rules
        armedAt = [:]
        var o = Outcome()
        var restored: [String: TriggerState] = [:]
        for rule in rules {
            var state = states[rule.name] ?? persisted(Self.storageKey(rule.name)).map(TriggerState.init(json:)) ?? TriggerState()
            if case .time(let spec) = rule.kind {
                if let last = state.lastFired, let missed = spec.last(before: now, since: last, in: localTime) {
                    if let window = rule.runIfWithinS, now - missed <= window {
                        o.fires.append((rule, "missed at \(Timestamp.iso8601(missed)) while the daemon was down; within run_if_within_s"))
                    } else {
                        o.skipped.append((rule.name, missed))
                    }
                    state.lastFired = missed
                } else if state.lastFired == nil {
                    // First start with this rule: its history begins now, nothing counts as missed.
                    state.lastFired = now
                }
            }
            restored[rule.name] = state
            o.changed.append(rule.name)
        }
        states = restored
        for rule in rules { arm(rule, now: now, localTime: localTime, into: &o) }
        return o
    }

    private mutating func arm(_ rule: TriggerRule, now: EpochSeconds, localTime: any LocalTime, into o: inout Outcome) {
        guard case .time(let spec) = rule.kind else { return }
        guard let at = spec.next(after: max(now, states[rule.name]?.lastFired ?? 0), in: localTime) else { return }
        armedAt[rule.name] = at
        o.timers.append((rule.name, at))
    }

    /// The timer of rule `name` came: a time rule fires for the time it was armed for, a condition is checked again.
    mutating func timerDue(_ name: String, now: EpochSeconds, localTime: any LocalTime) -> Outcome {
        var o = Outcome()
        guard let rule = rules.first(where: { $0.name == name }) else { return o }
        switch rule.kind {
        case .time:
            guard let at = armedAt[name] else { return o }
            // Called before its time (it cannot fire early from the timer queue): keep waiting.
            guard now >= at - 0.5 else {
                o.timers.append((name, at))
                return o
            }
            var state = states[name] ?? TriggerState()
            // The scheduled time, not "now", is what fired: a restart right after never fires it again.
            if (state.lastFired ?? 0) < at {
                state.lastFired = at
                states[name] = state
                o.changed.append(name)
                o.fires.append((rule, "time \(Timestamp.iso8601(at))"))
            }
            arm(rule, now: now, localTime: localTime, into: &o)
        case .condition:
            check(rule, now: now, into: &o)
        }
        return o
    }

    /// A message on some topic: updates every condition it matches and fires those that held long enough.
    /// `matched` tells whether any condition saw it (only then the trigger view changes).
    mutating func evaluate(_ m: MQTTMessage, now: EpochSeconds) -> (outcome: Outcome, matched: Bool) {
        var o = Outcome()
        var matched = false
        for rule in rules {
            guard case .condition(let c) = rule.kind, mqttTopic(m.topic, matches: c.topic), let v = c.value(of: m.payload) else { continue }
            matched = true
            var state = states[rule.name] ?? TriggerState()
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
            states[rule.name] = state
            o.changed.append(rule.name)
            check(rule, now: now, into: &o)
        }
        return (o, matched)
    }

    /// Fires a condition that has held for its hold time, or arms a timer for when it will have.
    private mutating func check(_ rule: TriggerRule, now: EpochSeconds, into o: inout Outcome) {
        guard case .condition(let c) = rule.kind, var state = states[rule.name], state.held, !state.fired, let since = state.since else { return }
        if now - since >= c.holdS {
            state.fired = true
            state.lastFired = now
            states[rule.name] = state
            o.changed.append(rule.name)
            let held = c.holdS > 0 ? " for \(JSONValue.format(c.holdS)) s" : ""
            o.fires.append((rule, "\(c.topic) = \(state.value?.serialized ?? "?")\(held)"))
            return
        }
        o.timers.append((rule.name, since + c.holdS))
    }

    /// The condition topics to subscribe to.
    var conditionTopics: [String] {
        rules.compactMap { if case .condition(let c) = $0.kind { return c.topic } else { return nil } }
    }

    /// Retained `<base>/bridge/triggers`: every rule with its state and next fire time; nil without rules.
    func view(now: EpochSeconds, localTime: any LocalTime) -> JSONValue? {
        guard !rules.isEmpty else { return nil }
        var list: [JSONValue] = []
        for rule in rules {
            let state = states[rule.name] ?? TriggerState()
            var o: [String: JSONValue] = [
                "name": .string(rule.name), "target": .string(rule.action.target),
                "last_fired": state.lastFired.map { .string(Timestamp.iso8601($0)) } ?? .null,
            ]
            switch rule.kind {
            case .time(let spec):
                o["kind"] = "time"
                o["next_fire"] = spec.next(after: max(now, state.lastFired ?? 0), in: localTime).map { .string(Timestamp.iso8601($0)) } ?? .null
            case .condition(let c):
                o["kind"] = "condition"
                o["condition"] = [
                    "topic": .string(c.topic), "value": state.value ?? .null, "held": .bool(state.held),
                    "since": state.since.map { .string(Timestamp.iso8601($0)) } ?? .null, "fired": .bool(state.fired),
                    "hold_s": .number(c.holdS),
                ]
            }
            list.append(.object(o))
        }
        return ["triggers": .array(list)]
    }

    /// The command a firing issues, with `"source":"trigger:<name>"` on its results.
    static func submission(_ rule: TriggerRule, now: EpochSeconds) -> Submission {
        let a = rule.action
        var body = a.params
        if let v = a.validForS { body["valid_for_s"] = .number(v) }
        return Submission(
            target: Target(device: a.device, node: a.node, capability: a.capability),
            id: "trigger-\(rule.name)-\(Int64(now * 1000))", body: body, source: .trigger(rule.name))
    }
}

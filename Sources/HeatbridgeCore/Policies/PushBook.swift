/// What push events told the bridge, per device: the values they set (an overlay on the polled state), the time of
/// the newest event per key (order and repeats), the monotonic energy counters; and per account, the counters that
/// say whether push is live. Pure state: the bridge feeds it events and polls and publishes what it returns.
struct PushBook {
    /// One device's pushed state.
    struct Device: Equatable {
        /// Pushed fields by target: an object per node (or the device), merged over what polls read.
        var overlay: [PushUpdate.Target: [String: JSONValue]] = [:]
        /// Newest event time per key and field, with a fingerprint of its value: an update with an older time
        /// changes nothing, one with the same time and value is a repeat (Bosch's timestamps have whole seconds,
        /// so the same time with another value is a second change within that second, and taken).
        var seen: [String: Seen] = [:]
        /// Energy counters by field (`<target>/<path>`).
        var counters: [String: MonotonicCounter] = [:]
        /// Connectivity from the newest connectivity event, until a poll says otherwise.
        var online: Bool?
        var lastEventAt: EpochSeconds?
        /// Changed since the store last saved it.
        var dirty = false
    }

    /// Per account: what arrived and what was dropped, for `bridge/health` and the account state.
    struct Stats: Equatable {
        var events = 0
        var applied = 0
        var duplicates = 0
        var stale = 0
        var rejected: [String: Int] = [:]
        /// Vendor data points or event types the module does not know (at most 32 names kept).
        var unknown: Set<String> = []
        var unknownCount = 0
        var lastEventAt: EpochSeconds?
    }

    struct Seen: Equatable {
        var at: EpochSeconds
        var fingerprint: UInt64
    }

    private(set) var devices: [String: Device] = [:]
    private(set) var stats: [String: Stats] = [:]

    /// How far ahead of the box's clock an event's time may be (clocks drift; Bosch's are NTP-synchronised).
    static let futureToleranceS: Double = 300
    static let maxUnknownNames = 32

    /// What `apply` did.
    enum Outcome: Equatable {
        /// At least one value was new; the device's state must be published.
        case applied(changedOnline: Bool)
        /// Every value was known already: the same event again (`duplicate`) or an older one (`stale`).
        case duplicate, stale
        case rejected(PushRejection)
    }

    mutating func count(_ account: String, _ body: (inout Stats) -> Void) { body(&stats[account, default: Stats()]) }

    /// Records a rejection of an event for `account` (decode error, unknown device).
    mutating func reject(_ account: String, _ r: PushRejection, now: EpochSeconds) {
        count(account) {
            $0.events += 1
            $0.rejected[r.code.rawValue, default: 0] += 1
        }
    }

    /// Takes one event for `device` of `account`.
    mutating func apply(_ event: PushEvent, device id: String, account: String, now: EpochSeconds) -> Outcome {
        count(account) { $0.events += 1 }
        if event.at > now + Self.futureToleranceS {
            let r = PushRejection(.future, "event time \(Timestamp.iso8601(event.at)) is \(Int(event.at - now)) s ahead of the box's clock")
            count(account) { $0.rejected[r.code.rawValue, default: 0] += 1 }
            return .rejected(r)
        }
        count(account) { s in
            s.lastEventAt = max(s.lastEventAt ?? now, now)
            for name in event.unknown {
                s.unknownCount += 1
                if s.unknown.count < Self.maxUnknownNames { s.unknown.insert(name) }
            }
        }
        var d = devices[id] ?? Device()
        d.lastEventAt = now
        var newer = 0
        var equal = 0
        var onlineChanged = false
        // Against the times before this event: one event may set several values under one key.
        let before = d.seen
        for u in event.updates {
            let key = Self.seenKey(u)
            let fingerprint = Self.fingerprint(u.value)
            if let last = before[key] {
                if u.at < last.at { continue }
                if u.at == last.at, last.fingerprint == fingerprint {
                    equal += 1
                    continue
                }
            }
            d.seen[key] = Seen(at: u.at, fingerprint: fingerprint)
            newer += 1
            switch u.value {
            case .online(let on):
                onlineChanged = d.online != on
                d.online = on
            case .set(let v):
                Self.set(&d.overlay[u.target, default: [:]], u.path, v)
                Self.stamp(&d, u)
            case .counter(let reading):
                let key = Self.counterKey(u.target, u.path)
                var c = d.counters[key] ?? MonotonicCounter(first: reading)
                c.advance(to: reading)
                d.counters[key] = c
                Self.set(&d.overlay[u.target, default: [:]], u.path, .number((c.total * 100).rounded() / 100))
                Self.stamp(&d, u)
            }
        }
        if newer == 0 {
            devices[id] = d
            if equal > 0 {
                count(account) { $0.duplicates += 1 }
                return .duplicate
            }
            count(account) { $0.stale += 1 }
            return .stale
        }
        d.dirty = true
        devices[id] = d
        count(account) { $0.applied += 1 }
        return .applied(changedOnline: onlineChanged)
    }

    /// The device's polled snapshot with the pushed values over it. A field the poll itself read (not null)
    /// is the poll's: it is as fresh as it gets, and the overlay forgets it (a later event sets it again).
    mutating func overlay(onPoll s: DeviceSnapshot) -> DeviceSnapshot {
        guard var d = devices[s.id] else { return s }
        for (target, fields) in d.overlay {
            let polled: JSONValue? =
                switch target {
                case .device: .object(s.attributes)
                case .node(let n): s.nodes[n]
                }
            guard let polled else { continue }
            var kept = fields
            Self.dropPolled(&kept, polled)
            d.overlay[target] = kept.isEmpty ? nil : kept
        }
        if s.online != nil { d.online = nil }
        if d != devices[s.id] { d.dirty = true }
        devices[s.id] = d
        return merged(s)
    }

    /// The snapshot with the device's pushed values merged in (nodes that only events feed are added).
    func merged(_ s: DeviceSnapshot) -> DeviceSnapshot {
        guard let d = devices[s.id] else { return s }
        var out = s
        for (target, fields) in d.overlay {
            switch target {
            case .device:
                for (k, v) in fields { out.attributes[k] = Self.deepMerge(out.attributes[k], v) }
            case .node(let n):
                out.nodes[n] = Self.deepMerge(out.nodes[n] ?? .object([:]), .object(fields))
            }
        }
        if let on = d.online { out.online = on }
        return out
    }

    /// Fields of `overlay` that the poll read (a non-null value at the same path) are removed from it.
    private static func dropPolled(_ overlay: inout [String: JSONValue], _ polled: JSONValue) {
        for (k, v) in overlay {
            guard let p = polled[k], p != .null else { continue }
            if case .object(var inner) = v, case .object = p {
                dropPolled(&inner, p)
                overlay[k] = inner.isEmpty ? nil : .object(inner)
            } else {
                overlay[k] = nil
            }
        }
    }

    static func deepMerge(_ base: JSONValue?, _ top: JSONValue) -> JSONValue {
        guard case .object(let t) = top, case .object(var b)? = base else { return top }
        for (k, v) in t { b[k] = deepMerge(b[k], v) }
        return .object(b)
    }

    static func set(_ object: inout [String: JSONValue], _ path: [String], _ value: JSONValue) {
        guard let first = path.first else { return }
        if path.count == 1 {
            object[first] = value
            return
        }
        var inner = object[first]?.objectValue ?? [:]
        set(&inner, Array(path.dropFirst()), value)
        object[first] = .object(inner)
    }

    static func seenKey(_ u: PushUpdate) -> String { u.key + "|" + counterKey(u.target, u.path) }

    static func fingerprint(_ v: PushUpdate.Value) -> UInt64 {
        switch v {
        case .set(let j): return fnv1a64(j.bytes)
        case .counter(let n): return fnv1a64(Array("c\(n)".utf8))
        case .online(let b): return b ? 1 : 2
        }
    }

    /// A node that took a pushed value says when (`pushed_at`: the newest such event's own time).
    static func stamp(_ d: inout Device, _ u: PushUpdate) {
        guard case .node = u.target else { return }
        let at = Timestamp.iso8601(u.at)
        if let old = d.overlay[u.target]?["pushed_at"]?.stringValue, let t = Timestamp.parse(old), t >= u.at { return }
        d.overlay[u.target, default: [:]]["pushed_at"] = .string(at)
    }

    static func counterKey(_ target: PushUpdate.Target, _ path: [String]) -> String {
        let t: String =
            switch target {
            case .device: "device"
            case .node(let n): "node:" + n
            }
        return t + "/" + path.joined(separator: "/")
    }

    // MARK: live or silent

    /// `live` (an event within `silentAfterS`), `silent` (none for longer, or none yet) for an account with push.
    func state(_ account: String, settings: PushSettings, now: EpochSeconds) -> String {
        guard let last = stats[account]?.lastEventAt else { return "silent" }
        return now - last <= settings.silentAfterS ? "live" : "silent"
    }

    func isLive(_ account: String, settings: PushSettings, now: EpochSeconds) -> Bool {
        state(account, settings: settings, now: now) == "live"
    }

    /// The account's push counters for `bridge/health`.
    func healthJSON(_ account: String, settings: PushSettings, now: EpochSeconds) -> JSONValue {
        let s = stats[account] ?? Stats()
        var rejected: [String: JSONValue] = [:]
        for (k, v) in s.rejected { rejected[k] = .int(v) }
        return [
            "state": .string(state(account, settings: settings, now: now)), "events": .int(s.events), "applied": .int(s.applied),
            "duplicates": .int(s.duplicates), "stale": .int(s.stale), "rejected": .object(rejected),
            "unknown": .int(s.unknownCount), "unknown_names": .array(s.unknown.sorted().map { .string($0) }),
            "last_event_at": .string(s.lastEventAt.map(Timestamp.iso8601)),
        ]
    }

    // MARK: persistence

    /// Devices whose pushed state changed since the last save, and marks them saved.
    mutating func takeDirty() -> [String] {
        let ids = devices.filter(\.value.dirty).map(\.key).sorted()
        for id in ids { devices[id]?.dirty = false }
        return ids
    }

    mutating func forget(_ id: String) { devices[id] = nil }

    /// A save that failed: the device is written again at the next one.
    mutating func markDirty(_ id: String) { devices[id]?.dirty = true }

    /// The device's pushed state as the store keeps it (counters survive a restart: a total never starts over).
    func record(_ id: String) -> JSONValue? {
        guard let d = devices[id] else { return nil }
        var overlay: [String: JSONValue] = [:]
        for (t, f) in d.overlay {
            switch t {
            case .device: overlay["device"] = .object(f)
            case .node(let n): overlay["node:" + n] = .object(f)
            }
        }
        var seen: [String: JSONValue] = [:]
        for (k, v) in d.seen { seen[k] = .array([.number(v.at), .string(String(v.fingerprint))]) }
        var counters: [String: JSONValue] = [:]
        for (k, c) in d.counters { counters[k] = .array([.number(c.raw), .number(c.total)]) }
        return [
            "overlay": .object(overlay), "seen": .object(seen), "counters": .object(counters),
            "online": d.online.map { .bool($0) } ?? .null, "last_event_at": .number(d.lastEventAt),
        ]
    }

    /// Restores a device's pushed state from `record`.
    mutating func restore(_ id: String, _ j: JSONValue) {
        var d = Device()
        for (k, v) in j["overlay"]?.objectValue ?? [:] {
            guard let f = v.objectValue else { continue }
            if k == "device" { d.overlay[.device] = f } else if k.hasPrefix("node:") { d.overlay[.node(String(k.dropFirst(5)))] = f }
        }
        for (k, v) in j["seen"]?.objectValue ?? [:] {
            guard let a = v.arrayValue, a.count == 2, let t = a[0].doubleValue, let f = a[1].stringValue.flatMap({ UInt64($0) }) else { continue }
            d.seen[k] = Seen(at: t, fingerprint: f)
        }
        for (k, v) in j["counters"]?.objectValue ?? [:] {
            guard let a = v.arrayValue, a.count == 2, let raw = a[0].doubleValue, let total = a[1].doubleValue else { continue }
            d.counters[k] = MonotonicCounter(raw: raw, total: total)
        }
        d.online = j["online"]?.boolValue
        d.lastEventAt = j["last_event_at"]?.doubleValue
        devices[id] = d
    }
}

/// The devices the bridge knows: per device the account it belongs to, its last snapshot, and when and from
/// where (`cloud` or `cache`) that snapshot came.
struct DeviceRegistry {
    struct Entry {
        var account: String
        var snapshot: DeviceSnapshot
        var updatedAt: EpochSeconds
        var source: String
    }

    private(set) var entries: [String: Entry] = [:]
    /// Successful polls in a row that no longer listed a device.
    private var missingPolls: [String: Int] = [:]

    subscript(id: String) -> Entry? { entries[id] }
    var ids: [String] { entries.keys.sorted() }
    func ids(of account: String) -> [String] { entries.filter { $0.value.account == account }.map(\.key).sorted() }

    mutating func insert(_ entry: Entry) { entries[entry.snapshot.id] = entry }

    @discardableResult
    mutating func remove(_ id: String) -> Entry? {
        missingPolls[id] = nil
        return entries.removeValue(forKey: id)
    }

    /// Compares a successful poll with the known devices of `account`: a device missing from two polls in a row
    /// is gone (one empty answer could be a cloud hiccup). Returns the gone devices and whether any was missing.
    mutating func missing(from snapshots: [DeviceSnapshot], account: String) -> (gone: [String], anyMissing: Bool) {
        let present = Set(snapshots.map(\.id))
        var gone: [String] = []
        var anyMissing = false
        for id in ids(of: account) {
            if present.contains(id) {
                missingPolls[id] = nil
                continue
            }
            anyMissing = true
            missingPolls[id, default: 0] += 1
            if missingPolls[id]! >= 2 { gone.append(id) }
        }
        return (gone, anyMissing)
    }

    /// Takes a fresh snapshot. A device that cannot be read right now, or that its cloud reports offline, keeps
    /// its last known nodes and programs: a command for it then fails with the cloud's own reason
    /// (`DEVICE_OFFLINE`) instead of "unknown node", and front ends keep its entities.
    /// Returns the new entry and whether the snapshot differs from before.
    mutating func update(_ s: DeviceSnapshot, account: String, now: EpochSeconds) -> (entry: Entry, changed: Bool) {
        var snap = s
        let old = entries[s.id]
        if snap.error != nil || snap.online == false, let old {
            if snap.nodes.isEmpty { snap.nodes = old.snapshot.nodes }
            if snap.schedules.isEmpty { snap.schedules = old.snapshot.schedules }
        }
        let entry = Entry(account: account, snapshot: snap, updatedAt: now, source: "cloud")
        entries[s.id] = entry
        return (entry, old?.snapshot != snap)
    }

    /// Takes a snapshot with pushed values merged in: the state is as fresh as the event (staleness counts from
    /// it), the source stays the cloud's.
    mutating func pushed(_ s: DeviceSnapshot, now: EpochSeconds) -> Entry {
        let old = entries[s.id]
        let entry = Entry(account: old?.account ?? "", snapshot: s, updatedAt: now, source: "cloud")
        entries[s.id] = entry
        return entry
    }

    /// Sets one device-level field the bridge derives itself (the meter), keeping when the state was confirmed.
    mutating func setAttribute(_ id: String, _ key: String, _ value: JSONValue?) -> Entry? {
        guard var e = entries[id] else { return nil }
        e.snapshot.attributes[key] = value
        entries[id] = e
        return e
    }

    /// Device-level keys the bridge sets itself; everything else in a cached state is the adapter's.
    static let commonDeviceKeys: Set<String> = [
        "vendor", "vendor_id", "account", "model", "online", "nodes", "source",
        "stale", "error", "updated_at",
    ]

    /// An entry from the store's cache, as it was last read from the cloud.
    static func entry(cached c: CachedDevice) -> Entry {
        let snapshot = DeviceSnapshot(
            id: c.deviceId, vendorId: c.state["vendor_id"]?.stringValue ?? c.deviceId,
            model: c.state["model"]?.stringValue,
            online: c.availability.map { $0 == "online" },
            attributes: c.state.objectValue?.filter { !commonDeviceKeys.contains($0.key) } ?? [:],
            nodes: c.nodes, schedules: c.schedules.compactMapValues { WeekSchedule(json: $0) })
        return Entry(account: c.account, snapshot: snapshot, updatedAt: c.updatedAt, source: "cache")
    }

    /// What the store keeps of an entry.
    static func cacheRecord(_ e: Entry) -> CachedDevice {
        let snap = e.snapshot
        var state: [String: JSONValue] = snap.attributes
        state["vendor_id"] = .string(snap.vendorId)
        state["model"] = .string(snap.model)
        return CachedDevice(
            deviceId: snap.id, account: e.account, state: .object(state),
            availability: snap.online.map { $0 ? "online" : "offline" }, nodes: snap.nodes, updatedAt: e.updatedAt,
            schedules: snap.schedules.mapValues(\.json))
    }
}

/// A device entry rendered as the retained topics of the MQTT contract: `<device>/state`, `availability`, and
/// each node's `state` and `schedule`, with what the bridge adds (source, staleness, `schedule_now`).
struct DeviceView {
    var deviceState: JSONValue
    var availability: String?
    /// Per node its state and, when it has a week program, the program (published before the state).
    var nodes: [(node: String, state: JSONValue, program: JSONValue?)]
    /// The next switch point of any of its week programs, when `schedule_now` must move on.
    var nextSwitch: EpochSeconds?

    /// `extras(node)` are bridge-side node fields (leases, charge defaults) merged into the node state.
    init(
        _ e: DeviceRegistry.Entry, vendor: String?, now: EpochSeconds, staleAfterS: Double, localTime: any LocalTime,
        extras: (String, inout [String: JSONValue]) -> Void
    ) {
        let s = e.snapshot
        let stale = now - e.updatedAt > staleAfterS
        var o = s.attributes
        o["vendor"] = .string(vendor)
        o["vendor_id"] = .string(s.vendorId)
        o["account"] = .string(e.account)
        o["model"] = .string(s.model)
        o["online"] = s.online.map(JSONValue.bool) ?? .null
        o["nodes"] = .array(s.nodes.keys.sorted().map { .string($0) })
        o["source"] = .string(e.source)
        o["stale"] = .bool(stale)
        if e.source == "cache" { o["age_s"] = .number((now - e.updatedAt).rounded()) }
        o["error"] = s.error.map { ["code": .string($0.code.rawValue), "message": .string($0.message)] } ?? .null
        deviceState = .object(o)
        availability = s.online.map { $0 ? "online" : "offline" }
        nodes = []
        for (node, state) in s.nodes {
            var n = state.objectValue ?? ["value": state]
            n["source"] = .string(e.source)
            n["stale"] = .bool(stale)
            if e.source == "cache" { n["age_s"] = .number((now - e.updatedAt).rounded()) }
            extras(node, &n)
            var published: JSONValue?
            if let program = s.schedules[node] {
                // Computed here from the cached program, so it stays right while the cloud is away.
                n["schedule_now"] = program.nowJSON(at: now, in: localTime)
                if let next = program.now(at: now, in: localTime)?.next?.at {
                    nextSwitch = min(nextSwitch ?? next, next)
                }
                var p = program.json.objectValue ?? [:]
                p["source"] = .string(e.source)
                published = .object(p)
            }
            nodes.append((node, .object(n), published))
        }
    }
}

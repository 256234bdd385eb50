/// Every device's meter: vendor readings in, totals that only go up and hourly buckets out. Pure state: the bridge
/// feeds it readings (after each poll, event or statistics read), publishes `stateJSON`, and stores `record`
/// together with the buckets `takeDirty` hands over, in one transaction — a total and the buckets it was counted
/// into never disagree after a crash.
///
/// How a total stays true (README, "Energy"):
/// - a lifetime counter (an appliance's own energy monitor): the first reading is the total (nothing goes into any hour); later rises are
///   counted; a small fall is noise, a larger one a reset (`MonotonicCounter`), after which the new reading is
///   what was used since;
/// - per-period amounts (a cloud's daily statistics): each period's amount is remembered; a re-read counts only the difference;
///   a period revised down leaves the total where it is and is paid back out of the next rises (`debt`), so the
///   total is again the sum of the periods once that is made up; periods older than `periodMemoryS` are not
///   counted any more (they could not be told apart from ones already counted).
struct EnergyBook {
    struct Counter: Equatable {
        var total: Double
        var source: MeterSource
        /// The newest reading's time.
        var at: EpochSeconds
        /// Lifetime counters: the vendor reading behind the total.
        var raw: MonotonicCounter?
        /// Per-period amounts: what was counted of each period (by its start), and up to when its buckets were filled.
        var periods: [Int64: Period] = [:]
        /// A period revised down: owed by the total (which never falls), taken from the next rises.
        var debt: Double = 0
    }

    struct Period: Equatable {
        var kwh: Double
        var covered: EpochSeconds
    }

    struct Power: Equatable {
        var watts: Double
        var source: MeterSource
        var at: EpochSeconds
    }

    struct Device: Equatable {
        var counters: [String: Counter] = [:]
        var power: Power?
        /// The local day `today` is about (days since 1970-01-01, local time).
        var day: Int64?
        /// kWh per counter on that day.
        var today: [String: Double] = [:]
        /// Hour buckets counted but not stored yet: "<meter>|<hour>" → kWh.
        var pending: [String: Double] = [:]
        var dirty = false
    }

    private(set) var devices: [String: Device] = [:]

    /// How long the amounts of past periods are remembered (a revision older than this is not counted).
    static let periodMemoryS: Double = 40 * 86_400
    /// A rise after a gap is spread over the hours of the gap, at most this far back.
    static let maxSpreadS: Double = 31 * 86_400
    /// Below this much electricity in a day, the day's efficiency says nothing (standby, the first minutes).
    static let minEfficiencyKWh = 0.1

    // MARK: readings

    /// Takes a device's readings; returns whether its meter changed.
    @discardableResult
    mutating func apply(_ readings: [MeterReading], device id: String, now: EpochSeconds, localTime: any LocalTime) -> Bool {
        var d = devices[id] ?? Device()
        Self.roll(&d, now: now, localTime: localTime)
        let before = d
        for r in readings {
            switch r.value {
            case .power(let w):
                guard w.isFinite, w >= 0 else { continue }
                if let p = d.power, p.at > r.at { continue }
                d.power = Power(watts: w, source: r.source, at: r.at)
            case .counter(let v):
                guard let key = r.key?.id, v.isFinite, v >= 0 else { continue }
                guard var c = d.counters[key], var raw = c.raw else {
                    // The first value after install: the vendor's lifetime counter is the total; no hour used it.
                    d.counters[key] = Counter(total: v, source: r.source, at: r.at, raw: MonotonicCounter(first: v))
                    continue
                }
                guard r.at >= c.at else { continue }  // older than what the total accounts for
                let before = raw.total
                raw.advance(to: v)
                let delta = raw.total - before
                let from = c.at
                c.raw = raw
                c.total = raw.total
                c.at = r.at
                c.source = r.source
                d.counters[key] = c
                if delta > 0 { Self.count(&d, key, delta, from: from, to: r.at, localTime: localTime) }
            case .period(let start, let end, let kwh):
                guard let key = r.key?.id, kwh.isFinite, kwh >= 0, end > start, start >= now - Self.periodMemoryS else { continue }
                var c = d.counters[key] ?? Counter(total: 0, source: r.source, at: r.at)
                let s = Int64(start.rounded(.down))
                let old = c.periods[s]
                let diff = kwh - (old?.kwh ?? 0)
                guard abs(diff) > 1e-9 else { continue }
                // The new part goes into the hours since the period was last read; a revision of a period already
                // read to its end is spread over the whole period.
                var from = old?.covered ?? start
                let to = min(max(r.at, from), end)
                if to <= from || diff < 0 { from = start }
                Self.count(&d, key, diff, from: from, to: to <= from ? end : to, localTime: localTime)
                if diff > 0 {
                    let paid = min(c.debt, diff)
                    c.debt -= paid
                    c.total += diff - paid
                } else {
                    c.debt -= diff
                }
                c.periods[s] = Period(kwh: kwh, covered: max(to, old?.covered ?? start))
                c.periods = c.periods.filter { Double($0.key) >= now - Self.periodMemoryS }
                c.at = max(c.at, r.at)
                c.source = r.source
                d.counters[key] = c
            }
        }
        guard d != before else { return false }
        // Power alone is not worth a write (flash wear): the next poll or event brings it again after a restart.
        var counted = d
        var was = before
        counted.power = nil
        was.power = nil
        if counted != was { d.dirty = true }
        devices[id] = d
        return true
    }

    /// A new local day: `today` starts over.
    static func roll(_ d: inout Device, now: EpochSeconds, localTime: any LocalTime) {
        let day = localTime.components(now).day
        if d.day != day {
            d.day = day
            d.today = [:]
        }
    }

    /// Counts `kwh` (negative for a revision down) into the hours of [from, to) and into today where it falls.
    static func count(_ d: inout Device, _ key: String, _ kwh: Double, from: EpochSeconds, to: EpochSeconds, localTime: any LocalTime) {
        for (hour, part) in spread(kwh, from: from, to: to) {
            d.pending[key + "|" + String(hour), default: 0] += part
            if localTime.components(Double(hour) * 3600 + 1800).day == d.day {
                d.today[key] = max(0, d.today[key, default: 0] + part)
            }
        }
    }

    /// `kwh` spread over the hours of [from, to) by how much of each hour the span covers; a span shorter than
    /// a second goes to the hour before `to` (a reading at 02:00:00 closes the hour from 01:00).
    static func spread(_ kwh: Double, from: EpochSeconds, to: EpochSeconds) -> [(hour: Int64, kwh: Double)] {
        let f = max(from, to - maxSpreadS)
        guard to - f >= 1 else { return [(Int64(((to - 0.001) / 3600).rounded(.down)), kwh)] }
        var out: [(Int64, Double)] = []
        var h = Int64((f / 3600).rounded(.down))
        while Double(h) * 3600 < to {
            let overlap = min(to, Double(h + 1) * 3600) - max(f, Double(h) * 3600)
            if overlap > 0 { out.append((h, kwh * overlap / (to - f))) }
            h += 1
        }
        return out
    }

    // MARK: state

    /// The device's `meter` field; nil before its first reading.
    func stateJSON(_ id: String, now: EpochSeconds, localTime: any LocalTime) -> JSONValue? {
        guard var d = devices[id], d.power != nil || !d.counters.isEmpty else { return nil }
        Self.roll(&d, now: now, localTime: localTime)
        var o: [String: JSONValue] = [:]
        if let p = d.power {
            o["power_w"] = .number((p.watts * 10).rounded() / 10)
            o["power_source"] = .string(p.source.rawValue)
            o["power_at"] = .string(Timestamp.iso8601(p.at))
        }
        var energy: [String: JSONValue] = [:]
        for (k, c) in d.counters {
            energy[k] = ["kwh": .number(Self.kwh(c.total)), "source": .string(c.source.rawValue), "at": .string(Timestamp.iso8601(c.at))]
        }
        if !energy.isEmpty { o["energy"] = .object(energy) }
        var today: [String: JSONValue] = ["day": .string(Timestamp.date(d.day ?? 0))]
        for k in d.counters.keys.sorted() { today[k] = .number(Self.kwh(d.today[k] ?? 0)) }
        o["today"] = .object(today)
        let e = d.today[MeterKey.electricityTotal.id] ?? 0
        let h = d.today[MeterKey.heatTotal.id] ?? 0
        if d.counters[MeterKey.heatTotal.id] != nil, d.counters[MeterKey.electricityTotal.id] != nil {
            // Null until the day has enough electricity to say anything (a number from 0.01 kWh would be noise).
            o["efficiency_today"] = e >= Self.minEfficiencyKWh ? .number((h / e * 100).rounded() / 100) : .null
        }
        return .object(o)
    }

    static func kwh(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }

    // MARK: persistence

    /// Devices whose meter changed since the last save, each with its record and the buckets counted meanwhile
    /// (which are then no longer pending: the caller stores both in one transaction, or calls `giveBack`).
    mutating func takeDirty(only: String? = nil) -> [(device: String, record: JSONValue, buckets: [EnergyBucket])] {
        var out: [(String, JSONValue, [EnergyBucket])] = []
        for id in devices.keys.sorted() where devices[id]!.dirty && (only == nil || only == id) {
            let d = devices[id]!
            let buckets = d.pending.sorted { $0.key < $1.key }.compactMap { k, v -> EnergyBucket? in
                let parts = k.split(separator: "|")
                guard parts.count == 2, let h = Int64(parts[1]) else { return nil }
                return EnergyBucket(device: id, meter: String(parts[0]), hour: h, kwh: v)
            }
            out.append((id, record(d), buckets))
            devices[id]!.pending = [:]
            devices[id]!.dirty = false
        }
        return out
    }

    /// A save that failed: its buckets are pending again and the device dirty, for the next try.
    mutating func giveBack(_ id: String, _ buckets: [EnergyBucket]) {
        guard devices[id] != nil else { return }
        for b in buckets { devices[id]!.pending[b.meter + "|" + String(b.hour), default: 0] += b.kwh }
        devices[id]!.dirty = true
    }

    /// Buckets of `id` counted but not stored yet (a history answer adds them to the stored ones).
    func pending(_ id: String) -> [String: Double] { devices[id]?.pending ?? [:] }

    /// Whether the device has something to store (a counter, today or a bucket changed since the last save).
    func isDirty(_ id: String) -> Bool { devices[id]?.dirty ?? false }

    func hasMeter(_ id: String) -> Bool { devices[id].map { $0.power != nil || !$0.counters.isEmpty } ?? false }

    mutating func forget(_ id: String) { devices[id] = nil }

    func record(_ d: Device) -> JSONValue {
        var counters: [String: JSONValue] = [:]
        for (k, c) in d.counters {
            var o: [String: JSONValue] = ["total": .number(c.total), "source": .string(c.source.rawValue), "at": .number(c.at)]
            if let r = c.raw { o["raw"] = .array([.number(r.raw), .number(r.total)]) }
            if !c.periods.isEmpty {
                var p: [String: JSONValue] = [:]
                for (s, v) in c.periods { p[String(s)] = .array([.number(v.kwh), .number(v.covered)]) }
                o["periods"] = .object(p)
            }
            if c.debt > 0 { o["debt"] = .number(c.debt) }
            counters[k] = .object(o)
        }
        var o: [String: JSONValue] = ["counters": .object(counters)]
        if let p = d.power { o["power"] = ["w": .number(p.watts), "source": .string(p.source.rawValue), "at": .number(p.at)] }
        if let day = d.day {
            o["day"] = .int(Int(day))
            o["today"] = .object(d.today.mapValues { .number($0) })
        }
        return .object(o)
    }

    /// Restores a device's meter from `record`.
    mutating func restore(_ id: String, _ j: JSONValue) {
        var d = Device()
        for (k, v) in j["counters"]?.objectValue ?? [:] {
            guard let total = v["total"]?.doubleValue, let at = v["at"]?.doubleValue else { continue }
            var c = Counter(total: total, source: MeterSource(rawValue: v["source"]?.stringValue ?? "") ?? .measured, at: at)
            if let a = v["raw"]?.arrayValue, a.count == 2, let r = a[0].doubleValue, let t = a[1].doubleValue {
                c.raw = MonotonicCounter(raw: r, total: t)
            }
            for (s, p) in v["periods"]?.objectValue ?? [:] {
                guard let start = Int64(s), let a = p.arrayValue, a.count == 2, let kwh = a[0].doubleValue, let cov = a[1].doubleValue else {
                    continue
                }
                c.periods[start] = Period(kwh: kwh, covered: cov)
            }
            c.debt = v["debt"]?.doubleValue ?? 0
            d.counters[k] = c
        }
        if let p = j["power"], let w = p["w"]?.doubleValue, let at = p["at"]?.doubleValue {
            d.power = Power(watts: w, source: MeterSource(rawValue: p["source"]?.stringValue ?? "") ?? .measured, at: at)
        }
        if let day = j["day"]?.intValue {
            d.day = Int64(day)
            d.today = (j["today"]?.objectValue ?? [:]).compactMapValues(\.doubleValue)
        }
        devices[id] = d
    }
}

/// Push events: what a vendor's cloud sends on its own (Bosch webhooks, relayed to the box over MQTT by the
/// partner's receiver) in neutral terms. The vendor decodes its envelope (`PushDecoding`); the bridge keeps order,
/// drops repeats, keeps energy counters monotonic and merges the values into the device's state.

/// One value an event sets.
public struct PushUpdate: Sendable, Equatable {
    /// Where the value goes.
    public enum Target: Sendable, Equatable, Hashable {
        /// A device-level field of `<device>/state` (e.g. `fault`).
        case device
        /// A field of a node's state; the node is created when the cloud's polls do not have it (a heat source).
        case node(String)
    }

    public enum Value: Sendable, Equatable {
        /// Set the field to this value.
        case set(JSONValue)
        /// A vendor energy counter in kWh: the field gets a total that only goes up (`MonotonicCounter`).
        case counter(Double)
        /// The device's connectivity (availability at once).
        case online(Bool)
    }

    /// What orders this value against others of its kind: an event for the same key with an older (or the same)
    /// timestamp changes nothing. The vendor's data point name, or the event type for whole-device events.
    public var key: String
    /// When the cloud says the value was measured or changed (the event's own time).
    public var at: EpochSeconds
    public var target: Target
    /// The field inside the target, as object keys (`["energy", "consumed_kwh"]`).
    public var path: [String]
    public var value: Value

    public init(key: String, at: EpochSeconds, target: Target, path: [String], value: Value) {
        self.key = key
        self.at = at
        self.target = target
        self.path = path
        self.value = value
    }
}

/// One event as the vendor module read it.
public struct PushEvent: Sendable, Equatable {
    /// The vendor's device id the event is about (Bosch `gatewayId`).
    public var vendorId: String
    /// The vendor's event type as sent (`DATA_POINT`, …), for counters and logs.
    public var type: String
    /// When the event says it happened.
    public var at: EpochSeconds
    public var updates: [PushUpdate]
    /// Data points or event types the module does not know: kept under the device's `vendor` field and counted,
    /// so a first real account shows what differs instead of losing it.
    public var unknown: [String]
    /// Fields that were repaired while reading (a number sent as a string): as `probe` reports them.
    public var issues: [String]

    public init(vendorId: String, type: String, at: EpochSeconds, updates: [PushUpdate], unknown: [String] = [], issues: [String] = []) {
        self.vendorId = vendorId
        self.type = type
        self.at = at
        self.updates = updates
        self.unknown = unknown
        self.issues = issues
    }
}

/// Why an event was not taken; the code is stable (counted per code on the account state, named in the log).
public struct PushRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable, CaseIterable {
        /// Not JSON, not an object, or larger than an event can be.
        case malformed = "PUSH_MALFORMED"
        /// A required field (gateway, type, time) missing or of the wrong type.
        case invalid = "PUSH_INVALID"
        /// The event is about a device that is not in this box's `devices:`.
        case unknownDevice = "PUSH_UNKNOWN_DEVICE"
        /// Its time lies further ahead of the box's clock than clocks drift.
        case future = "PUSH_FUTURE_TIMESTAMP"
        /// Every value in it is already known from a newer or the same event (a repeat, or out of order).
        case stale = "PUSH_STALE"
        /// An event of a kind that belongs to the partner, not to a box (contract changes).
        case notForBox = "PUSH_NOT_FOR_BOX"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// A vendor adapter whose cloud pushes events; `decodePush` reads one MQTT payload as the receiver forwarded it.
public protocol PushDecoding: VendorAdapter {
    /// Reads one event. Never throws on unknown data points (those are `PushEvent.unknown`); a payload that is not
    /// an event at all is a `PushRejection`.
    func decodePush(_ payload: [UInt8]) -> Result<PushEvent, PushRejection>
    /// Whether events report the effect of a command of `capability` (a DHW charge: its charge status): while push
    /// is live the bridge then skips the read-back after it, and the event brings the new state.
    func confirmedByEvents(capability: String) -> Bool
}

extension PushDecoding {
    public func confirmedByEvents(capability: String) -> Bool { false }
}

/// An account's `push:` settings.
public struct PushSettings: Sendable, Equatable {
    /// While events arrive, the account's measured values are not polled: its polls come every this many
    /// seconds instead (settings, schedules, anything an event does not carry). Default 900 s.
    public var reconcileIntervalS: Double = 900
    /// No event for this long from any of the account's devices: push counts as silent and polling returns to
    /// its normal interval. Default 1800 s (data points come on change; connectivity is checked every 15 min).
    public var silentAfterS: Double = 1800

    public init(reconcileIntervalS: Double = 900, silentAfterS: Double = 1800) {
        self.reconcileIntervalS = reconcileIntervalS
        self.silentAfterS = silentAfterS
    }
}

/// A vendor's energy counter made monotonic: a counter only goes up, and one that restarts at zero (an appliance
/// reset) continues from the total instead of looking like negative energy.
public struct MonotonicCounter: Sendable, Equatable {
    /// The vendor's last raw reading the total accounts for.
    public private(set) var raw: Double
    /// The published total.
    public private(set) var total: Double

    /// A fall this small (kWh, or this fraction of the reading) is noise — a rounding or a corrected reading — and
    /// is ignored; a larger one is a reset.
    public static let noiseKWh = 0.5
    public static let noiseFraction = 0.01

    /// The first reading: the vendor's lifetime counter is the total.
    public init(first raw: Double) {
        self.raw = max(raw, 0)
        self.total = max(raw, 0)
    }

    public init(raw: Double, total: Double) {
        self.raw = raw
        self.total = total
    }

    /// What became of a reading.
    public enum Step: Sendable, Equatable {
        case rose(Double)
        case unchanged
        /// A small fall: ignored, the raw value kept, so the way back up is not counted twice.
        case noise
        /// The counter restarted: the new reading is what was used since.
        case reset
    }

    @discardableResult
    public mutating func advance(to reading: Double) -> Step {
        guard reading.isFinite else { return .unchanged }
        let r = max(reading, 0)
        if r > raw {
            let d = r - raw
            total += d
            raw = r
            return .rose(d)
        }
        if r == raw { return .unchanged }
        if raw - r <= max(Self.noiseKWh, raw * Self.noiseFraction) { return .noise }
        total += r
        raw = r
        return .reset
    }
}

import HeatbridgeCore
import Synchronization

/// The account's API key, swappable at run time: rotation replaces it while polls and commands keep running.
/// The key never leaves this type except into the `x-api-key` header and the installer's key file.
public final class BoschKey: Sendable {
    /// Rotation settings; nil keeps the configured key until the installer replaces it.
    public struct Rotation: Sendable {
        /// Rotate this long before the embedded expiry.
        public var beforeS: Double
        /// Stores a new key durably (atomically, 0600) before it is used; returns an error text, nil on success.
        public var persist: @Sendable (String) -> String?
        /// How long to wait after a failed rotation before trying again.
        public var retryS: Double

        public init(beforeS: Double = 30 * 86_400, retryS: Double = 3600, persist: @escaping @Sendable (String) -> String?) {
            self.beforeS = beforeS
            self.persist = persist
            self.retryS = retryS
        }
    }

    struct State {
        var key: String
        var lastAttempt: EpochSeconds?
    }

    let state: Mutex<State>
    public let rotation: Rotation?

    public init(_ key: String, rotation: Rotation? = nil) {
        self.state = Mutex(State(key: key))
        self.rotation = rotation
    }

    public var current: String { state.withLock { $0.key } }
    public var expiresAt: EpochSeconds? { BoschWire.keyExpiry(current) }

    /// Whether a rotation is due at `now` (enabled, within `beforeS` of expiry, not tried in the last `retryS`).
    /// Marks the attempt, so concurrent callers do not rotate twice.
    func claimRotation(now: EpochSeconds) -> Bool {
        guard let rotation else { return false }
        return state.withLock { s in
            guard let expires = BoschWire.keyExpiry(s.key), expires - now <= rotation.beforeS else { return false }
            if let last = s.lastAttempt, now - last < rotation.retryS { return false }
            s.lastAttempt = now
            return true
        }
    }

    func replace(with key: String) { state.withLock { $0 = State(key: key, lastAttempt: nil) } }
}

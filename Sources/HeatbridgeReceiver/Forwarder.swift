import Dispatch
import HeatbridgeCore
import HeatbridgeMQTT
import HeatbridgeStore
import Logging
import Synchronization

/// Sends the spool to the broker: oldest first, at most `window` QoS 1 messages unacknowledged, each deleted from
/// the spool only once the broker acknowledged it. After a reconnect everything unacknowledged is sent again (at
/// least once; the box drops a repeat by the event's own time). While the broker is down events wait in the spool.
///
/// Runs on a thread of its own: the loop blocks on a semaphore that new events and acknowledgements signal.
public final class Forwarder: Sendable {
    let spool: EventSpool
    let mqtt: MosquittoClient
    let window: Int
    let logger: Logger
    private let wake = DispatchSemaphore(value: 0)
    private let acks = Mutex<[(mid: Int32, reason: Int)]>([])
    private let link = Mutex((connected: false, generation: 0))
    private let stopping = Mutex(false)
    private let done = DispatchSemaphore(value: 0)
    /// Counters for `/healthz` and the log.
    public let stats = Mutex(Stats())

    public struct Stats: Sendable, Equatable {
        public var delivered = 0
        /// Acknowledged with a failure reason (the broker's ACL refused the topic): dropped, logged.
        public var refused = 0
        public var inflight = 0
        public var connected = false
        /// Milliseconds from storing to the broker's acknowledgement, last 4096 deliveries.
        public var latenciesMs: [Double] = []
    }

    public init(spool: EventSpool, mqtt: MosquittoClient, window: Int, logger: Logger) {
        self.spool = spool
        self.mqtt = mqtt
        self.window = window
        self.logger = logger
    }

    /// New events are in the spool.
    public func nudge() { wake.signal() }

    public func start() {
        mqtt.onAcknowledged { [self] mid, reason in
            // One wake per batch: the loop takes every acknowledgement that came meanwhile.
            let first = acks.withLock { a -> Bool in
                a.append((mid, reason))
                return a.count == 1
            }
            if first { wake.signal() }
        }
        Task.detached { [self] in
            for await e in mqtt.events {
                switch e {
                case .connected:
                    link.withLock {
                        $0.connected = true
                        $0.generation += 1
                    }
                    logger.info("connected to the broker")
                case .disconnected(let reason):
                    let was = link.withLock { l -> Bool in
                        defer { l.connected = false }
                        return l.connected
                    }
                    if was { logger.warning("broker connection lost; events wait in the spool", metadata: ["reason": "\(reason)"]) }
                case .message: break
                }
                wake.signal()
            }
        }
        mqtt.start()
        DispatchQueue(label: "heatbridge.receiver.forwarder").async { [self] in loop() }
    }

    public func stop() {
        stopping.withLock { $0 = true }
        wake.signal()
        done.wait()
    }

    private func loop() {
        defer { done.signal() }
        var inflight: [Int32: (seq: Int64, sentAt: Double)] = [:]
        var lastSent: Int64 = 0
        var generation = -1
        // Acknowledged events are deleted from the spool in batches (every 50 ms or 1,000 events): one small
        // transaction per acknowledgement would cap the rate at the disk's.
        var delivered: [Int64] = []
        var flushedAt = monotonicSeconds()
        func flush() {
            do { try spool.delivered(delivered) } catch {
                logger.error("cannot clear delivered events from the spool", metadata: ["error": "\(error)"])
            }
            delivered.removeAll(keepingCapacity: true)
            flushedAt = monotonicSeconds()
        }
        while !stopping.withLock({ $0 }) {
            // Acknowledgements first: they free the window.
            let now = monotonicSeconds()
            var acked = 0
            var latencies: [Double] = []
            for a in acks.withLock({ a -> [(mid: Int32, reason: Int)] in
                defer { a = [] }
                return a
            }) {
                guard let s = inflight.removeValue(forKey: a.mid) else { continue }
                delivered.append(s.seq)
                acked += 1
                if a.reason >= 0x80 {
                    stats.withLock { $0.refused += 1 }
                    logger.error("the broker refused an event (its ACL?); dropped", metadata: ["reason": "\(a.reason)"])
                } else {
                    latencies.append((now - s.sentAt) * 1000)
                }
            }
            if delivered.count >= 1000 || (!delivered.isEmpty && (now - flushedAt >= 0.05 || inflight.isEmpty)) { flush() }
            if acked > 0 {
                stats.withLock { s in
                    s.delivered += latencies.count
                    s.latenciesMs.append(contentsOf: latencies)
                    if s.latenciesMs.count > 4096 { s.latenciesMs.removeFirst(s.latenciesMs.count - 4096) }
                }
            }
            let l = link.withLock { $0 }
            if l.generation != generation {
                // A new connection: what was in flight on the old one is sent again.
                flush()
                generation = l.generation
                inflight.removeAll()
                lastSent = 0
            }
            // Refilled once half the window is free: fewer, larger reads of the spool.
            if l.connected, inflight.count <= window / 2 {
                do {
                    for p in try spool.pending(after: lastSent, limit: window - inflight.count) {
                        guard let mid = mqtt.publishTracked(topic: p.topic, payload: p.payload) else { break }
                        inflight[mid] = (p.seq, monotonicSeconds())
                        lastSent = p.seq
                    }
                } catch {
                    logger.error("cannot read the spool", metadata: ["error": "\(error)"])
                }
            }
            stats.withLock {
                $0.inflight = inflight.count
                $0.connected = l.connected
            }
            _ = wake.wait(timeout: .now() + (delivered.isEmpty ? 1 : 0.05))
        }
        flush()
    }
}

func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

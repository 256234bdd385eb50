import CMosquitto
import Dispatch
import Glibc
import HeatbridgeCore
import Synchronization

/// Connection settings for `MosquittoClient`.
public struct MQTTConnectOptions: Sendable {
    public var host: String
    public var port: Int
    public var clientId: String
    /// False keeps a persistent session: the broker stores QoS 1 commands while the daemon is away.
    public var cleanSession: Bool
    public var username: String?
    public var password: String?
    public var caFile: String?
    public var tls: Bool
    public var keepaliveS: Int
    /// Last will: (topic, payload), published retained with QoS 1 by the broker if the connection dies.
    public var will: (topic: String, payload: [UInt8])?
    /// Payloads above this are not copied: the message is handed over empty, with `oversize` set. nil: no limit.
    public var maxPayloadBytes: Int?
    /// How long the network thread waits in one `mosquitto_loop` (ms) when nothing happens; a publish from another
    /// thread wakes it at once (libmosquitto's socket pair), so this only bounds how soon `shutdown` is noticed.
    public var loopTimeoutMs = 500
    /// What the broker may send at all (MQTT v5 Maximum Packet Size on CONNECT): larger packets are dropped
    /// by the broker, so libmosquitto never allocates them. nil: no limit.
    public var maxPacketBytes: Int? {
        maxPayloadBytes.map { max(1_048_576, 16 * $0) }
    }

    public init(
        host: String, port: Int, clientId: String, cleanSession: Bool = false, username: String? = nil,
        password: String? = nil, caFile: String? = nil, tls: Bool = false, keepaliveS: Int = 30,
        will: (topic: String, payload: [UInt8])? = nil, maxPayloadBytes: Int? = nil
    ) {
        self.host = host
        self.port = port
        self.clientId = clientId
        self.cleanSession = cleanSession
        self.username = username
        self.password = password
        self.caFile = caFile
        self.tls = tls
        self.keepaliveS = keepaliveS
        self.will = will
        self.maxPayloadBytes = maxPayloadBytes
    }
}

/// A libmosquitto error code with the library's text.
public struct MosquittoError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var operation: String
    public var description: String { "\(operation): \(String(cString: mosquitto_strerror(code)))" }
}

/// MQTT v5 over libmosquitto, with its own network thread.
///
/// Why v5 and our own loop instead of `mosquitto_loop_start`: a retained command must never run, and only
/// v5's "retain as published" subscription option tells us a live message was published retained. A v5
/// persistent session also needs the Session Expiry Interval on *every* CONNECT, and libmosquitto 2.0's
/// built-in reconnect drops CONNECT properties; so this client reconnects itself, with capped exponential
/// backoff (1 s doubling to 30 s).
public final class MosquittoClient: MQTTService {
    // The handle is only used through libmosquitto calls, which are thread-safe once `threaded_set` is on.
    // The network loop uses it directly (it ends before the handle is freed); every other use goes through
    // `live`, which is nil once `shutdown()` freed it: a publish, subscribe or second shutdown racing with
    // the first then does nothing instead of writing into freed memory (seen as "free(): corrupted unsorted
    // chunks" in the test process, whose harness shut its client down twice).
    nonisolated(unsafe) private let handle: OpaquePointer
    private let live: Mutex<LiveHandle?>
    /// The handle as a value the lock can hold (libmosquitto's handle is thread-safe with `threaded_set`).
    private struct LiveHandle: @unchecked Sendable { let pointer: OpaquePointer }
    public let events: AsyncStream<MQTTEvent>
    private let continuation: AsyncStream<MQTTEvent>.Continuation
    private let stats = Mutex(MQTTCounters())
    /// QoS 1 publishes handed to libmosquitto vs. acknowledged by the broker, for `flush`.
    private let inflight = Mutex((sent: 0, acked: 0))
    /// Told of every QoS 1 publish the broker answered: its message id and the PUBACK's reason code (< 0x80: taken).
    /// Held in a class: a closure kept directly in a `Mutex` is re-abstracted on every `withLock` access and stored
    /// back wrapped in one more thunk, so after ~100,000 acknowledgements calling it overflowed the stack (found with
    /// `Scripts/bench-receiver`: a SIGSEGV in `swift_slowAlloc` under a chain of reabstraction thunks).
    private let ackSink = Mutex<AckSink?>(nil)
    private final class AckSink: Sendable {
        let call: @Sendable (_ mid: Int32, _ reason: Int) -> Void
        init(_ call: @escaping @Sendable (_ mid: Int32, _ reason: Int) -> Void) { self.call = call }
    }
    /// Set between CONNACK and the loss of the connection. Publishing before CONNACK is a protocol error
    /// for mosquitto, so `publish` refuses then and the bridge re-publishes after `.connected`.
    private let connected = Mutex(false)
    private let stopping = Mutex(false)
    private let loopDone = DispatchSemaphore(value: 0)
    private let options: MQTTConnectOptions
    /// Runs on the network thread for each message before it is handed over. libmosquitto calls the message
    /// callback before it sends the QoS 1 PUBACK, so what `intake` persists is safe before the broker forgets
    /// the message (a crash before that makes the broker deliver it again).
    private let intake: (@Sendable (inout MQTTMessage) -> Void)?

    private static let libInit: Int32 = mosquitto_lib_init()

    public init(_ options: MQTTConnectOptions, intake: (@Sendable (inout MQTTMessage) -> Void)? = nil) throws(MosquittoError) {
        _ = Self.libInit
        self.options = options
        self.intake = intake
        (events, continuation) = AsyncStream.makeStream(of: MQTTEvent.self)
        guard let h = mosquitto_new(options.clientId, options.cleanSession, nil) else {
            throw MosquittoError(code: MOSQ_ERR_NOMEM.rawValue, operation: "mosquitto_new")
        }
        handle = h
        live = Mutex(LiveHandle(pointer: h))
        // `self` must outlive the handle: `shutdown()` destroys the handle before the client goes away.
        mosquitto_user_data_set(h, Unmanaged.passUnretained(self).toOpaque())
        try check(mosquitto_int_option(h, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5), "protocol version")
        try check(mosquitto_threaded_set(h, true), "threaded_set")
        // Results are small packets sent back to back (accepted, then done): without TCP_NODELAY, Nagle holds
        // the second until the broker's delayed ACK, adding ~40 ms to every command.
        try check(mosquitto_int_option(h, MOSQ_OPT_TCP_NODELAY, 1), "tcp_nodelay")
        mosquitto_connect_callback_set(h) { _, obj, rc in
            guard let obj else { return }
            let c = Unmanaged<MosquittoClient>.fromOpaque(obj).takeUnretainedValue()
            if rc == 0 {
                c.connected.withLock { $0 = true }
                c.stats.withLock { $0.connects += 1 }
                c.continuation.yield(.connected)
            }
        }
        mosquitto_disconnect_callback_set(h) { _, obj, rc in
            guard let obj else { return }
            let c = Unmanaged<MosquittoClient>.fromOpaque(obj).takeUnretainedValue()
            c.connected.withLock { $0 = false }
            c.continuation.yield(.disconnected(reason: Int(rc)))
        }
        // The v5 callback: a command's Response Topic and Correlation Data come as properties.
        mosquitto_message_v5_callback_set(h) { _, obj, msg, props in
            guard let obj, let m = msg?.pointee, let topic = m.topic else { return }
            let c = Unmanaged<MosquittoClient>.fromOpaque(obj).takeUnretainedValue()
            let size = Int(m.payloadlen)
            let oversize = c.options.maxPayloadBytes.map { size > $0 } ?? false
            let payload: [UInt8] =
                size > 0 && m.payload != nil && !oversize
                ? Array(UnsafeRawBufferPointer(start: m.payload, count: size)) : []
            c.stats.withLock { $0.received += 1 }
            var message = MQTTMessage(
                topic: String(cString: topic), payload: payload, retained: m.retain, qos: Int(m.qos),
                oversize: oversize ? size : nil)
            if !oversize { (message.responseTopic, message.correlationData) = MosquittoClient.replyProperties(props) }
            c.intake?(&message)
            c.continuation.yield(.message(message))
        }
        // v5: the broker's reason code comes along (0x87 "not authorized" is a PUBACK too, not a delivery).
        mosquitto_publish_v5_callback_set(h) { _, obj, mid, reason, _ in
            guard let obj else { return }
            let c = Unmanaged<MosquittoClient>.fromOpaque(obj).takeUnretainedValue()
            c.inflight.withLock { $0.acked += 1 }
            c.ackSink.withLock { $0 }?.call(mid, Int(reason))
        }
        if let user = options.username {
            try check(mosquitto_username_pw_set(h, user, options.password), "username_pw_set")
        }
        if options.tls {
            try check(mosquitto_tls_set(h, options.caFile, options.caFile == nil ? "/etc/ssl/certs" : nil, nil, nil, nil), "tls_set")
        }
        if let will = options.will {
            try check(
                will.payload.withUnsafeBytes {
                    mosquitto_will_set(h, will.topic, Int32($0.count), $0.baseAddress, 1, true)
                }, "will_set")
        }
    }

    /// Response Topic and Correlation Data of a received message (libmosquitto allocates both; freed here).
    private static func replyProperties(_ props: OpaquePointer?) -> (String?, [UInt8]?) {
        guard let props else { return (nil, nil) }
        var topic: String?
        var text: UnsafeMutablePointer<CChar>?
        if mosquitto_property_read_string(props, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), &text, false) != nil, let text {
            topic = String(cString: text)
            free(text)
        }
        var data: [UInt8]?
        var raw: UnsafeMutableRawPointer?
        var len: UInt16 = 0
        if mosquitto_property_read_binary(props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), &raw, &len, false) != nil {
            data = raw.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(len))) } ?? []
            free(raw)
        }
        return (topic, data)
    }

    private func check(_ rc: Int32, _ op: String) throws(MosquittoError) {
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MosquittoError(code: rc, operation: op) }
    }

    /// Starts the network thread, which connects and keeps reconnecting until `shutdown()`.
    public func start() {
        DispatchQueue(label: "heatbridge.mqtt").async { self.networkLoop() }
    }

    private func networkLoop() {
        defer { loopDone.signal() }
        var props: OpaquePointer?
        // Keep the session (and the QoS 1 commands queued in it) however long the daemon is away.
        if !options.cleanSession {
            mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), UInt32.max)
        }
        mosquitto_property_add_int16(&props, Int32(MQTT_PROP_RECEIVE_MAXIMUM.rawValue), UInt16(MQTTConnectLimits.receiveMaximum))
        if let limit = options.maxPacketBytes {
            mosquitto_property_add_int32(&props, Int32(MQTT_PROP_MAXIMUM_PACKET_SIZE.rawValue), UInt32(limit))
        }
        defer { mosquitto_property_free_all(&props) }
        var delay = 1.0
        var socketOpen = false
        while !stopping.withLock({ $0 }) {
            if !socketOpen {
                let rc = mosquitto_connect_bind_v5(handle, options.host, Int32(options.port), Int32(options.keepaliveS), nil, props)
                if rc == MOSQ_ERR_SUCCESS.rawValue {
                    socketOpen = true
                } else {
                    continuation.yield(.disconnected(reason: Int(rc)))
                    pause(&delay)
                    continue
                }
            }
            let rc = mosquitto_loop(handle, Int32(options.loopTimeoutMs), 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                socketOpen = false
                connected.withLock { $0 = false }
                if stopping.withLock({ $0 }) { break }
                pause(&delay)
            } else if connected.withLock({ $0 }) {
                delay = 1
            }
        }
    }

    /// Sleeps `delay` seconds in small steps (so `shutdown` is quick), then doubles it up to 30 s.
    private func pause(_ delay: inout Double) {
        var left = delay
        while left > 0 && !stopping.withLock({ $0 }) {
            usleep(100_000)
            left -= 0.1
        }
        delay = min(delay * 2, 30)
    }

    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) -> Bool {
        publish(topic: topic, payload: payload, qos: qos, retain: retain, responseTopic: nil, correlationData: nil)
    }

    @discardableResult
    public func publishReply(topic: String, payload: [UInt8], correlationData: [UInt8]?) -> Bool {
        publish(topic: topic, payload: payload, qos: 1, retain: false, responseTopic: nil, correlationData: correlationData)
    }

    /// Publishes with MQTT v5 properties: a Response Topic and Correlation Data (a request), Correlation Data
    /// alone (an answer), user properties (passed through by the broker, never read by the bridge).
    @discardableResult
    public func publish(
        topic: String, payload: [UInt8], qos: Int, retain: Bool, responseTopic: String?, correlationData: [UInt8]?,
        userProperties: [(String, String)] = []
    ) -> Bool {
        guard connected.withLock({ $0 }) else {
            stats.withLock { $0.publishFailures += 1 }
            return false
        }
        var props: OpaquePointer?
        defer { mosquitto_property_free_all(&props) }
        if let responseTopic { mosquitto_property_add_string(&props, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), responseTopic) }
        if let correlationData {
            correlationData.withUnsafeBytes {
                _ = mosquitto_property_add_binary(&props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), $0.baseAddress, UInt16(min($0.count, 65_535)))
            }
        }
        for (name, value) in userProperties {
            mosquitto_property_add_string_pair(&props, Int32(MQTT_PROP_USER_PROPERTY.rawValue), name, value)
        }
        let rc = live.withLock { h -> Int32 in
            guard let h else { return MOSQ_ERR_NO_CONN.rawValue }
            return payload.withUnsafeBytes { raw in
                mosquitto_publish_v5(h.pointer, nil, topic, Int32(raw.count), raw.baseAddress, Int32(qos), retain, props)
            }
        }
        let ok = rc == MOSQ_ERR_SUCCESS.rawValue
        if ok && qos > 0 { inflight.withLock { $0.sent += 1 } }
        stats.withLock { if ok { $0.published += 1 } else { $0.publishFailures += 1 } }
        return ok
    }

    /// Calls `sink` on the network thread for each acknowledged QoS 1 publish (`publishTracked`'s id).
    public func onAcknowledged(_ sink: @escaping @Sendable (_ mid: Int32, _ reason: Int) -> Void) {
        ackSink.withLock { $0 = AckSink(sink) }
    }

    /// Publishes QoS 1 and returns the message id the broker's acknowledgement will carry (`onAcknowledged`);
    /// nil when it could not be queued (not connected).
    public func publishTracked(topic: String, payload: [UInt8], retain: Bool = false) -> Int32? {
        guard connected.withLock({ $0 }) else { return nil }
        var mid: Int32 = 0
        let rc = live.withLock { h -> Int32 in
            guard let h else { return MOSQ_ERR_NO_CONN.rawValue }
            return payload.withUnsafeBytes { raw in
                mosquitto_publish_v5(h.pointer, &mid, topic, Int32(raw.count), raw.baseAddress, 1, retain, nil)
            }
        }
        let ok = rc == MOSQ_ERR_SUCCESS.rawValue
        if ok { inflight.withLock { $0.sent += 1 } }
        stats.withLock { if ok { $0.published += 1 } else { $0.publishFailures += 1 } }
        return ok ? mid : nil
    }

    /// Subscribes with "retain as published", so a retained command can be told from a live one.
    public func subscribe(_ filter: String, qos: Int, retainedOnlyWhenNew: Bool) {
        var options = MQTT_SUB_OPT_RETAIN_AS_PUBLISHED.rawValue
        if retainedOnlyWhenNew { options |= MQTT_SUB_OPT_SEND_RETAIN_NEW.rawValue }
        live.withLock { h in
            guard let h else { return }
            mosquitto_subscribe_v5(h.pointer, nil, filter, Int32(qos), Int32(options), nil)
        }
    }

    public var counters: MQTTCounters { stats.withLock { $0 } }

    /// Waits until the broker acknowledged every QoS 1 publish so far, or `timeoutS` passed.
    public func flush(timeoutS: Double) {
        var waited = 0.0
        while waited < timeoutS {
            if inflight.withLock({ $0.acked >= $0.sent }) { return }
            usleep(20_000)
            waited += 0.02
        }
    }

    /// Disconnects cleanly (no last will), stops the network thread and frees the handle. Idempotent: later
    /// calls, publishes and subscribes do nothing.
    public func shutdown() {
        let first = stopping.withLock { stopping in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        live.withLock { if let h = $0 { mosquitto_disconnect(h.pointer) } }
        // The loop notices within its 500 ms select; a connect blocked on an unreachable host may take
        // longer, and then the handle is deliberately leaked rather than freed under the thread's feet.
        let loopEnded = loopDone.wait(timeout: .now() + 3) == .success
        live.withLock { h in
            if loopEnded, let h { mosquitto_destroy(h.pointer) }
            h = nil
        }
        continuation.finish()
    }
}

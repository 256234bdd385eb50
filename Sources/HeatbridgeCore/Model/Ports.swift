/// Ports: the protocols through which bridge logic reaches the outside world. Real implementations live
/// in HeatbridgeHTTP, HeatbridgeMQTT and HeatbridgeStore; Core's unit tests use in-memory fakes.

// MARK: HTTP

/// One HTTP request as a vendor adapter builds it.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// Total time allowed for the exchange, in seconds.
    public var timeout: Double
    /// How to reach the server (trusted CA, client certificate, proxy); the account's, set by `AccountTransport`.
    public var connection = ConnectionOptions()

    public init(method: String, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeout: Double = 10) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// An account's way to its cloud or relay: which CA to trust (instead of the system's), a client certificate
/// for mutual TLS, an HTTP CONNECT proxy. Certificates are always verified.
public struct ConnectionOptions: Sendable, Equatable {
    /// PEM file of the CA(s) to trust; nil trusts the system's store.
    public var caFile: String?
    /// PEM client certificate and its key, for a relay that authenticates boxes by certificate.
    public var clientCertFile: String?
    public var clientKeyFile: String?
    /// `http://host:port` of an HTTP CONNECT proxy.
    public var proxy: String?
    /// A client certificate means a relay: it authenticates the box and holds the vendor's credential.
    public var isRelay: Bool { clientCertFile != nil }
    public init(caFile: String? = nil, clientCertFile: String? = nil, clientKeyFile: String? = nil, proxy: String? = nil) {
        self.caFile = caFile
        self.clientCertFile = clientCertFile
        self.clientKeyFile = clientKeyFile
        self.proxy = proxy
    }
}

/// A transport that sends every request with one account's `ConnectionOptions`.
public struct AccountTransport: HTTPTransport {
    public let inner: any HTTPTransport
    public let options: ConnectionOptions
    public init(_ inner: any HTTPTransport, options: ConnectionOptions) {
        self.inner = inner
        self.options = options
    }
    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        var r = request
        r.connection = options
        return try await inner.send(r)
    }
}

/// A complete HTTP response. Header names are lower-cased.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Why no HTTP response arrived at all.
public enum HTTPTransportError: Error, Sendable, Equatable {
    /// No answer in time. The request may have been sent (and acted on) or not.
    case timeout
    /// Reset, closed or broken after the request went out…: the text is the transport's own, never a secret.
    /// The cloud may have acted on the request.
    case connection(String)
    /// The request never left: DNS failure, refused connection, TLS handshake failure, or a timeout before
    /// anything was sent. The cloud cannot have acted on it, so it is safe to send again without a read-back.
    case unsent(String)
}

/// Sends HTTP requests. Implementations must not block the caller's executor.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse
}

// MARK: MQTT

/// What the daemon's MQTT client asks of the broker on CONNECT.
public enum MQTTConnectLimits {
    /// MQTT v5 Receive Maximum: QoS 1 commands in flight to the daemon at once (each is stored before its
    /// PUBACK). More wait at the broker, up to its `max_queued_messages` (etc/mosquitto/heatbridge.conf).
    public static let receiveMaximum = 20
}

/// A message received from the broker.
public struct MQTTMessage: Sendable, Equatable {
    public var topic: String
    public var payload: [UInt8]
    /// Set when the broker delivered a stored retained message (a retained command is never executed).
    public var retained: Bool
    public var qos: Int
    /// Row of this message in the store's inbox when it was persisted on arrival (before the broker got its
    /// acknowledgement), so a crash between arrival and acceptance cannot lose it.
    public var inboxRow: Int64?
    /// The payload's size when it was above the client's limit: the payload itself was never copied (it is
    /// empty here) and the command is refused `PAYLOAD_TOO_LARGE`.
    public var oversize: Int?
    /// MQTT v5 Response Topic: where the sender wants the answers to this message too.
    public var responseTopic: String?
    /// MQTT v5 Correlation Data: returned unchanged with each answer on the response topic.
    public var correlationData: [UInt8]?

    public init(
        topic: String, payload: [UInt8], retained: Bool = false, qos: Int = 1, inboxRow: Int64? = nil, oversize: Int? = nil,
        responseTopic: String? = nil, correlationData: [UInt8]? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.retained = retained
        self.qos = qos
        self.inboxRow = inboxRow
        self.oversize = oversize
        self.responseTopic = responseTopic
        self.correlationData = correlationData
    }
}

/// Where MQTT v5 request/response wants a command's results as well: the command's Response Topic, with its
/// Correlation Data on every result published there.
public struct ReplyAddress: Sendable, Equatable {
    public var topic: String
    public var correlationData: [UInt8]?

    public init(topic: String, correlationData: [UInt8]?) {
        self.topic = topic
        self.correlationData = correlationData
    }
}

/// What the MQTT client reports.
public enum MQTTEvent: Sendable, Equatable {
    case connected
    case disconnected(reason: Int)
    case message(MQTTMessage)
}

/// Counters the MQTT client keeps, for `bridge/health`.
public struct MQTTCounters: Sendable, Equatable {
    public var connects = 0
    public var published = 0
    public var publishFailures = 0
    public var received = 0
    public init() {}
}

/// The bridge's view of an MQTT client. The client reconnects by itself; the bridge reacts to `.connected`
/// by subscribing and re-publishing what the broker may have lost.
public protocol MQTTPort: Sendable {
    /// Events in arrival order; the stream ends when the client is shut down.
    var events: AsyncStream<MQTTEvent> { get }
    /// Hands a message to the client. Returns false when it could not be queued (not connected, too large):
    /// the caller keeps what must not be lost and publishes it again after the next `.connected`.
    @discardableResult
    func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) -> Bool
    /// Publishes an answer on a v5 Response Topic (QoS 1, not retained) with the request's Correlation Data.
    @discardableResult
    func publishReply(topic: String, payload: [UInt8], correlationData: [UInt8]?) -> Bool
    /// Subscribes (QoS as given); safe to call again after each reconnect. `retainedOnlyWhenNew` (MQTT v5
    /// Retain Handling 1): stored retained messages come only with a subscription the session did not have
    /// yet, not again on every reconnect of a persistent session.
    func subscribe(_ filter: String, qos: Int, retainedOnlyWhenNew: Bool)
    var counters: MQTTCounters { get }
}

/// An MQTT client as a service: started, flushed and shut down by whoever runs the bridge (`AppServices.run`).
public protocol MQTTService: MQTTPort {
    /// Connects (and keeps reconnecting) in the background; events arrive on `events`.
    func start()
    /// Waits up to `timeoutS` for what was handed over to reach the broker.
    func flush(timeoutS: Double)
    /// Disconnects and ends `events`.
    func shutdown()
}

extension MQTTPort {
    /// A subscription that gets the stored retained messages each time it is made.
    public func subscribe(_ filter: String, qos: Int) { subscribe(filter, qos: qos, retainedOnlyWhenNew: false) }
}

// MARK: Store

/// A device's last known state as cached in the store.
public struct CachedDevice: Sendable, Equatable {
    public var deviceId: String
    public var account: String
    public var state: JSONValue
    public var availability: String?
    public var nodes: [String: JSONValue]
    public var updatedAt: EpochSeconds
    /// Week programs by node, in the neutral JSON format.
    public var schedules: [String: JSONValue]

    public init(
        deviceId: String, account: String, state: JSONValue, availability: String?, nodes: [String: JSONValue], updatedAt: EpochSeconds,
        schedules: [String: JSONValue] = [:]
    ) {
        self.schedules = schedules
        self.deviceId = deviceId
        self.account = account
        self.state = state
        self.availability = availability
        self.nodes = nodes
        self.updatedAt = updatedAt
    }
}

/// A staged result waiting in the store until the broker has taken it.
public struct PendingResult: Sendable, Equatable {
    public var rowId: Int64
    public var topic: String
    public var payload: [UInt8]
    /// Set for the copy of a result on a command's v5 Response Topic (`publishReply`).
    public var reply: ReplyAddress?

    public init(rowId: Int64, topic: String, payload: [UInt8], reply: ReplyAddress? = nil) {
        self.rowId = rowId
        self.topic = topic
        self.payload = payload
        self.reply = reply
    }
}

/// A command accepted earlier, as `StatePort.priorCommand` finds it.
public struct PriorCommand: Sendable, Equatable {
    public var command: Command
    /// Its latest result (topic and payload), nil when none was stored.
    public var lastResult: PendingResult?

    public init(command: Command, lastResult: PendingResult?) {
        self.command = command
        self.lastResult = lastResult
    }

    /// Whether `target` with `params` is this same command again.
    public func isSame(_ target: Target, params: JSONValue) -> Bool {
        command.device == target.device && command.node == target.node && command.capability == target.capability && command.params == params
    }
}

/// Durable state: cached devices, commands and their results. Every call is synchronous and short; an error
/// means the write did not happen (disk full, I/O error) and the caller must say so instead of going on.
public protocol StatePort: Sendable {
    func loadDevices() throws -> [CachedDevice]
    func saveDevice(_ device: CachedDevice) throws
    /// Forgets a device that left (contract ended, no longer in the account): its cached state, nodes and
    /// programs, so neither `heatbridge status` nor the next start shows it again.
    func deleteDevice(_ deviceId: String) throws
    func insertCommand(_ command: Command) throws
    func updateCommand(_ command: Command) throws
    /// Commands not yet in a terminal state, oldest first.
    func openCommands() throws -> [Command]
    /// The id of the newest command for the same device, node and capability accepted after `command`, if
    /// any: resuming `command` after a restart would undo it.
    func newerCommand(than command: Command) throws -> String?
    /// Proves the store takes a write now (a small one, in a transaction): at start, and while writes fail.
    func writeCheck() throws
    /// Stores a result to publish; returns its row id. When `command` is given its new state is written in
    /// the same transaction (inserted when `isNew`), so a crash never leaves a status without its result.
    /// `inboxRow`, when given, is removed from the inbox in the same transaction: the message is handled.
    /// `reply`, when given, stores a copy for the command's v5 Response Topic in the same transaction; the
    /// copy's row id is returned second.
    func appendResult(
        commandId: String, topic: String, payload: [UInt8], reply: ReplyAddress?, command: Command?, isNew: Bool,
        inboxRow: Int64?
    ) throws -> (row: Int64, replyRow: Int64?)
    /// Persists an arriving command message; returns its inbox row.
    func inboxAdd(_ message: MQTTMessage) throws -> Int64
    /// Messages persisted but not handled yet (the daemon died in between), oldest first.
    func inboxPending() throws -> [MQTTMessage]
    func inboxRemove(_ row: Int64) throws
    /// The latest command accepted with this id since `since`, with its latest result: a message repeating it
    /// (a broker redelivery, a sender's retry) is answered with that result and never run twice, and another
    /// command reusing the id is refused.
    func priorCommand(id: String, since: EpochSeconds) throws -> PriorCommand?
    /// Bridge-local settings (e.g. a DHW circuit's default charge duration), by key.
    func loadSettings() throws -> [String: JSONValue]
    func saveSetting(_ key: String, _ value: JSONValue) throws
    /// Keeps the last published state of an account, for `heatbridge status`.
    func saveAccountState(name: String, state: JSONValue) throws
    func markResultPublished(_ rowId: Int64) throws
    func unpublishedResults() throws -> [PendingResult]
    /// Settings (a nil value deletes) and energy buckets (each added to its hour) in one transaction.
    func saveLive(settings: [(key: String, value: JSONValue?)], buckets: [EnergyBucket]) throws
    /// A device's hourly energy buckets in [fromHour, toHour), oldest first.
    func energyBuckets(device: String, fromHour: Int64, toHour: Int64) throws -> [EnergyBucket]
    /// Forgets buckets older than `beforeHour` (kept `EnergyHistory.retentionDays`).
    func pruneEnergy(beforeHour: Int64) throws
    /// Audits one firing of a local trigger (what fired, when, why, and the command it issued).
    func recordTriggerFire(name: String, at: EpochSeconds, commandId: String, reason: String) throws
}

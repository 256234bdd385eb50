import Dispatch
import Glibc
import HeatbridgeCore
import HeatbridgeStore
import Hummingbird
import Logging
import Synchronization

/// The webhook endpoint: `POST /bosch/events/<token>` (or `/bosch/events` with `X-Heatbridge-Token`), answered 202
/// only once every event of the request is in the spool (fsync'd), and at once otherwise; `GET /healthz` for the
/// partner's monitoring (not forwarded by nginx).
///
/// Why Hummingbird: SwiftNIO underneath (an event loop per core, no thread per connection), a small router, and
/// swift-service-lifecycle for SIGTERM; a POST is parsed and stored without a copy through Foundation.
public final class Receiver: Sendable {
    let token: [UInt8]
    let spool: EventSpool
    let forwarder: Forwarder
    let logger: Logger
    let config: ReceiverConfig
    let committer: Committer
    private let intake: Mutex<(intake: Intake, mtime: Int, checkedAt: Double)>
    public let counters = Mutex(Counters())

    public struct Counters: Sendable, Equatable {
        public var requests = 0
        public var accepted = 0
        public var duplicates = 0
        public var noBox = 0
        public var partner = 0
        public var refused: [Int: Int] = [:]
        /// Milliseconds from the request's body being read to the answer, last 8192 requests.
        public var acceptMs: [Double] = []
    }

    public init(config: ReceiverConfig, token: String, spool: EventSpool, forwarder: Forwarder, scope: ScopeMap, logger: Logger) {
        self.config = config
        self.token = Array(token.utf8)
        self.spool = spool
        self.forwarder = forwarder
        self.logger = logger
        self.committer = Committer(spool: spool)
        intake = Mutex(
            (
                Intake(scope: scope, topicTemplate: config.topicTemplate, partnerTopic: config.partnerTopic),
                Self.mtime(config.scopeMap), monotonicSeconds()
            ))
    }

    static func mtime(_ path: String) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { return -1 }
        return Int(st.st_mtim.tv_sec) * 1_000_000_000 + Int(st.st_mtim.tv_nsec)
    }

    /// Reads the scope map from its file.
    public static func loadScope(_ path: String) -> Result<ScopeMap, ScopeMapError> {
        guard let bytes = readFile(path) else { return .failure(ScopeMapError(message: "cannot read \(path): \(String(cString: strerror(errno)))")) }
        return .success(ScopeMap.parse(String(decoding: bytes, as: UTF8.self)))
    }

    /// A whole file's bytes; nil when it cannot be opened.
    public static func readFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        return bytes
    }

    /// The intake with the scope map as the file is now (re-read when it changed; checked at most once a second).
    func currentIntake() -> Intake {
        let now = monotonicSeconds()
        let (current, stale) = intake.withLock { s -> (Intake, Bool) in
            guard now - s.checkedAt >= 1 else { return (s.intake, false) }
            s.checkedAt = now
            return (s.intake, Self.mtime(config.scopeMap) != s.mtime)
        }
        guard stale else { return current }
        let m = Self.mtime(config.scopeMap)
        switch Self.loadScope(config.scopeMap) {
        case .success(let scope):
            for p in scope.problems { logger.warning("scope map", metadata: ["problem": "\(p)"]) }
            logger.info("scope map reloaded", metadata: ["gateways": "\(scope.boxOf.count)"])
            return intake.withLock { s in
                s.intake.scope = scope
                s.mtime = m
                return s.intake
            }
        case .failure(let why):
            // Keep routing with the last good map rather than dropping every event.
            logger.error("cannot reload the scope map; keeping the last one", metadata: ["error": "\(why)"])
            intake.withLock { $0.mtime = m }
            return current
        }
    }

    func authorised(_ given: String?) -> Bool {
        guard let given else { return false }
        let g = Array(given.utf8)
        // Constant time in the token's length: a wrong token's answer takes as long however much of it matched.
        var diff = UInt8(g.count == token.count ? 0 : 1)
        for i in 0..<token.count { diff |= token[i] ^ (i < g.count ? g[i] : 0) }
        return diff == 0 && !token.isEmpty
    }

    static func json(_ status: HTTPResponse.Status, _ body: JSONValue) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body.bytes)))
    }

    func refuse(_ status: Int, _ message: String) -> Response {
        counters.withLock { $0.refused[status, default: 0] += 1 }
        return Self.json(HTTPResponse.Status(code: status), ["message": .string(message)])
    }

    /// One webhook request.
    func receive(_ request: Request, token: String?) async -> Response {
        counters.withLock { $0.requests += 1 }
        guard authorised(token) else { return refuse(401, "unauthorized") }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: config.maxBodyBytes) } catch {
            return refuse(413, "body larger than \(config.maxBodyBytes) bytes")
        }
        let started = monotonicSeconds()
        let routed: [Intake.Routed]
        switch currentIntake().route(Array(buffer: body)) {
        case .success(let r): routed = r
        case .failure(let refusal): return refuse(refusal.status, refusal.message)
        }
        let fresh: [Bool]
        do { fresh = try await committer.add(routed.map(\.item), now: Double(time(nil))) } catch {
            logger.error("cannot store events; answered 503", metadata: ["error": "\(error)"])
            return refuse(503, "cannot store the event now")
        }
        forwarder.nudge()
        var accepted = 0
        var duplicates = 0
        var noBox = 0
        var partner = 0
        for (r, new) in zip(routed, fresh) {
            guard new else {
                duplicates += 1
                continue
            }
            switch r.route {
            case .box: accepted += 1
            case .partner: partner += 1
            case .noBox:
                noBox += 1
                logger.notice("event for a gateway in no box's scope; dropped", metadata: ["gateway": "\(r.gatewayId)", "type": "\(r.type)"])
            }
        }
        let ms = (monotonicSeconds() - started) * 1000
        counters.withLock { c in
            c.accepted += accepted
            c.duplicates += duplicates
            c.noBox += noBox
            c.partner += partner
            c.acceptMs.append(ms)
            if c.acceptMs.count > 8192 { c.acceptMs.removeFirst(c.acceptMs.count - 8192) }
        }
        return Self.json(.accepted, ["accepted": .int(accepted), "duplicates": .int(duplicates), "no_box": .int(noBox), "partner": .int(partner)])
    }

    /// Counters and percentiles for monitoring.
    public func health() -> JSONValue {
        let c = counters.withLock { $0 }
        let f = forwarder.stats.withLock { $0 }
        func pct(_ xs: [Double], _ p: Double) -> JSONValue {
            guard !xs.isEmpty else { return .null }
            let s = xs.sorted()
            return .number((s[min(s.count - 1, Int(Double(s.count) * p))] * 100).rounded() / 100)
        }
        var refused: [String: JSONValue] = [:]
        for (k, v) in c.refused { refused[String(k)] = .int(v) }
        return [
            "requests": .int(c.requests), "accepted": .int(c.accepted), "duplicates": .int(c.duplicates), "no_box": .int(c.noBox),
            "partner": .int(c.partner), "refused": .object(refused), "spool_depth": .int((try? spool.depth()) ?? -1),
            "accept_ms": ["p50": pct(c.acceptMs, 0.5), "p99": pct(c.acceptMs, 0.99)],
            "broker": [
                "connected": .bool(f.connected), "delivered": .int(f.delivered), "refused": .int(f.refused), "inflight": .int(f.inflight),
                "ack_ms": ["p50": pct(f.latenciesMs, 0.5), "p99": pct(f.latenciesMs, 0.99)],
            ],
            "scope_gateways": .int(intake.withLock { $0.intake.scope.boxOf.count }),
        ]
    }

    /// The router: the two webhook forms and the health page.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/bosch/events/:token") { [self] request, context in await receive(request, token: context.parameters.get("token")) }
        router.post("/bosch/events") { [self] request, _ in
            await receive(request, token: request.headers.first { $0.name.canonicalName == "x-heatbridge-token" }?.value)
        }
        router.get("/healthz") { [self] _, _ in Self.json(.ok, health()) }
        return router
    }

    /// Forgets fingerprints past the repeat window, hourly.
    public func pruneLoop() async {
        while !Task.isCancelled {
            do { try spool.pruneSeen(before: Double(time(nil)) - config.dedupeWindowS) } catch {
                logger.error("cannot prune the repeat window", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(3600))
        }
    }
}

/// Batches concurrent requests into one spool transaction: while one commit runs, the requests arriving meanwhile
/// wait and go together in the next (one fsync for many events; each request answered when its own are durable).
final class Committer: Sendable {
    struct Job {
        var items: [EventSpool.Item]
        var continuation: CheckedContinuation<[Bool], any Error>
    }

    let spool: EventSpool
    private let state = Mutex((jobs: [Job](), running: false))
    private let queue = DispatchQueue(label: "heatbridge.receiver.commit")

    init(spool: EventSpool) { self.spool = spool }

    func add(_ items: [EventSpool.Item], now: Double) async throws -> [Bool] {
        try await withCheckedThrowingContinuation { c in
            let start = state.withLock { s -> Bool in
                s.jobs.append(Job(items: items, continuation: c))
                if s.running { return false }
                s.running = true
                return true
            }
            if start { queue.async { self.drain(now: now) } }
        }
    }

    private func drain(now: Double) {
        while true {
            let jobs = state.withLock { s -> [Job] in
                let j = s.jobs
                s.jobs = []
                if j.isEmpty { s.running = false }
                return j
            }
            if jobs.isEmpty { return }
            do {
                let fresh = try spool.add(jobs.flatMap(\.items), now: Double(time(nil)))
                var i = 0
                for j in jobs {
                    j.continuation.resume(returning: Array(fresh[i..<(i + j.items.count)]))
                    i += j.items.count
                }
            } catch {
                for j in jobs { j.continuation.resume(throwing: error) }
            }
        }
    }
}

/// The scope map could not be read.
public struct ScopeMapError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

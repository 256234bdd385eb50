import Synchronization

/// Cloud requests per account: how many, by outcome, and how long they took, as Prometheus histograms. Written
/// by `MeasuredTransport` from whatever task sends, read by `/metrics`; a lock, because the writers are not on
/// the bridge's actor and a request's end must not wait for it.
public final class RequestMetrics: Sendable {
    /// Upper bounds (seconds) of the latency buckets: a cloud answers in 0.1–2 s; 10 s is a timeout's region.
    public static let bounds: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public struct Account: Sendable, Equatable {
        /// Requests by outcome: the HTTP status class (`2xx`, `4xx`, `5xx`), `429` on its own, or `timeout`/`error`.
        public var outcomes: [String: Int] = [:]
        /// Cumulative counts per bound of `bounds`, then the total (`+Inf`).
        public var buckets: [Int] = Array(repeating: 0, count: RequestMetrics.bounds.count + 1)
        public var sumS: Double = 0
    }

    private let state = Mutex<[String: Account]>([:])

    public init() {}

    /// Records one finished request of `account`.
    public func record(account: String, outcome: String, seconds: Double) {
        state.withLock { all in
            var a = all[account] ?? Account()
            a.outcomes[outcome, default: 0] += 1
            for (i, bound) in Self.bounds.enumerated() where seconds <= bound { a.buckets[i] += 1 }
            a.buckets[Self.bounds.count] += 1
            a.sumS += seconds
            all[account] = a
        }
    }

    public func snapshot() -> [String: Account] { state.withLock { $0 } }

    /// The outcome label of an answer: `429` apart from the other 4xx, because it is what a fleet watches.
    public static func outcome(status: Int) -> String {
        status == 429 ? "429" : "\(status / 100)xx"
    }
}

/// A transport that times every request of one account into `RequestMetrics`.
public struct MeasuredTransport: HTTPTransport {
    public let inner: any HTTPTransport
    public let account: String
    public let metrics: RequestMetrics

    public init(_ inner: any HTTPTransport, account: String, metrics: RequestMetrics) {
        self.inner = inner
        self.account = account
        self.metrics = metrics
    }

    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        let started = ContinuousClock.now
        func seconds() -> Double {
            let d = ContinuousClock.now - started
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        do {
            let response = try await inner.send(request)
            metrics.record(account: account, outcome: RequestMetrics.outcome(status: response.status), seconds: seconds())
            return response
        } catch {
            metrics.record(account: account, outcome: error == .timeout ? "timeout" : "error", seconds: seconds())
            throw error
        }
    }
}

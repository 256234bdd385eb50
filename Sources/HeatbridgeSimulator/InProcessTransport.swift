import HeatbridgeCore
import Synchronization

/// An `HTTPTransport` that hands each request straight to a `Simulator` in the same process: adapter tests run
/// against the simulated clouds without a socket or a server (Hummingbird's in-process testing, in small).
/// The request's URL path (everything after the host) is what the simulator routes on, as over HTTP.
public struct InProcessTransport: HTTPTransport {
    public let simulator: Simulator

    /// The time requests arrive at (the simulator's rate limits and clocks follow it); nil: real time.
    public let clock: (any Clock)?

    /// Whether the simulated cloud can be reached at all (a stopped simulator refuses the connection).
    public let link: Link

    /// The way to the simulated cloud, which a test can cut as it would stop a simulator process.
    public final class Link: Sendable {
        private let up = Mutex(true)
        public init() {}
        /// Cut (false): every request fails as a refused connection does, before anything is sent.
        public var isUp: Bool {
            get { up.withLock { $0 } }
            set { up.withLock { $0 = newValue } }
        }
    }

    /// With a `clock`, the simulated cloud lives on the test's time, as the bridge does (a test's `ManualClock`):
    /// a fault's latency passes on that clock too, and one longer than the request's timeout ends as a timeout
    /// after the cloud has acted (as over HTTP, where the simulator answers after its delay).
    public init(_ simulator: Simulator, clock: (any Clock)? = nil, link: Link = Link()) {
        self.simulator = simulator
        self.clock = clock
        self.link = link
    }

    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        guard link.isUp else { throw .unsent("connection refused") }
        guard let schemeEnd = request.url.range(of: "://") else { throw .connection("not an absolute URL: \(request.url)") }
        let afterScheme = request.url[schemeEnd.upperBound...]
        let path = afterScheme.firstIndex(of: "/").map { String(afterScheme[$0...]) } ?? "/"
        var headers: [String: String] = [:]
        for (name, value) in request.headers { headers[name.lowercased()] = value }
        let answer = await simulator.handle(method: request.method, path: path, headers: headers, body: request.body ?? [], arrivedAt: clock?.now())
        if let clock, answer.delayMs > 0 {
            let delay = Double(answer.delayMs) / 1000
            do { try await clock.sleep(seconds: min(delay, request.timeout)) } catch { throw .connection("cancelled") }
            if delay > request.timeout { throw .timeout }
        }
        return HTTPResponse(status: answer.status, headers: answer.headers, body: answer.body)
    }
}

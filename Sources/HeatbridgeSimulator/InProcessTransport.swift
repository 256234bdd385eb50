import HeatbridgeCore

/// An `HTTPTransport` that hands each request straight to a `Simulator` in the same process: adapter tests run
/// against the simulated clouds without a socket or a server (Hummingbird's in-process testing, in small).
/// The request's URL path (everything after the host) is what the simulator routes on, as over HTTP.
public struct InProcessTransport: HTTPTransport {
    public let simulator: Simulator

    /// The time requests arrive at (the simulator's rate limits and clocks follow it); nil: real time.
    public let clock: (any Clock)?

    /// With a `clock`, the simulated cloud lives on the test's time, as the bridge does (a test's `ManualClock`).
    public init(_ simulator: Simulator, clock: (any Clock)? = nil) {
        self.simulator = simulator
        self.clock = clock
    }

    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        guard let schemeEnd = request.url.range(of: "://") else { throw .connection("not an absolute URL: \(request.url)") }
        let afterScheme = request.url[schemeEnd.upperBound...]
        let path = afterScheme.firstIndex(of: "/").map { String(afterScheme[$0...]) } ?? "/"
        var headers: [String: String] = [:]
        for (name, value) in request.headers { headers[name.lowercased()] = value }
        let answer = await simulator.handle(method: request.method, path: path, headers: headers, body: request.body ?? [], arrivedAt: clock?.now())
        return HTTPResponse(status: answer.status, headers: answer.headers, body: answer.body)
    }
}

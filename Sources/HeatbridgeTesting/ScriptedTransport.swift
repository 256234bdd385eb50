import HeatbridgeCore
import Synchronization

/// A transport answering from a table, recording requests.
public final class ScriptedTransport: HTTPTransport {
    public let answers: @Sendable (HTTPRequest) -> Result<HTTPResponse, HTTPTransportError>
    public let requests = Mutex<[HTTPRequest]>([])
    public init(_ answers: @escaping @Sendable (HTTPRequest) -> Result<HTTPResponse, HTTPTransportError>) { self.answers = answers }

    /// Answers by path (relative to https://api.test): `(status, body)` per path, 404 for the rest.
    public static func routes(_ table: [String: (Int, String)]) -> ScriptedTransport {
        ScriptedTransport { r in
            let path = String(r.url.dropFirst("https://api.test".count))
            guard let (status, body) = table[path] else { return .success(HTTPResponse(status: 404)) }
            return .success(HTTPResponse(status: status, body: Array(body.utf8)))
        }
    }
    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        requests.withLock { $0.append(request) }
        return try answers(request).get()
    }
}

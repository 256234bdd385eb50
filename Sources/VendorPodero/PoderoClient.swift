import HeatbridgeCore

/// A bearer token and when it stops working.
public struct BearerToken: Sendable, Equatable {
    public var value: String
    public var expiresAt: EpochSeconds
    public init(value: String, expiresAt: EpochSeconds) {
        self.value = value
        self.expiresAt = expiresAt
    }

    /// Store form; the daemon keeps it in the store so a restart does not cost a token request.
    public var json: JSONValue { ["access_token": .string(value), "expires_at": .number(expiresAt)] }
    public init?(json: JSONValue) {
        guard let v = json["access_token"]?.stringValue, !v.isEmpty, let e = json["expires_at"]?.doubleValue else { return nil }
        self.init(value: v, expiresAt: e)
    }
}

/// Where a token survives restarts. The daemon backs it with the store; tests and CLI runs with nothing.
public struct TokenPersistence: Sendable {
    public var load: @Sendable () -> BearerToken?
    public var save: @Sendable (BearerToken) -> Void
    public init(load: @escaping @Sendable () -> BearerToken?, save: @escaping @Sendable (BearerToken) -> Void) {
        self.load = load
        self.save = save
    }
    public static let none = TokenPersistence(load: { nil }, save: { _ in })
}

/// OAuth2 client credentials for the Podero API (cloud-apis.md §3.2): one token at a time, fetched on first
/// use, renewed ahead of `expires_in` (there is no refresh token: renewal is a new client-credentials call),
/// and requested by one caller at a time so a burst of commands after a restart does not ask five times.
public actor PoderoSession {
    let transport: any HTTPTransport
    let tokenURL: String
    let clientId: String
    let clientSecret: String
    let timeout: Double
    let clock: any Clock
    let persistence: TokenPersistence
    var token: BearerToken?
    var loaded = false
    /// Callers waiting for the token request that another caller has under way (one request at a time).
    var waiters: [CheckedContinuation<Result<BearerToken, CloudError>, Never>]?
    /// How many tokens this session obtained from the endpoint (status and tests).
    public private(set) var tokensIssued = 0

    /// A token is renewed this long (or a tenth of its lifetime, if shorter) before it expires.
    static let renewAheadS = 300.0

    public init(
        transport: any HTTPTransport, tokenURL: String, clientId: String, clientSecret: String, timeout: Double,
        clock: any Clock, persistence: TokenPersistence = .none
    ) {
        self.transport = transport
        self.tokenURL = tokenURL
        self.clientId = clientId
        self.clientSecret = clientSecret
        self.timeout = timeout
        self.clock = clock
        self.persistence = persistence
    }

    /// A usable access token, from memory, the store, or the token endpoint.
    public func bearer() async throws(CloudError) -> String {
        if !loaded {
            loaded = true
            token = persistence.load()
        }
        if let t = token, clock.now() < t.expiresAt { return t.value }
        let result: Result<BearerToken, CloudError>
        if waiters != nil {
            // Someone is fetching already: wait for that answer instead of asking the endpoint again.
            result = await withCheckedContinuation { waiters?.append($0) }
        } else {
            // The fetch runs in the caller's own task (no unstructured task); the others get its answer.
            waiters = []
            result = await Self.fetch(transport, tokenRequest(), clock: clock)
            let waiting = waiters ?? []
            waiters = nil
            for w in waiting { w.resume(returning: result) }
        }
        switch result {
        case .success(let t):
            if token != t {
                token = t
                tokensIssued += 1
                persistence.save(t)
            }
            return t.value
        case .failure(let e):
            throw e
        }
    }

    /// Forgets `value` after the API refused it (401), so the next call fetches a new one.
    public func invalidate(_ value: String) {
        if token?.value == value { token = nil }
    }

    func tokenRequest() -> HTTPRequest {
        HTTPRequest(
            method: "POST", url: tokenURL,
            headers: [
                ("Authorization", Base64.basicAuthorization(user: clientId, password: clientSecret)),
                ("Cache-Control", "no-cache"), ("Content-Type", "application/json"), ("Accept", "application/json"),
            ],
            body: JSONValue.object([PoderoWire.Token.grantType: .string(PoderoWire.Token.clientCredentials)]).bytes, timeout: timeout)
    }

    static func fetch(_ transport: any HTTPTransport, _ request: HTTPRequest, clock: any Clock) async -> Result<BearerToken, CloudError> {
        let r: HTTPResponse
        do {
            r = try await transport.send(request)
        } catch {
            switch error {
            case .timeout:
                return .failure(
                    CloudError(.unavailable, message: "no answer from the Podero token endpoint within \(JSONValue.format(request.timeout)) s"))
            case .connection(let why), .unsent(let why):
                return .failure(CloudError(.unavailable, message: "cannot reach the Podero token endpoint: \(why)"))
            }
        }
        switch r.status {
        case 200..<300: break
        case 400, 401, 403:
            // invalid_client / unauthorized_client: the id or secret is wrong or the application was removed.
            let why = (try? JSONValue.parse(r.body))?["error"]?.stringValue.map { " (\($0))" } ?? ""
            return .failure(CloudError(.authFailed, status: r.status, message: "client credentials rejected by the token endpoint\(why)"))
        case 429: return .failure(PoderoClient.classify(r, what: "token request"))
        default: return .failure(CloudError(.unavailable, status: r.status, message: "Podero token endpoint error"))
        }
        guard let j = try? JSONValue.parse(r.body), let value = j[PoderoWire.Token.accessToken]?.stringValue, !value.isEmpty else {
            return .failure(CloudError(.badResponse, status: r.status, message: "token endpoint answered without an access_token"))
        }
        let lifetime = j[PoderoWire.Token.expiresIn]?.doubleValue ?? 3600
        let ahead = min(renewAheadS, lifetime / 10)
        return .success(BearerToken(value: value, expiresAt: clock.now() + max(lifetime - ahead, 1)))
    }
}

/// HTTP to the Podero Partner API with the bearer token: one retry with a new token after a 401, errors
/// classified the way the MQTT contract reports them. Used by the adapter and by the installer CLI.
public struct PoderoClient: Sendable {
    public let transport: any HTTPTransport
    /// `https://app.podero.com/api/partners/v2.0`.
    public let baseURL: String
    public let orgId: String
    /// The token source; nil behind a relay, which obtains and adds the bearer token itself.
    public let session: PoderoSession?
    public let timeout: Double

    public init(transport: any HTTPTransport, baseURL: String, orgId: String, session: PoderoSession?, timeout: Double) {
        self.transport = transport
        self.baseURL = baseURL
        self.orgId = orgId
        self.session = session
        self.timeout = timeout
    }

    /// Sends a request and returns the parsed JSON answer (`null` for an empty 2xx body).
    public func request(_ method: String, _ path: String, body: JSONValue? = nil) async throws(CloudError) -> JSONValue {
        var attempt = 0
        while true {
            attempt += 1
            let token = try await session?.bearer()
            var headers = [("Accept", "application/json")]
            if let token { headers.append(("Authorization", "Bearer \(token)")) }
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let r: HTTPResponse
            do {
                r = try await transport.send(HTTPRequest(method: method, url: baseURL + path, headers: headers, body: body?.bytes, timeout: timeout))
            } catch {
                throw CloudError.transport(error, api: "Podero API", what: "\(method) \(path)", timeout: timeout)
            }
            if r.status == 401 && attempt == 1, let session, let token {
                // An expired or revoked token: renew once and retry; a second 401 means the credentials are bad.
                await session.invalidate(token)
                continue
            }
            guard (200..<300).contains(r.status) else { throw Self.classify(r, what: "\(method) \(path)", relay: session == nil) }
            if r.body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return .null }
            guard let j = try? JSONValue.parse(r.body) else {
                throw CloudError(.badResponse, status: r.status, message: "unreadable answer to \(method) \(path)")
            }
            return j
        }
    }

    /// Maps a non-2xx answer to the contract's error classes, keeping the cloud's own words.
    static func classify(_ r: HTTPResponse, what: String, relay: Bool = false) -> CloudError {
        let detail = PoderoWire.errorDetail(r.body)
        func msg(_ fallback: String) -> String { detail.map { "\(fallback): \($0)" } ?? fallback }
        switch r.status {
        case 409: return CloudError(.conflict, status: 409, message: msg("the heat pump refused the change in its current state"))
        case 422: return CloudError(.rejected, status: 422, message: msg("Podero rejected the values"))
        default:
            return .status(
                r, api: "Podero API", what: what, detail: detail,
                unauthorized: relay ? CloudError.relayRefusedBox : "access token rejected twice; check the client credentials",
                forbidden: "not allowed for this organisation", retryAfterDefault: 30)
        }
    }
}

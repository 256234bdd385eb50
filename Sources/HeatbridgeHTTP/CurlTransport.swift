import CCurl
import CCurlShim
import Dispatch
import HeatbridgeCore
import Synchronization

/// HTTP over libcurl. Each request runs `curl_easy_perform` on a private dispatch queue, because it blocks:
/// running it on Swift's cooperative pool (two threads on the box) would stall the whole daemon.
///
/// Easy handles are kept in a small pool and reused: curl keeps a handle's connection cache and TLS session
/// cache across `curl_easy_reset`, so the ~20 requests of one poll to one cloud go over one TCP connection and
/// one TLS handshake instead of one each (curl closes connections idle for longer than two minutes itself).
public final class CurlTransport: HTTPTransport {
    private static let globalInit: Int32 = Int32(curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue)
    private let queue = DispatchQueue(label: "heatbridge.http", attributes: .concurrent)
    private let pool: HandlePool

    /// - Parameter maxIdleHandles: handles (each with its open connections) kept between requests; more
    ///   requests than this at once still run, on handles that are closed afterwards.
    public init(maxIdleHandles: Int = 4) {
        _ = Self.globalInit
        pool = HandlePool(maxIdle: maxIdleHandles)
    }

    /// Requests sent and the new connections they needed (TCP, and TLS for https) since the start.
    public var stats: (requests: Int, newConnections: Int) { pool.stats }

    /// Idle easy handles. A `CURL *` is used by one thread at a time: taken out, used, put back.
    final class HandlePool: Sendable {
        struct Handle: @unchecked Sendable { let raw: UnsafeMutableRawPointer }
        private struct State {
            var idle: [Handle] = []
            var requests = 0
            var newConnections = 0
        }
        private let state = Mutex(State())
        let maxIdle: Int

        init(maxIdle: Int) { self.maxIdle = maxIdle }
        deinit { for h in state.withLock({ $0.idle }) { curl_easy_cleanup(h.raw) } }

        var stats: (requests: Int, newConnections: Int) { state.withLock { ($0.requests, $0.newConnections) } }

        func take() -> UnsafeMutableRawPointer? {
            if let h = state.withLock({ $0.idle.popLast() }) {
                curl_easy_reset(h.raw)  // options back to defaults; connections and TLS sessions stay
                return h.raw
            }
            return curl_easy_init()
        }

        /// Returns a handle after a transfer, counting whether that transfer opened a new connection.
        func put(_ raw: UnsafeMutableRawPointer, healthy: Bool) {
            var connects = 0
            ccurl_getinfo_long(raw, CURLINFO_NUM_CONNECTS, &connects)
            let keep = state.withLock { s -> Bool in
                s.requests += 1
                s.newConnections += connects
                guard healthy, s.idle.count < maxIdle else { return false }
                s.idle.append(Handle(raw: raw))
                return true
            }
            if !keep { curl_easy_cleanup(raw) }
        }
    }

    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        // A cancelled caller (the daemon stopping) gets its answer at once; the transfer itself runs on to its
        // timeout on the queue, and its result is dropped. So a stop never waits for a slow cloud.
        let once = ResumeOnce()
        let result: Result<HTTPResponse, HTTPTransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                once.install(continuation)
                queue.async { [pool] in once.resume(Self.perform(request, pool: pool)) }
            }
        } onCancel: {
            once.resume(.failure(.connection("cancelled")))
        }
        return try result.get()
    }

    /// Resumes a continuation exactly once, whichever comes first: the transfer or a cancellation.
    private final class ResumeOnce: Sendable {
        typealias Answer = Result<HTTPResponse, HTTPTransportError>
        private struct State {
            var continuation: CheckedContinuation<Answer, Never>?
            var early: Answer?
            var done = false
        }
        private let state = Mutex(State())

        func install(_ c: CheckedContinuation<Answer, Never>) {
            let early = state.withLock { s -> Answer? in
                if let e = s.early {
                    s.done = true
                    return e
                }
                s.continuation = c
                return nil
            }
            if let early { c.resume(returning: early) }
        }

        func resume(_ answer: Answer) {
            let c = state.withLock { s -> CheckedContinuation<Answer, Never>? in
                guard !s.done else { return nil }
                guard let c = s.continuation else {
                    if s.early == nil { s.early = answer }
                    return nil
                }
                s.done = true
                s.continuation = nil
                return c
            }
            c?.resume(returning: answer)
        }
    }

    /// Collects the response body and headers from curl's callbacks.
    private final class Sink {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
        /// Cap on a response body: a cloud answering megabytes is broken, and the box has little memory.
        static let maxBody = 8 << 20
    }

    private static func perform(_ r: HTTPRequest, pool: HandlePool) -> Result<HTTPResponse, HTTPTransportError> {
        guard let h = pool.take() else { return .failure(.connection("curl_easy_init failed")) }
        var healthy = false
        defer { pool.put(h, healthy: healthy) }
        let sink = Sink()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        ccurl_setopt_string(h, CURLOPT_URL, r.url)
        // The daemon is multithreaded: curl must not use signals for timeouts.
        ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(h, CURLOPT_TIMEOUT_MS, max(1, Int(r.timeout * 1000)))
        ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(min(r.timeout, 10) * 1000)))
        ccurl_setopt_long(h, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        // Verification stays on (curl's default); an account may only narrow whom it trusts.
        let c = r.connection
        if let ca = c.caFile { ccurl_setopt_string(h, CURLOPT_CAINFO, ca) }
        if let cert = c.clientCertFile { ccurl_setopt_string(h, CURLOPT_SSLCERT, cert) }
        if let key = c.clientKeyFile { ccurl_setopt_string(h, CURLOPT_SSLKEY, key) }
        if let proxy = c.proxy {
            ccurl_setopt_string(h, CURLOPT_PROXY, proxy)
            ccurl_setopt_long(h, CURLOPT_HTTPPROXYTUNNEL, 1)  // CONNECT: the proxy sees no request, only where it goes
        }
        ccurl_setopt_string(h, CURLOPT_CUSTOMREQUEST, r.method)
        if r.method == "HEAD" { ccurl_setopt_long(h, CURLOPT_NOBODY, 1) }
        for (name, value) in r.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        if let body = r.body {
            headerList = curl_slist_append(headerList, "Content-Type: application/json")
            ccurl_setopt_long(h, CURLOPT_POSTFIELDSIZE, body.count)
            body.withUnsafeBytes { raw in
                // COPYPOSTFIELDS copies the bytes, so the buffer need not outlive this call.
                _ = ccurl_setopt_pointer(
                    h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        // Stop curl from adding "Expect: 100-continue", which costs a round trip on every body.
        headerList = curl_slist_append(headerList, "Expect:")
        ccurl_setopt_pointer(h, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))

        let ctx = Unmanaged.passUnretained(sink).toOpaque()
        ccurl_setopt_write_function(h) { ptr, size, n, ud in
            let sink = Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue()
            let count = size * n
            if sink.body.count + count > Sink.maxBody { return 0 }  // makes curl fail with CURLE_WRITE_ERROR
            if let ptr { sink.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: count)) }
            return count
        }
        ccurl_setopt_pointer(h, CURLOPT_WRITEDATA, ctx)
        ccurl_setopt_header_function(h) { ptr, size, n, ud in
            let sink = Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue()
            let count = size * n
            guard let ptr else { return count }
            let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: count), as: UTF8.self)
            if line.hasPrefix("HTTP/") {
                sink.headers = [:]  // a new response (after a redirect or 100-continue) starts over
            } else if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
                sink.headers[name] = value
            }
            return count
        }
        ccurl_setopt_pointer(h, CURLOPT_HEADERDATA, ctx)

        let code = curl_easy_perform(h)
        if code != CURLE_OK {
            // Whether the request left tells a retry whether the cloud may have acted on it: curl counts the
            // request bytes it sent (0 when it failed resolving, connecting or in the TLS handshake).
            var sent = 0
            ccurl_getinfo_long(h, CURLINFO_REQUEST_SIZE, &sent)
            let why = String(cString: curl_easy_strerror(code))
            if sent == 0 { return .failure(.unsent(code == CURLE_OPERATION_TIMEDOUT ? "timeout before the request was sent: \(why)" : why)) }
            return .failure(code == CURLE_OPERATION_TIMEDOUT ? .timeout : .connection(why))
        }
        var status = 0
        ccurl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        healthy = true
        return .success(HTTPResponse(status: status, headers: sink.headers, body: sink.body))
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}

import CCurl
import CCurlShim
import Dispatch
import HeatbridgeCore
import Synchronization

/// HTTP over libcurl. Each request runs `curl_easy_perform` on a private dispatch queue, because it blocks:
/// running it on Swift's cooperative pool (two threads on the box) would stall the whole daemon.
public final class CurlTransport: HTTPTransport {
    private static let globalInit: Int32 = Int32(curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue)
    private let queue = DispatchQueue(label: "heatbridge.http", attributes: .concurrent)

    public init() {
        _ = Self.globalInit
    }

    public func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        // A cancelled caller (the daemon stopping) gets its answer at once; the transfer itself runs on to its
        // timeout on the queue, and its result is dropped. So a stop never waits for a slow cloud.
        let once = ResumeOnce()
        let result: Result<HTTPResponse, HTTPTransportError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                once.install(continuation)
                queue.async { once.resume(Self.perform(request)) }
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
                if let e = s.early { s.done = true; return e }
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

    private static func perform(_ r: HTTPRequest) -> Result<HTTPResponse, HTTPTransportError> {
        guard let h = curl_easy_init() else { return .failure(.connection("curl_easy_init failed")) }
        defer { curl_easy_cleanup(h) }
        let sink = Sink()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        ccurl_setopt_string(h, CURLOPT_URL, r.url)
        // The daemon is multithreaded: curl must not use signals for timeouts.
        ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_long(h, CURLOPT_TIMEOUT_MS, max(1, Int(r.timeout * 1000)))
        ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(min(r.timeout, 10) * 1000)))
        ccurl_setopt_long(h, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
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
                _ = ccurl_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
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
        if code == CURLE_OPERATION_TIMEDOUT { return .failure(.timeout) }
        guard code == CURLE_OK else {
            return .failure(.connection(String(cString: curl_easy_strerror(code))))
        }
        var status = 0
        ccurl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
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

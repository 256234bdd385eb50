import Dispatch
import Glibc
import Synchronization

/// One HTTP request as the listener read it: GET only, no body.
public struct WebRequest: Sendable {
    public var method: String
    /// The path without the query, e.g. `/metrics`.
    public var path: String
    public var query: [String: String]
    /// Header names lower-cased.
    public var headers: [String: String]
}

/// What a handler answers.
public struct WebResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
    public init(status: Int, text: String) { self.init(status: status, body: Array(text.utf8)) }
}

/// Why the listener could not start.
public struct WebListenerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// A small HTTP/1.1 server for the box's own status page and metrics, written for footprint: one thread, `poll(2)`
/// over at most `maxClients` connections, every request read into a fixed-size buffer, one answer per connection
/// (`Connection: close`). What it refuses, it refuses early and cheaply:
/// - a request not complete within `requestDeadlineS` of its connection (slow-loris) gets 408 and is closed;
/// - headers past `maxRequestBytes` get 431, a body (`Content-Length` > 0, chunked) 413: nothing is read further;
/// - past `maxClients` connections a new one gets 503 at once;
/// - with a token, a request without it (`Authorization: Bearer …` or `?token=…`) gets 401 and nothing else.
/// The handler is async (the bridge is an actor); the listener thread waits for it at most `handlerTimeoutS`.
public final class WebListener: Sendable {
    public struct Limits: Sendable {
        public var maxRequestBytes = 8192
        public var requestDeadlineS = 5.0
        public var maxClients = 16
        public var handlerTimeoutS = 5.0
        public var writeTimeoutS = 5.0
        public init() {}
    }

    let address: String
    let port: Int
    let token: [UInt8]?
    let limits: Limits
    let handler: @Sendable (WebRequest) async -> WebResponse
    private let running = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    private let boundPort = Atomic<Int>(0)

    public init(
        address: String, port: Int, token: String?, limits: Limits = Limits(),
        handler: @escaping @Sendable (WebRequest) async -> WebResponse
    ) {
        self.address = address == "localhost" ? "127.0.0.1" : address
        self.port = port
        self.token = token.map { Array($0.utf8) }
        self.limits = limits
        self.handler = handler
    }

    /// The port bound (the one asked for, or the kernel's choice for 0).
    public var boundPortNumber: Int { boundPort.load(ordering: .relaxed) }

    /// Binds and starts serving on a thread of its own.
    public func start() throws(WebListenerError) {
        let fd = try Self.bind(address, port)
        var sa = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let p =
            sa.ss_family == sa_family_t(AF_INET6)
            ? withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) } }
            : withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) } }
        boundPort.store(p, ordering: .relaxed)
        running.store(true, ordering: .relaxed)
        let fdBox = fd
        DispatchQueue(label: "heatbridge.web").async { [self] in
            serve(fdBox)
            close(fdBox)
            stopped.signal()
        }
    }

    /// Stops serving and closes every connection; returns once the thread has ended.
    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        stopped.wait()
    }

    static func bind(_ address: String, _ port: Int) throws(WebListenerError) -> Int32 {
        let v6 = address.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw WebListenerError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var rc: Int32
        if v6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, address, &sa.sin6_addr) == 1 else {
                close(fd)
                throw WebListenerError(description: "not an IPv6 address: \(address)")
            }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, address, &sa.sin_addr) == 1 else {
                close(fd)
                throw WebListenerError(description: "not an IPv4 address: \(address)")
            }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard rc == 0, listen(fd, 32) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw WebListenerError(description: "cannot listen on \(address):\(port): \(why)")
        }
        return fd
    }

    /// One connection being read.
    struct Client {
        var fd: Int32
        var buffer: [UInt8]
        var deadline: Double
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func serve(_ listener: Int32) {
        var clients: [Client] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while running.load(ordering: .relaxed) {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)] + clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), 200)
            let now = Self.monotonic()
            if n > 0, fds[0].revents & Int16(POLLIN) != 0 {
                while true {
                    let c = accept(listener, nil, nil)
                    if c < 0 { break }
                    // accept4 is not in Swift's Glibc module: the flags one call later.
                    _ = fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK)
                    _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                    if clients.count >= limits.maxClients {
                        respond(c, WebResponse(status: 503, text: "busy: too many connections\n"))
                        continue
                    }
                    clients.append(Client(fd: c, buffer: [], deadline: now + limits.requestDeadlineS))
                }
            }
            var keep: [Client] = []
            for (i, var client) in clients.enumerated() {
                let revents = i + 1 < fds.count ? fds[i + 1].revents : 0
                var done = false
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    let room = limits.maxRequestBytes + 1 - client.buffer.count
                    let got = chunk.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, min(room, $0.count), 0) }
                    if got <= 0 {
                        if got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                            close(client.fd)
                            continue
                        }
                    } else {
                        client.buffer += chunk[0..<got]
                        done = handleIfComplete(&client)
                    }
                }
                if done { continue }
                if now > client.deadline {
                    respond(client.fd, WebResponse(status: 408, text: "request not complete in time\n"))
                    continue
                }
                keep.append(client)
            }
            clients = keep
        }
        for c in clients { close(c.fd) }
    }

    /// Answers the client when its request is complete or cannot be taken; returns whether it was closed.
    func handleIfComplete(_ client: inout Client) -> Bool {
        guard let end = Self.headerEnd(client.buffer) else {
            if client.buffer.count > limits.maxRequestBytes {
                respond(client.fd, WebResponse(status: 431, text: "request headers too large\n"))
                return true
            }
            return false
        }
        let answer: WebResponse
        switch Self.parse(Array(client.buffer[0..<end])) {
        case .refused(let r): answer = r
        case .request(let request):
            if let token, !authorized(request, token) {
                answer = WebResponse(status: 401, text: "unauthorized\n")
            } else {
                answer = run(request)
            }
        }
        respond(client.fd, answer)
        return true
    }

    /// The token in constant time, so its bytes cannot be found one by one from response times.
    func authorized(_ request: WebRequest, _ token: [UInt8]) -> Bool {
        var given: [UInt8]?
        if let auth = request.headers["authorization"], auth.hasPrefix("Bearer ") {
            given = Array(auth.utf8.dropFirst(7))
        } else if let t = request.query["token"] {
            given = Array(t.utf8)
        }
        guard let given, given.count == token.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(given, token) { diff |= a ^ b }
        return diff == 0
    }

    final class Answer: Sendable {
        let value = Mutex<WebResponse?>(nil)
        let done = DispatchSemaphore(value: 0)
    }

    func run(_ request: WebRequest) -> WebResponse {
        let answer = Answer()
        let handler = self.handler
        Task {
            let r = await handler(request)
            answer.value.withLock { $0 = r }
            answer.done.signal()
        }
        guard answer.done.wait(timeout: .now() + limits.handlerTimeoutS) == .success else {
            return WebResponse(status: 503, text: "the bridge did not answer in time\n")
        }
        return answer.value.withLock { $0 } ?? WebResponse(status: 500, text: "no answer\n")
    }

    static func headerEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    enum Parsed {
        case request(WebRequest)
        case refused(WebResponse)
    }

    static func parse(_ head: [UInt8]) -> Parsed {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return .refused(WebResponse(status: 400, text: "bad request line\n")) }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return .refused(WebResponse(status: 400, text: "bad header\n")) }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        }
        if let length = headers["content-length"], length != "0" { return .refused(WebResponse(status: 413, text: "no request body is taken\n")) }
        if headers["transfer-encoding"] != nil { return .refused(WebResponse(status: 413, text: "no request body is taken\n")) }
        let method = String(parts[0])
        guard method == "GET" || method == "HEAD" else { return .refused(WebResponse(status: 405, text: "only GET\n")) }
        let target = parts[1]
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if path.count == 2 {
            for pair in path[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query[String(kv[0])] = kv.count == 2 ? percentDecoded(kv[1]) : ""
            }
        }
        return .request(WebRequest(method: method, path: String(path[0]), query: query, headers: headers))
    }

    static func percentDecoded(_ s: Substring) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == 0x25, bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b == 0x2b ? 0x20 : b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static let reasons = [
        200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
        408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
        500: "Internal Server Error", 503: "Service Unavailable",
    ]

    /// Writes the whole answer (waiting for the socket at most `writeTimeoutS`), then closes the connection.
    func respond(_ fd: Int32, _ r: WebResponse) {
        var head = "HTTP/1.1 \(r.status) \(Self.reasons[r.status] ?? "Status")\r\nContent-Type: \(r.contentType)\r\n"
        head += "Content-Length: \(r.body.count)\r\nConnection: close\r\nCache-Control: no-store\r\n"
        head += "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n"
        if r.status == 401 { head += "WWW-Authenticate: Bearer\r\n" }
        head += "\r\n"
        let bytes = Array(head.utf8) + r.body
        let deadline = Self.monotonic() + limits.writeTimeoutS
        var sent = 0
        while sent < bytes.count, Self.monotonic() < deadline {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                continue
            }
            if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK { break }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&p, 1, 100)
        }
        // The answer is followed by FIN; a client still sending a refused body may then see a reset, which is
        // what it asked for.
        shutdown(fd, Int32(SHUT_WR))
        close(fd)
    }
}

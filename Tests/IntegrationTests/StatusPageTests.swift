import Foundation
import HeatbridgeCore
import HeatbridgeHTTP
import XCTest

/// The daemon's HTTP listener with real consumers: a real Prometheus scraping `/metrics` (and `promtool check
/// metrics`), a real headless Chromium loading the status page, raw sockets for what a hostile client does.
final class StatusPageTests: XCTestCase {
    static let scriptModel = "<script>document.title='owned'</script>"
    static let token = "0123456789abcdef0123456789abcdef"

    struct Box {
        var h: Harness
        var port: Int
        var tokenFile: URL
        var base: String { "http://127.0.0.1:\(port)" }
    }

    /// A daemon with the listener on a free loopback port behind a token; Bosch gateway 101000003's model (what
    /// its name is made of) is a `<script>` element.
    func startBox(pollIntervalS: Double = 2) throws -> Box {
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("status-page-\(getpid()).yaml")
        try """
        bosch:
          gateways:
            - {id: "101000001", brand: bosch}
            - {id: "101000003", brand: buderus, device_type: "\(Self.scriptModel)"}
        """.write(to: scenario, atomically: true, encoding: .utf8)
        let h = try Harness(pollIntervalS: pollIntervalS, simArgs: ["--scenario", scenario.path])
        let port = try Harness.freePort()
        let tokenFile = h.dir.appendingPathComponent("http.token")
        try (Self.token + "\n").write(to: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile.path, 0o600)
        try h.writeConfig(
            pollIntervalS: pollIntervalS, timeoutS: 5, logLevel: "info", devices: ["101000001", "101000003"],
            extraSections: "\nfleet:\n  boxes: 1\nhttp:\n  listen: 127.0.0.1\n  port: \(port)\n  token_file: \(tokenFile.path)\n")
        let check = try h.cli(["check-config"])
        XCTAssertEqual(check.status, 0, check.output)
        try h.startDaemon()
        try h.waitForPort(port, what: "the status page")
        // The models come with the gateway list (a background read on a box with an allow-list).
        h.client.waitJSON("heatbridge/bosch-101000003/state", timeout: 60) { $0["model"]?.stringValue == Self.scriptModel }
        return Box(h: h, port: port, tokenFile: tokenFile)
    }

    func get(_ url: String, token: String? = StatusPageTests.token) -> HTTPResponse? {
        var request = HTTPRequest(method: "GET", url: url, timeout: 10)
        if let token { request.headers = [("Authorization", "Bearer \(token)")] }
        return try? blockingSend(CurlTransport(), request).get()
    }

    func text(_ r: HTTPResponse?) -> String { r.map { String(decoding: $0.body, as: UTF8.self) } ?? "" }

    func rssKiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
    }

    func testPageMetricsHealthzTheTokenAndHostileClients() throws {
        let box = try startBox()
        let h = box.h
        defer { h.stopAll() }
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000001/dhw1/state", timeout: 30)
        c.publish("heatbridge/bosch-101000001/dhw1/charge/set", #"{"id":"page-1","action":"start","duration_min":20}"#)
        XCTAssertNotNil(c.waitResult("heatbridge/bosch-101000001/dhw1/charge/result", id: "page-1", status: "done", timeout: 20))

        // The token: none or a wrong one gets 401 and nothing else; the right one as a header or in the query.
        for (token, path) in [(nil, "/"), ("wrong-token-wrong-token-wrong-tok", "/"), (nil, "/metrics"), (nil, "/healthz"), (nil, "/status.json")]
            as [(String?, String)]
        {
            let r = get(box.base + path, token: token)
            XCTAssertEqual(r?.status, 401, path)
            XCTAssertEqual(text(r), "unauthorized\n", "a refused request got more than the refusal")
        }
        XCTAssertEqual(get(box.base + "/?token=" + Self.token, token: nil)?.status, 200)

        // The page: devices by the name Home Assistant shows, states, the last command with every result.
        let page = try XCTUnwrap(get(box.base + "/"))
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.headers["content-type"], "text/html; charset=utf-8")
        let html = text(page)
        XCTAssertTrue(html.contains("Bosch CS7001iAW 101000001"), html)
        XCTAssertTrue(html.contains("page-1"))
        XCTAssertTrue(html.contains("&lt;script&gt;document.title=&#39;owned&#39;&lt;/script&gt;"), "the device name not escaped")
        XCTAssertFalse(html.contains("<script"), "a <script> element on the page")
        XCTAssertFalse(html.contains(Harness.apiKey))

        // /healthz for a supervisor; unknown paths; methods and bodies it does not take.
        let healthz = try XCTUnwrap(get(box.base + "/healthz"))
        XCTAssertEqual(healthz.status, 200)
        XCTAssertEqual(try JSONValue.parse(healthz.body)["healthy"], true)
        XCTAssertEqual(get(box.base + "/nope")?.status, 404)
        XCTAssertEqual(
            try blockingSend(
                CurlTransport(),
                HTTPRequest(
                    method: "POST", url: box.base + "/", headers: [("Authorization", "Bearer \(Self.token)")],
                    body: Array("x".utf8), timeout: 5)
            ).get().status, 413)

        // /metrics passes promtool and carries the figures.
        let metrics = text(get(box.base + "/metrics"))
        XCTAssertTrue(metrics.contains(#"heatbridge_polls_total{account="bosch-test"}"#), metrics)
        XCTAssertTrue(metrics.contains(#"heatbridge_commands_ended_total{code="",status="done"} 1"#), metrics)
        XCTAssertTrue(metrics.contains(#"heatbridge_cloud_request_duration_seconds_bucket{account="bosch-test",le="+Inf"}"#), metrics)
        XCTAssertTrue(metrics.contains(#"heatbridge_account_state{account="bosch-test",state="ready"} 1"#), metrics)
        let metricsFile = h.dir.appendingPathComponent("metrics.txt")
        try metrics.write(to: metricsFile, atomically: true, encoding: .utf8)
        let promtool = try runProcess("/bin/sh", ["-c", "promtool check metrics < \(metricsFile.path)"])
        XCTAssertEqual(promtool.status, 0, "promtool check metrics: \(promtool.output)")

        // Hostile clients: slow-loris connections fill every slot and dribble; a 10 MB header; a 10 MB body.
        let pid = try XCTUnwrap(h.daemon?.processIdentifier)
        for _ in 0..<5 { _ = get(box.base + "/metrics") }  // warm: the answers' buffers exist before the baseline
        let before = rssKiB(pid)
        let loris = (0..<24).compactMap { _ in RawClient(port: box.port) }
        XCTAssertEqual(loris.count, 24)
        for _ in 0..<3 {
            for l in loris { l.send(Array("G".utf8)) }
            Thread.sleep(forTimeInterval: 0.5)  // the input itself: a slow-loris client sends a byte now and then
        }
        // More than the listener's 16 slots: the rest were answered 503 at once.
        let busy = loris.map { $0.readAll(timeout: 0.2) }.filter { $0.hasPrefix("HTTP/1.1 503") }.count
        XCTAssertGreaterThanOrEqual(busy, 8, "connections past the limit were not refused")
        // The dribblers are cut off at the request deadline (5 s) with 408.
        let cut = loris.map { $0.readAll(timeout: 8) }.filter { $0.hasPrefix("HTTP/1.1 408") }.count
        XCTAssertGreaterThanOrEqual(cut, 1, "slow requests were not cut off")
        XCTAssertEqual(get(box.base + "/healthz")?.status, 200, "the listener did not recover from slow clients")

        let big = try XCTUnwrap(RawClient(port: box.port))
        big.send(Array("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".utf8) + [UInt8](repeating: 0x61, count: 10 << 20))
        XCTAssertTrue(big.readAll(timeout: 5).hasPrefix("HTTP/1.1 431"), "a 10 MB header was not refused")
        let body = try XCTUnwrap(RawClient(port: box.port))
        body.send(Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n".utf8) + [UInt8](repeating: 0x61, count: 10 << 20))
        XCTAssertTrue(body.readAll(timeout: 5).hasPrefix("HTTP/1.1 413"), "a 10 MB body was not refused")
        for l in loris + [big, body] { l.close() }
        XCTAssertEqual(get(box.base + "/healthz")?.status, 200)
        let after = rssKiB(pid)
        XCTAssertLessThan(after - before, 1024, "the daemon grew \(after - before) KiB serving hostile clients (\(before) → \(after))")
        // The bridge went on meanwhile: its health topic is fresh and commands run.
        c.publish("heatbridge/bosch-101000001/dhw1/charge/set", #"{"id":"page-2","action":"start","duration_min":25}"#)
        XCTAssertNotNil(c.waitResult("heatbridge/bosch-101000001/dhw1/charge/result", id: "page-2", status: "done", timeout: 20))
    }

    /// A real Prometheus scrapes the daemon with the token; the series are read back from its API.
    func testPrometheusScrapesTheDaemon() throws {
        let box = try startBox()
        let h = box.h
        defer { h.stopAll() }
        h.client.waitJSON("heatbridge/bosch-101000001/dhw1/state", timeout: 30)
        let promPort = try Harness.freePort()
        let conf = h.dir.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
        scrape_configs:
          - job_name: heatbridge
            authorization:
              credentials_file: \(box.tokenFile.path)
            static_configs:
              - targets: ["127.0.0.1:\(box.port)"]
        """.write(to: conf, atomically: true, encoding: .utf8)
        let binary = try XCTUnwrap(
            ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "prometheus is not installed (Scripts/test installs Debian's prometheus)")
        let prom = try h.launch(
            binary,
            [
                "--config.file=\(conf.path)", "--storage.tsdb.path=\(h.dir.appendingPathComponent("tsdb").path)",
                "--web.listen-address=127.0.0.1:\(promPort)",
            ], log: "prometheus.log")
        defer {
            prom.terminate()
            prom.waitUntilExit()
        }
        try h.waitForPort(promPort, what: "prometheus")
        func query(_ q: String) -> [JSONValue] {
            let url = "http://127.0.0.1:\(promPort)/api/v1/query?query=" + (q.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? q)
            guard let r = get(url, token: nil), let j = try? JSONValue.parse(r.body) else { return [] }
            return j["data"]?["result"]?.arrayValue ?? []
        }
        h.waitUntil("Prometheus to scrape the daemon", timeout: 60) { query("up{job=\"heatbridge\"}").first?["value"]?.arrayValue?.last == "1" }
        h.waitUntil("the poll counter in Prometheus", timeout: 30) {
            (query("heatbridge_polls_total").first?["value"]?.arrayValue?.last?.stringValue).flatMap(Double.init) ?? 0 >= 1
        }
        let polls = query("heatbridge_polls_total")
        XCTAssertEqual(polls.first?["metric"]?["account"], "bosch-test")
        let latency = query("heatbridge_cloud_request_duration_seconds_count")
        XCTAssertGreaterThanOrEqual((latency.first?["value"]?.arrayValue?.last?.stringValue).flatMap(Double.init) ?? 0, 1)
        XCTAssertEqual(query("heatbridge_device_online").count, 2, "one series per device")
        XCTAssertEqual(query("heatbridge_ready").first?["value"]?.arrayValue?.last, "1")
    }

    /// The page in a real headless Chromium: what a person sees, a screenshot kept as an artefact, and the
    /// `<script>` device name shown as text (the title it would set stays ours).
    func testChromiumShowsThePage() throws {
        let box = try startBox()
        let h = box.h
        defer { h.stopAll() }
        let c: TestMQTTClient = h.client
        c.waitJSON("heatbridge/bosch-101000003/state", timeout: 30)
        c.publish("heatbridge/bosch-101000001/dhw1/charge/set", #"{"id":"seen-in-chromium","action":"start","duration_min":20}"#)
        XCTAssertNotNil(c.waitResult("heatbridge/bosch-101000001/dhw1/charge/result", id: "seen-in-chromium", status: "done", timeout: 20))
        // The browser itself, not Debian's launcher script (whose memory check breaks in some shells).
        let chromium = try XCTUnwrap(
            ["/usr/lib/chromium/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "chromium is not installed (Scripts/test installs Debian's chromium)")
        let url = box.base + "/?token=" + Self.token
        let flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--user-data-dir=\(h.dir.appendingPathComponent("chromium").path)",
        ]
        let dom = try runProcess(chromium, flags + ["--dump-dom", url])
        XCTAssertEqual(dom.status, 0, dom.output)
        // What a person reads: device names, states, the last command and its results.
        XCTAssertTrue(dom.output.contains("Bosch CS7001iAW 101000001"), dom.output)
        XCTAssertTrue(dom.output.contains("seen-in-chromium"))
        XCTAssertTrue(dom.output.contains(">online<"))
        XCTAssertTrue(dom.output.contains(">done<"))
        XCTAssertTrue(dom.output.contains(">ready<"))
        // The hostile name is text in the DOM, not an element, and it did not run: the title is still ours.
        XCTAssertTrue(dom.output.contains("Buderus &lt;script&gt;document.title='owned'&lt;/script&gt; 101000003"), dom.output)
        XCTAssertFalse(dom.output.contains("<script"))
        XCTAssertTrue(dom.output.contains("<title>heatbridge "), "the page title changed")
        // A phone-sized screenshot, kept where CI keeps artefacts.
        let artefacts = Harness.packageRoot.appendingPathComponent(".build/test-artefacts")
        try FileManager.default.createDirectory(at: artefacts, withIntermediateDirectories: true)
        let shot = artefacts.appendingPathComponent("status-page.png")
        try? FileManager.default.removeItem(at: shot)
        let png = try runProcess(chromium, flags + ["--window-size=412,1400", "--hide-scrollbars", "--screenshot=\(shot.path)", url])
        XCTAssertEqual(png.status, 0, png.output)
        let size = (try? FileManager.default.attributesOfItem(atPath: shot.path)[.size] as? Int) ?? 0
        XCTAssertGreaterThan(size, 10_000, "no screenshot at \(shot.path)")
    }
}

/// A plain TCP client for what no HTTP library sends: a request dribbled byte by byte, a 10 MB header.
final class RawClient: @unchecked Sendable {
    let fd: Int32

    init?(port: Int) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = in_port_t(UInt16(port).bigEndian)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            return nil
        }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends what the peer takes; stops at the first refusal (the server closed, or 2 s without progress).
    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// What the server sent until it closed or `timeout` passed.
    func readAll(timeout: Double) -> String {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { if !out.isEmpty { break } else { continue } }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func close() { Glibc.close(fd) }
}

import Foundation
import HeatbridgeCore
import HeatbridgeHTTP
import XCTest

/// libcurl as the daemon uses it, over loopback: connections reused across requests, and HTTPS through a real
/// TLS terminator (socat with an openssl-made CA) trusting only the account's CA.
final class HTTPTransportTests: XCTestCase {
    /// One GET, waited for on this (test) thread: the harness blocks its thread, so the tests are synchronous.
    func get(_ t: CurlTransport, _ url: String, options: ConnectionOptions = ConnectionOptions()) throws -> HTTPResponse {
        let request = HTTPRequest(method: "GET", url: url, headers: [("x-api-key", Harness.apiKey)], timeout: 5)
        return try blockingSend(AccountTransport(t, options: options), request).get()
    }

    func testOnePollsRequestsShareOneConnection() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        let t = CurlTransport()
        for _ in 0..<20 {
            let r = try get(t, "http://127.0.0.1:\(h.simPort)/bosch/hvacs/101000001/status")
            XCTAssertEqual(r.status, 200)
        }
        XCTAssertEqual(t.stats.requests, 20)
        XCTAssertEqual(t.stats.newConnections, 1, "a new connection per request")
        // Without idle handles every request connects anew: what the pool saves.
        let fresh = CurlTransport(maxIdleHandles: 0)
        for _ in 0..<5 { _ = try get(fresh, "http://127.0.0.1:\(h.simPort)/bosch/hvacs/101000001/status") }
        XCTAssertEqual(fresh.stats.newConnections, 5)
    }

    func testHTTPSTrustsOnlyTheAccountsCAAndKeepsItsSession() throws {
        let h = try Harness()
        defer { h.stopAll() }
        try h.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        let tls = try TLSTerminator(h)
        defer { tls.stop() }
        let t = CurlTransport()
        let url = "https://127.0.0.1:\(tls.port)/bosch/hvacs/101000001/status"
        for _ in 0..<10 {
            let r = try get(t, url, options: ConnectionOptions(caFile: tls.caFile))
            XCTAssertEqual(r.status, 200)
        }
        XCTAssertEqual(t.stats.newConnections, 1)
        XCTAssertEqual(tls.handshakes(), 1, "the terminator saw more than one TLS connection")
        // The system's CAs do not know this one: verification is on.
        do {
            _ = try get(CurlTransport(), url)
            XCTFail("an unknown CA was trusted")
        } catch {
            XCTAssertTrue("\(error)".lowercased().contains("certificate"), "\(error)")
        }
    }
}

/// socat terminating TLS in front of the simulator, with a CA and a server certificate for 127.0.0.1 made by
/// openssl for the test.
final class TLSTerminator {
    let port: Int
    let caFile: String
    let log: URL
    let process: Process

    init(_ h: Harness) throws {
        let d = h.dir.path
        let make = """
            set -e; cd '\(d)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 -subj '/CN=heatbridge test CA' 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null
            """
        let made = try runShell(make)
        guard made.status == 0 else { throw HarnessError("openssl failed: \(made.output)") }
        port = try Harness.freePort()
        caFile = d + "/ca.crt"
        log = h.dir.appendingPathComponent("tls.log")
        process = try h.launch(
            "/usr/bin/socat",
            [
                "-d", "-d",
                "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,cert=\(d)/server.crt,key=\(d)/server.key,verify=0",
                "TCP:127.0.0.1:\(h.simPort)",
            ], log: "tls.log")
        try h.waitForPort(port, what: "socat TLS terminator")
    }

    /// TLS connections the terminator accepted (socat logs each; the readiness probe is a plain TCP connect
    /// that fails its handshake and is not counted).
    func handshakes() -> Int {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "SSL connection using").count - 1
    }

    func stop() {
        _ = try? runShell("pkill -KILL -P \(process.processIdentifier)")
        process.terminate()
        process.waitUntilExit()
    }
}

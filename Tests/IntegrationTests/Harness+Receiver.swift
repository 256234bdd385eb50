import Foundation
import HeatbridgeCore
import HeatbridgeHTTP

/// `heatbridge-receiver` run by a test: its config, token and spool in the harness's directory, publishing to the
/// harness's (central) broker.
final class TestReceiver {
    let h: Harness
    let port: Int
    let token = "tok-" + String(repeating: "a1b2c3", count: 5)
    var process: Process?
    let http = CurlTransport(maxIdleHandles: 0)
    var config: URL { h.dir.appendingPathComponent("receiver.yaml") }

    /// - Parameters:
    ///   - scopeMap: the relay's boxes.map the receiver routes by.
    ///   - topic: the receiver's topic template (`{box}`, `{gateway}`).
    init(_ h: Harness, scopeMap: String, topic: String = "partner/boxes/{box}/heatbridge/push/bosch/{gateway}", port: Int? = nil) throws {
        self.h = h
        self.port = try port ?? Harness.freePort()
        try (token + "\n").write(to: h.dir.appendingPathComponent("token"), atomically: true, encoding: .utf8)
        try """
        listen: 127.0.0.1:\(self.port)
        token_file: \(h.dir.appendingPathComponent("token").path)
        spool: \(h.dir.appendingPathComponent("spool.db").path)
        scope_map: \(scopeMap)
        topic: "\(topic)"
        mqtt:
          host: 127.0.0.1
          port: \(h.brokerPort)
          client_id: receiver-it
        """.write(to: config, atomically: true, encoding: .utf8)
        try start()
    }

    func start() throws {
        process = try h.launch(Harness.binary("heatbridge-receiver"), ["--config", config.path], log: "receiver.log")
        try h.waitForPort(port, what: "heatbridge-receiver")
    }

    func kill9() {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// `GET /healthz`.
    func health() -> JSONValue {
        guard case .success(let a) = blockingSend(http, HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)/healthz")) else { return .null }
        return (try? JSONValue.parse(a.body)) ?? .null
    }

    /// Where the simulator posts, straight to the receiver.
    var directURL: String { "http://127.0.0.1:\(port)/bosch/events/\(token)" }

    func log() -> String { (try? String(contentsOf: h.dir.appendingPathComponent("receiver.log"), encoding: .utf8)) ?? "" }
}

import ArgumentParser
import Glibc
import HeatbridgeCore
import HeatbridgeMQTT
import HeatbridgeReceiver
import HeatbridgeStore
import Hummingbird
import Logging

/// `heatbridge-receiver`: takes Bosch's webhook events on the partner side (behind nginx), stores each before it
/// answers, and forwards it to the central broker under the box its gateway belongs to (README, "Push events").
@main
struct ReceiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heatbridge-receiver",
        abstract: "Receive Bosch webhook events and forward each to its box over MQTT.")

    @Option(help: "Config file.") var config = "/etc/heatbridge-receiver/receiver.yaml"
    @Flag(help: "Check the config, the token and the scope map, then exit.") var check = false

    func run() async throws {
        var logger = Logger(label: "heatbridge-receiver")
        logger.logLevel = ProcessInfoLite.env("LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        guard let text = readFile(config) else { fail(78, "cannot read \(config)") }
        let c: ReceiverConfig
        switch ReceiverConfig.parse(String(decoding: text, as: UTF8.self), file: config) {
        case .success(let v): c = v
        case .failure(let e):
            for d in e.diagnostics { FileHandleLite.err("\(d)\n") }
            fail(78, "\(e.diagnostics.count) error(s) in \(config)")
        }
        let tokenFile = credentialPath(c.tokenFile)
        guard let tokenBytes = readFile(tokenFile) else { fail(78, "cannot read the token file \(tokenFile)") }
        let token = String(decoding: tokenBytes, as: UTF8.self).filter { !$0.isWhitespace }
        guard token.utf8.count >= 24, token.utf8.allSatisfy({ (0x21...0x7e).contains($0) && $0 != 0x2f }) else {
            fail(78, "the token in \(c.tokenFile) must be at least 24 printable characters without '/' (e.g. openssl rand -hex 24)")
        }
        let scope: ScopeMap
        switch Receiver.loadScope(c.scopeMap) {
        case .success(let s): scope = s
        case .failure(let why): fail(78, why.message)
        }
        for p in scope.problems { logger.warning("scope map", metadata: ["problem": "\(p)"]) }
        if check {
            print(
                "config ok: listen \(c.listenHost):\(c.listenPort), \(scope.boxOf.count) gateways in \(Set(scope.boxOf.values).count) boxes, broker \(c.mqttHost):\(c.mqttPort)"
            )
            return
        }
        let spool: EventSpool
        do { spool = try EventSpool(path: c.spoolPath) } catch { fail(1, "cannot open the spool \(c.spoolPath): \(error)") }
        let password = c.mqttPasswordFile.map(credentialPath).flatMap(readFile).map {
            String(decoding: $0, as: UTF8.self).filter { $0 != "\n" && $0 != "\r" }
        }
        let mqtt: MosquittoClient
        do {
            // A clean session: the spool, not the broker, keeps what was not delivered.
            mqtt = try MosquittoClient(
                MQTTConnectOptions(
                    host: c.mqttHost, port: c.mqttPort, clientId: c.mqttClientId, cleanSession: true,
                    username: c.mqttUsername, password: password, caFile: c.mqttCAFile, tls: c.mqttTLS))
        } catch { fail(1, "cannot set up MQTT: \(error)") }
        let forwarder = Forwarder(spool: spool, mqtt: mqtt, window: c.window, logger: logger)
        let receiver = Receiver(config: c, token: token, spool: spool, forwarder: forwarder, scope: scope, logger: logger)
        forwarder.start()
        let prune = Task { await receiver.pruneLoop() }
        let app = Application(
            router: receiver.router(),
            configuration: .init(
                address: .hostname(c.listenHost, port: c.listenPort),
                serverName: nil, backlog: 1024),
            logger: logger)
        logger.info(
            "receiving",
            metadata: [
                "listen": "\(c.listenHost):\(c.listenPort)", "gateways": "\(scope.boxOf.count)",
                "spool_depth": "\((try? spool.depth()) ?? -1)",
            ])
        try await app.runService()
        prune.cancel()
        forwarder.stop()
        mqtt.flush(timeoutS: 2)
        mqtt.shutdown()
    }

    func fail(_ code: Int32, _ message: String) -> Never {
        FileHandleLite.err("heatbridge-receiver: \(message)\n")
        Glibc.exit(code)
    }
}

/// `$CREDENTIALS_DIRECTORY/name` (a systemd credential) → the file's path; any other path as it is.
func credentialPath(_ path: String) -> String {
    let prefix = "$CREDENTIALS_DIRECTORY/"
    guard path.hasPrefix(prefix), let dir = ProcessInfoLite.env("CREDENTIALS_DIRECTORY") else { return path }
    return dir + "/" + path.dropFirst(prefix.count)
}

func readFile(_ path: String) -> [UInt8]? { Receiver.readFile(path) }

enum ProcessInfoLite {
    static func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
}

enum FileHandleLite {
    static func err(_ s: String) {
        let b = Array(s.utf8)
        _ = b.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}

import Dispatch
import Glibc
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeMQTT
import HeatbridgeStore
import Logging
import VendorBosch

/// Wires the real parts together and runs the bridge until SIGTERM/SIGINT.
enum Daemon {
    static func run(configPath: String) async -> Int32 {
        let env = ProcessEnvironment.all()
        let loaded: LoadedConfig
        switch ConfigLoader.load(path: configPath, environment: env) {
        case .success(let l): loaded = l
        case .failure(let errors):
            let diagnostics = errors.diagnostics
            for d in diagnostics { printErr("<3>" + d.description) }
            printErr("<3>not starting: \(diagnostics.count) config error(s); run heatbridge check-config")
            return 78  // EX_CONFIG: systemd's RestartPreventExitStatus can stop a restart loop on it
        }
        let config = loaded.config
        let level = Logger.Level(rawValue: config.log.level) ?? .info
        LoggingSystem.bootstrap { JournaldLogHandler(label: $0, level: level) }
        let logger = Logger(label: "heatbridge")
        logger.info("starting", metadata: ["version": "\(heatbridgeVersion)", "config": "\(configPath)", "config_hash": "\(loaded.hash.prefix(12))"])

        let store: SQLiteStore
        do {
            store = try SQLiteStore(path: config.store.path)
        } catch {
            logger.critical("cannot open the store", metadata: ["path": "\(config.store.path)", "error": "\(error)"])
            return 1
        }

        func secret(_ ref: SecretRef?) -> String? {
            guard let ref else { return nil }
            if case .success(let s) = ConfigLoader.readSecret(ref, environment: env) { return s }
            return nil
        }

        let http = CurlTransport()
        var accounts: [AccountRuntime] = []
        for a in config.accounts {
            switch a.vendor {
            case .bosch:
                guard let key = secret(a.apiKey) else {
                    logger.critical("cannot read the API key", metadata: ["account": "\(a.name)"])
                    return 1
                }
                let adapter = BoschAdapter(transport: http, baseURL: a.baseURL, apiKey: key, userId: a.userId ?? "",
                                           timeout: a.timeoutS, allowList: a.devices)
                accounts.append(AccountRuntime(name: a.name, vendor: a.vendor.rawValue, pollIntervalS: a.pollIntervalS, adapter: adapter))
            case .homesmartlink, .podero:
                logger.warning("vendor not implemented yet; account skipped", metadata: ["account": "\(a.name)", "vendor": "\(a.vendor.rawValue)"])
            }
        }

        let topics = TopicLayout(base: config.mqtt.baseTopic)
        let mqtt: MosquittoClient
        do {
            mqtt = try MosquittoClient(MQTTConnectOptions(
                host: config.mqtt.host, port: config.mqtt.port, clientId: config.mqtt.clientId, cleanSession: false,
                username: config.mqtt.username, password: secret(config.mqtt.password), caFile: config.mqtt.caFile,
                tls: config.mqtt.tls, keepaliveS: config.mqtt.keepaliveS,
                will: (topics.bridgeState, JSONValue.object(["state": "offline"]).bytes)))
        } catch {
            logger.critical("cannot set up the MQTT client", metadata: ["error": "\(error)"])
            return 1
        }

        let bridge = Bridge(
            settings: BridgeSettings(topics: topics, version: heatbridgeVersion, configHash: String(loaded.hash.prefix(12)),
                                     behaviour: config.bridge, accounts: accounts),
            mqtt: mqtt, store: store, clock: SystemClock(), logger: logger, processStats: ProcessStats.sample)

        let runTask = Task { await bridge.run() }
        let signals = SignalWatcher { signal in
            if signal == SIGHUP {
                logger.notice("SIGHUP: config reload is not supported yet; restart the service to apply changes")
            } else {
                logger.info("stopping", metadata: ["signal": "\(signal)"])
                SDNotify.send("STOPPING=1")
                runTask.cancel()
            }
        }
        mqtt.start()
        SDNotify.send("READY=1\nSTATUS=bridging \(accounts.count) account(s)")
        await runTask.value
        await bridge.publishOffline()
        mqtt.flush(timeoutS: 2)
        mqtt.shutdown()
        _ = signals
        logger.info("stopped")
        return 0
    }
}

/// Real time for the bridge.
struct SystemClock: HeatbridgeCore.Clock {
    func now() -> EpochSeconds {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    func sleep(seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
    }
}

/// Turns SIGTERM, SIGINT and SIGHUP into calls of `handler` on a dispatch queue.
final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    init(_ handler: @escaping @Sendable (Int32) -> Void) {
        var list: [any DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)  // let the dispatch source, not the default action, see it
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { handler(sig) }
            source.resume()
            list.append(source)
        }
        sources = list
    }
}

/// sd_notify without libsystemd: one datagram to `$NOTIFY_SOCKET` (no-op when unset).
enum SDNotify {
    static func send(_ message: String) {
        guard let path = ProcessEnvironment.value("NOTIFY_SOCKET"), !path.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace socket
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = message.withCString { msg in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, msg, strlen(msg), 0, $0, len) }
            }
        }
    }
}

/// Process figures for `bridge/health`, from /proc.
enum ProcessStats {
    @Sendable static func sample() -> [String: JSONValue] {
        guard case .success(let bytes) = FileIO.read("/proc/self/statm") else { return [:] }
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return [:] }
        return ["rss_bytes": .int(pages * Int(sysconf(Int32(_SC_PAGESIZE))))]
    }
}

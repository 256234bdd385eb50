import Dispatch
import Glibc
import HeatbridgeApp
import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeHTTP
import HeatbridgeMQTT
import HeatbridgeStore
import HeatbridgeSystem
import HeatbridgeVendors
import Logging
import Synchronization

/// Wires the real parts together and runs the bridge until SIGTERM/SIGINT; SIGHUP reloads the config.
enum Daemon {
    /// How long start-up waits for the broker before saying READY=1 anyway (with a STATUS saying so): a
    /// broker that is down must not make systemd kill a daemon that is serving its cache and the clouds.
    static let readyWaitS = 10.0

    static func run(configPath: String) async -> Int32 {
        let env = ProcessEnvironment.all()
        let loaded: LoadedConfig
        switch ConfigLoader.load(path: configPath, environment: env, vendors: HeatbridgeVendors.all) {
        case .success(let l): loaded = l
        case .failure(let errors):
            let diagnostics = errors.diagnostics
            // Escaped like every log line: a config's text must not start a forged journal entry either.
            for line in errors.lines() { printErr("<3>" + JournaldLogHandler.escaped(line)) }
            printErr("<3>not starting: \(diagnostics.count) config error(s); run heatbridge check-config")
            return 78  // EX_CONFIG: the unit's RestartPreventExitStatus stops a restart loop on it
        }
        let config = loaded.config
        currentLogLevel.withLock { $0 = Logger.Level(rawValue: config.log.level) ?? .info }
        configuredLogLevel.withLock { $0 = config.log.level }
        LoggingSystem.bootstrap { JournaldLogHandler(label: $0) }
        let logger = Logger(label: "heatbridge")
        logger.info("starting", metadata: ["version": "\(heatbridgeVersion)", "config": "\(configPath)", "config_hash": "\(loaded.hash.prefix(12))"])

        // HEATBRIDGE_HTTP_IDLE_HANDLES=0 turns connection reuse off: what Scripts/bench compares against.
        let http = CurlTransport(maxIdleHandles: env["HEATBRIDGE_HTTP_IDLE_HANDLES"].flatMap(Int.init) ?? 4)
        let ports = ports(environment: env, transport: http, accounts: config.accounts.count)
        let services: AppServices
        switch AppServices.build(loaded, ports: ports, logger: logger) {
        case .success(let s): services = s
        case .failure(let failure): return failure.exitStatus
        }
        let (store, bridge, accounts, requestMetrics) = (services.store, services.bridge, services.accounts, services.metrics)
        let reloader = Reloader(
            path: configPath, current: config, bridge: bridge, ports: ports, store: store, logger: logger,
            metrics: requestMetrics)
        let web = StatusListener.start(config.http, bridge: bridge, metrics: requestMetrics, environment: env, logger: logger)
        let testHooks = env["HEATBRIDGE_TEST_HOOKS"] == "1"
        let testClock = TestClockHook(environment: env)

        // Services start in dependency order (store → MQTT client → bridge) and stop in reverse (`AppServices.run`).
        let stop = OneShotSignal()
        let (requests, requestSink) = AsyncStream.makeStream(of: Int32.self)
        let signals = SignalWatcher(testHooks ? [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2] : [SIGTERM, SIGINT, SIGHUP]) { signal in
            switch signal {
            case SIGHUP, SIGUSR1, SIGUSR2:
                requestSink.yield(signal)
            default:
                logger.info("stopping", metadata: ["signal": "\(signal)"])
                SDNotify.send("STOPPING=1")
                stop.fire()
            }
        }
        DaemonRecord.started(store, logger: logger)
        var alongside: [@Sendable () async -> Void] = []
        if let watchdog = watchdogInterval(environment: env, logger: logger) {
            alongside.append { await Self.watchdog(bridge: bridge, intervalS: watchdog) }
        }
        alongside.append {
            for await signal in requests {
                if signal == SIGHUP {
                    await reloader.reload()
                } else if signal == SIGUSR1 {
                    await testClock?.advance(bridge: bridge, logger: logger)
                } else {
                    await bridge.runOnBridge {
                        logger.warning("test hook: the bridge is blocked")  // from inside: the block has begun
                        while true { sleep(60) }
                    }
                }
            }
        }
        alongside.append { await Self.notifyReady(bridge: bridge, accounts: accounts.count, config: config, logger: logger) }
        await services.run(until: stop, alongside: alongside, beforeOffline: { web?.stop() })
        DaemonRecord.stopped(store, logger: logger)
        withExtendedLifetime(signals) {}
        logger.info("stopped")
        return 0
    }

    /// READY=1 once the cache is published and the broker connected, or after a bounded wait.
    static func notifyReady(bridge: Bridge, accounts: Int, config: HeatbridgeConfig, logger: Logger) async {
        let started = SDNotify.monotonicUsec()
        let ready = await bridge.waitUntilReady(timeoutS: readyWaitS)
        guard !Task.isCancelled else { return }
        let broker = "\(config.mqtt.host):\(config.mqtt.port)"
        if ready {
            SDNotify.send("READY=1\nSTATUS=Bridging \(accounts) account(s); broker \(broker) connected")
            logger.info("ready", metadata: ["startup_ms": "\((SDNotify.monotonicUsec() - started) / 1000)"])
        } else {
            SDNotify.send("READY=1\nSTATUS=Broker \(broker) unreachable, retrying; clouds and cache active")
            logger.warning("ready without the broker; still retrying", metadata: ["broker": "\(broker)"])
        }
    }

    /// The watchdog interval: half of `$WATCHDOG_USEC`, when systemd asks for pings from this process.
    static func watchdogInterval(environment env: [String: String], logger: Logger) -> Double? {
        guard let usec = env["WATCHDOG_USEC"].flatMap(Double.init), usec > 0 else { return nil }
        if let pid = env["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
        let interval = usec / 2 / 1e6
        logger.info("watchdog enabled", metadata: ["interval_s": "\(interval)"])
        return interval
    }

    /// `WATCHDOG=1` every `intervalS`, only while the bridge actor answers: a hung bridge stops the pings and
    /// systemd restarts the service.
    static func watchdog(bridge: Bridge, intervalS: Double) async {
        while !Task.isCancelled {
            if await bridge.alive() { SDNotify.send("WATCHDOG=1") }
            try? await Task.sleep(nanoseconds: UInt64(intervalS * 1e9))
        }
    }

    /// The daemon's ports: libcurl, libmosquitto, the system clock (with its test offset) and glibc's local time.
    static func ports(environment env: [String: String], transport: any HTTPTransport, accounts: Int) -> AppPorts {
        var ports = AppPorts(
            transport: transport, clock: SystemClock(), localTime: GlibcLocalTime(),
            makeMQTT: { setup in
                try MosquittoClient(
                    MQTTConnectOptions(
                        host: setup.config.host, port: setup.config.port, clientId: setup.config.clientId, cleanSession: false,
                        username: setup.config.username, password: setup.password, caFile: setup.config.caFile, tls: setup.config.tls,
                        keepaliveS: setup.config.keepaliveS, will: setup.will, maxPayloadBytes: setup.config.maxPayloadBytes),
                    intake: setup.intake)
            }, environment: env, version: heatbridgeVersion)
        ports.processStats = { ProcessStats.sample() }
        ports.logLevel = LogLevelControl(
            set: { level in
                let configured = Logger.Level(rawValue: configuredLogLevel.withLock { $0 }) ?? .info
                currentLogLevel.withLock { $0 = level.flatMap(Logger.Level.init(rawValue:)) ?? configured }
            }, current: { currentLogLevel.withLock { $0.rawValue } })
        ports.readinessChanged = { ready, reason in
            // systemd cannot take READY=1 back; STATUS= shows in `systemctl status` what the health topic says.
            SDNotify.send(
                ready
                    ? "STATUS=Bridging \(accounts) account(s); the store writes again"
                    : "STATUS=Not ready: \(reason ?? "the store cannot write"); commands are refused STORE_FAILED")
        }
        return ports
    }
}

/// SIGHUP: validate the new config first; refuse it (and keep running on the old one) when invalid, apply it
/// when valid. MQTT and store settings need a restart; everything else applies live.
actor Reloader {
    let path: String
    var current: HeatbridgeConfig
    let bridge: Bridge
    let ports: AppPorts
    let store: SQLiteStore
    let logger: Logger
    let metrics: RequestMetrics?

    init(
        path: String, current: HeatbridgeConfig, bridge: Bridge, ports: AppPorts, store: SQLiteStore, logger: Logger,
        metrics: RequestMetrics? = nil
    ) {
        self.metrics = metrics
        self.store = store
        self.path = path
        self.current = current
        self.bridge = bridge
        self.ports = ports
        self.logger = logger
    }

    func reload() async {
        SDNotify.send("RELOADING=1\nMONOTONIC_USEC=\(SDNotify.monotonicUsec())")
        logger.notice("SIGHUP: reloading the config", metadata: ["config": "\(path)"])
        let env = ProcessEnvironment.all()
        switch ConfigLoader.load(path: path, environment: env, vendors: HeatbridgeVendors.all) {
        case .failure(let errors):
            for line in errors.lines() { logger.error("\(line)") }
            logger.error("reload refused: the running config stays in force", metadata: ["errors": "\(errors.diagnostics.count)"])
            SDNotify.send("READY=1\nSTATUS=Reload refused: \(errors.diagnostics.count) config error(s); running on the previous config")
        case .success(let loaded):
            let new = loaded.config
            var ports = self.ports
            ports.environment = env
            guard case .success(let accounts) = AppServices.makeAccounts(new, ports: ports, store: store, logger: logger, metrics: metrics) else {
                logger.error("reload refused: cannot set up the new accounts")
                SDNotify.send("READY=1\nSTATUS=Reload refused: cannot set up the new accounts")
                return
            }
            var restartNeeded: [String] = []
            if new.mqtt != current.mqtt { restartNeeded.append("mqtt") }
            if new.store != current.store { restartNeeded.append("store") }
            if new.homeAssistant != current.homeAssistant { restartNeeded.append("homeassistant") }
            if new.http != current.http { restartNeeded.append("http") }
            currentLogLevel.withLock { $0 = Logger.Level(rawValue: new.log.level) ?? .info }
            configuredLogLevel.withLock { $0 = new.log.level }
            await bridge.reconfigure(
                accounts: accounts, behaviour: new.bridge, configHash: String(loaded.hash.prefix(12)),
                configDocument: loaded.document)
            current = new
            if restartNeeded.isEmpty {
                SDNotify.send("READY=1\nSTATUS=Config reloaded (\(loaded.hash.prefix(12))); bridging \(accounts.count) account(s)")
            } else {
                logger.warning(
                    "reloaded; changes to these sections need a restart", metadata: ["sections": "\(restartNeeded.joined(separator: ","))"])
                SDNotify.send(
                    "READY=1\nSTATUS=Config reloaded (\(loaded.hash.prefix(12))); restart to apply: \(restartNeeded.joined(separator: ", "))")
            }
        }
    }
}

/// Real time for the bridge.
struct SystemClock: HeatbridgeCore.Clock {
    /// Test hook: with `HEATBRIDGE_TEST_HOOKS=1`, `HEATBRIDGE_TEST_CLOCK_OFFSET_S` shifts the daemon's wall clock,
    /// so black-box tests can put it seconds before a trigger's time instead of waiting for it; the file named by
    /// `HEATBRIDGE_TEST_CLOCK_FILE` moves it further (see `TestClockHook`).
    static let offset = Mutex<Double>(
        {
            guard ProcessEnvironment.value("HEATBRIDGE_TEST_HOOKS") == "1" else { return 0 }
            return ProcessEnvironment.value("HEATBRIDGE_TEST_CLOCK_OFFSET_S").flatMap(Double.init) ?? 0
        }())

    func now() -> EpochSeconds {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9 + Self.offset.withLock { $0 }
    }

    func sleep(seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
    }
}

/// Test hook (`HEATBRIDGE_TEST_HOOKS=1` and `HEATBRIDGE_TEST_CLOCK_FILE`): black-box tests move the daemon's
/// clock forward instead of sleeping out a hold time, a spacing limit or a lease, as swift-nio's
/// `EmbeddedEventLoop.advanceTime(by:)` does in process. The file holds `<sequence> <seconds>`; on SIGUSR1
/// (and at start) the daemon adds the seconds to its clock offset, fires every timer now due and writes the
/// sequence to `<file>.ack`, so the test knows the consequences have happened.
struct TestClockHook: Sendable {
    let path: String
    let base: Double

    init?(environment env: [String: String]) {
        guard env["HEATBRIDGE_TEST_HOOKS"] == "1", let path = env["HEATBRIDGE_TEST_CLOCK_FILE"], !path.isEmpty else { return nil }
        self.path = path
        base = SystemClock.offset.withLock { $0 }
        apply()
    }

    /// Reads the file into the clock offset; returns its sequence.
    @discardableResult
    func apply() -> String? {
        guard case .success(let bytes) = FileIO.read(path) else { return nil }
        let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let seconds = Double(fields[1]) else { return nil }
        SystemClock.offset.withLock { $0 = base + seconds }
        return String(fields[0])
    }

    func advance(bridge: Bridge, logger: Logger) async {
        guard let sequence = apply() else { return logger.warning("test hook: unreadable clock file") }
        await bridge.settleTimers()
        _ = FileIO.writeAtomically(path + ".ack", Array(sequence.utf8))
    }
}

/// Turns the given signals into calls of `handler` on a dispatch queue.
final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    init(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) {
        var list: [any DispatchSourceSignal] = []
        for sig in signals {
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
    static func monotonicUsec() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

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

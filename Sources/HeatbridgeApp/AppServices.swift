import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeStore
import HeatbridgeVendors
import Logging

/// The parts that differ between the box and a test: the daemon passes libcurl, libmosquitto, the system clock and
/// glibc's local time; an in-process test passes the simulator's `InProcessTransport`, `RecordingMQTT` and a
/// `ManualClock`. Everything else is the same wiring (`AppServices.build`).
public struct AppPorts: Sendable {
    public var transport: any HTTPTransport
    public var clock: any Clock
    public var localTime: any LocalTime
    /// The MQTT client for the config's broker; it must call `intake` on a command before acknowledging it.
    public var makeMQTT: @Sendable (MQTTSetup) throws -> any MQTTService
    /// The process environment: secrets by `env:` reference, test hooks.
    public var environment: [String: String]
    /// `heatbridge_build_info`, `bridge/info`.
    public var version: String
    /// Process figures for `bridge/health` (the daemon reads /proc); the store's part is added here.
    public var processStats: @Sendable () -> [String: JSONValue] = { [:] }
    /// Told when the bridge stops or starts being ready (the daemon's `STATUS=`).
    public var readinessChanged: @Sendable (Bool, String?) -> Void = { _, _ in }
    /// How `log_level` requests change the level (nil: refused).
    public var logLevel: LogLevelControl?

    public init(
        transport: any HTTPTransport, clock: any Clock, localTime: any LocalTime,
        makeMQTT: @escaping @Sendable (MQTTSetup) throws -> any MQTTService, environment: [String: String], version: String
    ) {
        self.transport = transport
        self.clock = clock
        self.localTime = localTime
        self.makeMQTT = makeMQTT
        self.environment = environment
        self.version = version
    }
}

/// What the MQTT client is made from: the config's broker section with its password read, the last will, and the
/// intake that stores a command before the broker forgets it.
public struct MQTTSetup: Sendable {
    public var config: MQTTConfig
    public var password: String?
    public var will: (topic: String, payload: [UInt8])
    public var intake: @Sendable (inout MQTTMessage) -> Void
}

/// Why the services could not be built, with the exit status the daemon ends with.
public struct BuildFailure: Error, CustomStringConvertible {
    public var description: String
    /// 78 (`EX_CONFIG`): restarting will not help (the unit's `RestartPreventExitStatus`); 1: it may.
    public var exitStatus: Int32
}

/// The bridge's services built from a loaded config by one function, for the daemon, the CLI's commands and the
/// tests alike (Hummingbird's `buildApplication`, tested in process or live): the store, the accounts (each
/// vendor's adapter over the given transport), the MQTT client and the bridge. `run` starts them in that order and
/// stops them in reverse.
///
/// Why not swift-service-lifecycle's `ServiceGroup` (which does the same ordering): linked into the box's static
/// daemon it costs 2.5 MB of binary and 3 MiB of resident memory (measured: an idle two-service group against the
/// same program on a dispatch signal source, `--static-swift-stdlib`, stripped), about an eighth of the daemon, for
/// what `run` below does in thirty lines. The partner-side receiver, where footprint is not the rule, uses it.
public final class AppServices: Sendable {
    public let config: HeatbridgeConfig
    public let store: SQLiteStore
    public let accounts: [AccountRuntime]
    public let mqtt: any MQTTService
    public let bridge: Bridge
    /// Each account's cloud requests, timed (`/metrics`).
    public let metrics: RequestMetrics
    let logger: Logger

    init(
        config: HeatbridgeConfig, store: SQLiteStore, accounts: [AccountRuntime], mqtt: any MQTTService, bridge: Bridge, metrics: RequestMetrics,
        logger: Logger
    ) {
        self.config = config
        self.store = store
        self.accounts = accounts
        self.mqtt = mqtt
        self.bridge = bridge
        self.metrics = metrics
        self.logger = logger
    }

    /// Opens the store (a damaged one is kept aside and replaced: said at critical level), builds every account's
    /// adapter, the MQTT client and the bridge.
    public static func build(_ loaded: LoadedConfig, ports: AppPorts, logger: Logger) -> Result<AppServices, BuildFailure> {
        let config = loaded.config
        let store: SQLiteStore
        do throws(SQLiteError) {
            let recovery: StoreRecovery?
            (store, recovery) = try SQLiteStore.openChecked(path: config.store.path, now: ports.clock.now())
            if let recovery {
                logger.critical(
                    "the store was damaged: started with a fresh one; the cached state and the command history are gone",
                    metadata: ["path": "\(config.store.path)", "reason": "\(recovery.reason)", "kept_as": "\(recovery.keptAs)"])
            }
        } catch {
            logger.critical("cannot open the store", metadata: ["path": "\(config.store.path)", "error": "\(error)"])
            // A full disk or an I/O error may pass; permissions or a newer schema will not, and restarting every
            // 5 s would only fill the journal.
            return .failure(BuildFailure(description: "cannot open the store: \(error)", exitStatus: error.mayPass ? 1 : 78))
        }
        let metrics = RequestMetrics()
        let accounts: [AccountRuntime]
        switch makeAccounts(config, ports: ports, store: store, logger: logger, metrics: metrics) {
        case .success(let a): accounts = a
        case .failure(let why):
            logger.critical("cannot set up accounts", metadata: ["error": "\(why)"])
            // A secret that cannot be read or an account the vendor module refuses: config, not luck.
            return .failure(BuildFailure(description: "cannot set up accounts: \(why)", exitStatus: 78))
        }
        let topics = TopicLayout(base: config.mqtt.baseTopic)
        let mqtt: any MQTTService
        do {
            mqtt = try ports.makeMQTT(
                MQTTSetup(
                    config: config.mqtt, password: config.mqtt.password.flatMap { readSecret($0, ports.environment) },
                    will: (topics.bridgeState, JSONValue.object(["state": "offline"]).bytes),
                    intake: { message in
                        // Commands are stored before the client acknowledges them to the broker.
                        guard !message.payload.isEmpty, topics.parseCommand(message.topic) != nil else { return }
                        message.inboxRow = try? store.inboxAdd(message)
                    }))
        } catch {
            logger.critical("cannot set up the MQTT client", metadata: ["error": "\(error)"])
            return .failure(BuildFailure(description: "cannot set up the MQTT client: \(error)", exitStatus: 1))
        }
        let version = ports.version
        let processStats = ports.processStats
        let storePath = config.store.path
        let bridge = Bridge(
            settings: BridgeSettings(
                topics: topics, version: version, configHash: String(loaded.hash.prefix(12)),
                behaviour: config.bridge, accounts: accounts, localTime: ports.localTime,
                discovery: HomeAssistantDiscovery(
                    enabled: config.homeAssistant.discovery, prefix: config.homeAssistant.prefix,
                    topics: topics, version: version,
                    derogationPresets: config.homeAssistant.derogationPresets),
                maxPayloadBytes: config.mqtt.maxPayloadBytes, configDocument: loaded.document, logLevel: ports.logLevel),
            mqtt: mqtt, store: store, clock: ports.clock, logger: logger,
            processStats: {
                var o = processStats()
                o["store"] = storeHealth(store, path: storePath)
                return o
            },
            readinessChanged: ports.readinessChanged)
        return .success(AppServices(config: config, store: store, accounts: accounts, mqtt: mqtt, bridge: bridge, metrics: metrics, logger: logger))
    }

    /// Starts the MQTT client and the bridge (the store is open), serves until `stop` fires, then stops in
    /// reverse: the bridge first (every task it started ends with `run()`), `beforeOffline` (e.g. the HTTP
    /// listener), `bridge/state` offline and what is still coalesced written, the MQTT client flushed and closed.
    /// The store closes when the services are released. `alongside` runs in the same task group (the daemon's
    /// watchdog, signal handling, readiness) and is cancelled with the bridge.
    public func run(until stop: OneShotSignal, alongside: [@Sendable () async -> Void] = [], beforeOffline: @Sendable () -> Void = {}) async {
        mqtt.start()
        let bridge = self.bridge
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await bridge.run() }
            for task in alongside { group.addTask { await task() } }
            await stop.wait()
            group.cancelAll()
        }
        beforeOffline()
        await bridge.publishOffline()
        mqtt.flush(timeoutS: 2)
        mqtt.shutdown()
    }

    // MARK: parts the CLI uses too

    /// Reads a secret reference (`file:`/`env:`); nil when it cannot be read (the config check said why).
    public static func readSecret(_ ref: SecretRef, _ env: [String: String]) -> String? {
        if case .success(let s) = ConfigLoader.readSecret(ref, environment: env) { return s }
        return nil
    }

    /// What vendor modules build adapters with: the ports' HTTP, time and secrets, and with a store the settings
    /// that must outlive a restart and rotated secrets written back (nil store: the CLI's one-shot commands, which
    /// persist nothing).
    public static func vendorContext(_ ports: AppPorts, store: SQLiteStore?) -> VendorContext {
        let env = ports.environment
        var context = VendorContext(transport: ports.transport, clock: ports.clock, localTime: ports.localTime, readSecret: { readSecret($0, env) })
        if let store {
            context.writeSecret = { path, secret in
                if case .failure(let e) = FileIO.writeSecret(path, secret) { return "\(e)" }
                return nil
            }
            context.settings = SettingsPersistence(load: { (try? store.loadSettings())?[$0] }, save: { try? store.saveSetting($0, $1) })
        }
        return context
    }

    /// One adapter per configured account, each built by its vendor's module; each account's requests are timed
    /// into `metrics` when given.
    public static func makeAccounts(
        _ config: HeatbridgeConfig, ports: AppPorts, store: SQLiteStore, logger: Logger,
        metrics: RequestMetrics? = nil
    ) -> Result<[AccountRuntime], BuildFailure> {
        var context = vendorContext(ports, store: store)
        context.fleetBoxes = config.fleet.boxes
        var accounts: [AccountRuntime] = []
        for a in config.accounts {
            if a.allDevices {
                // Said at every start: this box publishes every customer's devices of the partner account.
                logger.warning(
                    "account bridges every device its credentials reach (devices: all): only for a partner's own back-office box",
                    metadata: ["account": "\(a.name)"])
            }
            guard let module = HeatbridgeVendors.all.module(a.vendor) else {
                return .failure(BuildFailure(description: "account \(a.name): unknown vendor \(a.vendor)", exitStatus: 78))
            }
            var accountContext = context
            if a.connection != ConnectionOptions() { accountContext.transport = AccountTransport(ports.transport, options: a.connection) }
            if let metrics { accountContext.transport = MeasuredTransport(accountContext.transport, account: a.name, metrics: metrics) }
            switch module.makeAdapter(a, context: accountContext) {
            case .success(let adapter):
                accounts.append(
                    AccountRuntime(
                        name: a.name, vendor: a.vendor, pollIntervalS: a.pollIntervalS,
                        maxPollIntervalS: a.maxPollIntervalS, adapter: adapter, scope: a.devices, push: a.push))
            case .failure(let e):
                return .failure(BuildFailure(description: e.description, exitStatus: 78))
            }
        }
        return .success(accounts)
    }

    /// The store's part of `bridge/health`: free space where it lives, errors since start, the last recovery.
    @Sendable static func storeHealth(_ store: SQLiteStore, path: String) -> JSONValue {
        var o = store.errorReport.objectValue ?? [:]
        if let free = SQLiteStore.freeBytes(path: path) { o["free_bytes"] = .int(free) }
        o["recovered"] = (try? store.loadSettings())?[SQLiteStore.recoverySettingKey] ?? .null
        return .object(o)
    }
}

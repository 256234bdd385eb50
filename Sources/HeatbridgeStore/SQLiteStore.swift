import HeatbridgeCore
import Synchronization

/// The daemon's durable state in one SQLite file (WAL): cached devices and nodes, commands, results.
///
/// Writes use `synchronous=FULL`: an accepted command must survive a power cut, not only `kill -9`.
public final class SQLiteStore: StatePort {
    // SQLiteConnection is used only inside `lock`, which serialises every call.
    nonisolated(unsafe) private let conn: SQLiteConnection
    private let lock = Mutex(())
    /// What each device's rows last written held (hashes) and when, so a poll rewrites only what changed.
    private struct Written: Sendable {
        var device: UInt64
        var nodes: [String: UInt64]
        var schedules: [String: UInt64]
        var at: Double
    }
    private let written = Mutex([String: Written]())
    /// The same for account rows.
    private let accountsWritten = Mutex([String: UInt64]())
    /// An unchanged device's row is refreshed this often (its `updated_at` is when the cloud last confirmed
    /// it; `bridge.stale_after_s` is 900 s by default): not on every poll.
    public static let confirmationRefreshS = 300.0

    /// Failed store operations since start and the last one's words, for `bridge/health`.
    private let failures = Mutex((count: 0, last: String?.none))

    /// Migrations, applied in order; `PRAGMA user_version` records how many ran. Append only.
    static let migrations: [String] = [
        """
        CREATE TABLE devices(device_id TEXT PRIMARY KEY, account TEXT NOT NULL, state TEXT NOT NULL,
                             availability TEXT, updated_at REAL NOT NULL);
        CREATE TABLE nodes(device_id TEXT NOT NULL, node TEXT NOT NULL, state TEXT NOT NULL,
                           PRIMARY KEY(device_id, node));
        CREATE TABLE commands(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, device TEXT NOT NULL,
                              node TEXT NOT NULL, capability TEXT NOT NULL, params TEXT NOT NULL, source TEXT NOT NULL,
                              received_at REAL NOT NULL, valid_until REAL NOT NULL, status TEXT NOT NULL,
                              attempts INTEGER NOT NULL DEFAULT 0, not_before REAL);
        CREATE INDEX commands_by_id ON commands(id);
        CREATE INDEX commands_open ON commands(status) WHERE status IN ('accepted', 'queued');
        CREATE TABLE results(row INTEGER PRIMARY KEY AUTOINCREMENT, command_id TEXT NOT NULL, topic TEXT NOT NULL,
                             payload BLOB NOT NULL, published INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX results_unpublished ON results(row) WHERE published = 0;
        """,
        """
        CREATE TABLE accounts(name TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at REAL NOT NULL);
        CREATE INDEX results_by_command ON results(command_id);
        """,
        """
        CREATE TABLE inbox(row INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
                           retained INTEGER NOT NULL, received_at REAL NOT NULL DEFAULT (strftime('%s','now')));
        """,
        """
        CREATE TABLE schedules(device_id TEXT NOT NULL, node TEXT NOT NULL, program TEXT NOT NULL, PRIMARY KEY(device_id, node));
        """,
        """
        CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
        """
        CREATE TABLE trigger_fires(row INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, fired_at REAL NOT NULL,
                                   command_id TEXT NOT NULL, reason TEXT NOT NULL);
        """,
        // MQTT v5 request/response: a command's Response Topic and Correlation Data, from the inbox to the
        // command to each result's copy (is_reply = 1) on that topic.
        """
        ALTER TABLE inbox ADD COLUMN response_topic TEXT;
        ALTER TABLE inbox ADD COLUMN correlation BLOB;
        ALTER TABLE commands ADD COLUMN reply_topic TEXT;
        ALTER TABLE commands ADD COLUMN reply_correlation BLOB;
        ALTER TABLE results ADD COLUMN is_reply INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE results ADD COLUMN correlation BLOB;
        """,
        // Energy: one row per device, counter and hour (kWh), kept `EnergyHistory.retentionDays`.
        """
        CREATE TABLE energy_hours(device TEXT NOT NULL, meter TEXT NOT NULL, hour INTEGER NOT NULL, kwh REAL NOT NULL,
                                  PRIMARY KEY(device, meter, hour)) WITHOUT ROWID;
        """,
    ]

    /// The schema version this build migrates to.
    public static var latestSchemaVersion: Int { migrations.count }

    /// Opens (creating if needed) and migrates the store at `path`. `readOnly` opens an existing store next to
    /// a running daemon (WAL lets both work) without migrating or writing anything.
    public init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        conn = try SQLiteConnection(path: path, readOnly: readOnly)
        if readOnly { return }
        let mode = try conn.query("PRAGMA journal_mode=WAL").first?.first?.text
        guard mode == "wal" else { throw SQLiteError(code: 1, message: "cannot enable WAL (journal_mode=\(mode ?? "?"))") }
        // The WAL is checkpointed every 64 pages (256 KiB) and cut back to 256 KiB after: on a small or nearly
        // full filesystem a large WAL cannot be checkpointed (that needs room in the database file) and jams
        // the store; a small one needs little room, so writes resume as soon as some space returns.
        try conn.exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=64; PRAGMA journal_size_limit=262144;")
        try migrate()
    }

    /// Rows inserted, updated or deleted through this connection (SQLite's total_changes): what the flash-wear
    /// tests count.
    public var rowsWritten: Int64 { lock.withLock { _ in conn.totalChanges } }

    /// Store errors since start: `{"errors": N, "last_error": "…"}`.
    public var errorReport: JSONValue {
        let f = failures.withLock { $0 }
        return ["errors": .int(f.count), "last_error": .string(f.last)]
    }

    /// `PRAGMA quick_check`'s lines: `["ok"]` for a sound file.
    public func quickCheck() -> [String] {
        lock.withLock { _ in
            do throws(SQLiteError) {
                return try conn.query("PRAGMA quick_check").compactMap { $0.first?.text }
            } catch {
                return [error.message]
            }
        }
    }

    /// The schema version after migration.
    public var schemaVersion: Int {
        lock.withLock { _ in Int(((try? conn.query("PRAGMA user_version"))?.first?.first?.int) ?? 0) }
    }

    private func migrate() throws(SQLiteError) {
        let current = Int(try conn.query("PRAGMA user_version").first?.first?.int ?? 0)
        guard current <= Self.migrations.count else {
            throw SQLiteError(
                code: 1, message: "store schema \(current) is newer than this heatbridge (\(Self.migrations.count)); refusing to downgrade")
        }
        for v in current..<Self.migrations.count {
            try conn.transaction { () throws(SQLiteError) in
                try conn.exec(Self.migrations[v])
                try conn.exec("PRAGMA user_version=\(v + 1)")
            }
        }
    }

    @discardableResult
    private func locked<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        // Mutex.withLock cannot forward a typed throw here, so carry the result out.
        let r: Result<T, SQLiteError> = lock.withLock { _ in
            do throws(SQLiteError) { return .success(try body()) } catch { return .failure(error) }
        }
        if case .failure(let e) = r { failures.withLock { $0 = ($0.count + 1, e.description) } }
        return try r.get()
    }

    public func loadDevices() throws -> [CachedDevice] {
        try locked { () throws(SQLiteError) in
            var nodes: [String: [String: JSONValue]] = [:]
            for row in try conn.query("SELECT device_id, node, state FROM nodes") {
                guard let d = row[0].text, let n = row[1].text, let s = row[2].text, let v = try? JSONValue.parse(s) else { continue }
                nodes[d, default: [:]][n] = v
            }
            var schedules: [String: [String: JSONValue]] = [:]
            for row in try conn.query("SELECT device_id, node, program FROM schedules") {
                guard let d = row[0].text, let n = row[1].text, let s = row[2].text, let v = try? JSONValue.parse(s) else { continue }
                schedules[d, default: [:]][n] = v
            }
            return try conn.query("SELECT device_id, account, state, availability, updated_at FROM devices ORDER BY device_id").compactMap { row in
                guard let id = row[0].text, let account = row[1].text, let s = row[2].text,
                    let state = try? JSONValue.parse(s)
                else { return nil }
                return CachedDevice(
                    deviceId: id, account: account, state: state, availability: row[3].text,
                    nodes: nodes[id] ?? [:], updatedAt: row[4].double ?? 0, schedules: schedules[id] ?? [:])
            }
        }
    }

    /// Caches a device. Flash wear: the box lives on eMMC or an SD card, so an unchanged poll writes nothing,
    /// or only the confirmation time every `confirmationRefreshS`; and cache writes do not wait for fsync
    /// (`relaxed`): after a power cut the cache may be a poll older, which the next poll corrects.
    public func deleteDevice(_ deviceId: String) throws {
        try locked { () throws(SQLiteError) in
            try conn.transaction { () throws(SQLiteError) in
                for table in ["nodes", "schedules", "devices"] {
                    try conn.query("DELETE FROM \(table) WHERE device_id = ?", [.text(deviceId)])
                }
            }
        }
        // Written again in full if it ever comes back.
        _ = written.withLock { $0.removeValue(forKey: deviceId) }
    }

    public func saveDevice(_ d: CachedDevice) throws {
        func hash(_ text: String) -> UInt64 { fnv1a64(Array(text.utf8)) }
        let now = Written(
            device: hash(d.account + "\u{0}" + d.state.serialized + "\u{0}" + (d.availability ?? "")),
            nodes: d.nodes.mapValues { hash($0.serialized) }, schedules: d.schedules.mapValues { hash($0.serialized) }, at: d.updatedAt)
        let last = written.withLock { $0[d.deviceId] }
        let same = last.map { $0.device == now.device && $0.nodes == now.nodes && $0.schedules == now.schedules } ?? false
        if let last, same, d.updatedAt - last.at < Self.confirmationRefreshS { return }
        try locked { () throws(SQLiteError) in
            try relaxed { () throws(SQLiteError) in
                try conn.transaction { () throws(SQLiteError) in
                    guard let last else {
                        // First write of this process: the whole device (the row may hold an older one).
                        try conn.query(
                            "INSERT OR REPLACE INTO devices(device_id, account, state, availability, updated_at) VALUES (?,?,?,?,?)",
                            [
                                .text(d.deviceId), .text(d.account), .text(d.state.serialized),
                                d.availability.map(SQLValue.text) ?? .null, .real(d.updatedAt),
                            ])
                        try conn.query("DELETE FROM nodes WHERE device_id = ?", [.text(d.deviceId)])
                        try conn.query("DELETE FROM schedules WHERE device_id = ?", [.text(d.deviceId)])
                        for (node, state) in d.nodes {
                            try conn.query(
                                "INSERT INTO nodes(device_id, node, state) VALUES (?,?,?)", [.text(d.deviceId), .text(node), .text(state.serialized)])
                        }
                        for (node, program) in d.schedules {
                            try conn.query(
                                "INSERT INTO schedules(device_id, node, program) VALUES (?,?,?)",
                                [.text(d.deviceId), .text(node), .text(program.serialized)])
                        }
                        return
                    }
                    // Later writes touch only the rows that changed (each one a page or two of the file).
                    if last.device != now.device {
                        try conn.query(
                            "UPDATE devices SET account = ?, state = ?, availability = ?, updated_at = ? WHERE device_id = ?",
                            [
                                .text(d.account), .text(d.state.serialized), d.availability.map(SQLValue.text) ?? .null,
                                .real(d.updatedAt), .text(d.deviceId),
                            ])
                    } else {
                        try conn.query("UPDATE devices SET updated_at = ? WHERE device_id = ?", [.real(d.updatedAt), .text(d.deviceId)])
                    }
                    for (node, state) in d.nodes where last.nodes[node] != now.nodes[node] {
                        try conn.query(
                            "INSERT OR REPLACE INTO nodes(device_id, node, state) VALUES (?,?,?)",
                            [.text(d.deviceId), .text(node), .text(state.serialized)])
                    }
                    for node in last.nodes.keys where d.nodes[node] == nil {
                        try conn.query("DELETE FROM nodes WHERE device_id = ? AND node = ?", [.text(d.deviceId), .text(node)])
                    }
                    for (node, program) in d.schedules where last.schedules[node] != now.schedules[node] {
                        try conn.query(
                            "INSERT OR REPLACE INTO schedules(device_id, node, program) VALUES (?,?,?)",
                            [.text(d.deviceId), .text(node), .text(program.serialized)])
                    }
                    for node in last.schedules.keys where d.schedules[node] == nil {
                        try conn.query("DELETE FROM schedules WHERE device_id = ? AND node = ?", [.text(d.deviceId), .text(node)])
                    }
                }
            }
        }
        written.withLock { $0[d.deviceId] = now }
    }

    /// Runs `body` with `synchronous=NORMAL`: in WAL mode its commit is not fsync'd (the next FULL commit or
    /// checkpoint syncs it). For what may be a moment old after a power cut (the device cache, the account
    /// state, a result's "published" mark, which at worst publishes a result twice); never for a command's
    /// steps, which keep `synchronous=FULL`.
    private func relaxed<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try conn.exec("PRAGMA synchronous=NORMAL")
        defer { try? conn.exec("PRAGMA synchronous=FULL") }
        return try body()
    }

    public func insertCommand(_ c: Command) throws {
        try locked { () throws(SQLiteError) in try insert(c) }
    }

    public func updateCommand(_ c: Command) throws {
        try locked { () throws(SQLiteError) in try update(c) }
    }

    private func insert(_ c: Command) throws(SQLiteError) {
        try conn.query(
            """
            INSERT INTO commands(id, device, node, capability, params, source, received_at, valid_until, status, attempts, not_before,
                                 reply_topic, reply_correlation)
            VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
            """,
            [
                .text(c.id), .text(c.device), .text(c.node), .text(c.capability), .text(c.params.serialized),
                .text(c.source.rawValue), .real(c.receivedAt), .real(c.validUntil), .text(c.status.rawValue),
                .int(Int64(c.attempts)), c.notBefore.map(SQLValue.real) ?? .null,
                c.reply.map { .text($0.topic) } ?? .null, c.reply?.correlationData.map(SQLValue.blob) ?? .null,
            ])
    }

    private func update(_ c: Command) throws(SQLiteError) {
        // Senders may reuse ids; the newest command with this id is the one in flight.
        try conn.query(
            """
            UPDATE commands SET status = ?, attempts = ?, not_before = ?
            WHERE seq = (SELECT max(seq) FROM commands WHERE id = ?)
            """, [.text(c.status.rawValue), .int(Int64(c.attempts)), c.notBefore.map(SQLValue.real) ?? .null, .text(c.id)])
    }

    public func openCommands() throws -> [Command] {
        try locked { () throws(SQLiteError) in
            try conn.query(
                """
                SELECT id, device, node, capability, params, source, received_at, valid_until, status, attempts, not_before,
                       reply_topic, reply_correlation
                FROM commands WHERE status IN ('accepted', 'queued') ORDER BY seq
                """
            ).compactMap(Self.command)
        }
    }

    public func newerCommand(than c: Command) throws -> String? {
        try locked { () throws(SQLiteError) in
            try conn.query(
                """
                SELECT n.id FROM commands n, (SELECT seq, device, node, capability FROM commands WHERE id = ? ORDER BY seq DESC LIMIT 1) o
                WHERE n.device = o.device AND n.node = o.node AND n.capability = o.capability AND n.seq > o.seq
                ORDER BY n.seq DESC LIMIT 1
                """, [.text(c.id)]
            ).first?.first?.text
        }
    }

    /// The tables a working store has; one missing (dropped by hand, a damaged schema) makes the store unusable.
    static let requiredTables = ["devices", "nodes", "commands", "results", "accounts", "inbox", "schedules", "settings", "trigger_fires"]

    /// One small write in a transaction, through every table the command path writes: proves that the file,
    /// its directory and the filesystem take writes now (not read-only, immutable or full) and that no table is
    /// missing. Rolled back where it only probes a table; the `store/write_check` setting keeps the time.
    public func writeCheck() throws {
        try locked { () throws(SQLiteError) in
            try conn.transaction { () throws(SQLiteError) in
                for table in ["commands", "results", "inbox"] { _ = try conn.query("SELECT 1 FROM \(table) LIMIT 0") }
                try conn.exec(
                    """
                    INSERT OR REPLACE INTO settings(key, value) VALUES ('store/write_check', '"' || strftime('%Y-%m-%dT%H:%M:%SZ', 'now') || '"')
                    """)
            }
        }
    }

    /// The required tables the store lacks.
    func missingTables() -> [String] {
        let present = Set(
            ((try? locked { () throws(SQLiteError) in try conn.query("SELECT name FROM sqlite_master WHERE type = 'table'") }) ?? [])
                .compactMap { $0.first?.text })
        return Self.requiredTables.filter { !present.contains($0) }
    }

    /// A command row (`id, device, node, capability, params, source, received_at, valid_until, status,
    /// attempts, not_before, reply_topic, reply_correlation`); nil when it cannot be read.
    private static func command(_ r: [SQLValue]) -> Command? {
        guard let id = r[0].text, let device = r[1].text, let node = r[2].text, let cap = r[3].text,
            let p = r[4].text, let params = try? JSONValue.parse(p), let source = r[5].text,
            let status = r[8].text.flatMap(CommandStatus.init(rawValue:))
        else { return nil }
        return Command(
            id: id, device: device, node: node, capability: cap, params: params, source: CommandSource(rawValue: source),
            receivedAt: r[6].double ?? 0, validUntil: r[7].double ?? 0, status: status,
            attempts: Int(r[9].int ?? 0), notBefore: r[10].double,
            reply: r[11].text.map { ReplyAddress(topic: $0, correlationData: r[12].blobValue) })
    }

    public func appendResult(
        commandId: String, topic: String, payload: [UInt8], reply: ReplyAddress?, command: Command?, isNew: Bool,
        inboxRow: Int64?
    ) throws -> (row: Int64, replyRow: Int64?) {
        try locked { () throws(SQLiteError) in
            try conn.transaction { () throws(SQLiteError) in
                if let c = command {
                    if isNew { try insert(c) } else { try update(c) }
                }
                if let inboxRow { try conn.query("DELETE FROM inbox WHERE row = ?", [.int(inboxRow)]) }
                try conn.query(
                    "INSERT INTO results(command_id, topic, payload) VALUES (?,?,?)",
                    [.text(commandId), .text(topic), .blob(payload)])
                let row = lastInsertRowID(conn)
                guard let reply else { return (row, nil) }
                try conn.query(
                    "INSERT INTO results(command_id, topic, payload, is_reply, correlation) VALUES (?,?,?,1,?)",
                    [.text(commandId), .text(reply.topic), .blob(payload), reply.correlationData.map(SQLValue.blob) ?? .null])
                return (row, lastInsertRowID(conn))
            }
        }
    }

    public func inboxAdd(_ m: MQTTMessage) throws -> Int64 {
        try locked { () throws(SQLiteError) in
            try conn.query(
                "INSERT INTO inbox(topic, payload, retained, response_topic, correlation) VALUES (?,?,?,?,?)",
                [
                    .text(m.topic), .blob(m.payload), .int(m.retained ? 1 : 0), m.responseTopic.map(SQLValue.text) ?? .null,
                    m.correlationData.map(SQLValue.blob) ?? .null,
                ])
            return lastInsertRowID(conn)
        }
    }

    public func inboxPending() throws -> [MQTTMessage] {
        try locked { () throws(SQLiteError) in
            try conn.query("SELECT row, topic, payload, retained, response_topic, correlation FROM inbox ORDER BY row").compactMap { r in
                guard let row = r[0].int, let topic = r[1].text else { return nil }
                return MQTTMessage(
                    topic: topic, payload: r[2].bytes, retained: r[3].int == 1, qos: 1, inboxRow: row,
                    responseTopic: r[4].text, correlationData: r[5].blobValue)
            }
        }
    }

    public func inboxRemove(_ row: Int64) throws {
        try locked { () throws(SQLiteError) in
            try conn.query("DELETE FROM inbox WHERE row = ?", [.int(row)])
        }
    }

    public func priorCommand(id: String, since: Double) throws -> PriorCommand? {
        try locked { () throws(SQLiteError) in
            let rows = try conn.query(
                """
                SELECT id, device, node, capability, params, source, received_at, valid_until, status, attempts, not_before,
                       reply_topic, reply_correlation
                FROM commands WHERE id = ? AND received_at >= ? ORDER BY seq DESC LIMIT 1
                """, [.text(id), .real(since)])
            guard let c = rows.first.flatMap(Self.command) else { return nil }
            let last = try conn.query(
                "SELECT row, topic, payload FROM results WHERE command_id = ? AND is_reply = 0 ORDER BY row DESC LIMIT 1",
                [.text(id)]
            )
            .first.flatMap { r -> PendingResult? in
                guard let row = r[0].int, let topic = r[1].text else { return nil }
                return PendingResult(rowId: row, topic: topic, payload: r[2].bytes)
            }
            return PriorCommand(command: c, lastResult: last)
        }
    }

    public func loadSettings() throws -> [String: JSONValue] {
        try locked { () throws(SQLiteError) in
            var out: [String: JSONValue] = [:]
            for r in try conn.query("SELECT key, value FROM settings") {
                if let k = r[0].text, let v = r[1].text.flatMap({ try? JSONValue.parse($0) }) { out[k] = v }
            }
            return out
        }
    }

    public func saveSetting(_ key: String, _ value: JSONValue) throws {
        try locked { () throws(SQLiteError) in
            try conn.query("INSERT OR REPLACE INTO settings(key, value) VALUES (?,?)", [.text(key), .text(value.serialized)])
        }
    }

    /// Settings (nil deletes) and energy buckets (added to what the hour has; never below 0) in one transaction:
    /// a meter's total and the hours it was counted into are stored together or not at all.
    public func saveLive(settings: [(key: String, value: JSONValue?)], buckets: [EnergyBucket]) throws {
        try locked { () throws(SQLiteError) in
            try conn.transaction { () throws(SQLiteError) in
                for (k, v) in settings {
                    if let v {
                        try conn.query("INSERT OR REPLACE INTO settings(key, value) VALUES (?,?)", [.text(k), .text(v.serialized)])
                    } else {
                        try conn.query("DELETE FROM settings WHERE key = ?", [.text(k)])
                    }
                }
                for b in buckets {
                    try conn.query(
                        """
                        INSERT INTO energy_hours(device, meter, hour, kwh) VALUES (?1, ?2, ?3, max(0, ?4))
                        ON CONFLICT(device, meter, hour) DO UPDATE SET kwh = max(0, kwh + ?4)
                        """, [.text(b.device), .text(b.meter), .int(b.hour), .real(b.kwh)])
                }
            }
        }
    }

    public func energyBuckets(device: String, fromHour: Int64, toHour: Int64) throws -> [EnergyBucket] {
        try locked { () throws(SQLiteError) in
            try conn.query(
                "SELECT meter, hour, kwh FROM energy_hours WHERE device = ? AND hour >= ? AND hour < ? ORDER BY hour, meter",
                [.text(device), .int(fromHour), .int(toHour)]
            ).compactMap { r in
                guard let m = r[0].text, let h = r[1].int, let k = r[2].double else { return nil }
                return EnergyBucket(device: device, meter: m, hour: h, kwh: k)
            }
        }
    }

    public func pruneEnergy(beforeHour: Int64) throws {
        try locked { () throws(SQLiteError) in
            try relaxed { () throws(SQLiteError) in
                _ = try conn.query("DELETE FROM energy_hours WHERE hour < ?", [.int(beforeHour)])
            }
        }
    }

    public func recordTriggerFire(name: String, at: EpochSeconds, commandId: String, reason: String) throws {
        try locked { () throws(SQLiteError) in
            try conn.query(
                "INSERT INTO trigger_fires(name, fired_at, command_id, reason) VALUES (?,?,?,?)",
                [.text(name), .real(at), .text(commandId), .text(reason)])
        }
    }

    /// The last `limit` trigger firings, newest first, for `heatbridge triggers`.
    public func triggerFires(limit: Int) throws -> [(name: String, at: EpochSeconds, commandId: String, reason: String)] {
        try locked { () throws(SQLiteError) in
            try conn.query("SELECT name, fired_at, command_id, reason FROM trigger_fires ORDER BY row DESC LIMIT ?", [.int(Int64(limit))]).map {
                ($0[0].text ?? "", $0[1].double ?? 0, $0[2].text ?? "", $0[3].text ?? "")
            }
        }
    }

    /// Stores an account's state when it differs from what was stored last (relaxed, see `relaxed`).
    public func saveAccountState(name: String, state: JSONValue) throws {
        let text = state.serialized
        let h = fnv1a64(Array(text.utf8))
        if accountsWritten.withLock({ $0[name] }) == h { return }
        try locked { () throws(SQLiteError) in
            try relaxed { () throws(SQLiteError) in
                try conn.query(
                    "INSERT OR REPLACE INTO accounts(name, state, updated_at) VALUES (?,?,strftime('%s','now'))", [.text(name), .text(text)])
            }
        }
        accountsWritten.withLock { $0[name] = h }
    }

    public func markResultPublished(_ rowId: Int64) throws {
        try locked { () throws(SQLiteError) in
            try relaxed { () throws(SQLiteError) in
                try conn.query("UPDATE results SET published = 1 WHERE row = ?", [.int(rowId)])
            }
        }
    }

    public func unpublishedResults() throws -> [PendingResult] {
        try locked { () throws(SQLiteError) in
            try conn.query("SELECT row, topic, payload, is_reply, correlation FROM results WHERE published = 0 ORDER BY row").compactMap { r in
                guard let row = r[0].int, let topic = r[1].text else { return nil }
                return PendingResult(
                    rowId: row, topic: topic, payload: r[2].bytes,
                    reply: r[3].int == 1 ? ReplyAddress(topic: topic, correlationData: r[4].blobValue) : nil)
            }
        }
    }

    /// What `heatbridge status` shows: accounts, devices, outbox depth and the last `limit` commands.
    public func statusReport(limit: Int, now: Double) throws -> JSONValue {
        try locked { () throws(SQLiteError) in
            var accounts: [JSONValue] = []
            for r in try conn.query("SELECT name, state FROM accounts ORDER BY name") {
                var o = (r[1].text.flatMap { try? JSONValue.parse($0) })?.objectValue ?? [:]
                o["name"] = .string(r[0].text)
                accounts.append(.object(o))
            }
            let devices: [JSONValue] = try conn.query("SELECT device_id, account, availability, updated_at FROM devices ORDER BY device_id").map {
                r in
                let updated = r[3].double ?? 0
                return [
                    "device": .string(r[0].text), "account": .string(r[1].text), "availability": .string(r[2].text),
                    "updated_at": .string(Timestamp.iso8601(updated)), "age_s": .number((now - updated).rounded()),
                ]
            }
            let depth = try conn.query("SELECT count(*) FROM commands WHERE status IN ('accepted', 'queued')").first?.first?.int ?? 0
            let unpublished = try conn.query("SELECT count(*) FROM results WHERE published = 0").first?.first?.int ?? 0
            var commands: [JSONValue] = []
            for r in try conn.query(
                """
                SELECT id, device, node, capability, status, received_at, seq FROM commands ORDER BY seq DESC LIMIT ?
                """, [.int(Int64(limit))])
            {
                let results = try conn.query("SELECT payload FROM results WHERE command_id = ? ORDER BY row", [r[0]]).compactMap {
                    try? JSONValue.parse($0[0].bytes)
                }
                commands.append([
                    "id": .string(r[0].text), "target": .string("\(r[1].text ?? "")/\(r[2].text ?? "")/\(r[3].text ?? "")"),
                    "status": .string(r[4].text), "received_at": .string(Timestamp.iso8601(r[5].double ?? 0)),
                    "results": .array(results),
                ])
            }
            let recovered =
                try conn.query("SELECT value FROM settings WHERE key = ?", [.text(Self.recoverySettingKey)])
                .first?.first?.text.flatMap { try? JSONValue.parse($0) } ?? .null
            let daemon =
                try conn.query("SELECT value FROM settings WHERE key = 'daemon'").first?.first?.text.flatMap { try? JSONValue.parse($0) } ?? .null
            return [
                "accounts": .array(accounts), "devices": .array(devices), "outbox_depth": .int(Int(depth)),
                "unpublished_results": .int(Int(unpublished)), "commands": .array(commands), "store_recovered": recovered,
                "daemon": daemon,
            ]
        }
    }

    /// `PRAGMA integrity_check`: "ok" for a healthy file.
    public func integrityCheck() throws -> String {
        try locked { () throws(SQLiteError) in
            try conn.query("PRAGMA integrity_check").compactMap { $0.first?.text }.joined(separator: "; ")
        }
    }

    /// Every result stored for a command, oldest first (for tests and the audit trail).
    public func results(commandId: String) throws -> [[UInt8]] {
        try locked { () throws(SQLiteError) in
            try conn.query("SELECT payload FROM results WHERE command_id = ? ORDER BY row", [.text(commandId)]).map { $0[0].bytes }
        }
    }
}

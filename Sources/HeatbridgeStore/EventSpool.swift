import Synchronization

/// The push receiver's spool: events stored durably before the webhook is answered, forwarded to MQTT in order,
/// deleted once the broker acknowledged them; and the fingerprints of the last 24 h of events, which drop the
/// repeats Bosch's backend sends after its restarts.
///
/// One connection, WAL, `synchronous=FULL`: a 2xx means the event survives a power cut. Callers batch concurrent
/// requests into one `add` (one fsync for many events).
public final class EventSpool: @unchecked Sendable {
    // Serialised by `lock`: SQLite's FULLMUTEX makes a call safe, the lock keeps a transaction whole. The forwarder
    // reads on a connection of its own (WAL: readers do not wait for the writer), so a stream of fsync'd commits
    // does not starve it of the lock.
    private let db: SQLiteConnection
    private let lock = Mutex(())
    private let reader: SQLiteConnection
    private let readLock = Mutex(())

    /// Runs `body` alone on the connection.
    @discardableResult
    private func locked<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        let r: Result<T, SQLiteError> = lock.withLock { _ in
            do throws(SQLiteError) { return .success(try body()) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// One event to store: its fingerprint (for repeats), the topic it goes to, its bytes.
    public struct Item: Sendable {
        public var fingerprint: String
        public var topic: String
        public var payload: [UInt8]
        public init(fingerprint: String, topic: String, payload: [UInt8]) {
            self.fingerprint = fingerprint
            self.topic = topic
            self.payload = payload
        }
    }

    /// A stored event waiting for the broker.
    public struct Pending: Sendable, Equatable {
        public var seq: Int64
        public var topic: String
        public var payload: [UInt8]
    }

    public init(path: String) throws(SQLiteError) {
        db = try SQLiteConnection(path: path)
        try db.exec("PRAGMA journal_mode=WAL")
        try db.exec("PRAGMA synchronous=FULL")
        try db.exec(
            """
            CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL, received_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS seen (fingerprint TEXT PRIMARY KEY, at REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS seen_at ON seen(at);
            """)
        reader = try SQLiteConnection(path: path)
    }

    private func reading<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        let r: Result<T, SQLiteError> = readLock.withLock { _ in
            do throws(SQLiteError) { return .success(try body()) } catch { return .failure(error) }
        }
        return try r.get()
    }

    /// Stores the items of one or more requests in one transaction. Returns, per item, whether it was new (false:
    /// seen within the window, not stored again). Items with an empty topic are only remembered (an event counted
    /// and dropped, e.g. for a gateway of no box, still drops its repeats).
    public func add(_ items: [Item], now: Double) throws(SQLiteError) -> [Bool] {
        try locked { () throws(SQLiteError) -> [Bool] in
            try db.transaction { () throws(SQLiteError) -> [Bool] in
                var out: [Bool] = []
                out.reserveCapacity(items.count)
                for item in items {
                    let before = db.totalChanges
                    try db.query("INSERT OR IGNORE INTO seen(fingerprint, at) VALUES (?, ?)", [.text(item.fingerprint), .real(now)])
                    let new = db.totalChanges > before
                    if new, !item.topic.isEmpty {
                        try db.query(
                            "INSERT INTO outbox(topic, payload, received_at) VALUES (?, ?, ?)", [.text(item.topic), .blob(item.payload), .real(now)])
                    }
                    out.append(new)
                }
                return out
            }
        }
    }

    /// Events after `seq`, oldest first.
    public func pending(after seq: Int64, limit: Int) throws(SQLiteError) -> [Pending] {
        try reading { () throws(SQLiteError) -> [Pending] in
            try reader.query("SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", [.int(seq), .int(Int64(limit))]).compactMap
            { r in
                guard let s = r[0].int, let t = r[1].text else { return nil }
                return Pending(seq: s, topic: t, payload: r[2].bytes)
            }
        }
    }

    /// Forgets events the broker acknowledged. Not synced on its own (the next stored event's commit syncs it): a
    /// deletion lost in a power cut only sends an event again, which the box drops as a repeat.
    public func delivered(_ seqs: [Int64]) throws(SQLiteError) {
        guard !seqs.isEmpty else { return }
        try locked { () throws(SQLiteError) in
            try db.exec("PRAGMA synchronous=NORMAL")
            defer { try? db.exec("PRAGMA synchronous=FULL") }
            try db.transaction { () throws(SQLiteError) in
                var i = 0
                while i < seqs.count {
                    let chunk = seqs[i..<min(i + 500, seqs.count)]
                    try db.query("DELETE FROM outbox WHERE seq IN (\(chunk.map { _ in "?" }.joined(separator: ",")))", chunk.map { .int($0) })
                    i += 500
                }
            }
        }
    }

    /// Events stored and not acknowledged yet.
    public func depth() throws(SQLiteError) -> Int {
        try reading { () throws(SQLiteError) -> Int in
            Int(try reader.query("SELECT count(*) FROM outbox").first?.first?.int ?? 0)
        }
    }

    /// Forgets fingerprints older than `before` (the repeat window has passed).
    public func pruneSeen(before: Double) throws(SQLiteError) {
        try locked { () throws(SQLiteError) in
            try db.query("DELETE FROM seen WHERE at < ?", [.real(before)])
        }
    }
}

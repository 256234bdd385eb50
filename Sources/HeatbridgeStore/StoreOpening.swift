import CSQLite
import Glibc
import HeatbridgeCore

/// A damaged store found at start: what was wrong and where the evidence went.
public struct StoreRecovery: Sendable, Equatable {
    /// What the check found ("the store file is empty", SQLite's quick_check lines, an open error).
    public var reason: String
    /// The damaged file, renamed aside and kept for analysis.
    public var keptAs: String
    public var at: EpochSeconds

    public var json: JSONValue { ["reason": .string(reason), "kept_as": .string(keptAs), "at": .string(Timestamp.iso8601(at))] }
}

extension SQLiteStore {
    /// The setting under which the last recovery is remembered (shown on `bridge/health` and by `status`).
    public static let recoverySettingKey = "store/recovered"

    /// Opens the daemon's store, checked: the file is created private (0600) if missing; a store that was
    /// truncated to nothing, is not a database, or fails `PRAGMA quick_check` is renamed aside with a timestamp
    /// and replaced by a fresh one (so is one lacking a table), and the recovery is returned (and remembered in
    /// the fresh store) so the daemon can say so loudly. A store that does not take a write (read-only,
    /// immutable, full) and other errors (permissions, a newer schema) are thrown.
    public static func openChecked(path: String, now: EpochSeconds) throws(SQLiteError) -> (SQLiteStore, StoreRecovery?) {
        let created = try createPrivately(path)
        var damage: String?
        var st = stat()
        if !created, stat(path, &st) == 0, st.st_size == 0 {
            damage = "the store file is empty (truncated)"
        }
        if damage == nil {
            switch try checked(path) {
            case .success(let store):
                // It must take a write too: read-only, immutable or full is found now, not at the first command.
                do { try store.writeCheck() } catch let e as SQLiteError { throw e } catch {
                    throw SQLiteError(code: SQLITE_ERROR, message: "\(error)")
                }
                return (store, nil)
            case .failure(let why): damage = why.text
            }
        }
        let keptAs = path + ".damaged-" + compactStamp(now)
        for suffix in ["", "-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            guard rename(path + suffix, keptAs + suffix) == 0 else {
                throw SQLiteError(
                    code: SQLITE_CANTOPEN,
                    message: "the store is damaged (\(damage ?? "?")) and cannot be moved aside: \(String(cString: strerror(errno)))")
            }
        }
        _ = try createPrivately(path)
        let store = try SQLiteStore(path: path)
        let recovery = StoreRecovery(reason: damage ?? "damaged", keptAs: keptAs, at: now)
        try? store.saveSetting(recoverySettingKey, recovery.json)
        return (store, recovery)
    }

    /// The store at `path` if it opens and passes `quick_check`, else what is wrong. A store that failed is
    /// closed when this returns, before its files are moved (SQLite names the WAL after the path).
    static func checked(_ path: String) throws(SQLiteError) -> Result<SQLiteStore, DamageReport> {
        do throws(SQLiteError) {
            let store = try SQLiteStore(path: path)
            let check = store.quickCheck()
            guard check == ["ok"] else { return .failure(DamageReport("quick_check: " + check.prefix(3).joined(separator: "; "))) }
            // A sound file can still lack a table (dropped by hand): every write to it would fail.
            let missing = store.missingTables()
            guard missing.isEmpty else { return .failure(DamageReport("the store lacks table(s) \(missing.joined(separator: ", "))")) }
            return .success(store)
        } catch  where error.code == SQLITE_CORRUPT || error.code == SQLITE_NOTADB {
            return .failure(DamageReport(error.message))
        }
    }

    struct DamageReport: Error {
        var text: String
        init(_ t: String) { text = t }
    }

    /// Creates `path` with mode 0600 if it does not exist (SQLite gives the -wal and -shm files the same
    /// mode), whatever the umask. True when it was created now.
    static func createPrivately(_ path: String) throws(SQLiteError) -> Bool {
        try createDirectories(for: path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
            return true
        }
        if errno == EEXIST { return false }
        throw SQLiteError(code: SQLITE_CANTOPEN, message: "cannot create the store \(path): \(String(cString: strerror(errno)))")
    }

    /// The store's directory and any missing parents, private to the daemon's user (0700), as `check-config` said
    /// they would be: a demo config's `./demo-state/heatbridge.db` works on the first start.
    static func createDirectories(for path: String) throws(SQLiteError) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        var st = stat()
        if stat(dir, &st) == 0 { return }
        try createDirectories(for: dir)
        if mkdir(dir, 0o700) != 0, errno != EEXIST {
            throw SQLiteError(code: SQLITE_CANTOPEN, message: "cannot create the store's directory \(dir): \(String(cString: strerror(errno)))")
        }
    }

    /// `20261202T034500Z`: sortable, and safe in a file name.
    static func compactStamp(_ t: EpochSeconds) -> String {
        Timestamp.iso8601(t).filter { $0 != "-" && $0 != ":" }
    }
}

extension SQLiteStore {
    /// Free bytes (for an unprivileged writer) on the filesystem that holds the store at `path`; nil when it
    /// cannot be told. For `bridge/health` and `heatbridge status`.
    public static func freeBytes(path: String) -> Int? {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var fs = statvfs()
        guard statvfs(dir.isEmpty ? "." : dir, &fs) == 0 else { return nil }
        return Int(fs.f_bavail) * Int(fs.f_frsize)
    }
}

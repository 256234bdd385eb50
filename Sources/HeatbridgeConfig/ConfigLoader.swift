import Glibc
import HeatbridgeCore

/// A loaded, checked config file.
public struct LoadedConfig: Sendable {
    public var config: HeatbridgeConfig
    /// Short hash of the file's bytes (published in `bridge/info`).
    public var hash: String
    /// The file as read, secrets redacted (`ConfigNode.redactedJSON`): the `config` bridge request's answer.
    public var document: JSONValue = .null
}

/// Loads the config file: reads it, parses the YAML, validates it, and checks every secret can be read.
/// Every problem is reported, each with `file:line:column`; no secret's content ever appears in a message.
public enum ConfigLoader {
    /// A config is a few KiB; anything past this is not one (and would only cost time to parse).
    public static let maxConfigBytes = 1 << 20

    /// `vendors` are the clouds an account may name (`HeatbridgeVendors.all`).
    public static func load(path: String, environment: [String: String], vendors: [any VendorModule]) -> Result<LoadedConfig, ConfigErrors> {
        let text: String
        switch FileIO.read(path, maxBytes: maxConfigBytes) {
        case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
        case .failure(let e):
            return .failure(
                ConfigErrors([
                    ConfigDiagnostic(
                        file: path, mark: SourceMark(line: 1, column: 1),
                        message: "cannot read config file: \(e)", hint: "pass --config PATH")
                ]))
        }
        let root: ConfigNode
        switch YAMLReader.parse(text, file: path) {
        case .success(let r): root = r
        case .failure(let d): return .failure(ConfigErrors([d]))
        }
        var (config, diagnostics) = ConfigDecoder.decode(root, file: path, vendors: vendors)
        var all = diagnostics
        if var c = config {
            for i in c.accounts.indices {
                if let problem = resolveKeyCredential(&c.accounts[i], environment: environment, file: path) { all.append(problem) }
            }
            config = c
        }
        // Secrets are checked even when other errors exist, so the installer sees everything at once.
        let refs = config?.secretRefs ?? secretRefsBestEffort(root, file: path)
        for ref in refs {
            if case .failure(let message) = readSecret(ref, environment: environment) {
                all.append(ConfigDiagnostic(file: path, mark: ref.mark, message: message.text, hint: message.hint))
            }
        }
        for a in config?.accounts ?? [] { all += connectionFileProblems(a, file: path) }
        if let token = config?.http.token, let problem = tokenProblem(token, environment: environment, file: path) { all.append(problem) }
        if let c = config, let problem = storeDirectoryProblem(c.store.path, root: root, file: path) { all.append(problem) }
        guard let config, all.isEmpty else {
            return .failure(ConfigErrors(all.sorted { ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column) }))
        }
        return .success(LoadedConfig(config: config, hash: fnv1aHex(Array(text.utf8)), document: root.redactedJSON))
    }

    /// The status page's token: long enough not to be guessed, and in a file only the daemon reads (mode 0600).
    static func tokenProblem(_ ref: SecretRef, environment: [String: String], file: String) -> ConfigDiagnostic? {
        if case .file(let p) = ref.source {
            var st = stat()
            if stat(p, &st) == 0, st.st_mode & 0o077 != 0 {
                return ConfigDiagnostic(
                    file: file, mark: ref.mark, message: "token_file \(p) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8)))",
                    hint: "chmod 600 \(p)")
            }
        }
        if case .success(let token) = readSecret(ref, environment: environment), token.count < 16 {
            return ConfigDiagnostic(
                file: file, mark: ref.mark, message: "the HTTP token is \(token.count) characters; at least 16",
                hint: "e.g. openssl rand -hex 24 > the token file")
        }
        return nil
    }

    /// `client_key_credential` → `client_key_file` in `$CREDENTIALS_DIRECTORY` (systemd's LoadCredential=, which
    /// also makes the file private to the unit); checked like any key file afterwards.
    static func resolveKeyCredential(_ a: inout AccountConfig, environment: [String: String], file: String) -> ConfigDiagnostic? {
        guard let name = a.clientKeyCredential, let mark = a.connectionMarks["client_key_credential"] else { return nil }
        guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
            return ConfigDiagnostic(
                file: file, mark: mark, message: "client_key_credential: credential \"\(name)\" needs $CREDENTIALS_DIRECTORY",
                hint: "run under systemd with LoadCredential=\(name):/path/to/box.key, or use client_key_file")
        }
        a.connection.clientKeyFile = dir + "/" + name
        a.connectionMarks["client_key_file"] = mark
        return nil
    }

    /// An account's CA, certificate and key files: readable, and the key private to its owner (a box's key is
    /// its identity at the relay: readable by others, anyone on the box could be that box).
    static func connectionFileProblems(_ a: AccountConfig, file: String) -> [ConfigDiagnostic] {
        var out: [ConfigDiagnostic] = []
        let c = a.connection
        for (key, path) in [("ca_file", c.caFile), ("client_cert_file", c.clientCertFile), ("client_key_file", c.clientKeyFile)] {
            guard let path, let mark = a.connectionMarks[key] else { continue }
            var st = stat()
            guard stat(path, &st) == 0, access(path, R_OK) == 0 else {
                out.append(
                    ConfigDiagnostic(
                        file: file, mark: mark, message: "\(key): cannot read \(path): \(String(cString: strerror(errno)))",
                        hint: "the daemon's user must be able to read it"))
                continue
            }
            if key == "client_key_file", st.st_mode & 0o077 != 0 {
                out.append(
                    ConfigDiagnostic(
                        file: file, mark: mark,
                        message: "client_key_file \(path) is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8)))",
                        hint: "chmod 600 \(path); owned by the heatbridge user"))
            }
        }
        return out
    }

    /// The directory systemd's `StateDirectory=heatbridge` creates when the unit starts: it may not exist yet when
    /// the installer checks the config before the first start.
    public static let stateDirectory = "/var/lib/heatbridge"

    /// `run` creates the store's directory (0700) when it is missing: a directory it could not create is a config
    /// error now, not an exit 78 at the first start. systemd's state directory is created by the unit itself.
    static func storeDirectoryProblem(_ storePath: String, root: ConfigNode, file: String) -> ConfigDiagnostic? {
        let dir = storePath.contains("/") ? String(storePath[..<storePath.lastIndex(of: "/")!]) : "."
        if dir == stateDirectory || dir.isEmpty { return nil }
        // The nearest part of the path that exists must be a directory this user can create entries in.
        var existing = dir
        var st = stat()
        while stat(existing, &st) != 0 {
            guard let slash = existing.lastIndex(of: "/") else {
                existing = "."
                continue
            }
            existing = slash == existing.startIndex ? "/" : String(existing[..<slash])
        }
        let why: String
        if st.st_mode & S_IFMT != S_IFDIR {
            why = "\(existing) is not a directory"
        } else if existing != dir && access(existing, W_OK | X_OK) != 0 {
            why = "directory \(dir) does not exist and cannot be created in \(existing) by this user"
        } else if existing == dir && access(dir, W_OK | X_OK) != 0 {
            why = "directory \(dir) is not writable by this user"
        } else {
            return nil
        }
        var mark = SourceMark(line: 1, column: 1)
        if case .mapping(let top, _) = root, case .mapping(let entries, _)? = top.first(where: { $0.key == "store" })?.value,
            case .scalar(_, let m, _)? = entries.first(where: { $0.key == "path" })?.value
        {
            mark = m
        }
        return ConfigDiagnostic(
            file: file, mark: mark, message: "store.path: \(why)",
            hint: "create it (owned by the daemon's user), or keep the store in \(stateDirectory), which systemd's StateDirectory= creates")
    }

    /// The store path from a file that may have other problems (e.g. secrets this user cannot read), so
    /// `heatbridge status` works for an operator who is not the heatbridge user.
    public static func storePath(path: String) -> String? {
        guard case .success(let bytes) = FileIO.read(path),
            case .success(let root) = YAMLReader.parse(String(decoding: bytes, as: UTF8.self), file: path),
            case .mapping(let top, _) = root
        else { return nil }
        guard let store = top.first(where: { $0.key == "store" })?.value else { return StoreConfig().path }
        guard case .mapping(let entries, _) = store,
            case .scalar(let p, _, _)? = entries.first(where: { $0.key == "path" })?.value
        else { return StoreConfig().path }
        return p
    }

    /// When the file has other errors the decoder returns no config; collect secret references directly.
    static func secretRefsBestEffort(_ root: ConfigNode, file: String) -> [SecretRef] {
        var refs: [SecretRef] = []
        func walk(_ n: ConfigNode) {
            switch n {
            case .mapping(let entries, _):
                for e in entries {
                    if case .scalar(let v, let m, _) = e.value, !v.isEmpty {
                        if e.key.hasSuffix("_file") && (e.key == "password_file" || e.key == "api_key_file") {
                            refs.append(SecretRef(source: .file(v), key: e.key, mark: m))
                        } else if e.key == "password_credential" || e.key == "api_key_credential" {
                            refs.append(SecretRef(source: .credential(v), key: e.key, mark: m))
                        }
                    }
                    walk(e.value)
                }
            case .sequence(let items, _): items.forEach(walk)
            case .scalar: break
            }
        }
        walk(root)
        return refs
    }

    public struct SecretProblem: Error, Sendable {
        public var text: String
        public var hint: String?
    }

    /// Reads a secret: the file's content, or `$CREDENTIALS_DIRECTORY/<name>`, trailing newline removed.
    public static func readSecret(_ ref: SecretRef, environment: [String: String]) -> Result<String, SecretProblem> {
        let path: String
        switch ref.source {
        case .file(let p): path = p
        case .credential(let name):
            guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
                return .failure(
                    SecretProblem(
                        text: "\(ref.key): credential \"\(name)\" needs $CREDENTIALS_DIRECTORY",
                        hint: "set LoadCredential=\(name):/path in the systemd unit, or use a *_file key"))
            }
            path = dir + "/" + name
        }
        switch FileIO.read(path, maxBytes: 65_536) {
        case .failure(let e):
            return .failure(
                SecretProblem(
                    text: "\(ref.key): cannot read secret file \(path): \(e)",
                    hint: "the file must exist and be readable by the heatbridge user"))
        case .success(let bytes):
            var s = String(decoding: bytes, as: UTF8.self)
            while let last = s.last, last == "\n" || last == "\r" || last == " " { s.removeLast() }
            if s.isEmpty {
                return .failure(SecretProblem(text: "\(ref.key): secret file \(path) is empty", hint: nil))
            }
            return .success(s)
        }
    }

    static func fnv1aHex(_ bytes: [UInt8]) -> String {
        let hex = String(fnv1a64(bytes), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Small file helpers over POSIX calls (no Foundation in the daemon).
public enum FileIO {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var errno: Int32
        /// Our own words where errno has none that fits ("not a regular file").
        public var reason: String?
        public init(errno: Int32, reason: String? = nil) {
            self.errno = errno
            self.reason = reason
        }
        public var description: String { reason ?? String(cString: strerror(errno)) }
    }

    /// Replaces `path` with `bytes` so that a reader (or a crash) sees either the old or the new content, never
    /// a mix: a temporary file beside it, written with `mode`, synced, then renamed over it; the directory is
    /// synced too so the rename survives a power cut.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) -> Result<Void, Failure> {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { return .failure(Failure(errno: errno)) }
        var ok = fchmod(fd, mode) == 0
        var offset = 0
        while ok && offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                ok = false
            } else {
                offset += n
            }
        }
        if ok { ok = fsync(fd) == 0 }
        let err = errno
        close(fd)
        guard ok, rename(tmp, path) == 0 else {
            let e = ok ? errno : err
            unlink(tmp)
            return .failure(Failure(errno: e))
        }
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
        return .success(())
    }

    /// Stores a secret (e.g. a rotated API key) the way `readSecret` reads it: one line, mode 0600, atomically.
    public static func writeSecret(_ path: String, _ secret: String) -> Result<Void, Failure> {
        writeAtomically(path, Array((secret + "\n").utf8), mode: 0o600)
    }

    /// Reads a whole regular file of at most `maxBytes`. A FIFO, a device or a directory is refused without
    /// reading from it (O_NONBLOCK: opening a FIFO with no writer would otherwise block forever).
    public static func read(_ path: String, maxBytes: Int = 16 << 20) -> Result<[UInt8], Failure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(Failure(errno: errno)) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(Failure(errno: errno)) }
        guard st.st_mode & S_IFMT == S_IFREG else { return .failure(Failure(errno: EINVAL, reason: "not a regular file")) }
        guard Int(st.st_size) <= maxBytes else { return .failure(Failure(errno: EFBIG, reason: "larger than \(maxBytes) bytes")) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(errno: errno))
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > maxBytes { return .failure(Failure(errno: EFBIG, reason: "larger than \(maxBytes) bytes")) }
        }
        return .success(out)
    }
}

/// Turns a `ConfigNode` tree into a `HeatbridgeConfig`, collecting every error instead of stopping at the first.
///
/// The helpers here are public so each vendor module decodes its own part of an account with the same rules
/// and messages (`VendorModule.decodeAccount`).
public struct ConfigDecoder {
    public let file: String
    /// The vendors whose accounts the file may configure.
    public let vendors: [any VendorModule]
    public private(set) var diagnostics: [ConfigDiagnostic] = []

    public init(file: String, vendors: [any VendorModule]) {
        self.file = file
        self.vendors = vendors
    }

    /// Decodes `root`; the config is nil when any error was found.
    public static func decode(_ root: ConfigNode, file: String, vendors: [any VendorModule]) -> (HeatbridgeConfig?, [ConfigDiagnostic]) {
        var d = ConfigDecoder(file: file, vendors: vendors)
        let config = d.decodeRoot(root)
        return (d.diagnostics.isEmpty ? config : nil, d.diagnostics)
    }

    /// Reports one mistake at its position.
    public mutating func error(_ mark: SourceMark, _ message: String, hint: String? = nil) {
        diagnostics.append(ConfigDiagnostic(file: file, mark: mark, message: message, hint: hint))
    }

    // MARK: helpers

    /// A `true`/`false` key; nil when absent (or wrong, which is reported).
    public mutating func bool(_ m: Entries, _ key: String) -> (Bool, SourceMark)? {
        guard let (s, mark) = stringWithMark(m, key) else { return nil }
        guard s == "true" || s == "false" else {
            error(mark, "\"\(key)\" must be true or false, found \(ConfigText.echo(s))")
            return nil
        }
        return (s == "true", mark)
    }

    /// A list of non-empty scalars (ids); nil when the key is absent.
    public mutating func scalarList(_ m: Entries, _ key: String, what: String) -> [String]? {
        guard let d = value(m, key) else { return nil }
        guard case .sequence(let items, _) = d else {
            error(d.mark, "\"\(key)\" must be a list of \(what), found \(d.kindName)")
            return nil
        }
        return items.compactMap { item in
            if case .scalar(let s, _, _) = item, !s.isEmpty { return s }
            error(item.mark, "\(what) must be non-empty scalars, found \(item.kindName)")
            return nil
        }
    }

    public typealias Entries = [(key: String, keyMark: SourceMark, value: ConfigNode)]

    public mutating func mapping(_ node: ConfigNode, path: String) -> Entries? {
        if case .mapping(let entries, _) = node {
            var seen: [String: SourceMark] = [:]
            for e in entries {
                if let first = seen[e.key] {
                    error(e.keyMark, "duplicate key \"\(e.key)\"", hint: "first given at line \(first.line)")
                }
                seen[e.key] = e.keyMark
            }
            return entries
        }
        if node.isNull { return [] }
        error(node.mark, "\(path) must be a mapping of keys, found \(node.kindName)")
        return nil
    }

    public func value(_ m: Entries, _ key: String) -> ConfigNode? {
        m.first(where: { $0.key == key })?.value
    }

    public mutating func checkKeys(_ m: Entries, known: [String], section: String, inlineSecrets: [String: String] = [:]) {
        for e in m where !known.contains(e.key) {
            if let use = inlineSecrets[e.key] {
                error(
                    e.keyMark, "inline secret \"\(e.key)\" is not allowed in \(section)",
                    hint: "put it in a file readable only by heatbridge and use \(use)")
                continue
            }
            if let s = closest(e.key, in: known, limit: max(2, e.key.count / 3)) {
                error(e.keyMark, "unknown key \"\(e.key)\" in \(section)", hint: "did you mean \"\(s)\"?")
            } else {
                error(e.keyMark, "unknown key \"\(e.key)\" in \(section)", hint: "known keys: \(known.joined(separator: ", "))")
            }
        }
    }

    public mutating func stringWithMark(_ m: Entries, _ key: String) -> (String, SourceMark)? {
        guard let n = value(m, key) else { return nil }
        if case .scalar(let s, let mark, _) = n, !n.isNull { return (s, mark) }
        error(n.mark, "\"\(key)\" must be a string, found \(n.isNull ? "nothing" : n.kindName)")
        return nil
    }

    public mutating func string(_ m: Entries, _ key: String) -> String? { stringWithMark(m, key)?.0 }

    public mutating func number(_ m: Entries, _ key: String, range: ClosedRange<Double>) -> Double? {
        guard let (s, mark) = stringWithMark(m, key) else { return nil }
        guard let v = Double(s), v.isFinite else {
            error(mark, "\"\(key)\" must be a number, found \(ConfigText.echo(s))")
            return nil
        }
        guard range.contains(v) else {
            error(
                mark,
                "\"\(key)\" must be within \(JSONValue.format(range.lowerBound))…\(JSONValue.format(range.upperBound)), found \(ConfigText.echo(s))")
            return nil
        }
        return v
    }

    public mutating func enumString(_ m: Entries, _ key: String, allowed: [String]) -> String? {
        guard let (s, mark) = stringWithMark(m, key) else { return nil }
        guard allowed.contains(s) else {
            let hint = closest(s, in: allowed, limit: 2).map { "did you mean \"\($0)\"?" } ?? "one of \(allowed.joined(separator: ", "))"
            error(mark, "bad \(key) \"\(s)\"", hint: hint)
            return nil
        }
        return s
    }

    /// `<base>_file` or `<base>_credential` (not both).
    public mutating func secret(_ m: Entries, base: String) -> SecretRef? {
        let fileKey = base + "_file"
        let credKey = base + "_credential"
        let file = stringWithMark(m, fileKey)
        let cred = stringWithMark(m, credKey)
        if file != nil, let cred {
            error(cred.1, "give either \"\(fileKey)\" or \"\(credKey)\", not both")
            return nil
        }
        if let (path, mark) = file {
            guard path.hasPrefix("/") || path.hasPrefix("./") || !path.isEmpty else { return nil }
            return SecretRef(source: .file(path), key: fileKey, mark: mark)
        }
        if let (name, mark) = cred {
            guard !name.isEmpty, !name.contains("/") else {
                error(mark, "bad credential name \"\(name)\"", hint: "a file name inside $CREDENTIALS_DIRECTORY")
                return nil
            }
            return SecretRef(source: .credential(name), key: credKey, mark: mark)
        }
        return nil
    }

    /// The partner's credential for a vendor (`<base>_file` or `<base>_credential`): required on a box that
    /// talks to the cloud itself, refused on a box behind a relay (`client_cert_file`), where the relay injects
    /// it so a box never holds a partner-wide secret. `what` names it in messages ("API key", "client secret").
    public mutating func partnerSecret(
        _ m: Entries, base: String, at mark: SourceMark, common: AccountConfig,
        what: String, hint: String
    ) -> SecretRef? {
        let ref = secret(m, base: base)
        let vendor = common.vendor
        if common.connection.isRelay {
            if ref != nil {
                error(
                    mark, "a \(vendor) account behind a relay (client_cert_file) holds no \(what)",
                    hint: "remove \(base)_file/\(base)_credential: the relay injects the partner's \(what), so a box never has it")
            }
        } else if ref == nil && value(m, base) == nil {
            error(
                mark, "\(vendor) account needs \"\(base)_file\" or \"\(base)_credential\"",
                hint: "\(hint), or client_cert_file + client_key_file for a relay that holds it")
        }
        return ref
    }
}

/// The candidate closest to `word` within `limit` edits, for did-you-mean hints. Linear in the candidates and
/// cheap for hostile input: each distance is computed once, candidates whose length alone is too far are
/// skipped, and a word longer than 64 bytes gets no suggestion.
func closest(_ word: String, in candidates: [String], limit: Int) -> String? {
    guard word.utf8.count <= 64 else { return nil }
    var best: (String, Int)?
    for c in candidates where abs(c.utf8.count - word.utf8.count) <= limit {
        let d = editDistance(c, word)
        if d <= limit, d < (best?.1 ?? .max) { best = (c, d) }
    }
    return best?.0
}

/// Levenshtein distance over UTF-8 bytes (config keys and enum values are ASCII).
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8)
    let b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

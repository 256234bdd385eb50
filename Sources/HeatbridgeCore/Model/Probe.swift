/// What `heatbridge probe` found in one answer of a cloud, compared with heatbridge's wire definition of it.
public struct ProbeFinding: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// An optional field of the definition the answer does not have (read as null). Listed, but not drift on
        /// its own: the definition allows it, and a renamed field shows as `extra` too.
        case missing
        /// A field the answer has and the definition does not (ignored).
        case extra
        /// A field of another type than defined (a number sent as a string is read; the rest is null).
        case type
        /// A value outside the values the definition knows (kept as its string).
        case enumValue = "enum"
        /// An HTTP status other than the ones expected for this request.
        case status
        /// The answer cannot be read at all.
        case unreadable
    }

    public var field: String
    public var kind: Kind
    public var detail: String
    /// Whether it means the answer differs from the definition: everything but a missing optional field
    /// unless said otherwise (a required field missing is drift).
    public var isDrift: Bool

    public init(field: String, kind: Kind, detail: String, isDrift: Bool? = nil) {
        self.field = field
        self.kind = kind
        self.detail = detail
        self.isDrift = isDrift ?? (kind != .missing)
    }

    public var json: JSONValue { ["field": .string(field), "kind": .string(kind.rawValue), "detail": .string(detail), "drift": .bool(isDrift)] }
}

/// One request `probe` made: what came back and what differs from the definition.
public struct ProbeAnswer: Sendable, Equatable {
    /// `GET /hvacs/101000001/heatingCircuits/1`.
    public var request: String
    /// nil when no HTTP answer came (timeout, refused).
    public var status: Int?
    public var body: [UInt8]
    public var findings: [ProbeFinding]

    public init(request: String, status: Int?, body: [UInt8], findings: [ProbeFinding]) {
        self.request = request
        self.status = status
        self.body = body
        self.findings = findings
    }

    /// Drift: any finding but a missing optional field. An extra field is safe for the daemon (ignored) but
    /// still counts: a partner's report is how the definition gets corrected.
    public var drifted: Bool { findings.contains(where: \.isDrift) }
}

/// A wire definition for vendors whose adapters read JSON directly (no Codable types): what `probe` compares an
/// answer with.
public indirect enum WireShape: Sendable {
    case string, number, bool, any
    /// A string from a known set (compared without case).
    case oneOf([String])
    case list(WireShape)
    /// Fields by name: `required` ones must be there (drift when not), the others are noted when absent.
    case object([String: WireShape], required: Set<String> = [])
    /// Either the shape or null.
    case nullable(WireShape)

    /// What in `v` differs from this shape, with dotted paths below `path`.
    public func check(_ v: JSONValue, path: String = "") -> [ProbeFinding] {
        func at(_ k: String) -> String { path.isEmpty ? k : "\(path).\(k)" }
        func mismatch(_ expected: String) -> [ProbeFinding] {
            [ProbeFinding(field: path, kind: .type, detail: "expected \(expected), found \(Self.kindName(v))")]
        }
        switch (self, v) {
        case (.any, _): return []
        case (.nullable, .null): return []
        case (.nullable(let s), _): return s.check(v, path: path)
        case (.string, .string): return []
        case (.number, .number): return []
        case (.number, .string(let s)) where Double(s) != nil:
            return [ProbeFinding(field: path, kind: .type, detail: "a number sent as a string (\"\(s.prefix(40))\")")]
        case (.bool, .bool): return []
        case (.oneOf(let allowed), .string(let s)):
            return allowed.contains { $0.lowercased() == s.lowercased() }
                ? []
                : [
                    ProbeFinding(
                        field: path, kind: .enumValue,
                        detail: "\"\(s.prefix(40))\" is not one of \(allowed.joined(separator: ", ")) (kept as its string)")
                ]
        case (.list(let s), .array(let a)):
            return a.enumerated().flatMap { s.check($0.element, path: at(String($0.offset))) }
        case (.object(let fields, let required), .object(let o)):
            var out: [ProbeFinding] = []
            for k in fields.keys.sorted() {
                guard let value = o[k] else {
                    out.append(
                        required.contains(k)
                            ? ProbeFinding(field: at(k), kind: .missing, detail: "required field is missing", isDrift: true)
                            : ProbeFinding(field: at(k), kind: .missing, detail: "not in the answer (read as null)"))
                    continue
                }
                out += fields[k]!.check(value, path: at(k))
            }
            for k in o.keys.sorted() where fields[k] == nil {
                out.append(ProbeFinding(field: at(k), kind: .extra, detail: "not in the definition (ignored)"))
            }
            return out
        case (.string, _): return mismatch("a string")
        case (.number, _): return mismatch("a number")
        case (.bool, _): return mismatch("true or false")
        case (.oneOf, _): return mismatch("a string")
        case (.list, _): return mismatch("a list")
        case (.object, _): return mismatch("an object")
        }
    }

    public static func kindName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "true or false"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}

/// An adapter that can compare its cloud's answers with its wire definitions (`heatbridge probe`).
public protocol Probing: VendorAdapter {
    /// Reads every documented read endpoint for the account's devices, at the lowest priority, within the
    /// account's rate budget.
    func probe() async -> [ProbeAnswer]
}

/// Fixtures as `probe --save` writes them: secrets, tokens, e-mail addresses, names, street addresses,
/// serial numbers and user ids replaced by stable placeholders (the same value, the same placeholder).
public struct FixtureRedactor: Sendable {
    /// Strings that must never appear (the account's own secret and ids), replaced wherever they occur.
    public var known: [String]
    private var seen: [String: String] = [:]

    public init(known: [String]) { self.known = known.filter { !$0.isEmpty }.sorted { $0.count > $1.count } }

    /// Keys whose values identify a person, a home or a credential (lowercased substrings).
    static let sensitiveKeys = [
        "key", "token", "secret", "password", "mail", "name", "street", "address", "city", "zip", "postal",
        "phone", "serial", "user", "owner", "iban", "latitude", "longitude",
    ]

    public mutating func redact(_ v: JSONValue, key: String = "") -> JSONValue {
        switch v {
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for k in o.keys.sorted() { out[k] = redact(o[k]!, key: k) }
            return .object(out)
        case .array(let a):
            return .array(a.map { redact($0, key: key) })
        case .string(let s):
            let lower = key.lowercased()
            if Self.sensitiveKeys.contains(where: { lower.contains($0) }) || s.contains("@") {
                return .string(placeholder(s, kind: lower.isEmpty ? "value" : lower))
            }
            return .string(redactText(s))
        default:
            return v
        }
    }

    /// Replaces the known strings inside free text (a path, a message).
    public mutating func redactText(_ s: String) -> String {
        var out = s
        for k in known where out.contains(k) { out = out.replacingAll(k, with: placeholder(k, kind: "id")) }
        return out
    }

    mutating func placeholder(_ s: String, kind: String) -> String {
        if let p = seen[s] { return p }
        let p = "<\(String(kind.filter { $0.isLetter || $0 == "_" }.prefix(24))):\(seen.count + 1)>"
        seen[s] = p
        return p
    }
}

extension String {
    /// Every occurrence of `needle` replaced (Core has no Foundation).
    func replacingAll(_ needle: String, with replacement: String) -> String {
        guard !needle.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: needle) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

import FoundationEssentials
import HeatbridgeCore
import Synchronization

/// One field of a Bosch answer that did not match the wire definition. Most Bosch shapes are INFERRED
/// (cloud-apis.md), so the first real account will differ somewhere: the answer is read anyway, the field is
/// named, and only the part it belongs to says so.
public struct WireIssue: Sendable, Equatable, CustomStringConvertible {
    /// The request whose answer it was, e.g. `GET /gateways/101000001/heatingCircuits/1`.
    public var request: String
    /// Dotted path of the field in the answer (`autoModeSettings.timeProgramId`, `switchPoints.3.time`); empty
    /// for the answer as a whole.
    public var field: String
    public var problem: String

    public init(request: String, field: String, problem: String) {
        self.request = request
        self.field = field
        self.problem = problem
    }

    public var description: String { field.isEmpty ? "\(request): \(problem)" : "\(request): field \(field): \(problem)" }
}

extension BoschWire {
    /// Decodes leniently: unknown fields are ignored (as always), a number sent as a string is read as the
    /// number, and a field of the wrong type is read as absent (null) when the definition allows that. Each
    /// such repair is an issue; the value is nil only when the answer cannot be read at all (not JSON, a
    /// required field missing, a list where an object belongs).
    public static func decodeTolerant<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> (value: T?, issues: [(field: String, problem: String)]) {
        // Core's reader first: it refuses an object naming a key twice, which JSONDecoder would read one way
        // and another client another.
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(bytes) } catch {
            return (nil, [("", error.reason.hasPrefix("duplicate key") ? "names a key twice (\(error.reason))" : "not JSON")])
        }
        if let v = try? JSONDecoder().decode(type, from: Data(bytes)) { return (v, []) }
        var json = parsed
        var issues: [(field: String, problem: String)] = []
        var repaired: Set<String> = []
        for _ in 0..<32 {
            do {
                return (try JSONDecoder().decode(type, from: Data(json.bytes)), issues)
            } catch let error as DecodingError {
                let (path, problem) = describe(error)
                let field = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
                // A field already repaired that still fails is required: the answer cannot be read.
                guard !path.isEmpty, !repaired.contains(field), let current = json.value(at: path) else {
                    return (nil, issues + [(field, problem)])
                }
                repaired.insert(field)
                if case .string(let s) = current, let n = Double(s), n.isFinite, problem.hasPrefix("expected a number") {
                    json.set(.number(n), at: path)
                    issues.append((field, "a number sent as a string (\"\(s.prefix(40))\"); read as \(JSONValue.format(n))"))
                } else {
                    json.set(.null, at: path)
                    issues.append((field, problem + "; read as null"))
                }
            } catch {
                return (nil, issues + [("", "unreadable: \(error)")])
            }
        }
        return (nil, issues + [("", "too many fields differ from the definition")])
    }

    static func describe(_ e: DecodingError) -> ([any CodingKey], String) {
        func kind(_ t: Any.Type) -> String {
            switch t {
            case is Double.Type, is Int.Type, is Float.Type, is Double?.Type, is Int?.Type: return "a number"
            case is String.Type, is String?.Type: return "a string"
            case is Bool.Type, is Bool?.Type: return "true or false"
            default:
                let name = String(describing: t)
                return name.hasPrefix("Array") || name.hasPrefix("[") ? "a list" : "an object"
            }
        }
        switch e {
        case .typeMismatch(let t, let c):
            return (c.codingPath, "expected \(kind(t)), found \(c.debugDescription.lowercased().contains("null") ? "null" : "another type")")
        case .valueNotFound(let t, let c): return (c.codingPath, "expected \(kind(t)), found null")
        case .keyNotFound(let k, let c): return (c.codingPath + [k], "required field is missing")
        case .dataCorrupted(let c): return (c.codingPath, "unreadable value")
        @unknown default: return ([], "unreadable")
        }
    }
}

extension JSONValue {
    /// The value at a coding path (object keys, array indices); nil when there is none.
    func value(at path: [any CodingKey]) -> JSONValue? {
        guard let first = path.first else { return self }
        let rest = Array(path.dropFirst())
        switch self {
        case .object(let o): return o[first.stringValue].flatMap { $0.value(at: rest) }
        case .array(let a):
            guard let i = first.intValue, a.indices.contains(i) else { return nil }
            return a[i].value(at: rest)
        default: return nil
        }
    }

    /// Replaces the value at a coding path (nothing happens where the path does not lead).
    mutating func set(_ v: JSONValue, at path: [any CodingKey]) {
        guard let first = path.first else {
            self = v
            return
        }
        let rest = Array(path.dropFirst())
        switch self {
        case .object(var o):
            guard var child = o[first.stringValue] else { return }
            child.set(v, at: rest)
            o[first.stringValue] = child
            self = .object(o)
        case .array(var a):
            guard let i = first.intValue, a.indices.contains(i) else { return }
            a[i].set(v, at: rest)
            self = .array(a)
        default: return
        }
    }
}

/// Collects the wire issues met while one part of a device (a circuit, the system node) is read, so they end
/// up on that part's state. Task-local: every `get` below `collecting` reports into it.
final class WireIssues: Sendable {
    @TaskLocal static var current: WireIssues?
    private let list = Mutex<[WireIssue]>([])
    /// Top-level fields of the part's answers that the definition does not have: kept for the node's
    /// `vendor` object, so what a real cloud sends beyond the definition is visible before heatbridge maps it.
    private let unknown = Mutex<[String: JSONValue]>([:])

    static func report(_ issue: WireIssue) { current?.list.withLock { $0.append(issue) } }

    /// Keeps the fields of `body` (an object) that `value`'s type has no property for; only while collecting.
    static func keepUnknownFields(of body: [UInt8], beside value: Any) {
        guard let sink = current, case .object(let o)? = try? JSONValue.parse(body) else { return }
        let labels = Set(Mirror(reflecting: value).children.compactMap(\.label))
        guard !labels.isEmpty else { return }
        let extra = o.filter { !labels.contains($0.key) }
        if !extra.isEmpty { sink.unknown.withLock { $0.merge(extra) { a, _ in a } } }
    }

    var unknownFields: [String: JSONValue] { unknown.withLock { $0 } }

    /// Runs `body` collecting its issues.
    static func collecting<R>(_ body: () async throws(CloudError) -> R) async throws(CloudError) -> (R, [WireIssue], [String: JSONValue]) {
        let sink = WireIssues()
        let r: Result<R, CloudError> = await $current.withValue(sink) {
            do throws(CloudError) { return .success(try await body()) } catch { return .failure(error) }
        }
        return (try r.get(), sink.list.withLock { $0 }, sink.unknownFields)
    }

    /// A part's `error`: the code, every issue in words, and the fields, for a front end or a drift report.
    static func errorJSON(_ issues: [WireIssue]) -> JSONValue {
        [
            "code": .string(ResultCode.badResponse.rawValue),
            "message": .string(issues.prefix(5).map(\.description).joined(separator: "; ") + (issues.count > 5 ? "; …" : "")),
            "fields": .array(issues.map { .string($0.field.isEmpty ? $0.request : "\($0.request) \($0.field)") }),
        ]
    }
}

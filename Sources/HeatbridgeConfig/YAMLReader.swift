import CYAML
import HeatbridgeCore

/// Reads YAML text into a `ConfigNode` tree with line and column marks, using libyaml's event parser.
/// Anchors and aliases are refused: an installer's config has no use for them and they hide mistakes.
public enum YAMLReader {
    /// Nesting of mappings and lists: a real config uses 5; a deeper one is a mistake or an attack, and the
    /// tree's recursive passes (and its deallocation) must not overflow the stack.
    public static let maxDepth = 32
    /// Values (scalars, mappings, lists) in one file: a config for hundreds of devices uses a few thousand.
    public static let maxNodes = 20_000

    /// Parses one YAML document. An empty document gives an empty mapping.
    public static func parse(_ text: String, file: String) -> Result<ConfigNode, ConfigDiagnostic> {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            return .failure(ConfigDiagnostic(file: file, mark: SourceMark(line: 1, column: 1), message: "cannot initialise the YAML parser"))
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buf in
            yaml_parser_set_input_string(&parser, buf.baseAddress, buf.count)
            return build(&parser, file: file)
        }
    }

    private enum Frame {
        case mapping(SourceMark, [(key: String, keyMark: SourceMark, value: ConfigNode)], pendingKey: (String, SourceMark)?)
        case sequence(SourceMark, [ConfigNode])
    }

    private static func mark(_ m: yaml_mark_t) -> SourceMark { SourceMark(line: Int(m.line) + 1, column: Int(m.column) + 1) }

    private static func build(_ parser: inout yaml_parser_t, file: String) -> Result<ConfigNode, ConfigDiagnostic> {
        var stack: [Frame] = []
        var root: ConfigNode?
        var event = yaml_event_t()
        var nodes = 0

        func fail(_ m: SourceMark, _ msg: String, hint: String? = nil) -> Result<ConfigNode, ConfigDiagnostic> {
            .failure(ConfigDiagnostic(file: file, mark: m, message: msg, hint: hint))
        }

        /// Adds a finished node to the parent frame (or makes it the root). The frame is taken off the stack
        /// and its array appended to while it has no other reference, so each append is O(1), not a copy.
        func add(_ node: ConfigNode) -> ConfigDiagnostic? {
            guard let top = stack.popLast() else {
                root = node
                return nil
            }
            switch consume top {
            case .sequence(let m, var items):
                items.append(node)
                stack.append(.sequence(m, items))
            case .mapping(let m, var entries, let pending):
                if let (k, km) = pending {
                    entries.append((k, km, node))
                    stack.append(.mapping(m, entries, pendingKey: nil))
                } else {
                    guard case .scalar(let k, let km, _) = node else {
                        stack.append(.mapping(m, entries, pendingKey: nil))
                        return ConfigDiagnostic(
                            file: file, mark: node.mark, message: "mapping keys must be plain words",
                            hint: "check the indentation above this line")
                    }
                    stack.append(.mapping(m, entries, pendingKey: (k, km)))
                }
            }
            return nil
        }

        /// Counts a new node and checks the bounds before it is built.
        func admit(_ m: SourceMark, opening: Bool) -> ConfigDiagnostic? {
            nodes += 1
            if nodes > maxNodes {
                return ConfigDiagnostic(
                    file: file, mark: m, message: "the config has more than \(maxNodes) values",
                    hint: "a heatbridge config is small; is this the right file?")
            }
            if opening && stack.count >= maxDepth {
                return ConfigDiagnostic(
                    file: file, mark: m, message: "the config nests deeper than \(maxDepth) levels",
                    hint: "check the indentation")
            }
            return nil
        }

        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else {
                let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                let context = parser.context.map { String(cString: $0) }
                let hint = context.map { "\($0); check indentation and ':' after keys" } ?? "check indentation and ':' after keys"
                return fail(mark(parser.problem_mark), problem, hint: hint)
            }
            defer { yaml_event_delete(&event) }
            let m = mark(event.start_mark)
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return .success(root ?? .mapping([], SourceMark(line: 1, column: 1)))
            case YAML_DOCUMENT_START_EVENT:
                if root != nil {
                    return fail(m, "only one YAML document is allowed", hint: "remove the second '---'")
                }
            case YAML_ALIAS_EVENT:
                return fail(m, "YAML aliases are not supported", hint: "write the value out")
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                if s.anchor != nil { return fail(m, "YAML anchors are not supported", hint: "write the value out") }
                if let d = admit(m, opening: false) { return .failure(d) }
                let value = String(decoding: UnsafeBufferPointer(start: s.value, count: Int(s.length)), as: UTF8.self)
                if let d = add(.scalar(value, m, plain: s.style == YAML_PLAIN_SCALAR_STYLE)) { return .failure(d) }
            case YAML_MAPPING_START_EVENT:
                if let d = admit(m, opening: true) { return .failure(d) }
                stack.append(.mapping(m, [], pendingKey: nil))
            case YAML_SEQUENCE_START_EVENT:
                if let d = admit(m, opening: true) { return .failure(d) }
                stack.append(.sequence(m, []))
            case YAML_MAPPING_END_EVENT:
                guard case .mapping(let sm, let entries, _)? = stack.popLast() else { return fail(m, "unbalanced mapping") }
                if let d = add(.mapping(entries, sm)) { return .failure(d) }
            case YAML_SEQUENCE_END_EVENT:
                guard case .sequence(let sm, let items)? = stack.popLast() else { return fail(m, "unbalanced list") }
                if let d = add(.sequence(items, sm)) { return .failure(d) }
            default:
                break
            }
        }
    }
}

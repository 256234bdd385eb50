import HeatbridgeCore

/// Which box a gateway belongs to, read from the relay's own scope map (`boxes.map`, one line per box:
/// `box-17 "bosch:101000017 hsl:64f1c0a2e9b3";`): one list for the relay and the receiver, so a box revoked at the
/// relay (`relay-ca revoke` removes its line) gets no more events either.
public struct ScopeMap: Sendable, Equatable {
    /// Bosch gateway id → box id.
    public private(set) var boxOf: [String: String] = [:]
    /// Lines that could not be read (line number and why), for the log.
    public private(set) var problems: [String] = []

    public init(boxOf: [String: String] = [:]) { self.boxOf = boxOf }

    /// Box ids as the relay's certificates name them: they become a topic level.
    static func isBoxId(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy {
                (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || $0 == 0x2d || $0 == 0x5f || $0 == 0x2e
            }
    }

    /// Reads the map's text. A gateway named by two boxes belongs to neither (a mistake to fix, not to guess).
    public static func parse(_ text: String) -> ScopeMap {
        var map = ScopeMap()
        var owners: [String: Set<String>] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmed(of: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard line.hasSuffix(";"), let space = line.firstIndex(of: " ") else {
                map.problems.append("line \(n + 1): not `BOX \"SCOPE\";`")
                continue
            }
            let box = String(line[..<space])
            var scope = line[line.index(after: space)...].dropLast().trimmed(of: " \t")
            if scope.hasPrefix("\""), scope.hasSuffix("\""), scope.count >= 2 { scope = String(scope.dropFirst().dropLast()) }
            guard isBoxId(box) else {
                map.problems.append("line \(n + 1): box id is not a topic level")
                continue
            }
            for entry in scope.split(separator: " ") where entry.hasPrefix("bosch:") {
                owners[String(entry.dropFirst(6)), default: []].insert(box)
            }
        }
        for (gw, boxes) in owners {
            if boxes.count == 1 {
                map.boxOf[gw] = boxes.first!
            } else {
                map.problems.append("gateway \(gw) is in the scope of \(boxes.count) boxes; events for it go to none")
            }
        }
        return map
    }
}

extension StringProtocol {
    func trimmed(of set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

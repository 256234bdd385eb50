/// The last commands and every result each one got, for the status page and `bridge/request/status`; and the
/// count of commands by how they ended, for `/metrics`. Kept in memory only: the store has the full history.
struct RecentCommands {
    struct Entry {
        var id: String
        /// `<device>/<node>/<capability>` (or `group/<group>/<capability>`).
        var target: String
        var results: [(status: String, code: String?, message: String?, at: EpochSeconds)]
    }

    /// How many commands the page shows: enough for the last few minutes of a home energy manager.
    static let keep = 20
    private(set) var entries: [Entry] = []
    /// Terminal results by `status` and `code` (`done` has none), since start.
    private(set) var ended: [String: [String: Int]] = [:]

    /// Takes one result as it is published; `base` is the bridge's base topic.
    mutating func record(commandId: String, topic: String, payload: JSONValue, base: String, at: EpochSeconds) {
        var target = topic.hasPrefix(base + "/") ? String(topic.dropFirst(base.count + 1)) : topic
        if target.hasSuffix("/result") { target.removeLast("/result".count) }
        let status = payload["status"]?.stringValue ?? "?"
        let code = payload["code"]?.stringValue
        let result = (status: status, code: code, message: payload["message"]?.stringValue.map { String($0.prefix(200)) }, at: at)
        if let i = entries.lastIndex(where: { $0.id == commandId && $0.target == target }) {
            // At most a handful of stages per command; a runaway one (progress) keeps its first and last few.
            if entries[i].results.count >= 12 { entries[i].results.remove(at: 6) }
            entries[i].results.append(result)
        } else {
            entries.append(Entry(id: commandId, target: target, results: [result]))
            if entries.count > Self.keep { entries.removeFirst(entries.count - Self.keep) }
        }
        if CommandStatus(rawValue: status)?.isTerminal == true { ended[status, default: [:]][code ?? "", default: 0] += 1 }
    }

    /// Newest first.
    var json: JSONValue {
        .array(
            entries.reversed().map { e in
                [
                    "id": .string(e.id), "target": .string(e.target),
                    "results": .array(
                        e.results.map { r in
                            [
                                "status": .string(r.status), "code": .string(r.code), "message": .string(r.message),
                                "at": .string(Timestamp.iso8601(r.at)),
                            ]
                        }),
                ]
            })
    }

    var endedJSON: JSONValue { .object(ended.mapValues { .object($0.mapValues { .int($0) }) }) }
}

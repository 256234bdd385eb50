/// Accepted commands that wait or run, per device: one runs at a time per device, the others wait in arrival
/// order behind it.
struct CommandQueue {
    private(set) var waiting: [String: [Command]] = [:]
    /// The command each device is executing right now.
    private(set) var running: [String: Command] = [:]
    /// Transient failures (5xx, timeouts) per command so far, for its backoff; forgotten when it ends or the
    /// daemon restarts (a restart starts the backoff over, not the command).
    var transientFailures: [String: Int] = [:]

    /// Commands waiting or running, for `outbox_depth`.
    var depth: Int { waiting.values.reduce(0) { $0 + $1.count } + running.count }
    var devicesWaiting: [String] { Array(waiting.keys) }

    func first(_ device: String) -> Command? { waiting[device]?.first }
    func isRunning(_ device: String) -> Bool { running[device] != nil }

    mutating func append(_ c: Command) { waiting[c.device, default: []].append(c) }

    /// Puts a command back at the head of its device's line (it is retried next).
    mutating func putBack(_ c: Command) { waiting[c.device, default: []].insert(c, at: 0) }

    mutating func dropFirst(_ device: String) { waiting[device]?.removeFirst() }

    /// Takes the device's next command off the line and marks it running.
    mutating func start(_ device: String) -> Command? {
        guard running[device] == nil, let c = waiting[device]?.first else { return nil }
        waiting[device]!.removeFirst()
        running[device] = c
        return c
    }

    mutating func finished(_ device: String) { running[device] = nil }

    /// Marks every waiting command of `device` that has not said so yet as queued; returns those.
    mutating func markQueued(_ device: String) -> [Command] {
        var marked: [Command] = []
        for (i, c) in (waiting[device] ?? []).enumerated() where c.status != .queued {
            var q = c
            q.status = .queued
            waiting[device]![i] = q
            marked.append(q)
        }
        return marked
    }

    /// Takes out the waiting commands that `newer` replaces (same device, node and capability).
    mutating func supersede(by newer: Command) -> [Command] {
        guard var line = waiting[newer.device] else { return [] }
        let old = line.filter { $0.node == newer.node && $0.capability == newer.capability && $0.id != newer.id }
        guard !old.isEmpty else { return [] }
        line.removeAll { c in old.contains { $0.id == c.id } }
        waiting[newer.device] = line
        return old
    }

    /// The value a target will have just before command `id` runs: `polled`, overlaid with the parameters of
    /// commands for the same target still running or waiting ahead of it (e.g. a restore not read back yet).
    func pendingValue(_ device: String, _ node: String, _ capability: String, over polled: JSONValue, before id: String) -> JSONValue {
        var value = polled.objectValue ?? [:]
        var ahead: [Command] = running[device].map { $0.id == id ? [] : [$0] } ?? []
        for c in waiting[device] ?? [] {
            if c.id == id { break }
            ahead.append(c)
        }
        for c in ahead where c.node == node && c.capability == capability {
            for (k, v) in c.params.objectValue ?? [:] where value[k] != nil { value[k] = v }
        }
        return .object(value)
    }
}

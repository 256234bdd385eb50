import Foundation
import HeatbridgeCore
import XCTest

extension FleetTests {
    /// Twenty gateways on one box for three minutes (ten with `HEATBRIDGE_SOAK_LONG=1`) under the simulator's
    /// enforcement of the documented Bosch limits: the client-side budget must keep every request inside them (zero
    /// 429 answers, counted by the simulator) while a stream of commands, including bursts on one circuit, still goes
    /// out ahead of the polls. It runs beside the fleet scenarios (`SideBySideTests`).
    func twentyGatewaysOnOneBoxWithoutA429() throws {
        // Three minutes hold every bucket at its limit for dozens of refills, which is what proves zero 429s;
        // HEATBRIDGE_SOAK_LONG=1 runs the full ten minutes, HEATBRIDGE_SOAK_S any length.
        let env = ProcessInfo.processInfo.environment
        let duration = env["HEATBRIDGE_SOAK_S"].flatMap(Double.init) ?? (env["HEATBRIDGE_SOAK_LONG"] == "1" ? 600 : 180)
        let ids = (101...120).map { "101000\($0)" }
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("soak-\(getpid()).yaml")
        try ("bosch:\n  rate_limit: true\n  gateways:\n" + ids.map { "    - {id: \"\($0)\", brand: bosch}\n" }.joined())
            .write(to: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scenario) }
        let h = try Harness(pollIntervalS: 1, simArgs: ["--scenario", scenario.path])
        defer { h.stopAll() }
        // Poll as fast as the config allows and never slow down: the budget, not the interval, sets the pace.
        try h.writeConfig(pollIntervalS: 1, timeoutS: 5, logLevel: "info", extraAccounts: "\n    poll_max_interval_s: 1")
        try h.startDaemon()
        let c: TestMQTTClient = h.client
        for id in ids { c.waitJSON("heatbridge/bosch-\(id)/dhw1/state", timeout: 60) }
        try h.admin("DELETE", "/admin/requests")

        var sent: [String: (topic: String, at: Date)] = [:]
        var finished: [String: (status: String, code: String?, after: Double)] = [:]
        var n = 0
        func send(_ target: String, _ body: String) {
            n += 1
            let id = "s\(n)"
            let topic = "heatbridge/bosch-\(target)"
            c.publish(topic + "/set", #"{"id":"\#(id)",\#(body)}"#)
            sent[id] = (topic + "/result", Date())
        }
        func collect() {
            for (id, s) in sent where finished[id] == nil {
                for m in c.all(s.topic).reversed() {
                    guard let j = try? JSONValue.parse(m.payload), j["id"]?.stringValue == id,
                        let st = j["status"]?.stringValue, ["done", "failed", "rejected", "expired"].contains(st)
                    else { continue }
                    finished[id] = (st, j["code"]?.stringValue, Date().timeIntervalSince(s.at))
                    break
                }
            }
        }
        // The load's timing is the input (a command every 3 s, bursts 0.3 s apart), so the loop paces itself with
        // this one sleep; the results are collected as they come meanwhile.
        func pace(_ seconds: Double) {
            let until = Date().addingTimeInterval(seconds)
            repeat {
                Thread.sleep(forTimeInterval: min(0.1, max(until.timeIntervalSinceNow, 0)))
                collect()
            } while Date() < until
        }
        let start = Date()
        var tick = 0
        while Date().timeIntervalSince(start) < duration {
            let gw = ids[tick % ids.count]
            switch tick % 4 {
            case 0: send("\(gw)/dhw1/charge", tick % 8 == 0 ? #""action":"start","duration_min":30"# : #""action":"stop""#)
            case 1: send("\(gw)/hc1/setpoint", #""setpoint":\#(tick % 3 == 0 ? "20.5" : "21")"#)
            case 2: send("\(gw)/hc1/mode", #""mode":"\#(tick % 8 == 2 ? "manual" : "auto")""#)
            default:
                // A burst on one circuit: the budget spaces the PATCHes 2 s apart instead of drawing a 429.
                // Five PATCHes of one path within ~1.5 s would exceed the cloud's burst of 3.
                if tick % 12 == 3 {
                    for k in 0..<5 {
                        send("\(gw)/dhw1/charge", k % 2 == 0 ? #""action":"start","duration_min":\#(15 + k)"# : #""action":"stop""#)
                        pace(0.3)
                    }
                }
            }
            tick += 1
            pace(3)
        }
        let drainUntil = Date().addingTimeInterval(60)
        while finished.count < sent.count && Date() < drainUntil { pace(0.2) }  // the last results, bounded

        let stats = try h.admin("GET", "/admin/stats")
        let total = (stats.objectValue ?? [:]).filter { $0.key.hasPrefix("bosch ") }.values.compactMap(\.intValue).reduce(0, +)
        let limited = stats["bosch 429"]?.intValue ?? 0
        let latencies = finished.values.map(\.after).sorted()
        func pct(_ p: Double) -> Double { latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        // The poll cycle from the simulator's log: the time between two reads of the gateway list.
        let listReads = (try h.admin("GET", "/admin/requests").arrayValue ?? [])
            .filter { $0["path"]?.stringValue == "/hvacs" }.compactMap { $0["at"]?.doubleValue }
        let cycles = zip(listReads.dropFirst(), listReads).map { $0 - $1 }.sorted()
        let cycle = cycles.isEmpty ? .nan : cycles[cycles.count / 2]
        print(
            "soak: \(Int(duration)) s, \(ids.count) gateways, \(total) Bosch requests, \(limited) answered 429; "
                + "\(sent.count) commands, latency p50 \(pct(0.5)) s, p95 \(pct(0.95)) s, max \(latencies.last ?? .nan) s; poll cycle p50 \(cycle) s")

        XCTAssertEqual(limited, 0, "the simulator answered 429 \(limited) times")
        XCTAssertEqual(stats["bosch 401"]?.intValue ?? 0, 0)
        // The load was real: the budget, not idleness, kept the daemon inside the limits.
        XCTAssertGreaterThan(total, Int(duration) * 20, "too few requests for 20 gateways polled every second")
        XCTAssertEqual(finished.count, sent.count, "commands without a final result: \(sent.keys.filter { finished[$0] == nil }.sorted())")
        // A burst's middle command may be superseded by the newer one while it waits: that is its staged end.
        let notDone = finished.filter { $0.value.status != "done" && $0.value.code != "SUPERSEDED" }
        XCTAssertTrue(notDone.isEmpty, "commands not done: \(notDone)")
        // Priority: a typical command does not wait for the poll cycle, which the budget stretches.
        XCTAssertLessThan(pct(0.5), cycle, "commands wait like polls: p50 \(pct(0.5)) s vs poll cycle \(cycle) s")
        XCTAssertNotNil(h.daemon?.isRunning == true ? true : nil, "the daemon died")
    }
}

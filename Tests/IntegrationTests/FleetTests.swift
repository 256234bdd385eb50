import Foundation
import HeatbridgeCore
import XCTest

/// A partner's fleet: many boxes (daemon processes), each with its own gateway, all on one Bosch partner key,
/// against one simulator that enforces the documented company-wide and per-gateway limits.
final class FleetTests: XCTestCase {
    struct Box {
        var k: Int
        var gateway: String
        var process: Process
        var base: String { "box\(k)" }
        var device: String { "bosch-\(gateway)" }
    }

    /// Starts `count` boxes on `h`'s broker and simulator, each publishing under its own base topic.
    func startBoxes(_ h: Harness, gateways: [String], pollIntervalS: Double, extra: String = "") throws -> [Box] {
        let key = h.dir.appendingPathComponent("bosch.key")
        try (Harness.apiKey + "\n").write(to: key, atomically: true, encoding: .utf8)
        var boxes: [Box] = []
        for (k, gw) in gateways.enumerated() {
            let config = h.dir.appendingPathComponent("box\(k).yaml")
            try """
                mqtt:
                  url: mqtt://127.0.0.1:\(h.brokerPort)
                  base_topic: box\(k)
                  client_id: box\(k)
                store:
                  path: \(h.dir.appendingPathComponent("box\(k).db").path)
                fleet:
                  boxes: \(gateways.count)
                accounts:
                  - name: bosch
                    vendor: bosch
                    base_url: http://127.0.0.1:\(h.simPort)/bosch
                    api_key_file: \(key.path)
                    user_id: box-\(k)
                    devices: ["\(gw)"]
                    poll_interval_s: \(pollIntervalS)
                    poll_max_interval_s: \(pollIntervalS)
                    timeout_s: 10
                log:
                  level: \(ProcessInfo.processInfo.environment["HEATBRIDGE_FLEET_DEBUG"] == "1" ? "debug" : "notice")
                """.appending(extra).write(to: config, atomically: true, encoding: .utf8)
            let p = try h.launch(Harness.binary("heatbridge"), ["run", "--config", config.path], log: "box\(k).log")
            boxes.append(Box(k: k, gateway: gw, process: p))
        }
        return boxes
    }

    /// Resident memory (KiB) and CPU time (s) of a process, from /proc.
    func usage(_ pid: Int32) -> (rssKiB: Int, cpuS: Double) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = fields.count > 12 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
        return (rss, ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// 100 boxes (HEATBRIDGE_FLEET_BOXES) for 90 s at a 20 s poll (HEATBRIDGE_FLEET_LONG=1: 10 minutes at the
    /// default 60 s): no 429, every box ready, each gateway read within its interval, commands done, and no
    /// box publishing another customer's gateway.
    func testAHundredBoxesOnOnePartnerKeyWithoutA429() throws {
        let env = ProcessInfo.processInfo.environment
        let long = env["HEATBRIDGE_FLEET_LONG"] == "1"
        let count = env["HEATBRIDGE_FLEET_BOXES"].flatMap(Int.init) ?? 100
        let poll: Double = long ? 60 : 20
        let duration: Double = env["HEATBRIDGE_FLEET_S"].flatMap(Double.init) ?? (long ? 600 : 90)
        let gateways = (0..<count).map { String(format: "1020%05d", $0) }
        let scenario = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-\(getpid()).yaml")
        try ("bosch:\n  rate_limit: true\n  gateways:\n" + gateways.map { "    - {id: \"\($0)\", brand: bosch}\n" }.joined())
            .write(to: scenario, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: scenario) }
        let h = try Harness(simArgs: ["--scenario", scenario.path])
        defer { h.stopAll() }
        let c = try TestMQTTClient(port: h.brokerPort)
        defer { c.close() }
        try c.waitConnected()
        c.subscribe("#")
        let boxes = try startBoxes(h, gateways: gateways, pollIntervalS: poll)
        defer { for b in boxes where b.process.isRunning { kill(b.process.processIdentifier, SIGKILL); b.process.waitUntilExit() } }
        let started = Date()
        for b in boxes {
            c.waitJSON("\(b.base)/bridge/account/bosch", timeout: 120) { $0["state"] == "ready" }
            c.waitJSON("\(b.base)/\(b.device)/dhw1/state", timeout: 120)
        }
        let readyAfter = Date().timeIntervalSince(started)

        // The window: the status reads of every gateway (collected before the simulator's log of 10,000
        // requests wraps), and one charge on every tenth box.
        var statusReads: [String: Set<Double>] = [:]
        func collect() throws {
            for r in try h.admin("GET", "/admin/requests").arrayValue ?? [] {
                guard let path = r["path"]?.stringValue, path.hasSuffix("/status"), let at = r["at"]?.doubleValue else { continue }
                statusReads[String(path.dropFirst("/hvacs/".count).prefix(9)), default: []].insert(at)
            }
        }
        let windowStart = Date().timeIntervalSince1970
        let chargeEvery = max(1, count / 10)
        var sent: [(Box, String)] = []
        while Date().timeIntervalSince1970 - windowStart < duration {
            let i = sent.count * chargeEvery
            if i < count {
                let b = boxes[i]
                let id = "fleet-\(i)"
                c.publish("\(b.base)/\(b.device)/dhw1/charge/set", #"{"id":"\#(id)","action":"start","duration_min":30}"#)
                sent.append((b, id))
            }
            Thread.sleep(forTimeInterval: min(10, duration / 10))  // the window's pacing: the test's input
            try collect()
        }
        try collect()
        let windowEnd = Date().timeIntervalSince1970
        for (b, id) in sent {
            XCTAssertNotNil(c.waitResult("\(b.base)/\(b.device)/dhw1/charge/result", id: id, status: "done", timeout: 60), "box \(b.k)")
        }

        let stats = try h.admin("GET", "/admin/stats")
        let total = (stats.objectValue ?? [:]).filter { $0.key.hasPrefix("bosch ") }.values.compactMap(\.intValue).reduce(0, +)
        let limited = stats["bosch 429"]?.intValue ?? 0  // the simulator counts only the statuses it answered
        XCTAssertGreaterThan(total, count * 10, "the boxes were not polling")
        let limitedPaths = Set(((try h.admin("GET", "/admin/requests").arrayValue) ?? []).filter { $0["status"] == 429 }.compactMap { $0["path"]?.stringValue })
        if env["HEATBRIDGE_FLEET_DEBUG"] == "1" {
            for r in (try h.admin("GET", "/admin/requests").arrayValue) ?? [] where ["/hvacs", "/health"].contains(r["path"]?.stringValue ?? "") {
                print("DBG", r["path"]!, r["status"]!, r["at"]!)
            }
            print("DBGDIR", h.dir.path)
            let all = (try h.admin("GET", "/admin/requests").arrayValue) ?? []
            var perSecond: [Int: Int] = [:]
            for r in all { perSecond[Int(r["at"]?.doubleValue ?? 0), default: 0] += 1 }
            print("DBGRATE", perSecond.sorted { $0.key < $1.key }.map { "\($0.key % 1000):\($0.value)" })
        }
        XCTAssertEqual(limited, 0, "answers 429 out of \(total): \(limitedPaths.sorted().prefix(8))")
        var late: [String] = []
        for b in boxes {
            XCTAssertEqual(c.all("\(b.base)/bridge/account/bosch").last.flatMap { try? JSONValue.parse($0.payload) }?["state"], "ready", "box \(b.k)")
            // Each gateway is read at least once per poll interval (plus the time a poll takes).
            let reads = (statusReads[b.gateway] ?? []).filter { $0 >= windowStart }.sorted()
            let gaps = zip(reads.dropFirst(), reads).map { $0 - $1 } + [(reads.first ?? windowEnd) - windowStart, windowEnd - (reads.last ?? windowStart)]
            if (gaps.max() ?? .infinity) > poll * 1.5 + 5 { late.append("\(b.gateway): \(gaps.map { Int($0) })") }
            // A box publishes its own gateway only.
            let foreign = c.recorder.messages.withLock { $0 }.filter { $0.topic.hasPrefix("\(b.base)/bosch-") && !$0.topic.hasPrefix("\(b.base)/\(b.device)/") && $0.topic != "\(b.base)/\(b.device)" }
            XCTAssertTrue(foreign.isEmpty, "box \(b.k) published \(foreign.first?.topic ?? "")")
        }
        XCTAssertTrue(late.isEmpty, "gateways not read within \(poll) s: \(late.prefix(5))")
        let companyWide = ((try h.admin("GET", "/admin/requests").arrayValue) ?? []).filter { ["/hvacs", "/health"].contains($0["path"]?.stringValue ?? "") }.count

        var rss = 0, cpu = 0.0
        for b in boxes {
            let u = usage(b.process.processIdentifier)
            rss += u.rssKiB
            cpu += u.cpuS
        }
        let elapsedH = Date().timeIntervalSince(started) / 3600
        print(String(format: "fleet: %d boxes, poll %.0f s, %.0f s window; all ready after %.1f s; %d Bosch requests (%.0f per device per hour), %d answered 429; company-wide reads in the last window: %d; RSS %.1f MiB summed (%.1f per box), CPU %.1f s summed (%.2f %% of one core per box)",
                     count, poll, duration, readyAfter, total, Double(total) / Double(count) / elapsedH, limited, companyWide,
                     Double(rss) / 1024, Double(rss) / 1024 / Double(count), cpu, cpu / Double(count) / (elapsedH * 3600) * 100))
    }
}

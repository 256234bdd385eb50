import HeatbridgeCore
import HeatbridgeSimulator
import HeatbridgeTesting
import Synchronization
import VendorBosch
import XCTest

/// Counts the requests a transport passes on, by path.
final class CountingTransport: HTTPTransport {
    let inner: any HTTPTransport
    let counts = Mutex<[String: Int]>([:])
    init(_ inner: any HTTPTransport) { self.inner = inner }
    func send(_ request: HTTPRequest) async throws(HTTPTransportError) -> HTTPResponse {
        let path = request.url.replacingOccurrences(of: "http://sim.test/bosch", with: "")
        counts.withLock { $0[path, default: 0] += 1 }
        return try await inner.send(request)
    }
    func count(_ path: String) -> Int { counts.withLock { $0[path] ?? 0 } }
    func count(prefix: String) -> Int { counts.withLock { $0.filter { $0.key.hasPrefix(prefix) }.values.reduce(0, +) } }
    func reset() { counts.withLock { $0 = [:] } }
}

/// A box of a fleet: its own gateways only, the company-wide paths at start and then about hourly.
final class BoschFleetTests: XCTestCase {
    /// What the bridge does: the background reads when they are due, then a poll.
    func poll(_ a: BoschAdapter, _ clock: ManualClock) async throws -> [DeviceSnapshot] {
        if let at = await a.nextBackgroundRead(), at <= clock.now() { await a.backgroundRead() }
        return try await a.fetchDevices()
    }

    func setUp(boxes: Int?, allowList: [String]) async -> (BoschAdapter, CountingTransport, ManualClock, Simulator) {
        let sim = Simulator(bosch: .defaultScenario())
        _ = await sim.handle(method: "POST", path: "/admin/rate-limit", headers: [:], body: Array(#"{"enabled":false}"#.utf8))
        let clock = ManualClock()
        let transport = CountingTransport(InProcessTransport(sim))
        // No jitter in the test: the random source sits in the middle of its range.
        let reads = CompanyWideReads(clock: clock, boxes: boxes, perSecond: 2, random: { 0.5 })
        let adapter = BoschAdapter(
            transport: transport, baseURL: "http://sim.test/bosch", apiKey: BoschCloud.defaultScenario().apiKey,
            userId: "u1", timeout: 2, allowList: allowList, clock: clock, companyWide: reads)
        return (adapter, transport, clock, sim)
    }

    func testOwnGatewaysEveryPollTheCompanyWidePathsHourly() async throws {
        let (a, t, clock, _) = await setUp(boxes: 1, allowList: ["101000001", "101000077"])
        let first = try await poll(a, clock)
        XCTAssertEqual(first.map(\.id), ["bosch-101000001"], "a gateway the list does not name is left out")
        XCTAssertEqual(first.first?.attributes["brand"], "buderus", "the list names the brand")
        XCTAssertEqual(t.count("/health"), 1)
        XCTAssertEqual(t.count("/hvacs"), 1)
        XCTAssertEqual(t.count(prefix: "/hvacs/101000002"), 0, "another customer's gateway was read")
        XCTAssertEqual(t.count(prefix: "/hvacs/101000077"), 0)
        XCTAssertGreaterThan(t.count("/hvacs/101000001/status"), 0)

        for _ in 0..<5 {
            await clock.advance(by: 60)
            let again = try await poll(a, clock)
            XCTAssertEqual(again.first?.attributes["brand"], "buderus", "the kept list still names the brand")
        }
        XCTAssertEqual(t.count("/health"), 1, "asked again within the hour")
        XCTAssertEqual(t.count("/hvacs"), 1, "asked again within the hour")
        XCTAssertEqual(t.count("/hvacs/101000001/status"), 6, "the own gateway is read on every poll")
        await clock.advance(by: 3600)
        _ = try await poll(a, clock)
        XCTAssertEqual(t.count("/hvacs"), 2, "the hourly read")
        XCTAssertEqual(t.count("/health"), 2)
    }

    func testARevokedGatewayIsEvidenceAndTheListIsAskedAgainSoon() async throws {
        let (a, t, clock, sim) = await setUp(boxes: 1, allowList: ["101000001", "101000002"])
        let before = try await poll(a, clock)
        XCTAssertEqual(before.count, 2)
        _ = await sim.handle(
            method: "PATCH", path: "/bosch/contracts/101000002", headers: ["x-api-key": BoschCloud.defaultScenario().apiKey],
            body: Array(#"{"action":"REVOKE"}"#.utf8))
        await clock.advance(by: 60)
        let revoked = try await poll(a, clock)
        XCTAssertEqual(revoked.first { $0.id == "bosch-101000002" }?.error?.status, 403, "the revoked gateway shows its 403")
        XCTAssertEqual(t.count("/hvacs"), 1)
        await clock.advance(by: 60)
        let later = try await poll(a, clock)
        XCTAssertEqual(later.map(\.id), ["bosch-101000001"], "the list no longer names it")
        XCTAssertEqual(t.count("/hvacs"), 2, "the 403 was evidence: the list is asked again after the least gap, not in an hour")
        let statusReads = t.count("/hvacs/101000002/status")
        await clock.advance(by: 60)
        _ = try await poll(a, clock)
        XCTAssertEqual(t.count("/hvacs/101000002/status"), statusReads, "a gateway the list no longer names is not asked")
        XCTAssertEqual(t.count("/hvacs"), 2, "evidence asks once, not on every poll")
    }

    func testAFleetSpreadsItsFirstReadAndTakesItsShare() async throws {
        // 2,000 boxes on 2 requests/s: each box's share is one read of a path per 1,000 s.
        let (a, t, clock, _) = await setUp(boxes: 2000, allowList: ["101000001"])
        let first = try await poll(a, clock)
        XCTAssertEqual(first.map(\.id), ["bosch-101000001"], "read by id before the list came")
        XCTAssertEqual(t.count("/hvacs"), 0, "the first read is spread over the start")
        XCTAssertEqual(t.count("/health"), 0)
        await clock.advance(by: 1799)  // the start spread is four shares, at most the interval (3,600 s); the test's random draw is its middle
        _ = try await poll(a, clock)
        XCTAssertEqual(t.count("/hvacs"), 0)
        await clock.advance(by: 1)
        _ = try await poll(a, clock)
        XCTAssertEqual(t.count("/hvacs"), 1)
        let reads = CompanyWideReads(clock: clock, boxes: 20_000, perSecond: 2)
        let share = await reads.shareS
        let interval = await reads.intervalS
        XCTAssertEqual(interval, 20_000, "20,000 boxes read each path every 20,000 s: 1 request/s for the partner")
        XCTAssertEqual(share, 10_000)
    }

    /// No `fleet:` in the config: the fleet's size is unknown, so the first reads after a start are spread over a
    /// minute (boxes restarted together do not ask in one second), and a 429 backs off, doubling, at random.
    func testWithoutAFleetSizeTheFirstReadIsSpreadAndA429BacksOff() async throws {
        let (a, t, clock, sim) = await setUp(boxes: nil, allowList: ["101000001"])
        _ = try await poll(a, clock)
        XCTAssertEqual(t.count("/hvacs"), 0, "asked in the start's first second")
        XCTAssertGreaterThan(t.count("/hvacs/101000001/status"), 0, "the own gateway is read meanwhile")
        await clock.advance(by: 30)  // the spread is 60 s; the test's random draw is its middle
        _ = await sim.handle(
            method: "POST", path: "/admin/faults", headers: [:],
            body: Array(#"{"vendor":"bosch","path":"/hvacs","status":429,"retry_after":1,"count":3}"#.utf8))
        _ = try await poll(a, clock)
        XCTAssertEqual(t.count("/hvacs"), 1)
        // Failed: again after 60 s × (0.5 + 0.5 × 0.5) = 45 s, then 90 s, then 180 s.
        var times: [Int] = []
        for s in 1...400 {
            await clock.advance(by: 1)
            let before = t.count("/hvacs")
            _ = try await poll(a, clock)
            if t.count("/hvacs") > before { times.append(s) }
            if times.count == 3 { break }
        }
        XCTAssertEqual(times, [45, 45 + 90, 45 + 90 + 180], "doubling waits")
        let answer = try await poll(a, clock)
        XCTAssertEqual(answer.first?.attributes["brand"], "buderus", "the fourth read got the list")
    }
}

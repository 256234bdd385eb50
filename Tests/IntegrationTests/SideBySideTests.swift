import Foundation
import HeatbridgeCore
import XCTest

/// The tests whose subject is a stretch of real time: a fleet's poll windows, the 20-gateway soak, a broker, a
/// disk or a store away for a while. Each mostly waits, and each builds its own simulator, broker and store, so
/// they run side by side: each fleet scenario on a thread of its own (they are the long ones), the outage
/// scenarios one after another on one more thread. One after another they spent ~14½ minutes of wall time (the
/// fleet 511 s, the soak 183 s, the outages and the relay 169 s in the last CI run before this); side by side the
/// suite waits for the longest, the fleet with push (~270 s). Every window and every assertion is the one they
/// had alone.
///
/// A scenario is a method of its own test class (with that class's helpers) without the `test` prefix, so XCTest
/// does not run it a second time; its failures are recorded here, named by its lane.
/// `HEATBRIDGE_WINDOWS_ONLY` (comma-separated scenario names) runs some of them.
final class SideBySideTests: XCTestCase {
    /// Failures come from several threads at once; XCTest records them on this test case, one at a time.
    private let failures = NSLock()

    override func recordFailure(withDescription description: String, inFile filePath: String, atLine lineNumber: Int, expected: Bool) {
        let scenario = Thread.current.name.map { "[\($0)] " } ?? ""
        failures.withLock {
            super.recordFailure(withDescription: scenario + description, inFile: filePath, atLine: lineNumber, expected: expected)
        }
    }

    /// A fresh instance of a test class to run one of its scenarios on (its helpers, its fixtures).
    private func on<T: XCTestCase>(_ type: T.Type) -> T { T(name: "\(type).scenario", testClosure: { _ in }) }

    /// A scenario of a test class whose fixture is built in `setUpWithError` and torn down in `tearDown`.
    private func withFixture<T: XCTestCase>(_ test: T, _ scenario: @escaping (T) -> () throws -> Void) -> () throws -> Void {
        {
            try test.setUpWithError()
            defer { test.tearDown() }
            try scenario(test)()
        }
    }

    func testRealTimeWindowsSideBySide() throws {
        let fleet = on(FleetTests.self)
        let lanes: [[(String, () throws -> Void)]] = [
            [("push", fleet.hundredBoxesWithPushLivePollLessAndGetNo429)],
            [("soak", fleet.twentyGatewaysOnOneBoxWithoutA429)],
            [("hundred", fleet.hundredBoxesOnOnePartnerKeyWithoutA429)],
            [("central", fleet.boxesBehindACentralBrokerThroughTheShippedBridgeConfig)],
            [("start", fleet.fortyBoxesStartedTogetherWithoutAFleetSettingGetNo429)],
            [
                ("broker-away", on(OutboxTests.self).brokerAwayThirtySecondsLosesNoResult),
                ("ready-without-broker", on(SystemdTests.self).readyWithoutBrokerAfterABoundedWait),
                ("full-disk", on(HostileInputTests.self).fullDiskNeverRunsACommandTwice),
                ("end-not-stored", on(NeverTwiceTests.self).doneCommandWhoseEndWasNotStoredIsNeverSentAgainNorUndoesANewerOne),
                ("store-read-only", on(NeverTwiceTests.self).storeTurningReadOnlyWhileRunningIsNotReadyUntilItWritesAgain),
                ("relay-scope", on(RelayTests.self).boxThroughTheRelayHoldsNoKeyAndReachesOnlyItsOwnGateway),
                ("receiver-kill", withFixture(on(PushTests.self)) { $0.acceptedEventsSurviveAReceiverKillAndACentralBrokerOutage }),
                ("energy", on(EnergyTests.self).poderoAndBoschMetersTheHistoryRequestAndTheCLIAgree),
                ("kill-loop", on(OutboxTests.self).killNineLoopLosesAndDuplicatesNothing),
            ],
        ]
        let only = ProcessInfo.processInfo.environment["HEATBRIDGE_WINDOWS_ONLY"].map { Set($0.split(separator: ",").map(String.init)) }
        let group = DispatchGroup()
        let finished = NSLock()
        nonisolated(unsafe) var took: [String: Double] = [:]  // under `finished`
        let started = Date()
        for lane in lanes {
            // The scenarios belong to test cases this one outlives: it waits below until every lane is done.
            nonisolated(unsafe) let scenarios = lane.filter { only?.contains($0.0) ?? true }
            guard !scenarios.isEmpty else { continue }
            group.enter()
            let thread = Thread {
                for (name, run) in scenarios {
                    Thread.current.name = name
                    do { try run() } catch { XCTFail("\(error)") }
                    finished.withLock { took[name] = Date().timeIntervalSince(started) }
                }
                group.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        let times = finished.withLock { took }.sorted { $0.value < $1.value }.map { "\($0.key) \(Int($0.value)) s" }
        print("real-time windows side by side, each done after: " + times.joined(separator: ", "))
        XCTAssertEqual(took.count, lanes.joined().filter { only?.contains($0.0) ?? true }.count, "a scenario did not run")
    }
}

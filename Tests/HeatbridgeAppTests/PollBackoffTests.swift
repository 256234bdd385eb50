import Foundation
import HeatbridgeCore
import XCTest

/// A quiet account polls less: in process (`InProcessBox`), moved from `BoschSystemTests` with every assertion.
/// The spacing of the polls is read from the simulator's log, which runs on the box's clock.
final class PollBackoffTests: XCTestCase {
    func testAnUnchangedGatewayIsNotRepublishedAndItsAccountBacksOff() async throws {
        let box = try InProcessBox(pollIntervalS: 1)
        try await box.admin("POST", "/admin/rate-limit", #"{"enabled":false}"#)
        box.start()
        let sys = "heatbridge/bosch-101000001/system/state"
        await box.waitJSON(sys) { $0["source"] == "cloud" && $0["clock_offset_s"] != .null }
        try await box.waitForRequests("/hvacs/101000001/status", count: 3)  // past the first polls
        let published = box.all(sys).count
        // Six more polls, waited for as events; then their spacing (by the simulator's clock) says whether the
        // account backed off: at a fixed 1 s they would all be 1 s apart.
        try await box.waitForRequests("/hvacs/101000001/status", count: 6, timeout: 40)
        await box.settle()
        let times = (try await box.admin("GET", "/admin/requests").arrayValue ?? [])
            .filter { $0["path"]?.stringValue == "/hvacs/101000001/status" }.compactMap { $0["at"]?.doubleValue }.sorted()
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        XCTAssertGreaterThanOrEqual(gaps.count, 8, "the account stopped polling: the window proves nothing")
        XCTAssertGreaterThanOrEqual(gaps.last ?? 0, 1.8, "a quiet account kept polling at the base interval: \(gaps)")
        XCTAssertEqual(box.all(sys).count, published, "the unchanged system state was re-published")
        XCTAssertEqual(box.json(sys).last?["clock_offset_s"]?.doubleValue ?? 99, 0, accuracy: 1)
        await box.stopAll()
    }
}

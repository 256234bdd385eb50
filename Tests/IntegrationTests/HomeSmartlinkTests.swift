import Foundation
import HeatbridgeCore
import XCTest

/// The HomeSmartlink installer commands against the simulator over HTTP. The account end to end (rooms,
/// derogations, groups, diagnosis) runs in process (`HeatbridgeAppTests/HomeSmartlinkBoxTests`).
final class HomeSmartlinkTests: XCTestCase {
    let dev = "heatbridge/hsl-64f1c0a2e9b3"

    func harness(secret: String = "hsl-demo-secret", poll: Double = 1, reportTimeoutS: Double = 10) throws -> Harness {
        let h = try Harness(pollIntervalS: 30)
        try h.writeConfig(
            pollIntervalS: 30, timeoutS: 1.5,
            extraAccounts: try h.hslAccount(secret: secret, pollIntervalS: poll, reportTimeoutS: reportTimeoutS))
        return h
    }

    func hslRequests(_ h: Harness, path: String) throws -> [JSONValue] {
        (try h.admin("GET", "/admin/requests").arrayValue ?? []).filter {
            $0["vendor"]?.stringValue == "homesmartlink" && $0["path"]?.stringValue == path
        }
    }

    func testInstallerCommandsFindHomesUsersAndDiagnose() throws {
        let h = try harness()
        defer { h.stopAll() }
        let bin = Harness.binary("heatbridge")
        let homes = try runProcess(bin, ["homesmartlink", "homes", "--config", h.configPath, "--email", "owner@example.invalid"])
        XCTAssertEqual(homes.status, 0, homes.output)
        XCTAssertTrue(homes.output.contains("home 64f1c0a2e9b3"), homes.output)
        XCTAssertTrue(homes.output.contains("room-1  Living room  2 device(s)"), homes.output)
        let none = try runProcess(bin, ["homesmartlink", "homes", "--config", h.configPath, "--email", "nobody@example.invalid"])
        XCTAssertTrue(none.output.contains("no home is linked"), none.output)
        let bad = try runProcess(bin, ["homesmartlink", "homes", "--config", h.configPath, "--email", "not-an-address"])
        XCTAssertEqual(bad.status, 2, bad.output)

        // Seven users read three at a time: every page is fetched.
        let users = try runProcess(bin, ["homesmartlink", "users", "--config", h.configPath, "--page-size", "3"])
        XCTAssertEqual(users.status, 0, users.output)
        XCTAssertTrue(users.output.contains("7 user(s)"), users.output)
        XCTAssertEqual(try hslRequests(h, path: "/partners/1/users?page=3&size=3").count, 1)

        try h.admin("POST", "/admin/homesmartlink", #"{"diagnosis_delay_s":1}"#)
        let diag = try runProcess(bin, ["homesmartlink", "diagnose", "--config", h.configPath, "hsl-64f1c0a2e9b3", "--interval-s", "0.5"])
        XCTAssertEqual(diag.status, 0, diag.output)
        XCTAssertTrue(diag.output.contains("diagnosis requested for home 64f1c0a2e9b3"), diag.output)
        XCTAssertTrue(diag.output.contains("\"deviceStatus\""), diag.output)
    }

    /// A duration near `minutes` whose window (on the 5-minute grid, from now in this machine's local time, the
    /// daemon's) does not end within ten minutes of midnight, and the derogation calls it takes: two when it runs
    /// past midnight. Computed here with Foundation's calendar, not the adapter's code.
    static func window(about minutes: Int) -> (minutes: Int, calls: Int) {
        let cal = Calendar.current
        let now = Date()
        let minute = cal.component(.hour, from: now) * 60 + cal.component(.minute, from: now)
        var duration = minutes
        func end(_ d: Int) -> Int {
            let e = minute + d
            return e + (5 - e % 5) % 5
        }
        if abs(end(duration) - 1440) <= 10 { duration -= 30 }
        return (duration, end(duration) > 1440 ? 2 : 1)
    }
}

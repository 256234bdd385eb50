import Foundation
import HeatbridgeCore
import XCTest

/// Podero's onboarding and stats CLI commands against the simulator over HTTP. The account end to end (state,
/// preferences, validation, tokens) runs in process (`HeatbridgeAppTests/PoderoBoxTests`).
final class PoderoTests: XCTestCase {
    static let hpId = "3b1f6c2e-8d4a-4e0b-9a61-1c2d3e4f5a6b"

    func harness(secret: String = "demo-secret", poll: Double = 1) throws -> Harness {
        let h = try Harness(pollIntervalS: 30)
        try h.writeConfig(pollIntervalS: 30, timeoutS: 1.5, extraAccounts: try h.poderoAccount(secret: secret, pollIntervalS: poll))
        return h
    }

    func testOnboardingAndStatsCommands() throws {
        let h = try harness()
        defer { h.stopAll() }
        let bin = Harness.binary("heatbridge")
        let user = "7d0c2f4e-5b1a-4c3e-9f20-1a2b3c4d5e6f"
        let base = [
            "onboard", "podero", "--config", h.configPath, "--user", user, "--success-url", "https://installer.example/ok",
            "--cancel-url", "https://installer.example/cancel",
        ]
        let ok = try runProcess(bin, base + ["--language", "de", "--price-zone", "DE_LU", "--heat-pumps-only"])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.output.contains("https://connect.podero.com/heat-pumps?onboarding_session_id="), ok.output)
        XCTAssertTrue(ok.output.contains("expires: end of 20"), ok.output)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["sessions"]?.intValue, 1)

        let lang = try runProcess(bin, base + ["--language", "fr", "--price-zone", "DE_LU"])
        XCTAssertEqual(lang.status, 2)
        XCTAssertTrue(lang.output.contains("--language \"fr\" is not supported; valid: sv, de, en, hu, it, et, pl, ro"), lang.output)
        let zone = try runProcess(bin, base + ["--language", "de", "--price-zone", "DE"])
        XCTAssertEqual(zone.status, 2)
        XCTAssertTrue(zone.output.contains("--price-zone \"DE\" is not a Podero price zone (Germany is DE_LU); valid: AT,"), zone.output)
        let uuid = try runProcess(
            bin,
            [
                "onboard", "podero", "--config", h.configPath, "--user", "bob", "--language", "de",
                "--price-zone", "AT", "--success-url", "https://a.example", "--cancel-url", "https://b.example",
            ])
        XCTAssertEqual(uuid.status, 2)
        XCTAssertTrue(uuid.output.contains("--user \"bob\" is not a UUID"), uuid.output)
        // Every bad argument at once, each with what would be valid.
        let all = try runProcess(
            bin,
            [
                "onboard", "podero", "--config", h.configPath, "--user", "bob", "--language", "fr",
                "--price-zone", "DE", "--success-url", "ftp://a.example", "--cancel-url", "https://b.example",
                "--building", "b1",
            ])
        XCTAssertEqual(all.status, 2)
        for part in [
            "--user \"bob\" is not a UUID", "--building \"b1\" is not a UUID", "--language \"fr\" is not supported; valid: sv,",
            "--price-zone \"DE\" is not a Podero price zone (Germany is DE_LU); valid: AT,",
            "--success-url \"ftp://a.example\" is not an http(s) URL",
        ] {
            XCTAssertTrue(all.output.contains(part), "missing \(part) in \(all.output)")
        }
        XCTAssertEqual(all.output.components(separatedBy: "error: ").count - 1, 5, all.output)
        XCTAssertEqual(try h.admin("GET", "/admin/state")["podero"]?["sessions"]?.intValue, 1, "invalid input reached the cloud")

        let stats = try runProcess(bin, ["podero", "stats", "--config", h.configPath, "podero-\(Self.hpId)", "--resolution", "1DAY,1WEEK"])
        XCTAssertEqual(stats.status, 0, stats.output)
        XCTAssertTrue(stats.output.contains("1WEEK"), stats.output)
        XCTAssertTrue(stats.output.contains("consumption 128.8 kWh"), stats.output)
    }
}

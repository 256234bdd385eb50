import HeatbridgeCore
import XCTest

@testable import VendorPodero

/// Podero's statistics and power as meter readings.
final class PoderoEnergyTests: XCTestCase {
    func testDayRowsBecomePeriodReadingsInKWhAndRowsWithoutAFigureAreGaps() {
        let answer: JSONValue = [
            "metadata": ["requested_at": "2026-12-05T10:00:00Z", "units": ["consumption": "Wh"]],
            "data": [
                [
                    "resolution": "1DAY", "period": ["start_period": "2026-12-03T00:00:00Z", "end_period": "2026-12-04T00:00:00Z"],
                    "consumption": ["total": 18_400],
                ],
                [
                    "resolution": "1DAY", "period": ["start_period": "2026-12-04T00:00:00Z", "end_period": "2026-12-05T00:00:00Z"],
                    "consumption": ["total": nil],
                ],
                [
                    "resolution": "1DAY", "period": ["start_period": "2026-12-05T00:00:00Z", "end_period": "2026-12-06T00:00:00Z"],
                    "consumption": ["total": 7_650.5],
                ],
                [
                    "resolution": "1WEEK", "period": ["start_period": "2026-11-28T00:00:00Z", "end_period": "2026-12-05T00:00:00Z"],
                    "consumption": ["total": 120_000],
                ],
            ],
        ]
        let r = PoderoAdapter.dayReadings(answer, now: Timestamp.parse("2026-12-05T10:00:05Z")!)
        XCTAssertEqual(r.count, 2, "the day without a figure is a gap, not a zero; the week is not a day")
        XCTAssertEqual(r[0].value, .period(start: Timestamp.parse("2026-12-03T00:00:00Z")!, end: Timestamp.parse("2026-12-04T00:00:00Z")!, kwh: 18.4))
        XCTAssertEqual(r[1].key, .electricityTotal)
        XCTAssertEqual(r[1].source, .estimated)
        XCTAssertEqual(r[1].at, Timestamp.parse("2026-12-05T10:00:00Z"))
        if case .period(_, _, let kwh) = r[1].value { XCTAssertEqual(kwh, 7.6505, accuracy: 1e-9) } else { XCTFail() }
    }

    func testAnAnswerInKWhIsTakenAsIs() {
        let answer: JSONValue = [
            "metadata": ["units": ["consumption": "kWh"]],
            "data": [
                [
                    "resolution": "1DAY", "period": ["start_period": "2026-12-03T00:00:00Z", "end_period": "2026-12-04T00:00:00Z"],
                    "consumption": ["total": 18.4],
                ]
            ],
        ]
        XCTAssertEqual(
            PoderoAdapter.dayReadings(answer, now: 1_800_000_000).first?.value,
            .period(start: Timestamp.parse("2026-12-03T00:00:00Z")!, end: Timestamp.parse("2026-12-04T00:00:00Z")!, kwh: 18.4))
    }

    func testGarbageGivesNoReadings() {
        XCTAssertEqual(PoderoAdapter.dayReadings(["data": "nope"], now: 0), [])
        XCTAssertEqual(
            PoderoAdapter.dayReadings(["data": [["period": ["start_period": "x", "end_period": "y"], "consumption": ["total": 5]]]], now: 0), [])
    }
}

import HeatbridgeTesting
import XCTest

@testable import HeatbridgeCore

/// The meter as a person reads it: each test writes down the total (and the hours) a person would expect.
final class EnergyBookTests: XCTestCase {
    let utc = FixedOffsetTime(offsetS: 0)
    /// 2026-12-05T00:00:00Z.
    let day0: EpochSeconds = Double(Timestamp.daysFromCivil(2026, 12, 5)) * 86_400
    let e = MeterKey.electricityTotal

    func counter(_ v: Double, at: EpochSeconds, key: MeterKey = .electricityTotal) -> MeterReading {
        MeterReading(key: key, value: .counter(v), source: .measured, at: at)
    }

    func day(_ d: Int, _ kwh: Double, readAt: EpochSeconds) -> MeterReading {
        let start = day0 + Double(d) * 86_400
        return MeterReading(key: .electricityTotal, value: .period(start: start, end: start + 86_400, kwh: kwh), source: .estimated, at: readAt)
    }

    func total(_ b: EnergyBook, _ id: String = "hp", key: MeterKey = .electricityTotal) -> Double? {
        b.stateJSON(id, now: day0, localTime: utc)?["energy"]?[key.id]?["kwh"]?.doubleValue
    }

    /// Sum of every pending bucket of a counter, and the buckets by hour (relative to day0).
    func hours(_ b: EnergyBook, _ id: String = "hp", key: MeterKey = .electricityTotal) -> [Int: Double] {
        var out: [Int: Double] = [:]
        for (k, v) in b.pending(id) {
            let p = k.split(separator: "|")
            guard p[0] == key.id[...], let h = Int64(p[1]) else { continue }
            out[Int(h - Int64(day0 / 3600)), default: 0] += v
        }
        return out
    }

    // MARK: lifetime counters (Bosch)

    func testTheFirstValueAfterInstallIsTheTotalAndNoHourUsedIt() {
        var b = EnergyBook()
        b.apply([counter(4_321.5, at: day0 + 600)], device: "hp", now: day0 + 600, localTime: utc)
        XCTAssertEqual(total(b), 4_321.5)
        XCTAssertTrue(hours(b).isEmpty, "the lifetime before the box was installed belongs to no hour")
    }

    func testRisesGoIntoTheHoursTheyHappenedIn() {
        var b = EnergyBook()
        b.apply([counter(100, at: day0 + 1800)], device: "hp", now: day0 + 1800, localTime: utc)  // 00:30
        b.apply([counter(101, at: day0 + 3000)], device: "hp", now: day0 + 3000, localTime: utc)  // 00:50: +1 in hour 0
        b.apply([counter(103, at: day0 + 4800)], device: "hp", now: day0 + 4800, localTime: utc)  // 01:20: +2 over 00:50–01:20
        XCTAssertEqual(total(b), 103)
        let h = hours(b)
        XCTAssertEqual(h[0]!, 1 + 2 * (600.0 / 1800), accuracy: 1e-9, "10 of the 30 minutes were in hour 0")
        XCTAssertEqual(h[1]!, 2 * (1200.0 / 1800), accuracy: 1e-9)
        XCTAssertEqual(b.stateJSON("hp", now: day0 + 4800, localTime: utc)?["today"]?["electricity_total"]?.doubleValue, 3)
    }

    func testAResetToZeroContinuesTheTotalAndCountsWhatWasUsedSince() {
        var b = EnergyBook()
        b.apply([counter(5_000, at: day0)], device: "hp", now: day0, localTime: utc)
        b.apply([counter(5_010, at: day0 + 3600)], device: "hp", now: day0 + 3600, localTime: utc)
        // An appliance reset: the counter starts over and has reached 2 kWh by the next event.
        b.apply([counter(2, at: day0 + 7200)], device: "hp", now: day0 + 7200, localTime: utc)
        b.apply([counter(5, at: day0 + 10_800)], device: "hp", now: day0 + 10_800, localTime: utc)
        XCTAssertEqual(total(b), 5_010 + 2 + 3, "never 5,005 nor a fall: 10 before the reset, 5 after")
        XCTAssertEqual(hours(b).values.reduce(0, +), 15, accuracy: 1e-9)
    }

    func testASmallFallIsNoiseAndTheWayBackUpIsNotCountedTwice() {
        var b = EnergyBook()
        b.apply([counter(1_000, at: day0)], device: "hp", now: day0, localTime: utc)
        b.apply([counter(999.8, at: day0 + 60)], device: "hp", now: day0 + 60, localTime: utc)  // rounding, 0.2 kWh
        b.apply([counter(1_000.5, at: day0 + 120)], device: "hp", now: day0 + 120, localTime: utc)
        XCTAssertEqual(total(b), 1_000.5, "the fall was noise: only the 0.5 above the old reading counts")
    }

    func testAnOlderReadingThanTheTotalKnowsChangesNothing() {
        var b = EnergyBook()
        b.apply([counter(10, at: day0 + 100)], device: "hp", now: day0 + 100, localTime: utc)
        b.apply([counter(12, at: day0 + 200)], device: "hp", now: day0 + 200, localTime: utc)
        XCTAssertFalse(b.apply([counter(11, at: day0 + 150)], device: "hp", now: day0 + 300, localTime: utc))
        XCTAssertEqual(total(b), 12)
    }

    func testARestartInTheMiddleOfADayContinuesTotalAndToday() throws {
        var b = EnergyBook()
        b.apply([counter(200, at: day0 + 3600)], device: "hp", now: day0 + 3600, localTime: utc)
        b.apply([counter(203, at: day0 + 36_000)], device: "hp", now: day0 + 36_000, localTime: utc)  // 10:00, 3 kWh today
        let saved = try XCTUnwrap(b.takeDirty().first)
        var after = EnergyBook()
        after.restore("hp", saved.record)
        after.apply([counter(204, at: day0 + 43_200)], device: "hp", now: day0 + 43_200, localTime: utc)  // 12:00
        XCTAssertEqual(total(after), 204)
        XCTAssertEqual(
            after.stateJSON("hp", now: day0 + 43_200, localTime: utc)?["today"]?["electricity_total"]?.doubleValue, 4,
            "3 before the restart and 1 after")
        XCTAssertEqual(hours(after).values.reduce(0, +), 1, accuracy: 1e-9, "the buckets before the restart were saved already")
    }

    func testTodayStartsOverAtLocalMidnight() {
        var b = EnergyBook()
        let cet = FixedOffsetTime(offsetS: 3600)
        b.apply([counter(0.0, at: day0 - 7200)], device: "hp", now: day0 - 7200, localTime: cet)  // 23:00 local
        b.apply([counter(1.0, at: day0 - 3600 - 60)], device: "hp", now: day0 - 3660, localTime: cet)  // 23:59 local
        b.apply([counter(1.5, at: day0 - 1800)], device: "hp", now: day0 - 1800, localTime: cet)  // 00:30 local, next day
        let j = b.stateJSON("hp", now: day0 - 1800, localTime: cet)
        XCTAssertEqual(j?["today"]?["day"]?.stringValue, "2026-12-05")
        XCTAssertEqual(
            j?["today"]?["electricity_total"]?.doubleValue ?? -1, 0.5, accuracy: 0.02,
            "the 00:00–00:30 local part of the last rise; yesterday's kWh are not today's")
    }

    func testEfficiencyIsTheDaysHeatOverItsElectricity() {
        var b = EnergyBook()
        b.apply([counter(100, at: day0), counter(400, at: day0, key: .heatTotal)], device: "hp", now: day0, localTime: utc)
        b.apply([counter(100.05, at: day0 + 600), counter(400.2, at: day0 + 600, key: .heatTotal)], device: "hp", now: day0 + 600, localTime: utc)
        XCTAssertEqual(b.stateJSON("hp", now: day0 + 600, localTime: utc)?["efficiency_today"], .null, "0.05 kWh says nothing yet")
        b.apply([counter(102, at: day0 + 7200), counter(407.8, at: day0 + 7200, key: .heatTotal)], device: "hp", now: day0 + 7200, localTime: utc)
        XCTAssertEqual(b.stateJSON("hp", now: day0 + 7200, localTime: utc)?["efficiency_today"]?.doubleValue, 3.9, "7.8 kWh heat / 2 kWh electricity")
    }

    // MARK: per-day amounts (Podero)

    func testTheFirstStatisticsReadBringsThePastDaysAsHistory() {
        var b = EnergyBook()
        let now = day0 + 3 * 3600
        b.apply([day(-2, 18, readAt: now), day(-1, 20, readAt: now), day(0, 2.4, readAt: now)], device: "hp", now: now, localTime: utc)
        XCTAssertEqual(total(b), 40.4, "every day read counts once")
        let h = hours(b)
        XCTAssertEqual((-48..<(-24)).map { h[$0] ?? 0 }.reduce(0, +), 18, accuracy: 1e-9, "the day before yesterday spread over its 24 hours")
        XCTAssertEqual(h[-48]!, 0.75, accuracy: 1e-9)
        XCTAssertEqual((0..<3).map { h[$0] ?? 0 }.reduce(0, +), 2.4, accuracy: 1e-9, "today's so far spread over the 3 hours so far")
        XCTAssertNil(h[3])
    }

    func testReReadingADayCountsOnlyTheDifference() {
        var b = EnergyBook()
        b.apply([day(0, 2.4, readAt: day0 + 3 * 3600)], device: "hp", now: day0 + 3 * 3600, localTime: utc)
        b.apply([day(0, 2.4, readAt: day0 + 4 * 3600)], device: "hp", now: day0 + 4 * 3600, localTime: utc)
        b.apply([day(0, 3.4, readAt: day0 + 4 * 3600)], device: "hp", now: day0 + 4 * 3600, localTime: utc)
        XCTAssertEqual(total(b), 3.4, "the same day read three times: its amount, not 8.2")
        XCTAssertEqual(hours(b)[3]!, 1.0, accuracy: 1e-9, "the new kWh went into the hour since the last read")
    }

    func testADayRevisedDownKeepsTheTotalAndIsPaidBackByTheNextDays() {
        var b = EnergyBook()
        b.apply([day(-1, 10, readAt: day0 + 600)], device: "hp", now: day0 + 600, localTime: utc)
        b.apply([day(-1, 9, readAt: day0 + 4000)], device: "hp", now: day0 + 4000, localTime: utc)
        XCTAssertEqual(total(b), 10, "a total never falls: Home Assistant would count a fall as a new meter")
        XCTAssertEqual((-24..<0).map { hours(b)[$0] ?? 0 }.reduce(0, +), 9, accuracy: 1e-9, "yesterday's hours say what the day was")
        b.apply([day(0, 5, readAt: day0 + 7200)], device: "hp", now: day0 + 7200, localTime: utc)
        XCTAssertEqual(total(b), 14, "9 + 5: the revision was made up from today's rise")
    }

    func testADayRevisedUpAddsTheDifference() {
        var b = EnergyBook()
        b.apply([day(-1, 10, readAt: day0 + 600)], device: "hp", now: day0 + 600, localTime: utc)
        b.apply([day(-1, 10.6, readAt: day0 + 4000)], device: "hp", now: day0 + 4000, localTime: utc)
        XCTAssertEqual(total(b)!, 10.6, accuracy: 1e-9)
    }

    func testStatisticsWithAGapCountTheDaysThereAreAndTheMissingDayWhenItComes() {
        var b = EnergyBook()
        let now = day0 + 3600
        // The cloud has no figure for the day before yesterday yet (a gap, not a zero).
        b.apply([day(-3, 15, readAt: now), day(-1, 20, readAt: now)], device: "hp", now: now, localTime: utc)
        XCTAssertEqual(total(b), 35)
        XCTAssertNil(hours(b)[-48], "no hour of the missing day is invented")
        b.apply(
            [day(-3, 15, readAt: now + 3600), day(-2, 17, readAt: now + 3600), day(-1, 20, readAt: now + 3600)],
            device: "hp", now: now + 3600, localTime: utc)
        XCTAssertEqual(total(b), 52, "15 + 17 + 20, each once")
    }

    func testADayOlderThanThePeriodMemoryIsNotCountedAgain() {
        var b = EnergyBook()
        let old = day(-45, 30, readAt: day0)
        XCTAssertFalse(b.apply([old], device: "hp", now: day0, localTime: utc))
        XCTAssertNil(total(b))
    }

    func testARecordRestoresPeriodsSoARestartDoesNotCountADayTwice() throws {
        var b = EnergyBook()
        b.apply([day(-1, 20, readAt: day0 + 600), day(0, 1, readAt: day0 + 600)], device: "hp", now: day0 + 600, localTime: utc)
        let saved = try XCTUnwrap(b.takeDirty().first)
        var after = EnergyBook()
        after.restore("hp", saved.record)
        after.apply([day(-1, 20, readAt: day0 + 4000), day(0, 1.5, readAt: day0 + 4000)], device: "hp", now: day0 + 4000, localTime: utc)
        XCTAssertEqual(total(after), 21.5)
        XCTAssertEqual(hours(after).values.reduce(0, +), 0.5, accuracy: 1e-9)
    }

    // MARK: spreading and saving

    func testASpanIsSpreadByHowMuchOfEachHourItCovers() {
        let parts = EnergyBook.spread(3, from: 1800, to: 9000)  // 00:30–02:30
        XCTAssertEqual(parts.map(\.hour), [0, 1, 2])
        XCTAssertEqual(parts.map(\.kwh), [0.75, 1.5, 0.75])
        XCTAssertEqual(EnergyBook.spread(1, from: 7200, to: 7200).map(\.hour), [1], "a reading at 02:00:00 closes the hour from 01:00")
    }

    func testAFailedSaveGivesItsBucketsBack() throws {
        var b = EnergyBook()
        b.apply([counter(1, at: day0)], device: "hp", now: day0, localTime: utc)
        b.apply([counter(2, at: day0 + 600)], device: "hp", now: day0 + 600, localTime: utc)
        let taken = try XCTUnwrap(b.takeDirty().first)
        XCTAssertTrue(b.pending("hp").isEmpty)
        b.giveBack("hp", taken.buckets)
        XCTAssertEqual(hours(b)[0], 1)
        XCTAssertEqual(b.takeDirty().count, 1, "dirty again: the next save writes it")
    }

    func testPowerKeepsTheNewestReading() {
        var b = EnergyBook()
        b.apply([.power(1200, source: .measured, at: day0 + 60)], device: "hp", now: day0 + 60, localTime: utc)
        b.apply([.power(900, source: .measured, at: day0 + 30)], device: "hp", now: day0 + 60, localTime: utc)
        b.apply([.power(-5, source: .measured, at: day0 + 90)], device: "hp", now: day0 + 90, localTime: utc)
        XCTAssertEqual(b.stateJSON("hp", now: day0 + 90, localTime: utc)?["power_w"]?.doubleValue, 1200)
    }
}

final class EnergyHistoryRangeTests: XCTestCase {
    func testFromAfterToIsOutOfRange() {
        XCTAssertThrowsError(try EnergyHistory.range(["from": "2026-12-05T10:00:00Z", "to": "2026-12-05T09:00:00Z"], now: 0)) {
            XCTAssertEqual(($0 as? CommandRejection)?.code, .outOfRange)
        }
    }

    func testARangeOverThirtyOneDaysIsOutOfRange() {
        XCTAssertThrowsError(try EnergyHistory.range(["from": "2026-10-01", "to": "2026-12-01"], now: 0)) {
            XCTAssertEqual(($0 as? CommandRejection)?.code, .outOfRange)
            XCTAssertTrue(($0 as? CommandRejection)?.message.contains("at most 744") == true)
        }
    }

    func testAnUnknownMemberOrABadTimeIsInvalidPayload() {
        XCTAssertThrowsError(try EnergyHistory.range(["since": "x"], now: 0)) { XCTAssertEqual(($0 as? CommandRejection)?.code, .invalidPayload) }
        XCTAssertThrowsError(try EnergyHistory.range(["from": 5], now: 0)) { XCTAssertEqual(($0 as? CommandRejection)?.code, .invalidPayload) }
    }

    func testTheDefaultIsTheLastTwentyFourHoursToTheEndOfThisHour() throws {
        let now = Double(Timestamp.daysFromCivil(2026, 12, 5)) * 86_400 + 10.5 * 3600
        let r = try EnergyHistory.range([:], now: now)
        XCTAssertEqual(r.to - r.from, 24)
        XCTAssertEqual(Double(r.to) * 3600, now + 1800)
    }

    func testTheAnswerHasOneValuePerHourAndNullForAnHourWithoutABucket() {
        let j = EnergyHistory.answer(
            device: "d", from: 100, to: 103,
            buckets: [
                EnergyBucket(device: "d", meter: "electricity_total", hour: 100, kwh: 0.5),
                EnergyBucket(device: "d", meter: "electricity_total", hour: 102, kwh: 0.25),
            ])
        XCTAssertEqual(j["meters"]?["electricity_total"], [0.5, nil, 0.25])
        XCTAssertEqual(j["totals"]?["electricity_total"]?.doubleValue, 0.75)
    }
}

extension EnergyBookTests {
    func testPowerAloneIsPublishedButNotStored() {
        var b = EnergyBook()
        XCTAssertTrue(b.apply([.power(1200, source: .measured, at: day0)], device: "hp", now: day0, localTime: utc))
        XCTAssertFalse(b.isDirty("hp"), "a power reading is not worth a write: the next poll brings it again")
        b.apply([counter(10, at: day0)], device: "hp", now: day0, localTime: utc)
        XCTAssertTrue(b.isDirty("hp"))
    }
}

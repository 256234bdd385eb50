import Foundation
import HeatbridgeFuzzTargets
import XCTest

/// Every input in `Fuzz/corpus/<target>/` (the seeds) and `Fuzz/regressions/<target>/` (what a fuzz run once
/// found: each crash becomes a file there) through its target, as the fuzzer ran it.
final class FuzzRegressionTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    func inputs(_ target: String) throws -> [URL] {
        try ["corpus", "regressions"].flatMap { kind -> [URL] in
            let dir = Self.root.appendingPathComponent("\(kind)/\(target)")
            guard FileManager.default.fileExists(atPath: dir.path) else { return [] }
            return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil).filter {
                !$0.lastPathComponent.hasPrefix(".")
            }
        }
    }

    func replay(_ target: String) throws {
        let run = try XCTUnwrap(FuzzTargets.named(target))
        let files = try inputs(target)
        XCTAssertGreaterThan(files.count, 3, "no seed corpus for \(target)")
        for f in files { run(Array(try Data(contentsOf: f))) }
    }

    func testJSONCorpus() throws { try replay("json") }
    func testCommandCorpus() throws { try replay("command") }
    func testConfigCorpus() throws { try replay("config") }
}

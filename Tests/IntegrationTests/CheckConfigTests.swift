import Foundation
import XCTest

/// `heatbridge check-config` as an installer runs it.
final class CheckConfigTests: XCTestCase {
    func run(_ args: [String]) throws -> (Int32, String) {
        try runProcess(Harness.binary("heatbridge"), args)
    }

    func testReportsEveryMistakeWithLineAndColumn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hb-cc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let secret = dir.appendingPathComponent("key")
        try "xHCSAPI-super-secret-value\n".write(to: secret, atomically: true, encoding: .utf8)
        let file = dir.appendingPathComponent("bad.yaml")
        try """
            mqtt:
              url: http://broker:1883
              base_topc: heatbridge
            accounts:
              - name: bosch-main
                vendor: bosh
                base_url: https://example.invalid/api
                api_key_file: /nonexistent/bosch.key
                user_id: me
                poll_interval_s: fast
              - name: bosch-two
                vendor: bosch
                base_url: https://example.invalid/api
                api_key: xHCSAPI-inline-secret
                user_id: me
            """.write(to: file, atomically: true, encoding: .utf8)
        let (code, out) = try run(["check-config", "--config", file.path])
        XCTAssertNotEqual(code, 0)
        let p = file.path
        XCTAssertTrue(out.contains("\(p):2:8: error: bad MQTT URL"), out)
        XCTAssertTrue(out.contains("\(p):3:3: error: unknown key \"base_topc\" in mqtt (hint: did you mean \"base_topic\"?)"), out)
        XCTAssertTrue(out.contains("\(p):6:13: error: bad vendor \"bosh\" (hint: did you mean \"bosch\"?)"), out)
        XCTAssertTrue(out.contains("\(p):8:19: error: api_key_file: cannot read secret file /nonexistent/bosch.key"), out)
        XCTAssertTrue(out.contains("\(p):10:22: error: \"poll_interval_s\" must be a number"), out)
        XCTAssertTrue(out.contains("\(p):14:5: error: inline secret \"api_key\""), out)
        XCTAssertTrue(out.contains("\(p):11:5: error: missing required key \"devices\" in bosch account \"bosch-two\" (hint: list this customer's"), out)
        XCTAssertTrue(out.contains("7 errors"), out)
        XCTAssertFalse(out.contains("xHCSAPI-inline-secret"), "a secret was printed")

        let good = dir.appendingPathComponent("good.yaml")
        try """
            mqtt: {url: "mqtt://127.0.0.1:1883"}
            accounts:
              - {name: b, vendor: bosch, base_url: "https://example.invalid/api", api_key_file: \(secret.path), user_id: me, devices: ["101000001"]}
            """.write(to: good, atomically: true, encoding: .utf8)
        let (okCode, okOut) = try run(["check-config", "--config", good.path])
        XCTAssertEqual(okCode, 0, okOut)
        XCTAssertTrue(okOut.contains("OK"), okOut)
        XCTAssertTrue(okOut.contains("1 device"), okOut)
        XCTAssertFalse(okOut.contains("warning"), okOut)
        // A partner's back-office box may bridge everything, said out loud.
        try String(contentsOf: good, encoding: .utf8).replacingOccurrences(of: #"devices: ["101000001"]"#, with: "devices: all")
            .write(to: good, atomically: true, encoding: .utf8)
        let (allCode, allOut) = try run(["check-config", "--config", good.path])
        XCTAssertEqual(allCode, 0, allOut)
        XCTAssertTrue(allOut.contains("warning: account b has devices: all: it bridges every device of the partner account"), allOut)
        XCTAssertFalse(okOut.contains("super-secret"), "a secret was printed")
    }

    func testBrokenYAMLAndMissingFile() throws {
        let dir = FileManager.default.temporaryDirectory
        let file = dir.appendingPathComponent("hb-broken-\(UUID().uuidString.prefix(8)).yaml")
        try "mqtt:\n  url: [unclosed\n".write(to: file, atomically: true, encoding: .utf8)
        let (code, out) = try run(["check-config", "--config", file.path])
        XCTAssertNotEqual(code, 0)
        XCTAssertTrue(out.contains("\(file.path):3:1: error:"), out)
        let (code2, out2) = try run(["check-config", "--config", "/nonexistent/heatbridge.yaml"])
        XCTAssertNotEqual(code2, 0)
        XCTAssertTrue(out2.contains("cannot read config file"), out2)
        // The daemon refuses to start on a broken config with EX_CONFIG.
        let (runCode, runOut) = try run(["run", "--config", file.path])
        XCTAssertEqual(runCode, 78, runOut)
    }
}

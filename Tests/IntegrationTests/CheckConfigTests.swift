import Foundation
import HeatbridgeCore
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
        XCTAssertTrue(
            out.contains("\(p):11:5: error: missing required key \"devices\" in bosch account \"bosch-two\" (hint: list this customer's"), out)
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

/// What a newcomer meets first: a bare `heatbridge`, `status` with the daemon stopped, a store in a new directory.
final class NewcomerTests: XCTestCase {
    func testABareHeatbridgeShowsHelpAndStartsNothing() throws {
        let (code, out) = try runProcess(Harness.binary("heatbridge"), [])
        XCTAssertEqual(code, 0, out)
        XCTAssertTrue(out.contains("SUBCOMMANDS") && out.contains("run") && out.contains("check-config"), out)
        XCTAssertFalse(out.contains("cannot read config file"), "a bare heatbridge must not try to start the daemon: \(out)")
    }

    func testCheckConfigSaysWhetherTheStoreDirectoryCanBeMadeAndRunMakesIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hb-nc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("key")
        try "xHCSAPI-demo\n".write(to: key, atomically: true, encoding: .utf8)
        func config(_ store: String) throws -> String {
            let file = dir.appendingPathComponent("c-\(UUID().uuidString.prefix(4)).yaml")
            try """
            mqtt:
              url: mqtt://127.0.0.1:1
            store:
              path: \(store)
            accounts:
              - name: b
                vendor: bosch
                base_url: http://127.0.0.1:1/bosch
                api_key_file: \(key.path)
                user_id: me
                devices: ["101000001"]
            """.write(to: file, atomically: true, encoding: .utf8)
            return file.path
        }
        let fresh = dir.appendingPathComponent("new/deeper/heatbridge.db").path
        let ok = try runProcess(Harness.binary("heatbridge"), ["check-config", "--config", try config(fresh)])
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.output.contains("its directory is created at the first start"), ok.output)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: Harness.binary("heatbridge"))
        daemon.arguments = ["run", "--config", try config(fresh)]
        try launchAlone(daemon) { daemon.standardError = FileHandle.nullDevice }
        defer {
            if daemon.isRunning {
                kill(daemon.processIdentifier, SIGKILL)
                daemon.waitUntilExit()
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: fresh), daemon.isRunning, Date() < deadline { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: fresh), "run did not create the store in its new directory")
        var st = stat()
        XCTAssertEqual(stat(dir.appendingPathComponent("new/deeper").path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700, "the store's directory is private to the daemon's user")
        // A path through a regular file can never be made: an error with the line, before any start.
        let bad = try config(key.path + "/sub/heatbridge.db")
        let refused = try runProcess(Harness.binary("heatbridge"), ["check-config", "--config", bad])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("\(bad):4:9: error: store.path: \(key.path) is not a directory"), refused.output)
        // systemd's StateDirectory is the unit's to create.
        let state = try runProcess(Harness.binary("heatbridge"), ["check-config", "--config", try config("/var/lib/heatbridge/heatbridge.db")])
        XCTAssertFalse(state.output.contains("store.path"), state.output)
    }

    func testStatusSaysWhetherTheDaemonRuns() throws {
        let h = try Harness(pollIntervalS: 30)
        defer { h.stopAll() }
        try h.writeConfig(pollIntervalS: 30, timeoutS: 2)
        var s = try h.cli(["status"])
        XCTAssertTrue(
            s.output.contains("daemon: not running (no daemon has run on this store yet)") || s.output.contains("cannot read the store"), s.output)
        try h.startDaemon()
        h.client.waitJSON("heatbridge/bridge/state") { $0["state"] == "online" }
        s = try h.cli(["status"])
        XCTAssertTrue(s.output.contains("daemon: running (pid "), s.output)
        XCTAssertTrue(s.output.contains("\naccounts:\n"), s.output)
        XCTAssertEqual(h.stopDaemon(), 0)
        s = try h.cli(["status"])
        XCTAssertTrue(s.output.contains("daemon: not running (stopped at "), s.output)
        XCTAssertTrue(s.output.contains("accounts (as last seen; the daemon is not running):"), s.output)
        let json = try JSONValue.parse(Array(try h.cli(["status", "--json"]).output.utf8))
        XCTAssertEqual(json["daemon"]?["running"], false)
        try h.startDaemon()
        h.client.waitLatest("heatbridge/bridge/state") { $0["state"] == "online" }
        h.killDaemon()
        s = try h.cli(["status"])
        XCTAssertTrue(s.output.contains("ended without a clean stop"), s.output)
    }
}

import Foundation
import XCTest

/// The store on a 2 MiB tmpfs that the test fills: what a box with a full disk does.
extension Harness {
    /// Mounts a 2 MiB tmpfs under the test's directory and points the config's store at it (call after the
    /// last `writeConfig`). Returns the mount point and the store's path; `unmount` takes it away again.
    func moveStoreToSmallDisk() throws -> (dir: URL, db: String) {
        let small = dir.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
        let mounted = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", small.path])
        guard mounted.status == 0 else { throw HarnessError("this test needs a 2 MiB tmpfs (it runs as root in CI): \(mounted.output)") }
        let db = small.appendingPathComponent("state.db").path
        try String(contentsOfFile: configPath, encoding: .utf8).replacingOccurrences(of: dir.appendingPathComponent("state.db").path, with: db)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        return (small, db)
    }

    func unmount(_ small: URL) { _ = try? runProcess("/bin/umount", ["-l", small.path]) }

    /// Fills the small disk: a file takes what is free, then refused commands (each answer is stored) use up
    /// the room the WAL allocated before, until the store says the disk is full. Returns the filler's path.
    func fillSmallDisk(_ small: URL, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let filler = small.appendingPathComponent("filler").path
        _ = try runShell("dd if=/dev/zero of='\(filler)' bs=4k 2>/dev/null; sync")
        var batch = 0
        while !daemonOutput().contains("database or disk is full") && batch < 40 {
            for i in 0..<25 { client.publish("heatbridge/bosch-101000001/dhw9/charge/set", "{\"id\":\"fill-\(batch)-\(i)\",\"action\":\"start\"}") }
            client.brokerBarrier()
            barrier()
            batch += 1
        }
        XCTAssertTrue(daemonOutput().contains("database or disk is full"), "the store never filled up", file: file, line: line)
        return filler
    }
}

import Foundation

/// The recorded fixture sets of one vendor (`Tests/Fixtures/<vendor>/<set>/*.json`, as `heatbridge probe
/// --save` writes them), for the vendors' fixture tests.
public enum FixtureSets {
    /// Every set below `root`, sorted by name, with its files' bytes sorted by file name.
    public static func load(_ root: URL) throws -> [(name: String, files: [[UInt8]])] {
        let fm = FileManager.default
        return try fm.contentsOfDirectory(atPath: root.path).filter { !$0.hasPrefix(".") }.sorted().map { name in
            let dir = root.appendingPathComponent(name)
            let files = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
                .map { Array(try Data(contentsOf: dir.appendingPathComponent($0))) }
            return (name, files)
        }
    }

    /// `Tests/Fixtures/<vendor>` seen from a test file (`#filePath` of a file in `Tests/<Target>/`).
    public static func root(_ vendor: String, testFile: String) -> URL {
        URL(fileURLWithPath: testFile).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/\(vendor)")
    }
}

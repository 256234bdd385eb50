// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: executable -> C-backed modules and vendor modules -> HeatbridgeCore.
// The daemon links no full Foundation (FoundationEssentials only); the simulator may use anything.
let package = Package(
    name: "heatbridge",
    products: [
        .executable(name: "heatbridge", targets: ["heatbridge"]),
        .executable(name: "heatbridge-sim", targets: ["heatbridge-sim"]),
        .executable(name: "heatbridge-receiver", targets: ["heatbridge-receiver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swhitty/FlyingFox.git", from: "0.27.1"),
        // Partner side only (the push receiver): never linked into the daemon.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C libraries, each behind one system-library target imported by exactly one Swift module.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .target(name: "CCurlShim", dependencies: ["CCurl"]),

        .target(name: "HeatbridgeCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "HeatbridgeHTTP", dependencies: ["HeatbridgeCore", "CCurl", "CCurlShim"]),
        .target(name: "HeatbridgeMQTT", dependencies: ["HeatbridgeCore", "CMosquitto"]),
        .target(name: "HeatbridgeStore", dependencies: ["HeatbridgeCore", "CSQLite"]),
        .target(name: "HeatbridgeConfig", dependencies: ["HeatbridgeCore", "CYAML"]),
        .target(name: "HeatbridgeSystem", dependencies: ["HeatbridgeCore"]),
        // The box's own HTTP listener (status page, /metrics): sockets and poll(2), no server stack (footprint).
        .target(name: "HeatbridgeWeb"),
        .target(name: "VendorBosch", dependencies: ["HeatbridgeCore"]),
        .target(name: "VendorPodero", dependencies: ["HeatbridgeCore"]),
        .target(name: "VendorHomeSmartlink", dependencies: ["HeatbridgeCore"]),
        // Test doubles shipped as code (swift-nio's NIOEmbedded, HummingbirdTesting): any test target uses them.
        .target(name: "HeatbridgeTesting", dependencies: ["HeatbridgeCore"]),
        .target(name: "HeatbridgeVendors", dependencies: ["HeatbridgeCore", "VendorBosch", "VendorPodero", "VendorHomeSmartlink"]),
        // The daemon's wiring as a library: one builder for the daemon, the CLI and in-process tests.
        .target(
            name: "HeatbridgeApp",
            dependencies: [
                "HeatbridgeCore", "HeatbridgeConfig", "HeatbridgeStore", "HeatbridgeVendors",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "heatbridge",
            dependencies: [
                "HeatbridgeApp", "HeatbridgeCore", "HeatbridgeHTTP", "HeatbridgeMQTT", "HeatbridgeStore", "HeatbridgeConfig",
                "HeatbridgeSystem", "HeatbridgeWeb", "VendorBosch", "VendorPodero", "VendorHomeSmartlink", "HeatbridgeVendors",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // The partner's push receiver: webhook → spool → central broker (Hummingbird on SwiftNIO).
        .target(
            name: "HeatbridgeReceiver",
            dependencies: [
                "HeatbridgeCore", "HeatbridgeConfig", "HeatbridgeStore", "HeatbridgeMQTT", "VendorBosch",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "heatbridge-receiver",
            dependencies: [
                "HeatbridgeReceiver", "HeatbridgeCore", "HeatbridgeStore", "HeatbridgeMQTT",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "HeatbridgeReceiverTests", dependencies: ["HeatbridgeReceiver", "HeatbridgeStore", "HeatbridgeCore"]),

        .target(
            name: "HeatbridgeSimulator",
            dependencies: [
                "HeatbridgeConfig", "HeatbridgeHTTP", "VendorBosch", "VendorPodero", "VendorHomeSmartlink",
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ]),
        .executableTarget(
            name: "heatbridge-sim",
            dependencies: [
                "HeatbridgeSimulator", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Fuzz targets (Fuzz/, Scripts/fuzz): libFuzzer entry in heatbridge-fuzz, the targets themselves in a
        // library the regression tests replay the corpus through.
        .target(
            name: "HeatbridgeFuzzTargets",
            dependencies: [
                "HeatbridgeCore", "HeatbridgeConfig", "HeatbridgeVendors", "HeatbridgeSimulator", "HeatbridgeTesting",
                "VendorBosch", "VendorPodero", "VendorHomeSmartlink",
            ]),
        .executableTarget(name: "heatbridge-fuzz", dependencies: ["HeatbridgeFuzzTargets"]),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["HeatbridgeFuzzTargets"]),

        .testTarget(name: "HeatbridgeCoreTests", dependencies: ["HeatbridgeCore", "HeatbridgeTesting"]),
        .testTarget(name: "VendorBoschTests", dependencies: ["VendorBosch", "HeatbridgeTesting", "HeatbridgeSimulator"]),
        .testTarget(
            name: "VendorHomeSmartlinkTests", dependencies: ["VendorHomeSmartlink", "HeatbridgeTesting", "HeatbridgeSimulator", "HeatbridgeSystem"]),
        .testTarget(name: "VendorPoderoTests", dependencies: ["VendorPodero", "HeatbridgeTesting", "HeatbridgeSimulator"]),
        .testTarget(
            name: "HeatbridgeConfigTests",
            dependencies: ["HeatbridgeConfig", "HeatbridgeVendors", "VendorBosch", "VendorPodero", "VendorHomeSmartlink"]),
        .testTarget(name: "HeatbridgeStoreTests", dependencies: ["HeatbridgeStore"]),
        .testTarget(name: "HeatbridgeSystemTests", dependencies: ["HeatbridgeSystem"]),
        .testTarget(name: "HeatbridgeSimulatorTests", dependencies: ["HeatbridgeSimulator", "VendorBosch", "VendorPodero", "VendorHomeSmartlink"]),
        // The daemon's own wiring (`AppServices.build`) in process, on the testing library's doubles.
        .testTarget(
            name: "HeatbridgeAppTests",
            dependencies: [
                "HeatbridgeApp", "HeatbridgeConfig", "HeatbridgeCore", "HeatbridgeStore",
                "HeatbridgeTesting", "HeatbridgeSimulator", "HeatbridgeVendors",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["HeatbridgeCore", "HeatbridgeHTTP", "HeatbridgeMQTT", "HeatbridgeStore", "HeatbridgeSystem"]),
    ]
)

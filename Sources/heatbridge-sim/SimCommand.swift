import ArgumentParser
import Foundation
import HeatbridgeSimulator

/// `heatbridge-sim`: stateful fakes of the vendor clouds on loopback, for the demo and black-box tests.
@main
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heatbridge-sim",
        abstract:
            "Serve simulated heating clouds on 127.0.0.1 (Bosch at /bosch, Podero at /podero, HomeSmartlink at /homesmartlink, admin at /admin).")
    @Option(help: "TCP port on 127.0.0.1.") var port: UInt16 = 8480
    @Option(help: "Scenario YAML file (default: built-in: two Bosch gateways with hc1 and dhw1, one Podero heat pump, one HomeSmartlink home).")
    var scenario: String?
    @Flag(help: "Disable the vendors' rate limits (for benchmarks).") var noRateLimit = false
    @Option(help: "Serve the recorded answers in this directory (heatbridge probe --save) instead of simulated ones.") var fixtures: String?
    @Option(help: "CA file to trust when posting webhook events to an HTTPS URL (the relay's relay-ca.crt).") var webhookCA: String?

    func run() async throws {
        var clouds = try scenario.map { try Scenario.load(path: $0) } ?? ScenarioClouds.builtIn()
        if noRateLimit { clouds.bosch.rateLimitEnabled = false }
        let sim = Simulator(bosch: clouds.bosch, podero: clouds.podero, hsl: clouds.hsl)
        if let dir = fixtures {
            let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".json") }.sorted()
            let files = try names.map { Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))) }
            let n = await sim.loadFixtures(files)
            FileHandle.standardError.write(Data("heatbridge-sim serving \(n) recorded answers from \(dir)\n".utf8))
        }
        FileHandle.standardError.write(Data("heatbridge-sim listening on 127.0.0.1:\(port)\n".utf8))
        try await SimulatorServer(simulator: sim, webhookCAFile: webhookCA).run(port: port)
    }
}

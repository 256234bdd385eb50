import HeatbridgeFuzzTargets

// Built two ways (Scripts/fuzz). With -DFUZZING and -sanitize=fuzzer,address: libFuzzer's main drives
// `LLVMFuzzerTestOneInput`, the target named by HEATBRIDGE_FUZZ_TARGET. Without: a replayer, `heatbridge-fuzz
// TARGET FILE…`, that runs files through the target (to reproduce a crash outside the fuzzer).
#if FUZZING
    import Glibc

    nonisolated(unsafe) private var target: (@Sendable ([UInt8]) -> Void)?

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        if target == nil {
            let name = getenv("HEATBRIDGE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
            guard let t = FuzzTargets.named(name) else {
                print("set HEATBRIDGE_FUZZ_TARGET to one of \(FuzzTargets.names.joined(separator: ", "))")
                exit(2)
            }
            target = t
        }
        target!(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }

    /// libFuzzer's driver, for programs that have their own main.
    // swift-format-ignore: AlwaysUseLowerCamelCase
    // libFuzzer's C symbol: the name is the contract.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    // SwiftPM links an executable target with `main` aliased to `<module>_main` (so tests can link it), which keeps
    // libFuzzer's own main out: this is that main, and it hands over to libFuzzer's driver.
    @_cdecl("heatbridge_fuzz_main")
    public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
        var count = argc
        var vector = argv
        return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzOne(data, size) }
    }
#else
    import Glibc

    @main
    struct Replay {
        static func main() {
            let args = CommandLine.arguments.dropFirst()
            guard let name = args.first, let run = FuzzTargets.named(name) else {
                print("usage: heatbridge-fuzz \(FuzzTargets.names.joined(separator: "|")) FILE…")
                exit(2)
            }
            for path in args.dropFirst() {
                guard let f = fopen(path, "rb") else {
                    print("cannot open \(path)")
                    exit(1)
                }
                var bytes: [UInt8] = []
                var buf = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = fread(&buf, 1, buf.count, f)
                    if n <= 0 { break }
                    bytes += buf[0..<n]
                }
                fclose(f)
                run(bytes)
                print("\(path): ok")
            }
        }
    }
#endif

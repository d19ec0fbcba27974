import ArgumentParser
import Foundation
import PipelineKit
import Plugins
import SkipNet

public struct BenchCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks.", subcommands: [DenseBench.self, SkipBench.self, PolicyBench.self])
}

struct DenseBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dense",
        abstract: "Decode a clip with GStreamer, run a model densely on every frame, print ms/frame and GFLOP/s.",
        discussion: "Frames are decoded and converted to input tensors first; only the model run is timed. "
            + "The last line is machine-readable: 'result median_ms=… p95_ms=… gflops=…'.")

    @OptionGroup var clip: ClipOptions
    @Option(help: "Frames to time.") var frames = 30
    @Option(help: "Untimed runs first.") var warmup = 3
    @Option(help: "Model input WxH (default: the video's size).") var inputSize: String?
    @Flag(help: "Also print time per operator type and the slowest layers.") var profile = false
    @Option(help: "Kernels: portable or avx2 (default: the fastest this CPU runs).") var kernels: KernelSet?
    @Option(
        help: ArgumentHelp(
            "Also run these kernels, alternating frame by frame, and print both medians and their ratio.",
            discussion: "Side by side in one process, so a busy machine slows both alike."))
    var versus: KernelSet?

    func run() async throws {
        guard frames > 0, warmup >= 0, clip.threads > 0 else { throw ValidationError("frames, threads must be > 0") }
        let decoded = try await decode()
        guard let first = decoded.first else {
            printError("error: \(clip.video) gave no frames")
            throw ExitCode(1)
        }
        var (w, h) = (first.image.width, first.image.height)
        if let inputSize {
            guard let size = ModelInput.size(inputSize) else { throw ValidationError("--input-size must be WxH") }
            (w, h) = size
        }
        do {
            let (executor, input) = try ModelInput.loadModel(
                path: clip.model, width: w, height: h, threads: clip.threads, kernels: kernels ?? .detected)
            let graph = executor.graph
            let shape = input.shape
            let count = shape.reduce(1, *)
            var tensors: [[Float]] = []
            for frame in decoded {
                var t = [Float](repeating: 0, count: count)
                try t.withUnsafeMutableBufferPointer { b throws(ModelError) in
                    try input.fill(frame.image, into: b.baseAddress!)
                }
                tensors.append(t)
            }
            for i in 0..<warmup {
                try tensors[i % tensors.count].withUnsafeBufferPointer { b throws(ModelError) in try executor.run(b) }
            }
            let other = try versus.map { k throws(ModelError) in
                try ModelInput.loadModel(path: clip.model, width: w, height: h, threads: clip.threads, kernels: k)
                    .executor
            }
            if let other {
                for i in 0..<warmup {
                    try tensors[i % tensors.count].withUnsafeBufferPointer { b throws(ModelError) in try other.run(b) }
                }
            }
            var times: [Double] = []
            var otherTimes: [Double] = []
            for i in 0..<frames {
                let start = ContinuousClock.now
                try tensors[i % tensors.count].withUnsafeBufferPointer { b throws(ModelError) in try executor.run(b) }
                times.append((ContinuousClock.now - start).seconds * 1e3)
                if let other {
                    let start = ContinuousClock.now
                    try tensors[i % tensors.count].withUnsafeBufferPointer { b throws(ModelError) in try other.run(b) }
                    otherTimes.append((ContinuousClock.now - start).seconds * 1e3)
                }
            }
            if profile {
                let layers = try tensors[0].withUnsafeBufferPointer { b throws(ModelError) in try executor.profile(b) }
                var byOp: [String: Double] = [:]
                for l in layers { byOp[l.node.opType, default: 0] += l.seconds }
                for (op, t) in byOp.sorted(by: { $0.value > $1.value }) {
                    print(String(format: "  %-18@ %8.2f ms", op, t * 1e3))
                }
                let summary = Dictionary(uniqueKeysWithValues: ModelSummary(graph).layers.map { ($0.name, $0) })
                for l in layers.sorted(by: { $0.seconds > $1.seconds }).prefix(12) {
                    let s = summary[l.node.name]
                    let rate = s.map { 2 * Double($0.macs) / l.seconds / 1e9 } ?? 0
                    print(
                        String(format: "  %8.2f ms %6.1f GFLOP/s  ", l.seconds * 1e3, rate)
                            + "\(l.node.opType) \(l.node.name) \(s?.inputShape.shapeText ?? "") → \(s?.outputShape.shapeText ?? "")"
                    )
                }
            }
            times.sort()
            let medianMs = median(times) ?? 0
            let p95 = times[min(times.count - 1, Int((Double(times.count) * 0.95).rounded(.up)) - 1)]
            let macs = ModelSummary(graph).totalMACs
            let gflops = 2 * Double(macs) / (medianMs / 1e3) / 1e9
            print("model \(clip.model) input \(shape.shapeText), \(String(format: "%.3f", Double(macs) / 1e9)) GMAC")
            print(
                "BLAS \(Kernels.blasCoreName()), \(executor.kernels.rawValue) kernels, \(clip.threads) thread(s), "
                    + "\(frames) frames of \(clip.video)")
            print(String(format: "ms/frame median %.2f  p95 %.2f  effective %.1f GFLOP/s", medianMs, p95, gflops))
            if let other {
                let m = median(otherTimes) ?? 0
                print(
                    String(
                        format: "%@ kernels median %.2f ms, %@ kernels %.2f ms (alternating): %@ %.2fx faster",
                        other.kernels.rawValue, m, executor.kernels.rawValue, medianMs, executor.kernels.rawValue,
                        m / medianMs))
            }
            print(String(format: "result median_ms=%.3f p95_ms=%.3f gflops=%.2f", medianMs, p95, gflops))
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
    }

    /// The first `frames` frames of the clip (fewer if it is shorter), decoded to RGB by GStreamer.
    private func decode() async throws -> [Frame] {
        guard FileManager.default.fileExists(atPath: clip.video) else {
            printError("error: \(clip.video) does not exist")
            throw ExitCode(2)
        }
        let location = PropertySyntax.quoted(clip.video)
        let plan = PipelinePlan.decoding(
            "filesrc location=\(location) ! decodebin ! videoconvert ! video/x-raw,format=RGB")
        let collected = FrameCollector()
        let stop = StopSignal()
        let wanted = min(frames, 100)
        _ = try await PipelineRunner(plan: plan).run(stop: stop) { frame in
            if collected.count < wanted { collected.append(frame) }
            if collected.count >= wanted { stop.request() }
        }
        return collected.frames
    }
}

extension KernelSet: ExpressibleByArgument {}

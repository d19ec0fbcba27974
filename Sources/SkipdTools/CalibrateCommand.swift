import ArgumentParser
import Foundation
import PipelineKit
import Plugins
import SkipNet

public struct CalibrateCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Tune skip thresholds to an error budget on a clip and write the settings file.",
        discussion: """
            Loss: the worst missed-change ratio over the model outputs (or the --outputs named) against the dense \
            run (1.0 = what reusing the previous output scores). From exact execution, the input threshold (from 1 \
            grey level) and then, unless --input-only, the thresholds of the --layers gated convs with the most \
            dense MACs (from 0.01 × their RMS), front to back, are multiplied by --factor while the loss stays \
            within --budget; each keeps the last value that met it (0, exact, if none did). Every evaluation \
            replays all calibration frames; progress goes to stderr, one line per evaluation. With --segments K \
            the --frames come from K stretches spread evenly over the clip, each replayed from a keyframe, so the \
            choice does not rest on the clip's opening alone. The file (default: beside the model, .onnx replaced \
            by .skip.json) holds absolute per-layer thresholds; other layers stay exact.

            With --agreement P instead of --budget: every combination of --input-thresholds, --contexts and             --rollings runs on the frames, the --decoder (centerface or detect) turns each frame's outputs into             detections, and the cheapest combination (executed MACs) whose detections keep precision and recall ≥ P             against the dense model's is written (input threshold, context, rolling refresh; every other layer             exact). Nothing is written when none does.
            """)

    @OptionGroup var clip: ClipOptions
    @Option(help: "Error budget: largest worst-output missed-change ratio accepted (e.g. 0.1).") var budget: Double?
    @Option(help: "Tune for detections instead: least precision and recall against the dense run (e.g. 0.95).")
    var agreement: Double?
    @Option(help: "With --agreement: the decoder, centerface or detect (YOLO, its default threshold).")
    var decoder = "centerface"
    @Option(help: "With --agreement: input thresholds to try (model-input units, comma-separated).")
    var inputThresholds = "4,8,12,16"
    @Option(help: "With --agreement: bounded contexts to try, input pixels (0: exact propagation).")
    var contexts = "0,16,32"
    @Option(help: "With --agreement: rolling refresh periods to try, frames (used with a context).")
    var rollings = "30"
    @Option(help: "Upscale the clip by this factor with GStreamer's videoscale.") var scale = 1
    @Option(help: "Calibration frames (all are kept in memory).") var frames = 50
    @Option(help: "Stretches of the clip the frames come from, spread evenly over it (1: the clip's first frames).")
    var segments = 1
    @Option(help: "Gate: input-norm, output-norm, input-select.") var gate = "input-select"
    @Option(help: "Gated convs to tune, those with the most dense MACs (0: all).") var layers = 8
    @Flag(help: "Tune only the input threshold; every other layer stays exact (exact blocks keep running fused).")
    var inputOnly = false
    @Option(help: "Comma-separated model output names the loss reads (default: all outputs).") var outputs: String?
    @Option(help: "Each step multiplies a threshold by this (> 1; smaller: finer choice, more evaluations).")
    var factor: Float = 2
    @Option(help: "Tile side in input pixels.") var block = 16
    @Option(help: "Dense keyframe every N frames (0: never).") var refresh = 300
    @Option(help: "Bounded context in input pixels, calibrated under and written to the file (0: exact).")
    var context: Int?
    @Option(help: "Rolling refresh over N frames, calibrated under and written to the file (0: off).") var rolling: Int?
    @Option(help: "Base settings file: its gate, block, refresh etc. are kept (overrides --gate, --block, --refresh).")
    var settings: String?
    @Option(help: "Subtracted from each input channel.") var mean: Float = 0
    @Option(help: "Multiplies each input channel after the mean.") var inputScale: Float = 1
    @Option(help: "Settings file to write (default: <model without .onnx>.skip.json beside the model).")
    var output: String?

    public func validate() throws {
        switch (budget, agreement) {
        case (let b?, nil):
            guard b > 0, b.isFinite else { throw ValidationError("--budget must be a positive number") }
        case (nil, let a?):
            guard a > 0, a <= 1 else { throw ValidationError("--agreement must be above 0 and at most 1") }
            guard ["centerface", "detect"].contains(decoder) else {
                throw ValidationError("--decoder must be centerface or detect")
            }
            guard let t = Self.numbers(inputThresholds, Float.init), t.allSatisfy({ $0 >= 0 && $0.isFinite }),
                let c = Self.numbers(contexts, Int.init), c.allSatisfy({ (0...100_000).contains($0) }),
                let r = Self.numbers(rollings, Int.init), r.allSatisfy({ (1...1_000_000).contains($0) })
            else {
                throw ValidationError(
                    "--input-thresholds (≥ 0), --contexts (0…100000) and --rollings (1…1000000) take "
                        + "comma-separated numbers")
            }
        default:
            throw ValidationError("give one of --budget (heatmap error) and --agreement (detections)")
        }
        guard factor > 1, factor.isFinite else { throw ValidationError("--factor must be a number above 1") }
        guard scale >= 1, frames >= 2, clip.threads > 0, block > 0, refresh >= 0, layers >= 0 else {
            throw ValidationError("scale, threads and block must be positive, frames ≥ 2, refresh and layers ≥ 0")
        }
        guard (context ?? 0) >= 0, (rolling ?? 0) >= 0 else {
            throw ValidationError("--context and --rolling must be ≥ 0")
        }
        guard segments >= 1, frames / segments >= 2 else {
            throw ValidationError("--segments must be at least 1, with at least 2 of the --frames in each")
        }
        guard let gateKind = GateKind(rawValue: gate), gateKind != .gumbel else {
            let names = GateKind.allCases.filter { $0 != .gumbel }.map(\.rawValue)
            throw ValidationError("--gate must be one of \(names.joined(separator: ", "))")
        }
    }

    public func run() async throws {
        let gateKind = GateKind(rawValue: gate) ?? .inputSelect
        for path in [clip.model, clip.video] + (settings.map { [$0] } ?? [])
        where !FileManager.default.fileExists(atPath: path) {
            printError("error: \(path) does not exist")
            throw Exit.invalidFile
        }
        let destination = output ?? URL(fileURLWithPath: clip.model).deletingPathExtension().path + ".skip.json"
        let stretches: [[VideoImage]]
        if segments == 1 {
            stretches = [try await ClipFrames.decodeForCommand(clip.video, limit: frames, scale: scale)]
        } else {
            let length = frames / segments
            printError(
                "decoding \(segments) stretches of \(length) frames spread over \(clip.video)"
                    + "\(scale > 1 ? " at ×\(scale)" : "")…")
            do {
                let spread = try await ClipFrames.stretches(clip.video, count: segments, length: length, scale: scale)
                stretches = spread.stretches
                let starts = spread.starts.map(String.init).joined(separator: ", ")
                printError("stretches start at frames \(starts) of \(spread.total)")
            } catch {
                printError("error: \(error)")
                throw Exit.invalidFile
            }
        }
        var met = true
        do {
            var base = SkipSettings()
            if let settings {
                base = try SkipSettings.load(path: settings)
            } else {
                base.gate = gateKind
                base.block = block
                base.refresh = refresh
            }
            // Given here, they win over a --settings file's: the thresholds are tuned under them.
            if let context { base.context = context }
            if let rolling { base.rollingRefresh = rolling }
            if let agreement {
                met = try calibrateForDetections(stretches, base: base, target: agreement, destination: destination)
            } else {
                try calibrate(stretches, base: base, budget: budget ?? 0, destination: destination)
            }
        } catch {
            printError("error: \(error)")
            throw Exit.invalidFile
        }
        if !met { throw Exit.runtimeFailure }
    }

    private func calibrate(
        _ stretches: [[VideoImage]], base: SkipSettings, budget: Double, destination: String
    ) throws(ModelError) {
        let images = stretches.flatMap { $0 }
        // Only the graph and the frame conversion are needed: calibration builds its own executors.
        let (graph, input) = try {
            () throws(ModelError) in
            let loaded = try ModelInput.loadModel(
                path: clip.model, width: images[0].width, height: images[0].height, threads: clip.threads, mean: [mean],
                scale: [inputScale])
            return (loaded.executor.graph, loaded.input)
        }()
        guard input.layout == .nchw else { throw ModelError("calibrate runs NCHW image models") }
        let tensors = try stretches.map { (stretch) throws(ModelError) -> [[Float]] in
            try stretch.map { (image) throws(ModelError) -> [Float] in
                var t = [Float](repeating: 0, count: input.shape.reduce(1, *))
                try t.withUnsafeMutableBufferPointer { b throws(ModelError) in
                    try input.fill(image, into: b.baseAddress!)
                }
                return t
            }
        }
        var options = Calibration.Options(budget: budget)
        options.layers = layers
        options.threads = clip.threads
        options.inputOnly = inputOnly
        options.factor = factor
        if let outputs {
            let names = graph.outputs.map { graph.values[$0].name }
            options.outputs = try outputs.split(separator: ",").map { (name) throws(ModelError) -> Int in
                let name = name.trimmingCharacters(in: .whitespaces)
                guard let index = names.firstIndex(of: name) else {
                    throw ModelError(
                        "--outputs: the model has no output '\(name)'; it has \(names.joined(separator: ", "))")
                }
                return index
            }
        }
        // Start at one grey level whatever the input scaling.
        if inputScale != 0 { options.inputStart = abs(inputScale) }
        let spread = stretches.count > 1 ? " in \(stretches.count) stretches" : ""
        let tuned = inputOnly ? 0 : layers
        let bound = inputOnly || layers > 0 ? ", at most \(1 + (tuned + 1) * options.maxSteps) evaluations" : ""
        printError(
            "calibrating \(clip.model) (input \(input.shape.shapeText)) on \(images.count) frames\(spread), gate "
                + "\(base.gate.rawValue), budget \(budget)\(bound)")
        let start = ContinuousClock.now
        var last = start
        let result = try Calibration.calibrate(graph: graph, segments: tensors, base: base, options: options) { e in
            let now = ContinuousClock.now
            printError(
                String(format: "  eval %3d  ", e.index) + Self.pad(e.stage, 12)
                    + String(
                        format: " θ %-10.4g loss %.4f  MAC ratio %.3f  keyframes %3d  ", e.value, e.loss, e.macRatio,
                        e.keyframes) + (e.accepted ? "ok  " : "miss")
                    + String(format: "  %.1f s", (now - last).seconds))
            last = now
        }
        let seconds = (ContinuousClock.now - start).seconds
        try result.settings.write(path: destination)

        let total = Double(max(1, ModelSummary(graph).totalMACs))
        var lines = [
            "calibrated \(clip.model) on \(images.count) frames\(spread) of \(clip.video)\(scale > 1 ? " ×\(scale)" : "") "
                + "(input \(input.shape.shapeText)), gate \(base.gate.rawValue), budget \(budget)",
            String(
                format: "%d evaluations in %.1f s; input threshold %g (model-input units)", result.evaluations,
                seconds, result.settings.inputThreshold),
            "  layer               MACs%     RMS        threshold  (× RMS)",
        ]
        for l in result.layers {
            lines.append(
                "  " + Self.pad(l.name, 18)
                    + String(
                        format: "  %5.1f%%  %9.4g  %9.4g  %8.3g", Double(l.denseMACs) / total * 100, l.rms,
                        l.threshold, l.threshold / l.rms))
        }
        lines.append(
            String(
                format: "loss %.4f (exact %.2e), MAC ratio %.3f (exact %.3f), keyframes included", result.loss,
                result.exactLoss, result.macRatio, result.exactMACRatio))
        lines.append("wrote \(destination)")
        print(lines.joined(separator: "\n"))
    }

    /// Comma-separated values, nil when one does not parse.
    static func numbers<T>(_ text: String, _ parse: (String) -> T?) -> [T]? {
        let values = text.split(separator: ",").map { parse($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        return values.compactMap { $0 }
    }

    /// False when no setting met the target (nothing written).
    private func calibrateForDetections(
        _ stretches: [[VideoImage]], base: SkipSettings, target: Double, destination: String
    ) throws -> Bool {
        let images = stretches.flatMap { $0 }
        let loaded = try ModelInput.loadModel(
            path: clip.model, width: images[0].width, height: images[0].height, threads: clip.threads, mean: [mean],
            scale: [inputScale])
        let (graph, input) = (loaded.executor.graph, loaded.input)
        let segments = try stretches.map { stretch in
            try stretch.map { image in
                var t = [Float](repeating: 0, count: input.shape.reduce(1, *))
                try t.withUnsafeMutableBufferPointer { b throws(ModelError) in
                    try input.fill(image, into: b.baseAddress!)
                }
                return t
            }
        }
        let decode: (ModelOutputs) throws -> [Detection] =
            decoder == "detect"
            ? { try YOLODecoder.decode($0) } : { try CenterFaceDecoder.decode($0) }
        let search = AgreementCalibration(
            graph: graph, input: input, frame: (images[0].width, images[0].height), threads: clip.threads,
            decode: decode)
        printError(
            "calibrating \(clip.model) (input \(input.shape.shapeText)) for detections on \(images.count) frames: "
                + "precision and recall ≥ \(target) against the dense model")
        let reference = try search.reference(segments)
        let found = reference.joined().reduce(0) { $0 + $1.count }
        printError("  dense: \(found) detections")
        var trials: [AgreementCalibration.Trial] = []
        for context in Self.numbers(contexts, Int.init) ?? [] {
            for rolling in context > 0 ? Self.numbers(rollings, Int.init) ?? [] : [0] {
                for threshold in Self.numbers(inputThresholds, Float.init) ?? [] {
                    let t = try search.trial(
                        segments, reference: reference, base: base, inputThreshold: threshold, context: context,
                        rolling: rolling)
                    trials.append(t)
                    printError(
                        String(
                            format: "  θ %-5g context %-4d rolling %-4d  MAC ratio %.3f  precision %.3f  recall %.3f",
                            t.inputThreshold, t.context, t.rolling, t.macRatio, t.agreement.precision,
                            t.agreement.recall))
                }
            }
        }
        let passing = trials.filter { $0.agreement.precision >= target && $0.agreement.recall >= target }
        guard let best = passing.min(by: { $0.macRatio < $1.macRatio }) else {
            print("no setting kept precision and recall ≥ \(target) on these frames; nothing written")
            return false
        }
        var settings = base
        settings.inputThreshold = best.inputThreshold
        settings.context = best.context
        settings.rollingRefresh = best.rolling
        try settings.write(path: destination)
        print(
            String(
                format:
                    "calibrated for detections on %d frames (%d found densely): input threshold %g, context %d, "
                    + "rolling refresh %d — MAC ratio %.3f, precision %.3f, recall %.3f",
                images.count, found, best.inputThreshold, best.context, best.rolling, best.macRatio,
                best.agreement.precision, best.agreement.recall) + "\nwrote \(destination)")
        return true
    }

    /// Left-aligns `text` in `width` columns, never truncating (`%-20@` does not pad on Linux).
    private static func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
}

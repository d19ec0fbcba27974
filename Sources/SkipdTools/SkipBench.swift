import ArgumentParser
import Foundation
import PipelineKit
import Plugins
import SkipNet

struct SkipBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skip",
        abstract: "Run a model densely and with skip-convolutions side by side on a clip; one row per setting.",
        discussion: """
            Per frame the dense and the skip executor run back to back on the same input (so machine noise hits \
            both alike). Each row: MAC ratio (executed incl. gates over dense, keyframes included), the oracle \
            bound at the same input threshold, ms/frame (median, p95, mean) of both, wall ratio (Σ skip / Σ dense), \
            and fidelity against dense: relative L2 (mean; worst output), missed-change ratio (1.0 = reusing the \
            previous output), mean error of the first and last 100 frames, heatmap peak recall and precision.
            """)

    @OptionGroup var clip: ClipOptions
    @Option(help: "Upscale the clip by this factor with GStreamer's videoscale (2: vtest.avi at 1536×1152).")
    var scale = 1
    @Option(help: "Frames (default: the whole clip).") var frames = Int.max
    @Option(help: "Gate: input-norm, output-norm, gumbel, input-select.") var gate = "input-select"
    @Option(help: "Comma-separated thresholds of the first layer, in grey levels, one row each.") var sweep = "4"
    @Option(help: "Threshold of the other layers (× their RMS; 0: exact propagation).") var threshold: Float = 0
    @Option(help: "Tile side in input pixels.") var block = 16
    @Option(help: "Dense keyframe every N frames (0: never).") var refresh = 300
    @Option(help: "Bounded context in input pixels (0: exact propagation).") var context = 0
    @Option(help: "Pixels over the first layer's threshold a block needs to count as changed (1: any).")
    var minPixels = 1
    @Option(help: "Rolling refresh: every layer recomputes the whole image once per N frames, a band a frame (0: off).")
    var rolling = 0
    @Option(help: "Skip settings file (from `skipd calibrate`); --sweep then scales its per-layer thresholds.")
    var settings: String?
    @Option(help: "Oracle input threshold in grey levels (default: the row's first-layer threshold).")
    var oracleThreshold: Float?
    @Option(help: "Subtracted from each input channel.") var mean: Float = 0
    @Option(help: "Multiplies each input channel after the mean.") var inputScale: Float = 1
    @Option(help: "Write per-frame series (ms, MACs, errors) to this CSV file.") var csv: String?

    func run() async throws {
        guard scale >= 1, frames > 0, clip.threads > 0, block > 0 else {
            throw ValidationError("scale, frames, threads and block must be positive")
        }
        guard context >= 0, rolling >= 0 else { throw ValidationError("context and rolling must be 0 or positive") }
        guard let gateKind = GateKind(rawValue: gate) else {
            throw ValidationError("--gate must be one of \(GateKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let values = sweep.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! >= 0 }) else {
            throw ValidationError("--sweep takes non-negative numbers, e.g. 0,0.5,1")
        }
        guard FileManager.default.fileExists(atPath: clip.model) else {
            printError("error: \(clip.model) does not exist")
            throw ExitCode(2)
        }
        let images = try await ClipFrames.decodeForCommand(clip.video, limit: frames, scale: scale)
        do {
            var base = try settings.map { (path) throws(ModelError) in try SkipSettings.load(path: path) }
            if base == nil {
                var s = SkipSettings()
                s.gate = gateKind
                s.threshold = threshold
                s.block = block
                s.refresh = refresh
                base = s
            }
            if minPixels > 1 { base!.minPixels = minPixels }
            if context > 0 || rolling > 0 {
                base!.context = context
                base!.rollingRefresh = rolling
            }
            try bench(images, base: base!, sweep: values.compactMap { $0 })
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
    }

    private struct Row {
        var label: String
        var macRatio = 0.0
        var selectedRatio = 0.0
        var oracle = 0.0
        var oracleThreshold: Float = 0
        var dense: [Double] = []
        var skip: [Double] = []
        var relativeL2 = 0.0
        var missedChange = 0.0
        var firstLast = (first: 0.0, last: 0.0)
        var recall = 1.0
        var precision = 1.0
        var keyframes = 0
    }

    private func bench(_ images: [VideoImage], base: SkipSettings, sweep: [Float]) throws(ModelError) {
        let (w, h) = (images[0].width, images[0].height)
        let (denseExecutor, input) = try ModelInput.loadModel(
            path: clip.model, width: w, height: h, threads: clip.threads, mean: [mean], scale: [inputScale])
        guard input.layout == .nchw else { throw ModelError("bench skip runs NCHW image models") }
        let graph = denseExecutor.graph
        denseExecutor.collectsStepTimes = true
        let heatmap = graph.outputs.firstIndex { graph.shape(of: $0).count == 4 && graph.shape(of: $0)[1] == 1 }
        var tensor = [Float](repeating: 0, count: input.shape.reduce(1, *))
        print(
            "model \(clip.model) input \(input.shape.shapeText), \(String(format: "%.2f", Double(ModelSummary(graph).totalMACs) / 1e9)) GMAC; "
                + "\(images.count) frames of \(clip.video)\(scale > 1 ? " ×\(scale)" : ""); BLAS \(Kernels.blasCoreName()), "
                + "\(clip.threads) thread(s); gate \(base.gate.rawValue), block \(base.block) px, refresh \(base.refresh), "
                + "min-pixels \(base.minPixels), context \(base.context) px, rolling refresh \(base.rollingRefresh)")
        var csvLines = [
            "setting,frame,keyframe,dense_ms,skip_ms,selected_macs,executed_macs,oracle_macs,dense_macs,rel_l2_max"
        ]
        var rows: [Row] = []
        for value in sweep {
            var settings = base
            if self.settings != nil {
                // A calibrated file: the sweep value scales every threshold in it.
                settings.inputThreshold *= value
                settings.threshold *= value
                settings.thresholds = settings.thresholds.mapValues { $0 * value }
            } else {
                settings.inputThreshold = value * inputScale
            }
            let label = self.settings != nil ? "×\(value)" : "\(value)"
            let skip = try SkipExecutor(graph: graph, settings: settings, threads: clip.threads)
            let grey = oracleThreshold ?? settings.inputThreshold / inputScale
            var oracle = OracleBound(graph: graph, threshold: grey * inputScale)
            var fidelity = Array(repeating: OutputFidelity(), count: graph.outputs.count)
            var peaks = PeakAgreement()
            var row = Row(label: label, oracleThreshold: grey)
            for (t, image) in images.enumerated() {
                var frameOracle = 0
                try tensor.withUnsafeMutableBufferPointer { b throws(ModelError) in
                    try input.fill(image, into: b.baseAddress!)
                }
                try tensor.withUnsafeBufferPointer { b throws(ModelError) in
                    row.dense.append(try Self.timed { () throws(ModelError) in try denseExecutor.run(b) })
                    row.skip.append(try Self.timed { () throws(ModelError) in try skip.run(b) })
                    frameOracle = oracle.add(b).executed
                }
                var worst = 0.0
                for k in graph.outputs.indices {
                    fidelity[k].add(skip.output(k), dense: denseExecutor.output(k))
                    worst = max(worst, fidelity[k].relativeL2.last ?? 0)
                }
                if let heatmap {
                    let s = graph.shape(of: graph.outputs[heatmap])
                    peaks.add(skip.output(heatmap), reference: denseExecutor.output(heatmap), width: s[3], height: s[2])
                }
                csvLines.append(
                    "\(label),\(t),\(skip.lastWasKeyframe ? 1 : 0),\(String(format: "%.3f", row.dense.last!)),"
                        + "\(String(format: "%.3f", row.skip.last!)),\(skip.lastSelectedMACs),\(skip.lastExecutedMACs),\(frameOracle),"
                        + "\(skip.denseMACs),\(String(format: "%.6g", worst))")
                if (t + 1) % 50 == 0 || t + 1 == images.count {
                    printError(
                        "  \(label): frame \(t + 1)/\(images.count)  MAC ratio \(String(format: "%.3f", skip.macRatio))"
                            + "  oracle \(String(format: "%.3f", oracle.ratio))")
                }
            }
            print(
                "setting \(label): per output (relative L2 mean / missed-change): "
                    + graph.outputs.indices.map { k in
                        "\(graph.values[graph.outputs[k]].name) "
                            + String(format: "%.3g/%.3g", fidelity[k].meanRelativeL2, fidelity[k].missedChangeRatio)
                    }.joined(separator: ", "))
            row.macRatio = skip.macRatio
            row.selectedRatio = skip.selectedRatio
            row.oracle = oracle.ratio
            row.keyframes = skip.keyframes
            row.relativeL2 = fidelity.map(\.meanRelativeL2).max() ?? 0
            row.missedChange = fidelity.map(\.missedChangeRatio).max() ?? 0
            let ends = fidelity.map { $0.firstAndLast(100) }
            row.firstLast = (ends.map(\.first).max() ?? 0, ends.map(\.last).max() ?? 0)
            row.recall = peaks.recall
            row.precision = peaks.precision
            rows.append(row)
            print("setting \(label): per layer")
            let denseTimes = Dictionary(
                zip(denseExecutor.stepNodeNames, denseExecutor.stepSeconds), uniquingKeysWith: +)
            print(Self.layerTable(skip.layerStats, denseSeconds: denseTimes, frames: images.count))
            denseExecutor.resetStepTimes()
            let convs = Set(skip.layerStats.map(\.name))
            let denseOther = denseTimes.filter { !convs.contains($0.key) }.values.reduce(0, +)
            print(
                String(
                    format: "  other steps (element-wise, dense): %.2f ms/frame (dense executor: %.2f)",
                    skip.otherSeconds * 1e3 / Double(images.count), denseOther * 1e3 / Double(images.count)))
        }
        print(Self.table(rows))
        if let csv {
            do {
                try (csvLines.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
            } catch {
                throw ModelError("\(csv): \(error.localizedDescription)")
            }
        }
    }

    private static func timed(_ body: () throws(ModelError) -> Void) throws(ModelError) -> Double {
        let start = ContinuousClock.now
        try body()
        return (ContinuousClock.now - start).seconds * 1e3
    }

    private static func percentile(_ values: [Double], _ q: Double) -> Double {
        let s = values.sorted()
        return s[min(s.count - 1, max(0, Int((Double(s.count) * q).rounded(.up)) - 1))]
    }

    private static func table(_ rows: [Row]) -> String {
        var lines = [
            "setting  MACs sel/exec  oracle(θ)     dense ms med/p95/mean    skip ms med/p95/mean   speed-up wall  "
                + "relL2    missed  err first/last100  recall prec  keyframes"
        ]
        for r in rows {
            let (dm, sm) = (r.dense.reduce(0, +) / Double(r.dense.count), r.skip.reduce(0, +) / Double(r.skip.count))
            lines.append(
                String(
                    format:
                        "%-8@ %.3f/%.3f  %.3f(%4.1f)  %7.1f %7.1f %7.1f  %7.1f %7.1f %7.1f   %5.2f×  %.3f  %.2e  %.3f   "
                        + "%.2e/%.2e  %.3f  %.3f  %d",
                    r.label, r.selectedRatio, r.macRatio, r.oracle, r.oracleThreshold, percentile(r.dense, 0.5),
                    percentile(r.dense, 0.95), dm, percentile(r.skip, 0.5), percentile(r.skip, 0.95), sm, dm / sm,
                    sm / dm, r.relativeL2, r.missedChange, r.firstLast.first, r.firstLast.last, r.recall, r.precision,
                    r.keyframes))
        }
        return lines.joined(separator: "\n")
    }

    private static func layerTable(_ layers: [SkipLayerStats], denseSeconds: [String: Double], frames: Int) -> String {
        var lines = [
            "  layer               op              positions  threshold  active%  MACs sel/exec   share  dense frames  "
                + "ms/frame  dense ms  d*"
        ]
        let net = Double(max(1, layers.reduce(0) { $0 + $1.denseMACs }))
        for l in layers {
            let active = Double(l.activePositions) / Double(max(1, l.positions * l.frames))
            lines.append(
                "  " + l.name.padding(toLength: 18, withPad: " ", startingAt: 0) + "  "
                    + l.op.padding(toLength: 14, withPad: " ", startingAt: 0)
                    + String(
                        format: "  %9d  %9.3g  %6.1f%%    %.3f/%.3f  %5.1f%%  %12d  %8.2f  %8.2f  %@", l.positions,
                        l.threshold, active * 100, l.selectedRatio, l.macRatio, Double(l.denseMACs) / net * 100,
                        l.denseFrames, l.seconds * 1e3 / Double(max(1, l.frames)),
                        (denseSeconds[l.name] ?? 0) * 1e3 / Double(max(1, frames)),
                        l.breakEven > 0 ? String(format: "%.2f", l.breakEven) : "-"))
        }
        return lines.joined(separator: "\n")
    }
}

import ArgumentParser
import Foundation
import PipelineKit
import Plugins
import SkipNet
import Synchronization

struct PolicyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Run face-detection pipelines on a clip and compare each with dense full resolution on every frame.",
        discussion: """
            Each configuration is a chain of stages ending in `centerface`, run over the same decoded frames. \
            Columns: GMACs/frame (convolutions the model stages executed, plus the policy's own), its ratio to \
            dense, ms/frame (wall clock of the whole chain in steady state: from its first frame out to its last; \
            model loading and the first frame left out, as onnxruntime's session and warm-up are), and \
            agreement of the detections with \
            dense full resolution on every frame, matched one-to-one at IoU ≥ 0.5: precision, recall, mean IoU. \
            The policy's action histogram follows the table. \
            --add NAME=STAGES adds a configuration ({model} expands to the model properties, {gate} to the \
            residual and gate stages of the built-in skipd configurations).
            """)

    @OptionGroup var clip: ClipOptions
    @Option(help: "Upscale the clip by this factor with GStreamer's videoscale (2: vtest.avi at 1536×1152).")
    var scale = 1
    @Option(help: "Model input WxH at full resolution (default: the frame size; carphone: 192x160).")
    var inputSize: String?
    @Option(help: "Frames (default: the whole clip).") var frames = Int.max
    @Option(help: "Comma-separated built-in configurations to run (default: all; dense always runs).") var only: String?
    @Option(help: "An extra configuration NAME=STAGES (repeatable; always runs).") var add: [String] = []
    @Option(
        help: """
            Also time a reference engine densely on the same frames and thread count, in the same run: \
            onnxruntime (needs python3 with onnxruntime and onnx). Adds its row and a ×ort column (frame-rate ratio).
            """)
    var versus: String?

    /// The built-in configurations: the dense reference first, then the baselines, then skipd's.
    static let gate = "residual threshold=12 block=16 ! gate refresh=300"

    /// The properties of `model` and `skipconv` for the command's model options (`{model}` in `--add`).
    static func modelProperties(model: String, threads: Int, inputSize: String?) -> String {
        "model=\(PropertySyntax.quoted(model)) threads=\(threads)" + (inputSize.map { " input-size=\($0)" } ?? "")
    }

    static func configurations(model m: String) -> [(name: String, stages: String)] {
        let gate = Self.gate
        // skipconv-lite: coarser input threshold and the deeper layers gated at 0.05 × their RMS.
        let lite = "skipconv \(m) input-threshold=8 threshold=0.05"
        return [
            ("dense", "model \(m) ! centerface"),
            ("interval-2", "interval n=2 ! model \(m) ! centerface"),
            ("interval-4", "interval n=4 ! model \(m) ! centerface"),
            ("skipconv", "\(gate) ! skipconv \(m) input-threshold=4 ! centerface"),
            ("skipconv-lite", "\(gate) ! \(lite) ! centerface"),
            ("policy", "\(gate) ! policy ! model \(m) ! centerface"),
            ("skipconv-lite+policy", "\(gate) ! policy ! \(lite) ! centerface"),
            ("skipconv-lite+policy+fusion", "\(gate) ! policy ! \(lite) ! fusion unit=s+st ! centerface"),
            // Bounded context: a change followed 16 pixels past the first layer, every layer refreshed in 30 frames.
            (
                "skipconv-bounded",
                "\(gate) ! skipconv \(m) input-threshold=8 context=16 rolling-refresh=30 ! centerface"
            ),
            // The motion-region baseline: the dense model on crops around the tiles that changed.
            ("regions", "regions \(m) ! centerface"),
            // A tracker moving the boxes of reused frames forward instead of repeating them (buffered IoU: the
            // clip's faces are 12–16 px and move several pixels a frame).
            ("interval-4+track", "interval n=4 ! model \(m) ! centerface ! track buffer=0.5"),
            (
                "skipconv-bounded+track",
                "\(gate) ! skipconv \(m) input-threshold=8 context=16 rolling-refresh=30 ! centerface "
                    + "! track buffer=0.5"
            ),
        ]
    }

    struct Result {
        var name: String
        var macs: Double
        var seconds: Double
        var agreement: DetectionAgreement
        var detections: Int
        var actions: [String: Int]
    }

    func run() async throws {
        guard scale >= 1, frames > 0, clip.threads > 0 else {
            throw ValidationError("scale, frames, threads must be > 0")
        }
        guard versus == nil || versus == "onnxruntime" else { throw ValidationError("--versus takes onnxruntime") }
        if let inputSize, ModelInput.size(inputSize) == nil { throw ValidationError("--input-size must be WxH") }
        guard FileManager.default.fileExists(atPath: clip.model) else {
            printError("error: \(clip.model) does not exist")
            throw ExitCode(2)
        }
        let modelProperties = Self.modelProperties(model: clip.model, threads: clip.threads, inputSize: inputSize)
        var configs = Self.configurations(model: modelProperties)
        if let only {
            let names = Set(only.split(separator: ",").map(String.init) + ["dense"])
            let unknown = names.subtracting(configs.map(\.name))
            guard unknown.isEmpty else {
                throw ValidationError("unknown configuration(s) \(unknown.sorted()); have \(configs.map(\.name))")
            }
            configs = configs.filter { names.contains($0.name) }
        }
        for extra in add {
            guard let eq = extra.firstIndex(of: "="), eq != extra.startIndex else {
                throw ValidationError("--add takes NAME=STAGES, got '\(extra)'")
            }
            let stages = extra[extra.index(after: eq)...].replacingOccurrences(of: "{model}", with: modelProperties)
                .replacingOccurrences(of: "{gate}", with: Self.gate)
            configs.append((String(extra[..<eq]), stages))
        }
        let chains: [(name: String, chain: StageChain)]
        do {
            chains = try configs.map { ($0.name, try StageChain($0.stages, registry: .standard)) }
        } catch {
            printError("error: \(error)")
            throw ExitCode(2)
        }
        let images = try await ClipFrames.decodeForCommand(clip.video, limit: frames, scale: scale)
        let input = ClipFrames.stream(images)
        var reference: [[Detection]] = []
        var results: [Result] = []
        var denseInput: (width: Int, height: Int)?
        for (name, chain) in chains {
            printError("running \(name) on \(input.count) frames…")
            let started = ContinuousClock.now
            let arrivals = Mutex<[ContinuousClock.Instant]>([])
            let out: [Frame]
            do {
                out = try await chain.run(input) { _ in arrivals.withLock { $0.append(.now) } }
            } catch {
                printError("error: \(name): \(error)")
                throw ExitCode(1)
            }
            let seconds = Self.steadySeconds(arrivals.withLock { $0 }, started: started)
            let detections = out.map { $0.metadata[Detections.Key.self]?.items ?? [] }
            if reference.isEmpty { reference = detections }
            var agreement = DetectionAgreement()
            for (r, c) in zip(reference, detections) {
                agreement = agreement + DetectionAgreement(reference: r, candidate: c)
            }
            var macs = 0
            var actions: [String: Int] = [:]
            for frame in out {
                macs += frame.metadata[ComputeCost.Key.self]?.executedMACs ?? 0
                if let decision = frame.metadata[PolicyDecision.Key.self] {
                    macs += decision.macs
                    actions[decision.carried ? "skipped" : decision.action.description, default: 0] += 1
                }
            }
            let n = Double(max(1, out.count))
            let result = Result(
                name: name, macs: Double(macs) / n, seconds: seconds, agreement: agreement,
                detections: detections.reduce(0) { $0 + $1.count }, actions: actions)
            results.append(result)
            printError(Self.row(result, dense: results[0]))
            if name == "dense", let cost = out.first?.metadata[ComputeCost.Key.self] {
                denseInput = (cost.inputWidth, cost.inputHeight)
            }
        }
        var onnxruntime: OnnxruntimeReference.Timing?
        if versus != nil {
            printError("running onnxruntime on \(images.count) frames…")
            do {
                onnxruntime = try OnnxruntimeReference.time(
                    model: clip.model, frames: images, input: denseInput ?? (images[0].width, images[0].height),
                    threads: clip.threads)
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
        }
        print(Self.report(results, frames: input.count, threads: clip.threads, reference: onnxruntime))
    }

    /// Seconds per frame in steady state: from the first frame out of the chain to the last, over the frames
    /// between. Loading the model and the first frame are left out, as onnxruntime's session and warm-up runs are.
    static func steadySeconds(_ arrivals: [ContinuousClock.Instant], started: ContinuousClock.Instant) -> Double {
        guard let first = arrivals.first, let last = arrivals.last, arrivals.count > 1 else {
            return ((arrivals.last ?? .now) - started).seconds
        }
        return (last - first).seconds / Double(arrivals.count - 1)
    }

    static func row(_ r: Result, dense: Result, reference: OnnxruntimeReference.Timing? = nil) -> String {
        r.name.padding(toLength: 28, withPad: " ", startingAt: 0)
            + String(
                format: " %8.3f %6.3f %9.1f %7.3f %7.3f %6.3f %7d", r.macs / 1e9, r.macs / max(1, dense.macs),
                r.seconds * 1e3, r.agreement.precision, r.agreement.recall, r.agreement.meanIoU, r.detections)
            + (reference.map { String(format: " %6.2f", $0.meanMilliseconds / max(1e-9, r.seconds * 1e3)) } ?? "")
    }

    static func report(
        _ results: [Result], frames: Int, threads: Int = 1, reference: OnnxruntimeReference.Timing? = nil
    ) -> String {
        guard let dense = results.first else { return "" }
        var lines = [
            "\(frames) frames, \(threads) thread(s); detections matched to dense full resolution at IoU ≥ 0.5",
            "configuration                  GMAC/f ×dense  ms/frame    prec  recall    IoU   faces"
                + (reference == nil ? "" : "   ×ort"),
        ]
        if let reference {
            lines.append(
                "onnxruntime (dense)".padding(toLength: 28, withPad: " ", startingAt: 0)
                    + String(
                        // Timed only: its detections are not decoded, so no agreement is claimed.
                        format: " %8.3f %6.3f %9.1f       -       -      -       - %6.2f", dense.macs / 1e9, 1.0,
                        reference.meanMilliseconds, 1.0))
        }
        lines += results.map { row($0, dense: dense, reference: reference) }
        for r in results where !r.actions.isEmpty {
            let histogram = r.actions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            lines.append("actions \(r.name): \(histogram.joined(separator: ", "))")
        }
        let baselines = ["dense", "interval-2", "interval-4"]
        let ours = results.filter { !baselines.contains($0.name) }
        if let interval = results.first(where: { $0.name == "interval-2" }) {
            let affordable = ours.filter { $0.macs <= interval.macs * 1.0001 }
            if let best = affordable.max(by: {
                min($0.agreement.precision, $0.agreement.recall)
                    < min($1.agreement.precision, $1.agreement.recall)
            }) {
                let wins =
                    best.agreement.precision > interval.agreement.precision
                    && best.agreement.recall > interval.agreement.recall
                let perfect = interval.agreement.precision == 1 && interval.agreement.recall == 1
                let verdict =
                    wins ? "higher on both" : perfect ? "interval-2 is already perfect here" : "NOT higher on both"
                lines.append(
                    String(
                        format: "at ≤ interval-2's %.3f GMAC/f: best %@ precision %.3f recall %.3f vs %.3f %.3f: %@",
                        interval.macs / 1e9, best.name as NSString, best.agreement.precision, best.agreement.recall,
                        interval.agreement.precision, interval.agreement.recall, verdict as NSString))
            } else {
                lines.append(
                    String(format: "no skipd configuration at ≤ interval-2's %.3f GMAC/f", interval.macs / 1e9))
            }
        }
        let good = ours.filter { $0.agreement.precision >= 0.95 && $0.agreement.recall >= 0.95 }
        if let cheapest = good.min(by: { $0.macs < $1.macs }) {
            lines.append(
                String(
                    format: "lowest GMAC/f with precision and recall ≥ 0.95: %@ %.3f (%.1f%% of dense; target ≤ 50%%)",
                    cheapest.name as NSString, cheapest.macs / 1e9, 100 * cheapest.macs / max(1, dense.macs)))
        } else {
            lines.append("no skipd configuration keeps precision and recall ≥ 0.95")
        }
        if let reference {
            let accurate = results.filter { $0.agreement.precision >= 0.95 && $0.agreement.recall >= 0.95 }
            if let fastest = accurate.min(by: { $0.seconds < $1.seconds }) {
                lines.append(
                    String(
                        format:
                            "fastest with precision and recall ≥ 0.95: %@ %.2f× onnxruntime (%.1f vs %.1f ms/frame)",
                        fastest.name as NSString, reference.meanMilliseconds / max(1e-9, fastest.seconds * 1e3),
                        fastest.seconds * 1e3, reference.meanMilliseconds))
            }
        }
        return lines.joined(separator: "\n")
    }
}

import ArgumentParser
import Foundation
import PipelineKit
import Plugins
import SkipNet

public struct FitPolicyCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "fit-policy",
        abstract: "Learn a resolution/skip policy for the policy stage from a clip of your own camera, without labels.",
        discussion: """
            The model runs densely on every frame at each --scales entry; full resolution is the reference. \
            Walking the clip as the policy would, each decision is labelled with the cheapest action whose \
            detections agree with the reference (F1 at IoU ≥ 0.5 of at least --agreement; no faces either way \
            agrees): skip-K reuses the detections of the frame that last ran for the next K frames (at most \
            --max-skips in a row), a scale runs the model at that scale on this frame. A softmax regression over the policy's \
            features (residual change and energy, smallest face last seen, queue) is fitted to the labels and \
            written as JSON for `policy model=FILE`. Progress goes to stderr.
            """)

    @OptionGroup var clip: ClipOptions
    @Option(help: "Upscale the clip by this factor with GStreamer's videoscale.") var scale = 1
    @Option(help: "Model input WxH at full resolution (default: the frame size).") var inputSize: String?
    @Option(help: "Frames to learn from.") var frames = 300
    @Option(help: "Frames of the clip to pass over first (e.g. to keep a benchmark's frames out of the fit).")
    var from = 0
    @Option(help: "Scales to choose from (1 is always included).") var scales = "1,0.5"
    @Option(help: "Frames a skip action covers (0: no skip action).") var skip = 2
    @Option(help: "Skip decisions in a row before a frame must run (the policy stage's max-skips).") var maxSkips = 2
    @Option(help: "Per-frame detection F1 an action must reach to be acceptable.") var agreement = 0.9
    @Option(help: "Policy file to write.") var output: String

    public func validate() throws {
        guard scale >= 1, frames >= 2, from >= 0, clip.threads > 0, skip >= 0, maxSkips >= 1 else {
            throw ValidationError("scale and threads must be positive, frames ≥ 2, skip ≥ 0, max-skips ≥ 1")
        }
        guard agreement > 0, agreement <= 1 else { throw ValidationError("--agreement must be in (0, 1]") }
        if let inputSize, ModelInput.size(inputSize) == nil { throw ValidationError("--input-size must be WxH") }
        let parsed = scales.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parsed.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 1 }) else {
            throw ValidationError("--scales takes numbers in (0, 1], e.g. 1,0.75,0.5")
        }
    }

    public func run() async throws {
        for path in [clip.model, clip.video] where !FileManager.default.fileExists(atPath: path) {
            printError("error: \(path) does not exist")
            throw ExitCode(2)
        }
        let scaleList = Array(Set(scales.split(separator: ",").compactMap { Double($0) } + [1])).sorted(by: >)
        let input = ClipFrames.stream(
            try await ClipFrames.decodeForCommand(clip.video, limit: frames, scale: scale, skipping: from))
        guard input.count >= 2 else {
            printError("error: \(clip.video) has no 2 frames after the first \(from)")
            throw Exit.invalidFile
        }
        let modelProperties = PolicyBench.modelProperties(
            model: clip.model, threads: clip.threads, inputSize: inputSize)
        var detections: [[[Detection]]] = []
        var residuals: [ResidualMap] = []
        do {
            for s in scaleList {
                printError("running the model at scale \(s) on \(input.count) frames…")
                let out = try await StageChain(
                    "residual threshold=12 block=16 ! policy scales=\(s) skip=0 ! model \(modelProperties) "
                        + "! centerface", registry: .standard
                ).run(input)
                detections.append(out.map { $0.metadata[Detections.Key.self]?.items ?? [] })
                if residuals.isEmpty { residuals = out.compactMap { $0.metadata[ResidualMap.Key.self] } }
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        let reference = detections[0]
        // Cheapest first: skipping, then the scales from the smallest up; full resolution always agrees.
        let actions: [PolicyDecision.Action] =
            (skip > 0 ? [.skip(skip)] : []) + scaleList.reversed().map { .scale($0) }
        func agrees(_ reference: [Detection], _ candidate: [Detection]) -> Bool {
            let a = DetectionAgreement(reference: reference, candidate: candidate)
            let total = 2 * a.matched + a.extra + a.missed
            return total == 0 || Double(2 * a.matched) / Double(total) >= agreement
        }
        // Labels along the path the policy itself would take: a skip reuses what last ran (not the previous
        // frame's reference), and at most --max-skips skip decisions follow each other, as in the stage.
        var samples: [(x: [Double], label: Int)] = []
        var last = reference[0]
        var skipsInRow = 0
        var t = 1
        while t < min(input.count, residuals.count) {
            let label =
                actions.indices.first { k in
                    switch actions[k] {
                    case .skip(let n):
                        return skipsInRow < maxSkips
                            && (t..<min(t + n, input.count)).allSatisfy { agrees(reference[$0], last) }
                    case .scale(let s):
                        return agrees(reference[t], detections[scaleList.firstIndex(of: s) ?? 0][t])
                    }
                } ?? actions.count - 1
            let smallest = last.map { Double($0.height) }.min()
            samples.append((PolicyFeatures(residual: residuals[t], smallestFace: smallest, queue: 0).vector, label))
            switch actions[label] {
            case .skip(let n):
                skipsInRow += 1
                t += n
            case .scale(let s):
                skipsInRow = 0
                last = detections[scaleList.firstIndex(of: s) ?? 0][t]
                t += 1
            }
        }
        let weights = SoftmaxRegression.fit(samples, classes: actions.count)
        let policy = LinearPolicy(actions: actions.map(\.description), weights: weights)
        let chosen = samples.map { policy.choose(vector: $0.x) }
        let correct = zip(chosen, samples).filter { $0 == $1.label }.count
        let tooCheap = zip(chosen, samples).filter { $0 < $1.label }.count
        for (k, action) in actions.enumerated() {
            let labelled = samples.filter { $0.label == k }.count
            let picked = chosen.filter { $0 == k }.count
            printError("\(action): label on \(labelled) frames, chosen on \(picked)")
        }
        printError(
            "training accuracy \(correct)/\(samples.count); chose a cheaper action than the label on \(tooCheap)")
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(policy).write(to: URL(fileURLWithPath: output))
        } catch {
            printError("error: cannot write \(output): \(error)")
            throw ExitCode(1)
        }
        print("wrote \(output)")
    }
}

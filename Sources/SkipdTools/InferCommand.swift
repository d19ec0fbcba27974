import ArgumentParser
import Foundation
import PipelineKit
import Plugins
import SkipNet
import Synchronization

public struct InferCommand: AsyncParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Run a model densely on a clip's frames and write every output as NumPy .npy files.",
        discussion: """
            Frames are decoded to RGB by GStreamer and converted as the model stage converts them: resized to the \
            input size (nearest neighbour), (value − mean) × scale per channel, in the model's layout. Output NAME \
            of frame i is written to DIR/frame<i, 5 digits>_NAME.npy (NumPy format 1.0, float32 little-endian, C \
            order); in NAME every character but letters, digits, '.', '-' and '_' becomes '_', and names that then \
            collide get their output position appended. Progress goes to stderr, a summary line to stdout.
            """)

    @OptionGroup var clip: ClipOptions
    @Option(help: "Frames to run (default: the whole clip).") var frames: Int?
    @Option(
        help: "Model input WxH (default: the video's size, or the nearest multiples of 32 if the model rejects it).")
    var input: String?
    @Option(help: "Directory the .npy files go to (created if missing).") var npy: String
    @Option(help: "Subtracted from each input channel: one value or three, comma-separated.") var mean = "0"
    @Option(help: "Multiplies each input channel after the mean: one value or three.") var scale = "1"
    @Option(help: "Channel order the model expects: rgb or bgr.") var channelOrder = "rgb"

    public func validate() throws {
        guard (frames ?? 1) > 0, clip.threads > 0, clip.threads <= 64 else {
            throw ValidationError("--frames must be positive, --threads 1…64")
        }
        if let input, ModelInput.size(input) == nil { throw ValidationError("--input must be WxH, e.g. 768x576") }
        for (name, text) in [("--mean", mean), ("--scale", scale)] where Self.numbers(text) == nil {
            throw ValidationError("\(name) takes one or three comma-separated numbers")
        }
        guard ["rgb", "bgr"].contains(channelOrder) else { throw ValidationError("--channel-order is rgb or bgr") }
    }

    public func run() async throws {
        let directory = URL(fileURLWithPath: npy)
        do {
            guard FileManager.default.fileExists(atPath: clip.model) else {
                throw ClipError("\(clip.model) does not exist")
            }
            guard FileManager.default.fileExists(atPath: clip.video) else {
                throw ClipError("\(clip.video) does not exist")
            }
            // A file that is no model fails here, before any decoding.
            _ = try ONNXImporter.declaredInputShape(path: clip.model)
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw ClipError("cannot create the directory \(npy): \(error.localizedDescription)")
            }
            guard FileManager.default.isWritableFile(atPath: npy) else { throw ClipError("cannot write to \(npy)") }
        } catch {
            printError("error: \(error)")
            throw Exit.invalidFile
        }
        let run = InferRun(command: self, directory: directory)
        let start = ContinuousClock.now
        printError("running \(clip.model) on \(frames.map { "up to \($0) frames of " } ?? "")\(clip.video)…")
        let count: Int
        do {
            count = try await ClipFrames.forEach(clip.video, limit: frames ?? .max) { index, image in
                try run.infer(index, image)
            }
        } catch let error as InferRun.WriteError {
            printError("error: \(error)")
            throw Exit.runtimeFailure
        } catch {
            printError("error: \(error)")
            throw Exit.invalidFile
        }
        guard count > 0 else {
            printError("error: \(clip.video) gave no frames")
            throw Exit.invalidFile
        }
        let summary = run.summary
        let seconds = (ContinuousClock.now - start).seconds
        print(
            "wrote \(count) frames × \(summary.outputs) outputs (\(count * summary.outputs) .npy files, "
                + String(format: "%.1f MB", Double(summary.bytes) / 1e6) + ") to \(npy), input "
                + "\(summary.inputShape.shapeText), in " + String(format: "%.1f s", seconds))
    }

    /// `0.5` or `1,2,3` → the numbers, nil unless one or three finite ones.
    static func numbers(_ text: String) -> [Float]? {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map {
            Float($0.trimmingCharacters(in: .whitespaces))
        }
        guard [1, 3].contains(values.count), values.allSatisfy({ $0?.isFinite == true }) else { return nil }
        return values.compactMap { $0 }
    }
}

/// The state of one `infer` run, used from the decoder's callback: the executor is built for the first frame's
/// size and kept.
private final class InferRun: Sendable {
    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    struct Summary {
        var outputs = 0
        var bytes = 0
        var inputShape: [Int] = []
    }

    private struct State {
        var model: (executor: DenseExecutor, input: ModelInput, stems: [String])?
        var buffer: [Float] = []
        var summary = Summary()
        var lastReport = ContinuousClock.now
    }

    private let path: String
    private let fixedSize: (width: Int, height: Int)?
    private let mean: [Float]
    private let scale: [Float]
    private let channelOrder: String
    private let threads: Int
    private let directory: URL
    private let state = Mutex(State())

    init(command: InferCommand, directory: URL) {
        path = command.clip.model
        fixedSize = command.input.flatMap(ModelInput.size)
        mean = InferCommand.numbers(command.mean) ?? [0]
        scale = InferCommand.numbers(command.scale) ?? [1]
        channelOrder = command.channelOrder
        threads = command.clip.threads
        self.directory = directory
    }

    var summary: Summary { state.withLock { $0.summary } }

    /// Runs frame `index` and writes its outputs.
    func infer(_ index: Int, _ image: VideoImage) throws {
        try state.withLock { s in
            if s.model == nil {
                let (executor, input) = try load(width: image.width, height: image.height)
                let graph = executor.graph
                s.model = (executor, input, NPYFile.stems(graph.outputs.map { graph.values[$0].name }))
                s.buffer = Array(repeating: 0, count: input.shape.reduce(1, *))
                s.summary.outputs = graph.outputs.count
                s.summary.inputShape = input.shape
            }
            guard let model = s.model else { return }
            let (executor, input, stems) = model
            try s.buffer.withUnsafeMutableBufferPointer { b throws(ModelError) in
                guard let base = b.baseAddress else { return }
                try input.fill(image, into: base)
            }
            try s.buffer.withUnsafeBufferPointer { b throws(ModelError) in try executor.run(b) }
            for (k, stem) in stems.enumerated() {
                let data = NPYFile.contents(shape: executor.outputShapes[k], values: executor.output(k))
                let number = String(index)
                let name = "frame" + String(repeating: "0", count: max(0, 5 - number.count)) + number + "_" + stem
                let file = directory.appendingPathComponent(name + ".npy")
                do {
                    try data.write(to: file)
                } catch {
                    throw WriteError(description: "cannot write \(file.path): \(error.localizedDescription)")
                }
                s.summary.bytes += data.count
            }
            let now = ContinuousClock.now
            if now - s.lastReport >= .seconds(5) {
                printError("  frame \(index + 1)")
                s.lastReport = now
            }
        }
    }

    /// The model at `--input`, else at the frame's size or, if the model rejects that, the nearest multiples of
    /// 32 (as the model stage's `input-size=auto` does).
    private func load(width: Int, height: Int) throws(ModelError) -> (executor: DenseExecutor, input: ModelInput) {
        func load(_ w: Int, _ h: Int) throws(ModelError) -> (executor: DenseExecutor, input: ModelInput) {
            try ModelInput.loadModel(
                path: path, width: w, height: h, threads: threads, mean: mean, scale: scale,
                channelOrder: channelOrder)
        }
        if let fixedSize { return try load(fixedSize.width, fixedSize.height) }
        do {
            return try load(width, height)
        } catch {
            let snapped = { (n: Int) in max(32, (n + 16) / 32 * 32) }
            let (w, h) = (snapped(width), snapped(height))
            guard (w, h) != (width, height) else { throw error }
            do {
                return try load(w, h)
            } catch {
                throw ModelError("\(error) (tried \(width)x\(height), then \(w)x\(h))")
            }
        }
    }
}

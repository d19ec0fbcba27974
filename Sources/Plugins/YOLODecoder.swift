import Foundation
import PipelineKit

/// Turns a YOLO detector head (YOLOv5 or YOLOv8 layout) into labelled boxes in frame pixels.
///
/// ```
/// filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
///   ! model model=yolov8n.onnx input-size=640x480 scale=0.0039215686 ! detect labels=coco.names threshold=0.3
///   ! overlay ! videoconvert ! x264enc ! mp4mux ! filesink location=out/objects.mp4
/// ```
/// (Ultralytics exports take pixels / 255: `scale=0.0039215686` on the model stage.) Reads output `output` of the
/// ``ModelOutputs`` a `model` or `skipconv` stage attached, a `[1, A, B]` tensor:
/// - v5: `[1, N, 5+C]`, one row per box: cx, cy, w, h, objectness, C class scores; score = objectness × class.
/// - v8: `[1, 4+C, N]`, one column per box: cx, cy, w, h, C class scores; score = class score.
///
/// `format=auto` tells them apart by the shape. With `labels`, C is known: the layout C fits (B = 5 + C for v5,
/// A = 4 + C for v8) wins, and fitting both or neither is an error. Without, the longer axis holds the boxes (a
/// head has far more candidate boxes than attributes): A > B is v5, B > A is v8, A = B an error. A model run so
/// small that it has fewer boxes than attributes needs `format=`.
///
/// Each box takes its best class (the first on a tie); boxes scoring above `threshold` are suppressed greedily by
/// score above IoU `nms` within their class (boxes of different classes never suppress each other), and at most
/// `max` are kept, highest score first. Box coordinates are model-input pixels: they are clipped to the input and
/// mapped to frame pixels per axis, so they are right whatever size the model ran at. Attaches ``Detections``
/// with the class index and, from `labels`, its name (`jsonsink` writes them under `faces`, as `centerface`'s).
public struct YOLODecoder: Stage {
    public static let info = StageInfo(
        name: "detect",
        summary: "Decodes YOLOv5 / YOLOv8 detector outputs into labelled boxes (in frame pixels)",
        example: "model model=yolov8n.onnx scale=0.0039215686 ! detect labels=coco.names threshold=0.3",
        properties: [
            .file("labels", optional: true, "class names, one per line (line k names class k); default: none"),
            .double("threshold", default: 0.25, range: 0...1, "score above which a box is a candidate"),
            .double("nms", default: 0.45, range: 0...1, "IoU above which the lower of two same-class boxes is dropped"),
            .int("max", default: 300, range: 1...100_000, "most detections kept per frame, highest scores first"),
            .string("output", default: "0", "the detection output, by name or position"),
            .choice("format", default: "auto", Format.allCases.map(\.rawValue), "head layout; auto: from the shape"),
        ],
        requires: ["outputs"], provides: ["faces"])

    public enum Format: String, Sendable, CaseIterable {
        case auto, v5, v8
    }

    public struct Options: Sendable {
        public var output = "0"
        public var format = Format.auto
        public var threshold: Float = 0.25
        public var nms: Float = 0.45
        public var max = 300
        /// Class names by index; nil: detections carry the index only.
        public var labels: [String]?

        public init() {}
    }

    private let options: Options

    public init(properties: StageProperties, context: StageContext) throws {
        var options = Options()
        options.output = properties.string("output")
        options.format = Format(rawValue: properties.string("format")) ?? .auto
        options.threshold = Float(properties.double("threshold"))
        options.nms = Float(properties.double("nms"))
        options.max = properties.int("max")
        let labels = properties.string("labels")
        if !labels.isEmpty { options.labels = try Self.loadLabels(path: labels) }
        self.options = options
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        guard let outputs = frame.metadata[ModelOutputs.Key.self] else { throw DetectError.noOutputs }
        var frame = frame
        frame.metadata[Detections.Key.self] = Detections(try Self.decode(outputs, options: options))
        return frame
    }

    /// Class names from a file, one per line; trailing blank lines are ignored, a blank line before a name is an
    /// error (it would shift every later class).
    public static func loadLabels(path: String) throws(DetectError) -> [String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .labels(path: path, problem: "cannot be read as UTF-8 text (\(error.localizedDescription))")
        }
        // `\r\n` is one Character in Swift: split on any newline, not on "\n".
        var names = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        while names.last?.isEmpty == true { names.removeLast() }
        guard !names.isEmpty else { throw .labels(path: path, problem: "holds no class names") }
        if let blank = names.firstIndex(of: "") {
            throw .labels(path: path, problem: "line \(blank + 1) is blank (one class name per line)")
        }
        return names
    }

    /// Where the boxes and classes are in a `[1, A, B]` head.
    struct Layout: Equatable {
        var format: Format
        var boxes: Int
        var classes: Int
    }

    /// The layout of a head of `shape` under `format` (see the type's documentation), checked against the number of
    /// class names when there are some.
    static func layout(shape: [Int], format: Format, labels: Int?) throws(DetectError) -> Layout {
        guard shape.count == 3, shape[0] == 1, shape[1] > 0, shape[2] > 0 else {
            throw .badShape(shape: shape, problem: "expected [1, N, 5+C] (v5) or [1, 4+C, N] (v8)")
        }
        let (a, b) = (shape[1], shape[2])
        let v5 = Layout(format: .v5, boxes: a, classes: b - 5)
        let v8 = Layout(format: .v8, boxes: b, classes: a - 4)
        let chosen: Layout
        switch format {
        case .v5: chosen = v5
        case .v8: chosen = v8
        case .auto:
            if let labels {
                switch (v5.classes == labels, v8.classes == labels) {
                case (true, false): chosen = v5
                case (false, true): chosen = v8
                case (true, true): throw .ambiguous(shape: shape, why: "both fit \(labels) classes")
                case (false, false): throw .labelCount(labels: labels, shape: shape, classes: nil)
                }
            } else if a == b {
                throw .ambiguous(shape: shape, why: "as many boxes as attributes")
            } else {
                chosen = a > b ? v5 : v8
            }
        }
        guard chosen.classes >= 1 else {
            let expected = chosen.format == .v5 ? "[1, N, 5+C]" : "[1, 4+C, N]"
            throw .badShape(shape: shape, problem: "as \(chosen.format.rawValue) (\(expected)) it has no class scores")
        }
        if let labels, labels != chosen.classes {
            throw .labelCount(labels: labels, shape: shape, classes: (chosen.format, chosen.classes))
        }
        return chosen
    }

    /// One frame's detections: candidates above the threshold, class-wise NMS, at most `max`, in frame pixels,
    /// highest score first.
    public static func decode(_ outputs: ModelOutputs, options: Options = Options()) throws(DetectError)
        -> [Detection]
    {
        guard let index = outputs.index(of: options.output) else {
            throw .missingOutput(name: options.output, available: outputs.tensors.map(\.name))
        }
        let head = outputs.tensors[index]
        let layout = try layout(shape: head.shape, format: options.format, labels: options.labels?.count)
        guard head.data.count == head.shape.reduce(1, *) else {
            throw .badShape(shape: head.shape, problem: "holds \(head.data.count) values")
        }
        let (inputW, inputH) = outputs.inputSize
        let (frameW, frameH) = outputs.frameSize
        guard inputW > 0, inputH > 0, frameW > 0, frameH > 0 else {
            throw .badSizes(input: outputs.inputSize, frame: outputs.frameSize)
        }
        let candidates = Self.candidates(head.data, layout, threshold: options.threshold, input: (inputW, inputH))
        let kept = suppress(candidates, above: options.nms, keeping: options.max)
        let sx = Float(frameW) / Float(inputW)
        let sy = Float(frameH) / Float(inputH)
        return kept.map { d in
            Detection(
                x0: d.x0 * sx, y0: d.y0 * sy, x1: d.x1 * sx, y1: d.y1 * sy, score: d.score, classIndex: d.classIndex,
                label: d.classIndex.flatMap { options.labels?[$0] })
        }
    }

    /// Boxes scoring above `threshold` with their best class, in input pixels clipped to the input.
    private static func candidates(
        _ data: [Float], _ layout: Layout, threshold: Float, input: (width: Int, height: Int)
    ) -> [Detection] {
        let (n, classes) = (layout.boxes, layout.classes)
        // Attribute k of box i, and where the class scores start.
        let v5 = layout.format == .v5
        let stride = v5 ? 5 + classes : 1
        let step = v5 ? 1 : n
        let first = v5 ? 5 : 4
        var best = [Float](repeating: -.infinity, count: n)
        var bestClass = [Int](repeating: 0, count: n)
        data.withUnsafeBufferPointer { d in
            // Class by class, so v8's class-major rows are read in order.
            for c in 0..<classes {
                for i in 0..<n {
                    let base = i * stride
                    var s = d[base + (first + c) * step]
                    if v5 { s *= d[base + 4] }
                    // `>` is false for NaN: a broken score never wins, and never passes the threshold.
                    if s > best[i] {
                        best[i] = s
                        bestClass[i] = c
                    }
                }
            }
        }
        let (w, h) = (Float(input.width), Float(input.height))
        var found: [Detection] = []
        for i in 0..<n where best[i] > threshold {
            let base = i * stride
            let (cx, cy, bw, bh) = (data[base], data[base + step], data[base + 2 * step], data[base + 3 * step])
            guard cx.isFinite, cy.isFinite, bw > 0, bh > 0, bw.isFinite, bh.isFinite else { continue }
            found.append(
                Detection(
                    x0: min(max(0, cx - bw / 2), w), y0: min(max(0, cy - bh / 2), h),
                    x1: min(max(0, cx + bw / 2), w), y1: min(max(0, cy + bh / 2), h),
                    score: best[i], classIndex: bestClass[i]))
        }
        return found
    }

    /// Greedy class-wise non-maximum suppression: highest score first, dropping a box that overlaps a kept box of
    /// its own class by more than `threshold` IoU, until `limit` are kept. Equal scores keep the head's order.
    static func suppress(_ boxes: [Detection], above threshold: Float, keeping limit: Int) -> [Detection] {
        let order = boxes.indices.sorted {
            boxes[$0].score > boxes[$1].score || (boxes[$0].score == boxes[$1].score && $0 < $1)
        }
        var kept: [Detection] = []
        for k in order where kept.count < limit {
            let box = boxes[k]
            if !kept.contains(where: { $0.classIndex == box.classIndex && $0.iou(box) > threshold }) {
                kept.append(box)
            }
        }
        return kept
    }
}

public enum DetectError: Error, CustomStringConvertible, Equatable {
    case noOutputs
    case missingOutput(name: String, available: [String])
    case badShape(shape: [Int], problem: String)
    case ambiguous(shape: [Int], why: String)
    /// `classes` nil: neither layout fits the labels.
    case labelCount(labels: Int, shape: [Int], classes: (format: YOLODecoder.Format, count: Int)?)
    case labels(path: String, problem: String)
    case badSizes(input: (width: Int, height: Int), frame: (width: Int, height: Int))

    public var description: String {
        switch self {
        case .noOutputs:
            "detect needs a model or skipconv stage before it (… ! model model=yolov8n.onnx ! detect)"
        case .missingOutput(let name, let available):
            "detect: no model output '\(name)' (outputs: \(available.joined(separator: ", ")); a name or a position "
                + "0…\(max(0, available.count - 1)))"
        case .badShape(let shape, let problem):
            "detect: output shape \(shape): \(problem); is this a YOLOv5 or YOLOv8 detection head?"
        case .ambiguous(let shape, let why):
            "detect: output shape \(shape) could be v5 [1, N, 5+C] or v8 [1, 4+C, N] (\(why)): set format=v5 or "
                + "format=v8"
        case .labelCount(let labels, let shape, let classes):
            if let classes {
                "detect: the labels file has \(labels) names but output \(shape) as \(classes.format.rawValue) has "
                    + "\(classes.count) classes"
            } else {
                "detect: the labels file has \(labels) names but output \(shape) has neither \(labels + 5) columns "
                    + "(v5) nor \(labels + 4) rows (v8)"
            }
        case .labels(let path, let problem):
            "detect: labels file \(path) \(problem)"
        case .badSizes(let input, let frame):
            "detect: empty model input (\(input.width)×\(input.height)) or frame (\(frame.width)×\(frame.height))"
        }
    }

    public static func == (a: Self, b: Self) -> Bool { a.description == b.description }
}

import Foundation
import PipelineKit

/// Turns CenterFace's four output maps into face boxes with five landmarks each, in frame pixels.
///
/// ```
/// … ! residual ! gate ! skipconv model=assets/centerface.onnx ! centerface threshold=0.5 nms=0.3
///   ! jsonsink location=out/faces.jsonl
/// ```
/// Reads the ``ModelOutputs`` a `model` or `skipconv` stage attached (a skipped frame carries the reused ones and
/// is decoded the same way): heatmap `[1,1,h,w]` (sigmoid), scale `[1,2,h,w]`, offset `[1,2,h,w]` and landmarks
/// `[1,10,h,w]`, named by output name or position. Every cell above `threshold` is a candidate; overlapping
/// candidates are suppressed greedily by score above IoU `nms`; coordinates are mapped from the model's input size
/// to the frame's per axis, so they are right whatever size the model ran at. Attaches ``Detections`` and posts
/// the smallest face height in frame pixels (frames without faces post nothing) as `faces.smallest` on the run's
/// feedback board, for a `policy` earlier in the pipeline.
public struct CenterFaceDecoder: Stage {
    public static let info = StageInfo(
        name: "centerface",
        summary: "Decodes CenterFace outputs into face boxes and landmarks (in frame pixels)",
        example: "skipconv model=assets/centerface.onnx ! centerface threshold=0.5 nms=0.3",
        properties: [
            .double("threshold", default: 0.5, range: 0...1, "heatmap score above which a cell is a face"),
            .double("nms", default: 0.3, range: 0...1, "IoU above which the lower-scoring of two boxes is dropped"),
            .string("heatmap", default: "0", "heatmap output, by name or position"),
            .string("scale", default: "1", "scale (log box size) output, by name or position"),
            .string("offset", default: "2", "centre offset output, by name or position"),
            .string("landmarks", default: "3", "landmark output, by name or position"),
        ],
        requires: ["outputs"], provides: ["faces"])

    /// Which model outputs hold the four maps: output names, or positions when no output has that name.
    public struct OutputNames: Sendable, Equatable {
        public var heatmap: String
        public var scale: String
        public var offset: String
        public var landmarks: String

        public init(heatmap: String = "0", scale: String = "1", offset: String = "2", landmarks: String = "3") {
            self.heatmap = heatmap
            self.scale = scale
            self.offset = offset
            self.landmarks = landmarks
        }
    }

    private let names: OutputNames
    private let threshold: Float
    private let nms: Float
    private let board: FeedbackBoard

    public init(properties: StageProperties, context: StageContext) throws {
        names = OutputNames(
            heatmap: properties.string("heatmap"), scale: properties.string("scale"),
            offset: properties.string("offset"), landmarks: properties.string("landmarks"))
        threshold = Float(properties.double("threshold"))
        nms = Float(properties.double("nms"))
        board = context.board
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        guard let outputs = frame.metadata[ModelOutputs.Key.self] else { throw CenterFaceError.noOutputs }
        let faces = try Self.decode(outputs, names: names, threshold: threshold, nms: nms)
        if let smallest = faces.map(\.height).min() {
            board.postMinimum(PolicyFeatures.smallestFaceKey, Double(smallest))
        }
        var frame = frame
        frame.metadata[Detections.Key.self] = Detections(faces)
        return frame
    }

    /// Standard CenterFace decoding of one frame's outputs: candidates above `threshold`, boxes and landmarks in
    /// model-input pixels, greedy NMS at IoU > `nms`, then every coordinate scaled to frame pixels. Sorted by
    /// score, highest first.
    public static func decode(
        _ outputs: ModelOutputs, names: OutputNames = OutputNames(), threshold: Float = 0.5, nms: Float = 0.3
    ) throws(CenterFaceError) -> [Detection] {
        let heat = try output(outputs, names.heatmap, role: "heatmap", channels: 1)
        let (h, w) = (heat.shape[2], heat.shape[3])
        let scale = try output(outputs, names.scale, role: "scale", channels: 2, size: (h, w))
        let offset = try output(outputs, names.offset, role: "offset", channels: 2, size: (h, w))
        let marks = try output(outputs, names.landmarks, role: "landmarks", channels: 10, size: (h, w))
        let (inputW, inputH) = outputs.inputSize
        let (frameW, frameH) = outputs.frameSize
        guard inputW > 0, inputH > 0, frameW > 0, frameH > 0 else {
            throw .badSizes(input: outputs.inputSize, frame: outputs.frameSize)
        }
        // The maps' stride in input pixels (4 for CenterFace), from the shapes rather than assumed.
        let strideY = Float(inputH) / Float(h)
        let strideX = Float(inputW) / Float(w)
        let plane = h * w

        var candidates: [Detection] = []
        for cy in 0..<h {
            for cx in 0..<w {
                let i = cy * w + cx
                let score = heat.data[i]
                // `>` is false for NaN: a broken map yields nothing rather than garbage boxes.
                guard score > threshold else { continue }
                let sh = exp(scale.data[i]) * strideY
                let sw = exp(scale.data[plane + i]) * strideX
                let y = (Float(cy) + offset.data[i] + 0.5) * strideY
                let x = (Float(cx) + offset.data[plane + i] + 0.5) * strideX
                let x0 = min(max(0, x - sw / 2), Float(inputW))
                let y0 = min(max(0, y - sh / 2), Float(inputH))
                let landmarks = (0..<5).map { j in
                    SIMD2(marks.data[(2 * j + 1) * plane + i] * sw + x0, marks.data[2 * j * plane + i] * sh + y0)
                }
                candidates.append(
                    Detection(
                        x0: x0, y0: y0, x1: min(x0 + sw, Float(inputW)), y1: min(y0 + sh, Float(inputH)),
                        score: score, landmarks: landmarks))
            }
        }

        let kept = suppress(candidates, above: nms)
        let sx = Float(frameW) / Float(inputW)
        let sy = Float(frameH) / Float(inputH)
        return kept.map { d in
            Detection(
                x0: d.x0 * sx, y0: d.y0 * sy, x1: d.x1 * sx, y1: d.y1 * sy, score: d.score,
                landmarks: d.landmarks.map { $0 * SIMD2(sx, sy) })
        }
    }

    /// Greedy non-maximum suppression: highest score first, dropping every later box overlapping a kept one by
    /// more than `threshold` IoU. Equal scores keep their (row-major) order, so the result is deterministic.
    static func suppress(_ boxes: [Detection], above threshold: Float) -> [Detection] {
        let order = boxes.indices.sorted {
            boxes[$0].score > boxes[$1].score || (boxes[$0].score == boxes[$1].score && $0 < $1)
        }
        var kept: [Detection] = []
        for k in order where !kept.contains(where: { $0.iou(boxes[k]) > threshold }) {
            kept.append(boxes[k])
        }
        return kept
    }

    /// The output `name` resolves to, checked to be `[1, channels, h, w]` (with the heatmap's `h`, `w` if given).
    private static func output(
        _ outputs: ModelOutputs, _ name: String, role: String, channels: Int, size: (Int, Int)? = nil
    ) throws(CenterFaceError) -> ModelOutputs.Output {
        guard let index = outputs.index(of: name) else {
            throw .missingOutput(role: role, name: name, available: outputs.tensors.map(\.name))
        }
        let t = outputs.tensors[index]
        let shapeOK =
            t.shape.count == 4 && t.shape[0] == 1 && t.shape[1] == channels && t.shape[2] > 0 && t.shape[3] > 0
            && (size.map { t.shape[2] == $0.0 && t.shape[3] == $0.1 } ?? true)
        guard shapeOK, t.data.count == t.shape.reduce(1, *) else {
            let expected = size.map { "[1, \(channels), \($0.0), \($0.1)]" } ?? "[1, \(channels), h, w]"
            throw .badShape(role: role, name: t.name, shape: t.shape, expected: expected)
        }
        return t
    }
}

public enum CenterFaceError: Error, CustomStringConvertible, Equatable {
    case noOutputs
    case missingOutput(role: String, name: String, available: [String])
    case badShape(role: String, name: String, shape: [Int], expected: String)
    case badSizes(input: (width: Int, height: Int), frame: (width: Int, height: Int))

    public var description: String {
        switch self {
        case .noOutputs:
            "centerface needs a model or skipconv stage before it (… ! skipconv model=assets/centerface.onnx ! "
                + "centerface)"
        case .missingOutput(let role, let name, let available):
            "centerface: no model output '\(name)' for the \(role) (outputs: \(available.joined(separator: ", ")); "
                + "a name or a position 0…\(max(0, available.count - 1)))"
        case .badShape(let role, let name, let shape, let expected):
            "centerface: \(role) output '\(name)' has shape \(shape), expected \(expected): is this CenterFace, "
                + "and are heatmap, scale, offset and landmarks set right?"
        case .badSizes(let input, let frame):
            "centerface: empty model input (\(input.width)×\(input.height)) or frame (\(frame.width)×\(frame.height))"
        }
    }

    public static func == (a: Self, b: Self) -> Bool { a.description == b.description }
}

import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// CenterFace decoding on hand-made maps whose boxes and landmarks are worked out by hand in each test, and one
/// run of the real model on carphone frames.
@Suite struct CenterFaceDecoderTests {
    /// One candidate cell of hand-made maps: heatmap score, log box size (height, width) before the stride, centre
    /// offset (y, x) in cells, and landmarks as (y, x) fractions of the box for j = 0..<5.
    struct Cell {
        var y: Int
        var x: Int
        var score: Float
        var scale: (h: Float, w: Float) = (0, 0)
        var offset: (y: Float, x: Float) = (0, 0)
        var landmarks: [(y: Float, x: Float)] = Array(repeating: (0, 0), count: 5)
    }

    /// CenterFace-shaped outputs (`h`×`w` maps, named as the real model names them) with `cells` set and every other
    /// heatmap cell at 0.01.
    static func outputs(
        h: Int, w: Int, cells: [Cell], input: (width: Int, height: Int), frame: (width: Int, height: Int)? = nil
    ) -> ModelOutputs {
        let plane = h * w
        var heat = [Float](repeating: 0.01, count: plane)
        var scale = [Float](repeating: 0, count: 2 * plane)
        var offset = [Float](repeating: 0, count: 2 * plane)
        var marks = [Float](repeating: 0, count: 10 * plane)
        for c in cells {
            let i = c.y * w + c.x
            heat[i] = c.score
            scale[i] = c.scale.h
            scale[plane + i] = c.scale.w
            offset[i] = c.offset.y
            offset[plane + i] = c.offset.x
            for (j, m) in c.landmarks.enumerated() {
                marks[2 * j * plane + i] = m.y
                marks[(2 * j + 1) * plane + i] = m.x
            }
        }
        return ModelOutputs(
            tensors: [
                .init(name: "537", shape: [1, 1, h, w], data: heat),
                .init(name: "538", shape: [1, 2, h, w], data: scale),
                .init(name: "539", shape: [1, 2, h, w], data: offset),
                .init(name: "540", shape: [1, 10, h, w], data: marks),
            ], inputSize: input, frameSize: frame ?? input)
    }

    private func expectClose(
        _ d: Detection, box: [Float], landmarks: [[Float]]? = nil,
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        let got = [d.x0, d.y0, d.x1, d.y1]
        #expect(
            zip(got, box).allSatisfy { abs($0 - $1) < 1e-4 }, "box \(got), expected \(box)",
            sourceLocation: sourceLocation)
        if let landmarks {
            let points = d.landmarks.map { [$0.x, $0.y] }
            let close =
                points.count == landmarks.count
                && zip(points, landmarks).allSatisfy { p, q in abs(p[0] - q[0]) < 1e-4 && abs(p[1] - q[1]) < 1e-4 }
            #expect(close, "landmarks \(points), expected \(landmarks)", sourceLocation: sourceLocation)
        }
    }

    /// One peak at cell (y 2, x 3) of 8×8 maps of a 32×32 input (stride 4), scale (ln 4, ln 2), offset (0.25, 0.5):
    /// s_h = 4·4 = 16, s_w = 2·4 = 8; centre y = (2 + 0.25 + 0.5)·4 = 11, x = (3 + 0.5 + 0.5)·4 = 16;
    /// box x 12…20, y 3…19; landmark j at (12 + 8·fx, 3 + 16·fy).
    @Test func onePeakGivesItsBoxAndLandmarks() throws {
        let fractions: [(y: Float, x: Float)] = [(0.25, 0.25), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (0.75, 0.75)]
        let cell = Cell(
            y: 2, x: 3, score: 0.9, scale: (log(4), log(2)), offset: (0.25, 0.5), landmarks: fractions)
        let faces = try CenterFaceDecoder.decode(Self.outputs(h: 8, w: 8, cells: [cell], input: (32, 32)))
        try #require(faces.count == 1)
        #expect(faces[0].score == 0.9)
        expectClose(
            faces[0], box: [12, 3, 20, 19], landmarks: [[14, 7], [18, 7], [16, 11], [14, 15], [18, 15]])
    }

    /// Boxes are clipped at the input's edges: x0, y0 at 0, x1, y1 at the input size (x1 = x0 + s_w before that).
    @Test func boxesAreClippedToTheInput() throws {
        // Both 16×16 (scale ln 4). Cell (0, 0): centre (2, 2) → 0…16. Cell (7, 7): centre 30 → 22…32 (not 38).
        let cells = [
            Cell(y: 0, x: 0, score: 0.8, scale: (log(4), log(4))),
            Cell(y: 7, x: 7, score: 0.7, scale: (log(4), log(4))),
        ]
        let faces = try CenterFaceDecoder.decode(Self.outputs(h: 8, w: 8, cells: cells, input: (32, 32)))
        try #require(faces.count == 2)
        expectClose(faces[0], box: [0, 0, 16, 16])
        expectClose(faces[1], box: [22, 22, 32, 32])
    }

    /// Two 16×16 boxes one cell apart (x 6…22 and 10…26, IoU 12·16 / (2·256 − 192) = 0.6 > 0.3): only the higher
    /// score survives; a far one is kept. The result is sorted by score.
    @Test func nmsKeepsTheHigherOfOverlappingCandidates() throws {
        let s: (Float, Float) = (log(4), log(4))
        let cells = [
            Cell(y: 2, x: 3, score: 0.8, scale: s), Cell(y: 2, x: 4, score: 0.9, scale: s),
            Cell(y: 12, x: 12, score: 0.6, scale: s),
        ]
        let faces = try CenterFaceDecoder.decode(Self.outputs(h: 16, w: 16, cells: cells, input: (64, 64)))
        #expect(faces.map(\.score) == [0.9, 0.6])
        expectClose(faces[0], box: [10, 2, 26, 18])  // centre ((4 + 0.5)·4, (2 + 0.5)·4) = (18, 10)
        expectClose(faces[1], box: [42, 42, 58, 58])
        // At nms 0.7 the pair's IoU of 0.6 no longer counts as overlap.
        let loose = try CenterFaceDecoder.decode(Self.outputs(h: 16, w: 16, cells: cells, input: (64, 64)), nms: 0.7)
        #expect(loose.map(\.score) == [0.9, 0.8, 0.6])
    }

    @Test func nothingAtOrBelowTheThreshold() throws {
        let cells = [Cell(y: 1, x: 1, score: 0.5), Cell(y: 2, x: 2, score: 0.49), Cell(y: 3, x: 3, score: .nan)]
        let outputs = Self.outputs(h: 8, w: 8, cells: cells, input: (32, 32))
        #expect(try CenterFaceDecoder.decode(outputs).isEmpty)
        #expect(try CenterFaceDecoder.decode(outputs, threshold: 0.45).map(\.score) == [0.5, 0.49])
    }

    /// A frame twice the input's width and three times its height (a policy ran the model small): every x doubles,
    /// every y triples. The single-peak case of above gives box x 24…40, y 9…57.
    @Test func coordinatesAreMappedToTheFramePerAxis() throws {
        let cell = Cell(
            y: 2, x: 3, score: 0.9, scale: (log(4), log(2)), offset: (0.25, 0.5),
            landmarks: Array(repeating: (0.5, 0.5), count: 5))
        let faces = try CenterFaceDecoder.decode(
            Self.outputs(h: 8, w: 8, cells: [cell], input: (32, 32), frame: (64, 96)))
        try #require(faces.count == 1)
        expectClose(faces[0], box: [24, 9, 40, 57], landmarks: Array(repeating: [32, 33], count: 5))
    }

    /// The stride is the input/map ratio, not a constant 4: 4×4 maps of a 32×32 input have stride 8, so cell (1, 2)
    /// with scale 0 and no offset is an 8×8 box centred at ((2 + 0.5)·8, (1 + 0.5)·8) = (20, 12).
    @Test func strideComesFromTheShapes() throws {
        let faces = try CenterFaceDecoder.decode(
            Self.outputs(h: 4, w: 4, cells: [Cell(y: 1, x: 2, score: 0.9)], input: (32, 32)))
        try #require(faces.count == 1)
        expectClose(faces[0], box: [16, 8, 24, 16])
    }

    @Test func wrongOrMissingOutputsAreErrors() throws {
        let good = Self.outputs(h: 8, w: 8, cells: [Cell(y: 1, x: 1, score: 0.9)], input: (32, 32))
        func with(_ change: (inout ModelOutputs) -> Void) -> ModelOutputs {
            var o = good
            change(&o)
            return o
        }
        let broken: [(ModelOutputs, String)] = [
            (with { $0.tensors[0].shape = [1, 2, 8, 4] }, "heatmap output '537' has shape [1, 2, 8, 4]"),
            (
                with { $0.tensors[1].shape = [1, 2, 4, 16] },
                "scale output '538' has shape [1, 2, 4, 16], expected [1, 2, 8, 8]"
            ),
            (with { $0.tensors[3].shape = [1, 5, 8, 8] }, "landmarks output '540'"),
            (with { $0.tensors[2].data.removeLast() }, "offset output '539'"),
            (with { $0.tensors.removeLast() }, "no model output '3' for the landmarks"),
            (with { $0.tensors = [] }, "no model output '0' for the heatmap"),
            (with { $0.inputSize = (0, 32) }, "empty model input"),
        ]
        for (outputs, message) in broken {
            #expect {
                _ = try CenterFaceDecoder.decode(outputs)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
        #expect(throws: CenterFaceError.self) {
            _ = try CenterFaceDecoder.decode(good, names: .init(heatmap: "heat"))
        }
    }

    /// In a chain: outputs named by name (here in reverse order, so positions would be wrong), detections attached,
    /// a skipped frame decoded from the outputs it carries.
    @Test func stageAttachesDetectionsByOutputName() async throws {
        var outputs = Self.outputs(
            h: 8, w: 8, cells: [Cell(y: 2, x: 3, score: 0.9, scale: (log(4), log(2)), offset: (0.25, 0.5))],
            input: (32, 32))
        outputs.tensors.reverse()
        var frames = [flat(0, width: 32, height: 32, value: 0), flat(1, width: 32, height: 32, value: 0)]
        for k in frames.indices { frames[k].metadata[ModelOutputs.Key.self] = outputs }
        frames[1].skipped = true
        let out = try await StageChain(
            "centerface heatmap=537 scale=538 offset=539 landmarks=540", registry: .standard
        ).run(frames)
        try #require(out.count == 2)
        for frame in out {
            let faces = try #require(frame.metadata[Detections.Key.self]).items
            try #require(faces.count == 1)
            expectClose(faces[0], box: [12, 3, 20, 19])
        }
        // By position, the reversed list puts the landmarks first: a shape error, not a crash.
        await #expect {
            _ = try await StageChain("centerface", registry: .standard).run(frames)
        } throws: { error in
            "\(error)".contains("centerface0") && "\(error)".contains("heatmap output '540' has shape [1, 10, 8, 8]")
        }
    }

    @Test func needsModelOutputs() async throws {
        await #expect {
            _ = try await StageChain("centerface", registry: .standard).run([flat(0, width: 2, height: 2, value: 0)])
        } throws: { error in
            "\(error)".contains("centerface needs a model or skipconv stage before it")
        }
    }

    /// The smallest face height in frame pixels goes on the board; frames without faces post nothing, and until the
    /// policy takes the value the smallest of the frames since stays.
    @Test func postsTheSmallestFaceHeight() async throws {
        let properties = StageProperties(
            Dictionary(
                uniqueKeysWithValues: CenterFaceDecoder.info.properties.compactMap { spec in
                    spec.defaultValue.map { (spec.name, $0) }
                }))
        let context = StageContext.detached()
        var stage = try CenterFaceDecoder(properties: properties, context: context)
        // 16 and 8 input pixels high (scales ln 4 and ln 2), in a frame twice the input's height: 32 and 16.
        let cells = [
            Cell(y: 2, x: 2, score: 0.9, scale: (log(4), log(4))), Cell(y: 12, x: 12, score: 0.8, scale: (log(2), 0)),
        ]
        var frame = flat(0, width: 64, height: 128, value: 0)
        frame.metadata[ModelOutputs.Key.self] = Self.outputs(
            h: 16, w: 16, cells: cells, input: (64, 64), frame: (64, 128))
        _ = try await stage.process(frame)
        let smallest = try #require(context.board[PolicyFeatures.smallestFaceKey])
        #expect(abs(smallest - 16) < 1e-4)

        frame.metadata[ModelOutputs.Key.self] = Self.outputs(h: 16, w: 16, cells: [], input: (64, 64))
        _ = try await stage.process(frame)
        #expect(context.board[PolicyFeatures.smallestFaceKey].map { abs($0 - 16) < 1e-4 } == true)
        frame.metadata[ModelOutputs.Key.self] = Self.outputs(
            h: 16, w: 16, cells: [cells[0]], input: (64, 64), frame: (64, 128))
        _ = try await stage.process(frame)
        #expect(context.board.take(PolicyFeatures.smallestFaceKey).map { abs($0 - 16) < 1e-4 } == true)
        _ = try await stage.process(frame)
        #expect(context.board.take(PolicyFeatures.smallestFaceKey).map { abs($0 - 32) < 1e-4 } == true)
    }

    // MARK: real model

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The dense model at 192×160 on the first 40-odd frames of carphone (176×144, one face filling a good part of the
    /// picture, docs/test-data.md): a face in nearly every frame, its box inside the frame, of a plausible size, with its
    /// landmarks inside the box.
    @Test func findsTheFaceInCarphone() async throws {
        let model = Self.root.appendingPathComponent("assets/centerface.onnx").path
        let clip = Self.root.appendingPathComponent("assets/carphone_pristine.mp4").path
        let present = [model, clip].allSatisfy { FileManager.default.fileExists(atPath: $0) }
        try #require(present, "run scripts/fetch-assets")
        let count = 40
        let plan = try PipelinePlanner(registry: .standard).plan(
            text: """
                filesrc location=\(clip) ! qtdemux ! h264parse ! avdec_h264 ! videoconvert
                  ! video/x-raw,format=RGB ! identity eos-after=\(count)
                  ! model model=\(model) input-size=192x160 ! centerface
                """, file: "t.pipeline")
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(onOutput: collected.append)
        // identity's eos-after lets a frame or two more through (42 here): a limit, not an exact count.
        let frames = collected.frames
        try #require(frames.count >= count)
        var withFace = 0
        for frame in frames {
            let faces = try #require(frame.metadata[Detections.Key.self], "frame \(frame.index)").items
            guard let face = faces.first else { continue }
            withFace += 1
            let (w, h) = (Float(frame.image.width), Float(frame.image.height))
            #expect(face.x0 >= 0 && face.y0 >= 0 && face.x1 <= w && face.y1 <= h, "frame \(frame.index): \(face)")
            // A head in a 144-pixel-high picture: neither a speck nor larger than the frame.
            #expect(face.height > 20 && face.height <= h, "frame \(frame.index): \(face)")
            #expect(face.landmarks.count == 5)
            let inside = face.landmarks.allSatisfy {
                $0.x >= face.x0 && $0.x <= face.x1 && $0.y >= face.y0 && $0.y <= face.y1
            }
            #expect(inside, "frame \(frame.index): landmarks outside the box \(face)")
        }
        #expect(withFace >= frames.count * 9 / 10, "a face in \(withFace) of \(frames.count) frames")
    }
}

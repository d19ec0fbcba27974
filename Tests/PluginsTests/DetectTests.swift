import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// YOLO decoding (`detect`) on hand-made heads whose boxes are worked out by hand in each test.
@Suite final class DetectTests {
    private let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-detect-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    /// A v5 head `[1, n, 5 + classes]`: `rows[i]` is box i's cx, cy, w, h, objectness and class scores; every other
    /// row is 0.
    static func v5(
        n: Int, classes: Int, rows: [Int: [Float]], input: (width: Int, height: Int),
        frame: (width: Int, height: Int)? = nil
    ) -> ModelOutputs {
        let width = 5 + classes
        var data = [Float](repeating: 0, count: n * width)
        for (i, row) in rows {
            precondition(row.count == width)
            for (k, v) in row.enumerated() { data[i * width + k] = v }
        }
        return ModelOutputs(
            tensors: [.init(name: "output0", shape: [1, n, width], data: data)], inputSize: input,
            frameSize: frame ?? input)
    }

    /// A v8 head `[1, 4 + classes, n]`: `columns[i]` is box i's cx, cy, w, h and class scores; every other column
    /// is 0.
    static func v8(
        n: Int, classes: Int, columns: [Int: [Float]], input: (width: Int, height: Int),
        frame: (width: Int, height: Int)? = nil
    ) -> ModelOutputs {
        let height = 4 + classes
        var data = [Float](repeating: 0, count: height * n)
        for (i, column) in columns {
            precondition(column.count == height)
            for (k, v) in column.enumerated() { data[k * n + i] = v }
        }
        return ModelOutputs(
            tensors: [.init(name: "output0", shape: [1, height, n], data: data)], inputSize: input,
            frameSize: frame ?? input)
    }

    static func options(
        format: YOLODecoder.Format = .auto, threshold: Float = 0.25, nms: Float = 0.45, max: Int = 300,
        labels: [String]? = nil
    ) -> YOLODecoder.Options {
        var o = YOLODecoder.Options()
        o.format = format
        o.threshold = threshold
        o.nms = nms
        o.max = max
        o.labels = labels
        return o
    }

    private func expect(
        _ d: Detection, box: [Float], score: Float, classIndex: Int, label: String? = nil,
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        let got = [d.x0, d.y0, d.x1, d.y1]
        #expect(
            zip(got, box).allSatisfy { abs($0 - $1) < 1e-4 }, "box \(got), expected \(box)",
            sourceLocation: sourceLocation)
        #expect(abs(d.score - score) < 1e-6, "score \(d.score), expected \(score)", sourceLocation: sourceLocation)
        #expect(d.classIndex == classIndex && d.label == label, "\(d)", sourceLocation: sourceLocation)
    }

    private func write(_ text: String, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    /// v5, 8 boxes × (5 + 2) (auto: 8 > 7 is v5), a 64×32 input in a 128×96 frame (x ×2, y ×3):
    /// - box 0: centre (20, 10), 8×4, objectness 0.8, classes (0.5, 0.9) → class 1, 0.8·0.9 = 0.72; input x 16…24,
    ///   y 8…12 → frame x 32…48, y 24…36;
    /// - box 1: centre (60, 30), 10×6, 0.9 × (0.5, 0.1) → class 0, 0.45; x 55…65 clipped to 64, y 27…33 clipped to
    ///   32 → frame x 110…128, y 81…96;
    /// - box 2: 0.5 × (0.4, 0.3) → 0.2: dropped, though its objectness and best class each pass 0.25.
    @Test func v5HeadDecodesToFramePixels() throws {
        let outputs = Self.v5(
            n: 8, classes: 2,
            rows: [
                0: [20, 10, 8, 4, 0.8, 0.5, 0.9], 1: [60, 30, 10, 6, 0.9, 0.5, 0.1], 2: [40, 16, 8, 8, 0.5, 0.4, 0.3],
            ], input: (64, 32), frame: (128, 96))
        let found = try YOLODecoder.decode(outputs, options: Self.options(labels: ["person", "car"]))
        try #require(found.count == 2)
        expect(found[0], box: [32, 24, 48, 36], score: 0.72, classIndex: 1, label: "car")
        expect(found[1], box: [110, 81, 128, 96], score: 0.45, classIndex: 0, label: "person")
        #expect(try YOLODecoder.layout(shape: [1, 8, 7], format: .auto, labels: nil).format == .v5)
    }

    /// v8, (4 + 3) × 10 boxes (auto: 10 > 7 is v8), no objectness, a 40×20 input in a 100×30 frame (x ×2.5,
    /// y ×1.5):
    /// - box 3: centre (10, 6), 4×8, classes (0.1, 0.2, 0.6) → class 2, 0.6; input x 8…12, y 2…10 → frame x 20…30,
    ///   y 3…15;
    /// - box 7: centre (30, 15), 6×4, classes (0.3, 0.3, 0.1) → a tie, the first class: 0, 0.3; x 27…33, y 13…17 →
    ///   frame x 67.5…82.5, y 19.5…25.5.
    @Test func v8HeadDecodesToFramePixels() throws {
        let outputs = Self.v8(
            n: 10, classes: 3, columns: [3: [10, 6, 4, 8, 0.1, 0.2, 0.6], 7: [30, 15, 6, 4, 0.3, 0.3, 0.1]],
            input: (40, 20), frame: (100, 30))
        let found = try YOLODecoder.decode(outputs)
        try #require(found.count == 2)
        expect(found[0], box: [20, 3, 30, 15], score: 0.6, classIndex: 2)
        expect(found[1], box: [67.5, 19.5, 82.5, 25.5], score: 0.3, classIndex: 0)
        #expect(try YOLODecoder.layout(shape: [1, 7, 10], format: .auto, labels: nil).format == .v8)
    }

    /// Two 10×10 boxes 2 px apart (x 5…15 and 7…17, IoU 80 / 120 = 0.67 > 0.45) of different classes both survive;
    /// made the same class, the lower one is dropped; a far box of that class stays. At nms 0.7 the pair no longer
    /// counts as overlapping.
    @Test func nmsIsPerClass() throws {
        func head(secondClass: Int) -> ModelOutputs {
            var second: [Float] = [12, 10, 10, 10, 0, 0]
            second[4 + secondClass] = 0.8
            return Self.v8(
                n: 12, classes: 2,
                columns: [0: [10, 10, 10, 10, 0.9, 0], 1: second, 2: [50, 50, 10, 10, 0.7, 0]], input: (64, 64))
        }
        let mixed = try YOLODecoder.decode(head(secondClass: 1))
        #expect(mixed.map(\.score) == [0.9, 0.8, 0.7])
        #expect(mixed.map(\.classIndex) == [0, 1, 0])
        let same = try YOLODecoder.decode(head(secondClass: 0))
        #expect(same.map(\.score) == [0.9, 0.7])
        expect(same[0], box: [5, 5, 15, 15], score: 0.9, classIndex: 0)
        #expect(try YOLODecoder.decode(head(secondClass: 0), options: Self.options(nms: 0.7)).count == 3)
    }

    /// A score equal to the threshold is not above it, NaN never is; `threshold` moves the cut; `max` keeps the
    /// highest scores.
    @Test func thresholdAndMax() throws {
        let outputs = Self.v8(
            n: 8, classes: 1,
            columns: [
                0: [4, 4, 8, 8, 0.25], 1: [20, 4, 8, 8, 0.26], 2: [36, 4, 8, 8, .nan], 3: [52, 4, 8, 8, 0.9],
                4: [4, 20, 8, 8, 0.5],
            ], input: (64, 64))
        #expect(try YOLODecoder.decode(outputs).map(\.score) == [0.9, 0.5, 0.26])
        #expect(try YOLODecoder.decode(outputs, options: Self.options(threshold: 0.6)).map(\.score) == [0.9])
        #expect(try YOLODecoder.decode(outputs, options: Self.options(threshold: 0.2)).count == 4)
        #expect(try YOLODecoder.decode(outputs, options: Self.options(max: 2)).map(\.score) == [0.9, 0.5])
    }

    /// A v5 head with as many boxes as attributes (7 × (5 + 2)) cannot be told from v8 by its shape: auto is an
    /// error naming `format=`, and `format=v5` decodes it (box 6: centre (8, 8), 4×2, 0.5 × (0.2, 0.8) → class 1,
    /// 0.4, x 6…10, y 7…9). With fewer boxes than attributes (6 × 7) the rule reads v8, and two class names fit
    /// both layouts; `format=v5` again decodes the boxes as written.
    @Test func ambiguousV5HeadNeedsFormat() throws {
        let row: [Float] = [8, 8, 4, 2, 0.5, 0.2, 0.8]
        let square = Self.v5(n: 7, classes: 2, rows: [6: row], input: (16, 16))
        #expect {
            _ = try YOLODecoder.decode(square)
        } throws: { error in
            "\(error)".contains("could be v5 [1, N, 5+C] or v8 [1, 4+C, N]") && "\(error)".contains("set format=v5")
        }
        let v5 = try YOLODecoder.decode(square, options: Self.options(format: .v5))
        try #require(v5.count == 1)
        expect(v5[0], box: [6, 7, 10, 9], score: 0.4, classIndex: 1)

        let short = Self.v5(n: 6, classes: 2, rows: [5: row], input: (16, 16))
        #expect(try YOLODecoder.layout(shape: [1, 6, 7], format: .auto, labels: nil).format == .v8)
        #expect {
            _ = try YOLODecoder.decode(short, options: Self.options(labels: ["a", "b"]))
        } throws: { error in
            "\(error)".contains("both fit 2 classes")
        }
        let decoded = try YOLODecoder.decode(short, options: Self.options(format: .v5, labels: ["a", "b"]))
        try #require(decoded.count == 1)
        expect(decoded[0], box: [6, 7, 10, 9], score: 0.4, classIndex: 1, label: "b")
    }

    /// With labels, auto picks the layout the class count fits even against the longer-axis rule: 6 × 85 is v5
    /// with 80 classes.
    @Test func labelsDecideTheLayout() throws {
        #expect(try YOLODecoder.layout(shape: [1, 6, 85], format: .auto, labels: nil).format == .v8)
        let layout = try YOLODecoder.layout(shape: [1, 6, 85], format: .auto, labels: 80)
        #expect(layout == YOLODecoder.Layout(format: .v5, boxes: 6, classes: 80))
        #expect(
            try YOLODecoder.layout(shape: [1, 84, 8400], format: .auto, labels: 80)
                == YOLODecoder.Layout(format: .v8, boxes: 8400, classes: 80))
    }

    @Test func labelsFileErrors() async throws {
        let good = try write("person\r\ncar\n\n", "good.names")
        #expect(try YOLODecoder.loadLabels(path: good) == ["person", "car"])
        let cases: [(String, String)] = [
            (try write("person\n\ncar\n", "blank.names"), "line 2 is blank"),
            (try write("\n\n", "empty.names"), "holds no class names"),
            (dir.path, "cannot be read"),
            (dir.appendingPathComponent("missing.names").path, "cannot be read"),
        ]
        for (path, message) in cases {
            #expect {
                _ = try YOLODecoder.loadLabels(path: path)
            } throws: { error in
                "\(error)".contains("labels file \(path) \(message)")
            }
        }
        let binary = dir.appendingPathComponent("binary.names")
        try Data([0x66, 0xFF, 0xFE, 0x0A]).write(to: binary)
        #expect(throws: DetectError.self) { _ = try YOLODecoder.loadLabels(path: binary.path) }

        // In a pipeline: a missing file is a planning error; a blank line fails the stage before any frame.
        #expect {
            _ = try StageChain("detect labels=\(dir.path)/missing.names", registry: .standard)
        } throws: { error in
            "\(error)".contains("labels file '\(dir.path)/missing.names' does not exist")
        }
        let chain = try StageChain("detect labels=\(cases[0].0)", registry: .standard)
        await #expect {
            _ = try await chain.run([flat(0, width: 4, height: 4, value: 0)])
        } throws: { error in
            "\(error)".contains("line 2 is blank")
        }
    }

    /// Names that fit the head's classes under neither layout, or not the one `format` names, are an error.
    @Test func labelCountMustMatchTheClasses() throws {
        let outputs = Self.v5(n: 8, classes: 2, rows: [0: [20, 10, 8, 4, 0.8, 0.5, 0.9]], input: (64, 32))
        #expect {
            _ = try YOLODecoder.decode(outputs, options: Self.options(labels: ["a", "b", "c"]))
        } throws: { error in
            "\(error)".contains("has 3 names but output [1, 8, 7] has neither 8 columns (v5) nor 7 rows (v8)")
        }
        #expect {
            _ = try YOLODecoder.decode(outputs, options: Self.options(format: .v5, labels: ["a", "b", "c"]))
        } throws: { error in
            "\(error)".contains("has 3 names but output [1, 8, 7] as v5 has 2 classes")
        }
    }

    @Test func wrongOutputsAreErrors() throws {
        let good = Self.v8(n: 10, classes: 3, columns: [3: [10, 6, 4, 8, 0.1, 0.2, 0.6]], input: (40, 20))
        func with(_ change: (inout ModelOutputs) -> Void) -> ModelOutputs {
            var o = good
            change(&o)
            return o
        }
        let broken: [(ModelOutputs, YOLODecoder.Options, String)] = [
            (with { $0.tensors[0].shape = [1, 1, 7, 10] }, Self.options(), "output shape [1, 1, 7, 10]"),
            (with { $0.tensors[0].shape = [2, 7, 10] }, Self.options(), "output shape [2, 7, 10]"),
            (with { $0.tensors[0].data.removeLast() }, Self.options(), "holds 69 values"),
            (
                with { $0.tensors[0] = .init(name: "boxes", shape: [1, 12, 5], data: Array(repeating: 0, count: 60)) },
                Self.options(), "as v5 ([1, N, 5+C]) it has no class scores"
            ),
            (good, Self.options(format: .v5, labels: ["a", "b", "c"]), "as v5 has 5 classes"),
            (with { $0.tensors = [] }, Self.options(), "no model output '0'"),
            (with { $0.inputSize = (0, 20) }, Self.options(), "empty model input"),
        ]
        for (outputs, options, message) in broken {
            #expect {
                _ = try YOLODecoder.decode(outputs, options: options)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }

    /// In a chain: the head picked by name among other outputs, labelled detections attached and written by
    /// jsonsink with their class and label; a chain without a model stage is an error.
    @Test func stageAttachesLabelledDetections() async throws {
        var outputs = Self.v8(
            n: 10, classes: 3, columns: [3: [10, 6, 4, 8, 0.1, 0.2, 0.6]], input: (40, 20), frame: (100, 30))
        outputs.tensors.insert(.init(name: "proto", shape: [1, 1], data: [0]), at: 0)
        var frame = flat(0, width: 100, height: 30, value: 0)
        frame.metadata[ModelOutputs.Key.self] = outputs
        let labels = try write("cat\ndog\nbird\n", "animals.names")
        let json = dir.appendingPathComponent("out.jsonl").path
        let out = try await StageChain(
            "detect output=output0 labels=\(labels) ! jsonsink location=\(json)", registry: .standard
        ).run([frame])
        let found = try #require(out.first?.metadata[Detections.Key.self]).items
        try #require(found.count == 1)
        expect(found[0], box: [20, 3, 30, 15], score: 0.6, classIndex: 2, label: "bird")
        let line = try String(contentsOfFile: json, encoding: .utf8)
        #expect(line.contains(#""faces":[{"box":[20,3,30,15],"class":2,"label":"bird","landmarks":[],"score":0.6"#))

        await #expect {
            _ = try await StageChain("detect", registry: .standard).run([flat(0, width: 2, height: 2, value: 0)])
        } throws: { error in
            "\(error)".contains("detect needs a model or skipconv stage before it")
        }
    }

    /// A detection without a class encodes exactly as before the class fields existed (face lines unchanged).
    @Test func facesEncodeWithoutClassFields() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let face = Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.5, landmarks: [SIMD2(1.5, 2.5)])
        #expect(
            String(decoding: try encoder.encode(face), as: UTF8.self)
                == #"{"box":[1,2,3,4],"landmarks":[[1.5,2.5]],"score":0.5}"#)
        var unlabelled = face
        unlabelled.classIndex = 4
        #expect(String(decoding: try encoder.encode(unlabelled), as: UTF8.self).contains(#""class":4,"#))
        #expect(!String(decoding: try encoder.encode(unlabelled), as: UTF8.self).contains("label"))
    }
}

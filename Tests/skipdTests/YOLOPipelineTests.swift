import Foundation
import Testing

/// A user's YOLOv8 export through the real pipeline: the YOLOv8-structured graph with dynamic axes
/// (`Tests/SkipNetTests/Reference/yolo_graph.py`) under `model` (frame size, pixels / 255), `detect` and `track`, run
/// by `skipd run` on vtest.avi. The reference is independent: onnxruntime on the same decoded frames, the head decoded
/// and suppressed class by class in numpy.
@Suite struct YOLOPipelineTests {
    let cli = CLITests()

    /// Builds the model into OUT/yolo.onnx, then per frame, as JSON lines in OUT/expected.jsonl, the boxes
    /// [x0, y0, x1, y1, score, class] scoring above 0.5 (`candidates`) and those class-wise NMS at 0.45 keeps, best
    /// score first (`kept`).
    static let script = """
        import json, os, sys
        import numpy as np
        import onnxruntime as ort
        root, clip, frames, out = sys.argv[1:5]
        sys.path.insert(0, os.path.join(root, "scripts/reference"))
        sys.path.insert(0, os.path.join(root, "Tests/SkipNetTests/Reference"))
        from onnxref import decode_rgb
        from yolo_graph import build
        model = os.path.join(out, "yolo.onnx")
        open(model, "wb").write(build(width=8, classes=80).SerializeToString())
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        def iou(a, b):
            w = min(a[2], b[2]) - max(a[0], b[0]); h = min(a[3], b[3]) - max(a[1], b[1])
            if w <= 0 or h <= 0: return 0.0
            inter = w * h
            return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
        with open(os.path.join(out, "expected.jsonl"), "w") as f:
            for rgb in decode_rgb(clip, int(frames)):
                H, W = rgb.shape[:2]
                x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None].astype(np.float32) * np.float32(1 / 255))
                head = sess.run(None, {"images": x})[0][0]
                scores, classes = head[4:].max(0), head[4:].argmax(0)
                boxes = []
                for i in np.nonzero(scores > 0.5)[0]:
                    cx, cy, w, h = head[:4, i]
                    b = [max(cx - w / 2, 0), max(cy - h / 2, 0), min(cx + w / 2, W), min(cy + h / 2, H)]
                    boxes.append([float(v) for v in b] + [float(scores[i]), int(classes[i])])
                kept = []
                for b in sorted(boxes, key=lambda b: -b[4]):
                    if all(k[5] != b[5] or iou(k, b) <= 0.45 for k in kept):
                        kept.append(b)
                f.write(json.dumps({"candidates": boxes, "kept": kept}) + "\\n")
        """

    @Test func yoloExportRunsThroughModelDetectAndTrack() throws {
        let clip = CLITests.root.appendingPathComponent("assets/vtest.avi").path
        try #require(FileManager.default.fileExists(atPath: clip))
        let dir = try cli.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", Self.script, CLITests.root.path, clip, "3", dir.path]
        try python.run()
        python.waitUntilExit()
        try #require(python.terminationStatus == 0, "reference script failed")

        let pipeline = dir.appendingPathComponent("yolo.pipeline")
        try """
        filesrc location=\(clip) ! decodebin ! videoconvert ! video/x-raw,format=RGB
          ! model model=\(dir.path)/yolo.onnx scale=0.0039215686
          ! detect threshold=0.5 nms=0.45 ! track min-hits=0
          ! jsonsink location=\(dir.path)/out.jsonl
        """.write(to: pipeline, atomically: true, encoding: .utf8)
        let run = try cli.skipd("run", pipeline.path, "--frames", "3")
        try #require(run.status == 0, "skipd run: \(run.stderr)")

        func lines(_ name: String) throws -> [Any] {
            try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8))
            }
        }
        let expected = try lines("expected.jsonl").map { $0 as? [String: [[Double]]] ?? [:] }
        let frames = try lines("out.jsonl").map { ($0 as? [String: Any])?["faces"] as? [[String: Any]] ?? [] }
        try #require(frames.count == 3 && expected.count == 3)
        func iou(_ a: [Double], _ b: [Double]) -> Double {
            let w = min(a[2], b[2]) - max(a[0], b[0])
            let h = min(a[3], b[3]) - max(a[1], b[1])
            guard w > 0, h > 0 else { return 0 }
            return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)
        }
        // A random-weight model scores flat image regions almost alike, so which of two near-tied neighbours NMS
        // keeps depends on the last bits of arithmetic. What must hold: every box of ours is one of onnxruntime's
        // candidates (place, score, class); no two of ours of a class overlap above the NMS IoU; and every box
        // onnxruntime's NMS keeps is ours or suppressed by one of ours.
        var idsPerFrame: [Set<Int>] = []
        for (k, (mine, reference)) in zip(frames, expected).enumerated() {
            let candidates = reference["candidates"] ?? []
            let kept = reference["kept"] ?? []
            #expect(!kept.isEmpty, "frame \(k): the reference finds boxes to compare")
            let ours = mine.map { d -> [Double] in
                (d["box"] as? [Double] ?? []) + [d["score"] as? Double ?? -1, Double(d["class"] as? Int ?? -1)]
            }
            for box in ours {
                let found =
                    box.count == 6
                    && candidates.contains { c in
                        zip(box.prefix(4), c.prefix(4)).allSatisfy { abs($0 - $1) < 0.1 } && abs(box[4] - c[4]) < 1e-3
                            && box[5] == c[5]
                    }
                #expect(found, "frame \(k): \(box) is no onnxruntime candidate")
            }
            for i in ours.indices {
                for j in ours.indices
                where j > i && ours[i].count == 6 && ours[j].count == 6 && ours[i][5] == ours[j][5] {
                    #expect(iou(ours[i], ours[j]) <= 0.45, "frame \(k): \(ours[i]) and \(ours[j]) both kept")
                }
            }
            for box in kept {
                let covered = ours.contains { $0.count == 6 && $0[5] == box[5] && iou($0, box) > 0.45 }
                #expect(covered, "frame \(k): onnxruntime keeps \(box), nothing of ours covers it")
            }
            #expect(mine.allSatisfy { $0["id"] is Int }, "frame \(k): every box has a track ID (min-hits=0)")
            idsPerFrame.append(Set(mine.compactMap { $0["id"] as? Int }))
        }
        // Consecutive frames of a still camera: nearly every box keeps its ID (near-tied neighbours may swap).
        let kept = Double(idsPerFrame[2].intersection(idsPerFrame[0]).count) / Double(max(idsPerFrame[2].count, 1))
        #expect(kept >= 0.8, "IDs of frame 2 already in frame 0: \(kept)")
    }
}

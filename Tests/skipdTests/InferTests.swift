import Foundation
import Testing

/// `skipd infer` against onnxruntime: the .npy files it writes are read by numpy and compared with onnxruntime's
/// outputs on the same frames, decoded and converted independently in Python.
@Suite struct InferTests {
    let cli = CLITests()

    /// Decodes the clip as skipd does (scripts/reference/onnxref.py), converts each frame as the model stage does
    /// (nearest-neighbour rows y·H/h and columns x·W/w, (value − 0) × scale, RGB, NCHW), runs onnxruntime and
    /// compares every output with numpy's reading of skipd's file: dtype `<f4`, C order, the same shape, within
    /// 1e-4 · max(1, max|ref|); also the format-1.0 header's 64-byte alignment. Prints each file's shape as JSON;
    /// exits 1 on any mismatch.
    static let script = """
        import json, os, re, sys
        import numpy as np
        import onnxruntime as ort
        root, model, clip, frames, w, h, scale, out = sys.argv[1:9]
        sys.path.insert(0, os.path.join(root, "scripts/reference"))
        from onnxref import decode_rgb, fixed_model
        frames, w, h, scale = int(frames), int(w), int(h), np.float32(scale)
        ort.set_default_logger_severity(3)
        data = decode_rgb(clip, frames)
        H, W = data.shape[1], data.shape[2]
        ys, xs = np.arange(h) * H // h, np.arange(w) * W // w
        m = fixed_model(model, [1, 3, h, w])
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        shapes, problems = {}, []
        for f in range(frames):
            x = (data[f][ys][:, xs].astype(np.float32) - np.float32(0)) * scale
            x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
            for name, ref in zip(names, sess.run(None, {m.graph.input[0].name: x})):
                file = f"frame{f:05d}_{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.npy"
                path = os.path.join(out, file)
                raw = open(path, "rb").read(10)
                length = raw[8] | raw[9] << 8
                if raw[:8] != b"\\x93NUMPY\\x01\\x00" or (10 + length) % 64 != 0:
                    problems.append(f"{file}: header {raw!r}")
                got = np.load(path)
                shapes[file] = list(got.shape)
                if got.dtype != np.dtype("<f4") or not got.flags.c_contiguous or got.shape != ref.shape:
                    problems.append(f"{file}: {got.dtype} {got.shape}, expected <f4 {ref.shape}")
                    continue
                tolerance = 1e-4 * max(1.0, float(np.abs(ref).max()))
                error = float(np.abs(got - ref).max())
                if not error <= tolerance:
                    problems.append(f"{file}: max error {error} > {tolerance}")
        print(json.dumps({"shapes": shapes, "problems": problems}))
        sys.exit(1 if problems else 0)
        """

    /// Runs `script` with `arguments`: its exit status, stdout and stderr.
    static func python(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, stdout, stderr)
    }

    /// Three vtest frames (768×576) resized to 384×288 and scaled ×2 on the way in: CenterFace's four outputs per
    /// frame at a quarter of the input size, each equal to onnxruntime's.
    @Test func writesEveryOutputAsNumPyMatchingOnnxruntime() throws {
        let model = CLITests.root.appendingPathComponent("assets/centerface.onnx").path
        let clip = CLITests.root.appendingPathComponent("assets/vtest.avi").path
        try #require(
            [model, clip].allSatisfy { FileManager.default.fileExists(atPath: $0) }, "run scripts/fetch-assets")
        let dir = try cli.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let npy = dir.appendingPathComponent("nested/npy")

        let result = try cli.skipd(
            "infer", "--model", model, "--video", clip, "--frames", "3", "--input", "384x288", "--scale", "2",
            "--npy", npy.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("wrote 3 frames × 4 outputs (12 .npy files"), "\(result.stdout)")

        let expected = (0..<3).flatMap { f in ["537", "538", "539", "540"].map { "frame0000\(f)_\($0).npy" } }
        let files = try FileManager.default.contentsOfDirectory(atPath: npy.path).sorted()
        #expect(files == expected.sorted())

        let check = try Self.python([CLITests.root.path, model, clip, "3", "384", "288", "2", npy.path])
        #expect(check.status == 0, "reference check failed: \(check.stdout) \(check.stderr)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any], "\(check.stderr)")
        let shapes = try #require(json["shapes"] as? [String: [Int]])
        #expect(shapes.count == 12)
        for f in 0..<3 {
            let channels = ["537": 1, "538": 2, "539": 2, "540": 10]
            for (name, c) in channels { #expect(shapes["frame0000\(f)_\(name).npy"] == [1, c, 72, 96], "\(name)") }
        }
        #expect((json["problems"] as? [String])?.isEmpty == true)
    }

    /// Output names with `/` and `:` (here `det/boxes` and `det:boxes`, a 1×1 conv and its ReLU) become `_`; the
    /// two then collide and get their positions appended. numpy reads both files.
    @Test func outputNamesAreMadeSafeForFileNames() throws {
        let clip = CLITests.root.appendingPathComponent("assets/vtest.avi").path
        try #require(FileManager.default.fileExists(atPath: clip), "run scripts/fetch-assets")
        let dir = try cli.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("names.onnx").path
        let npy = dir.appendingPathComponent("npy").path
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        make.arguments = [
            "python3", "-c",
            """
            import sys, numpy as np
            from onnx import helper, numpy_helper, save, TensorProto
            w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1) / 10, "w")
            nodes = [helper.make_node("Conv", ["image", "w"], ["det/boxes"], kernel_shape=[1, 1]),
                     helper.make_node("Relu", ["det/boxes"], ["det:boxes"])]
            value = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
            graph = helper.make_graph(nodes, "names", [value("image", [1, 3, 32, 32])],
                                      [value("det/boxes", None), value("det:boxes", None)], [w])
            save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
            """, model,
        ]
        try make.run()
        make.waitUntilExit()
        try #require(make.terminationStatus == 0)

        let result = try cli.skipd(
            "infer", "--model", model, "--video", clip, "--frames", "1", "--input", "32x32", "--npy", npy)
        #expect(result.status == 0, "\(result.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: npy).sorted()
        #expect(files == ["frame00000_det_boxes_0.npy", "frame00000_det_boxes_1.npy"])
        let read = Process()
        read.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        read.arguments = [
            "python3", "-c",
            """
            import sys, numpy as np
            conv, relu = (np.load(f"{sys.argv[1]}/frame00000_det_boxes_{k}.npy") for k in (0, 1))
            assert conv.shape == relu.shape == (1, 2, 32, 32), (conv.shape, relu.shape)
            assert (relu == np.maximum(conv, 0)).all() and conv.max() > 0
            """, npy,
        ]
        try read.run()
        read.waitUntilExit()
        #expect(read.terminationStatus == 0)
    }

    /// A missing or broken model, a video that does not decode, a --npy that is a file: one error line, exit 2.
    @Test func badInputsAreOneError() throws {
        let model = CLITests.root.appendingPathComponent("assets/centerface.onnx").path
        let clip = CLITests.root.appendingPathComponent("assets/vtest.avi").path
        try #require(
            [model, clip].allSatisfy { FileManager.default.fileExists(atPath: $0) }, "run scripts/fetch-assets")
        let dir = try cli.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = dir.appendingPathComponent("junk.bin").path
        try Data((0..<4096).map { UInt8($0 % 241) }).write(to: URL(fileURLWithPath: junk))
        let out = dir.appendingPathComponent("out").path
        let cases: [([String], String)] = [
            (
                ["--model", dir.appendingPathComponent("none.onnx").path, "--video", clip, "--npy", out],
                "does not exist"
            ),
            (["--model", junk, "--video", clip, "--npy", out], "error: "),
            (["--model", model, "--video", junk, "--npy", out], "error: "),
            (["--model", model, "--video", clip, "--npy", junk], "error: "),
        ]
        for (arguments, message) in cases {
            let result = try cli.skipd(["infer", "--frames", "1"] + arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            let errors = result.stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }
            #expect(errors.count == 1 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        let bad = try cli.skipd("infer", "--model", model, "--video", clip, "--npy", out, "--input", "big")
        #expect(bad.status != 0 && bad.stderr.contains("--input must be WxH"), "\(bad.stderr)")
    }
}

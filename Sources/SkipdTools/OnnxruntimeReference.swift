import Foundation
import PipelineKit

/// `--versus onnxruntime`: onnxruntime (CPU execution provider, fp32, every graph optimisation, sequential, the same
/// thread count) runs the model densely on the frames the benchmark decoded, handed over as raw RGB so it sees the
/// same pixels. Its time per frame covers what a user of onnxruntime pays past decoding: the nearest-neighbour
/// resize to the model's input size, the conversion to float and the run.
///
/// Needs `python3` with `onnxruntime`, `onnx` and `numpy` (`pip install onnxruntime==1.32.0 onnx==1.23.2`). The model
/// is fixed up as onnxruntime needs it: initializers listed among the graph inputs are removed from them (else it
/// neither folds nor fuses them), and the input's dimensions are set.
enum OnnxruntimeReference {
    struct Timing {
        var meanMilliseconds: Double
        var medianMilliseconds: Double
    }

    /// Times one dense run per frame, after three warm-up runs.
    static func time(model: String, frames: [VideoImage], input: (width: Int, height: Int), threads: Int) throws
        -> Timing
    {
        guard let first = frames.first else { throw ReferenceError("no frames to run") }
        let (w, h) = (first.width, first.height)
        var packed = [UInt8]()
        packed.reserveCapacity(frames.count * w * h * 3)
        for image in frames {
            guard image.format.pixelFormat == "RGB", image.width == w, image.height == h else {
                throw ReferenceError("frames must all be \(w)x\(h) RGB")
            }
            for y in 0..<h {
                packed.append(contentsOf: UnsafeRawBufferPointer(start: image.row(y), count: w * 3))
            }
        }
        let raw = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-ort-\(UUID()).rgb")
        defer { try? FileManager.default.removeItem(at: raw) }
        try Data(packed).write(to: raw)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c", script, model, raw.path, "\(w)", "\(h)", "\(frames.count)", "\(input.width)",
            "\(input.height)", "\(threads)",
        ]
        let out = Pipe()
        // stderr to a file: a pipe nobody reads while stdout is read could fill and stall the child.
        let log = raw.appendingPathExtension("log")
        defer { try? FileManager.default.removeItem(at: log) }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let errors = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0,
            let line = output.split(separator: "\n").last(where: { $0.hasPrefix("result ") })
        else {
            let last = errors.split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            throw ReferenceError(
                "onnxruntime did not run (\(last)); --versus onnxruntime needs python3 with onnxruntime, onnx and "
                    + "numpy: python3 -m pip install onnxruntime==1.32.0 onnx==1.23.2")
        }
        func value(_ key: String) -> Double? {
            line.split(separator: " ").first { $0.hasPrefix("\(key)=") }.flatMap { Double($0.dropFirst(key.count + 1)) }
        }
        guard let mean = value("mean_ms"), let median = value("median_ms") else {
            throw ReferenceError("unexpected onnxruntime output: \(line)")
        }
        return Timing(meanMilliseconds: mean, medianMilliseconds: median)
    }

    struct ReferenceError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// argv: MODEL RAW WIDTH HEIGHT FRAMES INPUT_WIDTH INPUT_HEIGHT THREADS; prints `result mean_ms=… median_ms=…`.
    private static let script = """
        import sys, time
        import numpy as np
        import onnx
        import onnxruntime as ort

        path, raw = sys.argv[1], sys.argv[2]
        w, h, n, iw, ih, threads = (int(v) for v in sys.argv[3:9])
        frames = np.fromfile(raw, dtype=np.uint8).reshape(n, h, w, 3)
        m = onnx.load(path)
        g = m.graph
        inits = {t.name for t in g.initializer}
        real = [i for i in g.input if i.name not in inits]
        del g.input[:]
        g.input.extend(real)
        dims = g.input[0].type.tensor_type.shape.dim
        nchw = dims[1].dim_value == 3
        for d, v in zip(dims, [1, 3, ih, iw] if nchw else [1, ih, iw, 3]):
            d.ClearField("dim_param")
            d.dim_value = v
        for o in g.output:
            for d in o.type.tensor_type.shape.dim:
                d.ClearField("dim_value")
                d.dim_param = "?"
        ort.set_default_logger_severity(3)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name = g.input[0].name
        rows = np.arange(ih) * h // ih
        cols = np.arange(iw) * w // iw
        same = (iw, ih) == (w, h)

        def tensor(f):
            x = f if same else f[rows][:, cols]
            return np.ascontiguousarray((x.transpose(2, 0, 1) if nchw else x)[None], dtype=np.float32)

        for i in range(min(3, n)):
            sess.run(None, {name: tensor(frames[i])})
        times = []
        for f in frames:
            t = time.perf_counter()
            sess.run(None, {name: tensor(f)})
            times.append(time.perf_counter() - t)
        print(f"result mean_ms={np.mean(times) * 1e3:.3f} median_ms={np.median(times) * 1e3:.3f}")
        """
}

// Support for the kernel tests: deterministic inputs, a batch runner for Reference/single_op.py (onnxruntime), and
// the comparison used by every kernel test.
//
// Tolerance (all kernel tests): max |actual − reference| ≤ 1e-4 · max(1, max |reference|).

import Foundation
import Testing

/// Deterministic pseudo-random floats (SplitMix64) uniformly in [lo, hi).
func randomFloats(_ count: Int, seed: UInt64, lo: Float = -1, hi: Float = 1) -> [Float] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var out = [Float](repeating: 0, count: count)
    for i in 0..<count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let u = Float(z >> 40) / Float(1 << 24)
        out[i] = lo + (hi - lo) * u
    }
    return out
}

func product(_ shape: [Int]) -> Int { shape.reduce(1, *) }

/// An ONNX attribute value for the reference model.
enum RefAttr {
    case i(Int)
    case f(Float)
    case s(String)
    case ints([Int])
    case floats([Float])
    /// A one-element tensor attribute (ConstantOfShape's `value`), `dtype` "float32", "int64" or "bool".
    case tensor(dtype: String, value: Float)

    var json: [String: Any] {
        switch self {
        case .i(let v): return ["i": v]
        case .f(let v): return ["f": Double(v)]
        case .s(let v): return ["s": v]
        case .ints(let v): return ["ints": v]
        case .floats(let v): return ["floats": v.map { Double($0) }]
        case .tensor(let dtype, let v): return ["t": ["dtype": dtype, "dims": [1], "data": [Double(v)]]]
        }
    }
}

/// One input of the reference node: float32 data (written to a file) or a small int64 / float constant inline.
enum RefInput {
    case floats([Float], shape: [Int])
    case int64([Int], shape: [Int])
    case bool([Bool], shape: [Int])
    case omitted
}

struct RefCase {
    var name: String
    var op: String
    var opset: Int
    var attrs: [String: RefAttr] = [:]
    var inputs: [RefInput]
    var numOutputs: Int = 1
    /// "float32", "int64" or "bool": the element type onnxruntime produces (returned as floats).
    var outputType = "float32"
}

struct RefOutput {
    var shape: [Int]
    var data: [Float]
}

enum ReferenceError: Error, CustomStringConvertible {
    case pythonFailed(String)
    case caseFailed(String, String)
    case missing(String)

    var description: String {
        switch self {
        case .pythonFailed(let s): return "single_op.py failed: \(s)"
        case .caseFailed(let n, let e): return "reference case \(n) failed: \(e)"
        case .missing(let n): return "reference case \(n) missing"
        }
    }
}

/// Runs all `cases` through onnxruntime in one python3 process; returns outputs keyed by case name.
func runReference(_ cases: [RefCase]) throws -> [String: [RefOutput]] {
    let fm = FileManager.default
    let dir = fm.temporaryDirectory.appendingPathComponent("skipnet-kern-\(UUID().uuidString)")
    try fm.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? fm.removeItem(at: dir) }
    var specCases: [[String: Any]] = []
    for (ci, c) in cases.enumerated() {
        var inputs: [Any] = []
        for (ii, input) in c.inputs.enumerated() {
            switch input {
            case .floats(let data, let shape):
                precondition(data.count == product(shape), "\(c.name): input \(ii) size mismatch")
                let url = dir.appendingPathComponent("c\(ci)_in\(ii).bin")
                try data.withUnsafeBytes { try Data($0).write(to: url) }
                inputs.append(["shape": shape, "file": url.path])
            case .int64(let data, let shape):
                inputs.append(["shape": shape, "dtype": "int64", "data": data])
            case .bool(let data, let shape):
                inputs.append(["shape": shape, "dtype": "bool", "data": data])
            case .omitted:
                inputs.append(NSNull())
            }
        }
        var attrs: [String: Any] = [:]
        for (k, v) in c.attrs { attrs[k] = v.json }
        specCases.append([
            "name": c.name, "op": c.op, "opset": c.opset, "attrs": attrs, "inputs": inputs,
            "numOutputs": c.numOutputs, "outputType": c.outputType,
            "outputPrefix": dir.appendingPathComponent("c\(ci)_out").path,
        ])
    }
    let resultURL = dir.appendingPathComponent("result.json")
    let specURL = dir.appendingPathComponent("spec.json")
    try JSONSerialization.data(withJSONObject: ["cases": specCases, "result": resultURL.path]).write(to: specURL)

    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/single_op.py")
    let proc = Process()
    proc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    proc.arguments = ["python3", script.path, specURL.path]
    let errPipe = Pipe()
    proc.standardError = errPipe
    try proc.run()
    let errData = errPipe.fileHandleForReading.readDataToEndOfFile()
    proc.waitUntilExit()
    guard proc.terminationStatus == 0 else {
        throw ReferenceError.pythonFailed(String(decoding: errData, as: UTF8.self))
    }
    let result = try JSONSerialization.jsonObject(with: Data(contentsOf: resultURL)) as? [String: Any]
    let items = result?["cases"] as? [[String: Any]] ?? []
    var out: [String: [RefOutput]] = [:]
    for (ci, item) in items.enumerated() {
        let name = item["name"] as? String ?? "?"
        if let e = item["error"] as? String { throw ReferenceError.caseFailed(name, e) }
        let shapes = (item["shapes"] as? [[Any]] ?? []).map { $0.map { ($0 as? NSNumber)?.intValue ?? -1 } }
        var outputs: [RefOutput] = []
        for (k, shape) in shapes.enumerated() {
            let url = dir.appendingPathComponent("c\(ci)_out_\(k).bin")
            let data = try Data(contentsOf: url)
            let floats = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            outputs.append(RefOutput(shape: shape, data: floats))
        }
        out[name] = outputs
    }
    for c in cases where out[c.name] == nil { throw ReferenceError.missing(c.name) }
    return out
}

/// Max-abs error of `actual` against `reference` and the allowed bound 1e-4 · max(1, max|reference|).
func maxError(_ actual: [Float], _ reference: [Float]) -> (error: Float, bound: Float) {
    var err: Float = 0
    var refMax: Float = 0
    for i in 0..<min(actual.count, reference.count) {
        let d = abs(actual[i] - reference[i])
        err = max(err, d.isNaN ? .infinity : d)
        refMax = max(refMax, abs(reference[i]))
    }
    return (err, 1e-4 * max(1, refMax))
}

/// Expects `actual` (with `shape`) to match the reference output within the kernel tolerance.
func expectMatches(
    _ actual: [Float], shape: [Int], _ ref: RefOutput?, _ name: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let ref else {
        Issue.record("\(name): no reference output", sourceLocation: sourceLocation)
        return
    }
    #expect(ref.shape == shape, "\(name): shape \(shape) vs reference \(ref.shape)", sourceLocation: sourceLocation)
    #expect(
        actual.count == ref.data.count, "\(name): count \(actual.count) vs \(ref.data.count)",
        sourceLocation: sourceLocation)
    let (err, bound) = maxError(actual, ref.data)
    #expect(err <= bound, "\(name): max abs error \(err) > \(bound)", sourceLocation: sourceLocation)
}

/// Convenience: run `body` with read pointers to two arrays.
@inline(__always)
func withPointers<R>(
    _ a: [Float], _ b: [Float], _ body: (UnsafePointer<Float>, UnsafePointer<Float>) throws -> R
) rethrows -> R {
    try a.withUnsafeBufferPointer { pa in
        try b.withUnsafeBufferPointer { pb in try body(pa.baseAddress!, pb.baseAddress!) }
    }
}

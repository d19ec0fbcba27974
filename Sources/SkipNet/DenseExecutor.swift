import Foundation
import SkipNetAVX2

/// Runs a ``Graph`` densely, frame after frame, with every buffer planned at construction (``ExecutionPlan``): no
/// allocation per frame. Buffers are reused once their last reader has run; MobileNet blocks run fused and
/// activations in their conv's epilogue. Not thread-safe: one executor per inference task.
public final class DenseExecutor {
    public let graph: Graph
    /// OpenBLAS threads used by this executor's GEMMs.
    public let threads: Int
    /// The kernels fused blocks run with.
    public var kernels: KernelSet { plan.kernels }
    let plan: ExecutionPlan
    private var steps: [() -> Void] = []
    /// The node each step runs (a fused activation is part of its convolution's step; a fused block is named
    /// after its depthwise node).
    private var stepNodes: [NodeInfo] = []
    public let inputShape: [Int]
    public let outputShapes: [[Int]]
    /// Floats held by activation buffers and scratch (not weights), after reuse.
    public var plannedFloats: Int { plan.plannedFloats }

    public init(graph: Graph, threads: Int = 1, kernels: KernelSet = .detected) throws(ModelError) {
        guard graph.inputs.count == 1 else {
            throw ModelError("the dense executor runs single-input models; this one has \(graph.inputs.count)")
        }
        guard kernels == .portable || KernelSet.isSupported(kernels, cpuFlags: BLASCoreType.cpuFlags()) else {
            throw ModelError("this CPU cannot run the \(kernels.rawValue) kernels (it lacks AVX2 or FMA)")
        }
        self.graph = graph
        self.threads = threads
        inputShape = graph.shape(of: graph.inputs[0])
        outputShapes = graph.outputs.map { graph.shape(of: $0) }
        plan = try ExecutionPlan(graph: graph, reusesBuffers: true, kernels: kernels)
        for step in plan.steps {
            steps.append(try plan.makeStep(step))
            stepNodes.append(graph.nodes[step.node].info)
        }
    }

    /// Runs the model on one input laid out as ``inputShape``; results stay in ``output(_:)`` until the next run.
    public func run(_ input: UnsafeBufferPointer<Float>) throws(ModelError) {
        let expected = inputShape.reduce(1, *)
        guard input.count == expected, let base = input.baseAddress else {
            throw ModelError("input holds \(input.count) values; the model takes \(inputShape.shapeText) = \(expected)")
        }
        pointer(graph.inputs[0]).update(from: base, count: expected)
        Kernels.setThreads(threads)
        if !collectsStepTimes {
            runSteps()
            return
        }
        if stepSeconds.count != steps.count { stepSeconds = Array(repeating: 0, count: steps.count) }
        for (i, step) in steps.enumerated() {
            let start = ContinuousClock.now
            step()
            stepSeconds[i] += (ContinuousClock.now - start).seconds
        }
    }

    /// Runs the model on the input already in place (`pointer(graph.inputs[0])`) with the process's thread
    /// settings as they are: for several executors run at once on one worker each (`RegionExecutor`).
    func runSteps() {
        for step in steps { step() }
    }

    /// When set, ``run(_:)-7l6ur`` adds each step's wall time to ``stepSeconds`` (for per-layer comparisons).
    public var collectsStepTimes = false
    /// Seconds per step summed over runs, in step order; ``stepNodeNames`` names them.
    public private(set) var stepSeconds: [Double] = []
    public var stepNodeNames: [String] { stepNodes.map(\.name) }
    public func resetStepTimes() { stepSeconds = [] }

    /// Runs once and returns each step's wall time in seconds, for `skipd bench dense --profile`.
    public func profile(_ input: UnsafeBufferPointer<Float>) throws(ModelError) -> [(node: NodeInfo, seconds: Double)] {
        try run(input)
        var times: [(NodeInfo, Double)] = []
        for (step, node) in zip(steps, stepNodes) {
            let start = ContinuousClock.now
            step()
            times.append((node, (ContinuousClock.now - start).seconds))
        }
        return times
    }

    public func output(_ index: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: pointer(graph.outputs[index]), count: outputShapes[index].reduce(1, *))
    }

    /// Runs and copies every output (allocates: for tests and tools, not for the frame loop).
    public func run(_ input: Tensor) throws(ModelError) -> [Tensor] {
        guard input.shape == inputShape else {
            throw ModelError("input shape \(input.shape.shapeText) differs from the model's \(inputShape.shapeText)")
        }
        try input.data.withUnsafeBufferPointer { (buffer) throws(ModelError) in try run(buffer) }
        return outputShapes.indices.map { Tensor(shape: outputShapes[$0], data: Array(output($0))) }
    }

    func pointer(_ value: Int) -> UnsafeMutablePointer<Float> { plan.pointer(value) }
}

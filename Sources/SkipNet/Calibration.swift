/// Tunes skip-convolution thresholds to an error budget on a calibration clip (docs/skip-convolutions.md §8: front-to-back
/// greedy, DeltaCNN-style factor steps). Loss = the worst missed-change ratio over the model outputs (or those
/// `Options.outputs` names) against the dense run (1.0 = what reusing the previous output scores). Starting from
/// exact execution (every ε = 0), the input threshold and then each selected layer's threshold is multiplied by
/// `factor` while the loss stays within the budget; the first miss steps back to the last value that met it (0 if
/// none did: the layer stays exact), and the next layer starts from there. The choice goes by the loss alone: MAC
/// counts vary from run to run (exact layers pick dense or sparse recompute by their own timings) and are only
/// reported.
///
/// Every evaluation replays the whole clip through a fresh ``SkipExecutor`` (the skip state depends on the frames
/// before), against dense outputs computed once and kept in memory (all outputs of every frame). A clip may be
/// several stretches of a recording (`segments`): each starts from a keyframe, and the loss pools all of them, so
/// a calibration need not rest on the opening frames alone.
public enum Calibration {
    public struct Options: Sendable {
        /// Largest loss accepted: worst missed-change ratio over the outputs (`outputs`).
        public var budget: Double
        /// Layers tuned after the input threshold: the `layers` gated convs with the most dense MACs (the ones whose
        /// savings matter); 0: every gated conv.
        public var layers = 8
        /// First value tried for the input threshold, in model-input units.
        public var inputStart: Float = 1
        /// First value tried for a layer, × the layer's RMS (the units its gate compares with: input RMS for
        /// input-select, output RMS for the norm gates), so one start suits layers of any scale.
        public var start: Float = 0.01
        /// γ: each step multiplies the threshold by this.
        public var factor: Float = 2
        /// Steps per threshold at most (bounds the evaluations: ≤ 1 + (layers + 1)·maxSteps).
        public var maxSteps = 12
        /// BLAS threads of the executors.
        public var threads = 1
        /// Indices of the outputs whose worst missed-change ratio is the loss (nil: every output). A detector's
        /// regression outputs follow sensor noise away from objects; its score map is what detections read.
        public var outputs: [Int]?
        /// Tune only the input threshold: every other layer stays exact (so exact blocks keep running fused).
        public var inputOnly = false

        public init(budget: Double) { self.budget = budget }
    }

    /// One replay of the clip, as the progress callback sees it.
    public struct Evaluation: Sendable {
        /// 1-based; the first is the exact baseline.
        public var index: Int
        /// `exact`, `input`, or the conv node name being tuned.
        public var stage: String
        /// The threshold tried (absolute; 0 for the baseline).
        public var value: Float
        public var loss: Double
        public var macRatio: Double
        /// Dense keyframes among the clip's frames (scene cuts raise it: a threshold below the noise makes every
        /// frame one).
        public var keyframes: Int
        /// Within the budget: the value is kept (for now).
        public var accepted: Bool
    }

    /// A tuned layer: its dense MACs, the RMS its start was scaled by, and the threshold chosen (0: exact).
    public struct Layer: Sendable {
        public var name: String
        public var denseMACs: Int
        public var rms: Float
        public var threshold: Float
    }

    public struct Result: Sendable {
        /// `base` with the chosen input threshold, per-layer `thresholds`, and every other layer exact.
        public var settings: SkipSettings
        public var evaluations: Int
        /// Loss and MAC ratio (keyframes and gates included) of `settings` on the calibration clip.
        public var loss: Double
        public var macRatio: Double
        /// The same for exact execution (every threshold 0): the floor the thresholds trade error against.
        public var exactLoss: Double
        public var exactMACRatio: Double
        public var layers: [Layer]
    }

    /// One evaluated setting.
    private struct Trial {
        var value: Float
        var settings: SkipSettings
        var loss: Double
        var macRatio: Double
        /// The layers being tuned recomputed nothing outside unavoidable keyframes: raising further cannot help.
        var saturated: Bool
    }

    /// Calibrates `base`'s thresholds for `graph` on `frames` (input tensors in the model's input layout, in clip
    /// order). Gate, block, refresh and the other fields of `base` are kept; its thresholds are replaced.
    public static func calibrate(
        graph: Graph, frames: [[Float]], base: SkipSettings, options: Options, progress: (Evaluation) -> Void = { _ in }
    ) throws(ModelError) -> Result {
        try calibrate(graph: graph, segments: [frames], base: base, options: options, progress: progress)
    }

    /// `calibrate` on stretches of a clip (`segments`, each in clip order), each replayed from a keyframe.
    public static func calibrate(
        graph: Graph, segments: [[[Float]]], base: SkipSettings, options: Options,
        progress: (Evaluation) -> Void = { _ in }
    ) throws(ModelError) -> Result {
        guard options.budget > 0, options.budget.isFinite else {
            throw ModelError("the error budget must be a positive number, got \(options.budget)")
        }
        // The missed-change ratio compares frame-to-frame change: one frame has none to miss.
        guard !segments.isEmpty, let short = segments.min(by: { $0.count < $1.count }), short.count >= 2 else {
            let counts = segments.map { String($0.count) }.joined(separator: ", ")
            throw ModelError(
                "calibration needs at least 2 frames in every stretch, got \(counts.isEmpty ? "0" : counts)")
        }
        let frames = segments.flatMap { $0 }
        guard options.factor > 1, options.start > 0, options.inputStart > 0, options.layers >= 0,
            options.maxSteps >= 1, options.threads >= 1
        else {
            throw ModelError("calibration options out of range (factor > 1, starts > 0, layers ≥ 0, maxSteps ≥ 1)")
        }
        guard base.gate != .gumbel else {
            throw ModelError("the gumbel gate has no threshold to calibrate; use a norm or input-select gate")
        }
        let lossOutputs = options.outputs ?? Array(graph.outputs.indices)
        if let bad = lossOutputs.first(where: { !graph.outputs.indices.contains($0) }) {
            throw ModelError("the model has no output \(bad); it has \(graph.outputs.count)")
        }
        guard !lossOutputs.isEmpty else { throw ModelError("the loss needs at least one output") }
        let dense = try DenseExecutor(graph: graph, threads: options.threads)
        let count = dense.inputShape.reduce(1, *)
        if let bad = frames.firstIndex(where: { $0.count != count }) {
            throw ModelError(
                "calibration frame \(bad) holds \(frames[bad].count) values; the model takes "
                    + "\(dense.inputShape.shapeText) = \(count)")
        }
        var reference: [[[Float]]] = []
        reference.reserveCapacity(frames.count)
        for frame in frames {
            try frame.withUnsafeBufferPointer { (b) throws(ModelError) in try dense.run(b) }
            reference.append(graph.outputs.indices.map { Array(dense.output($0)) })
        }

        // Keyframes no threshold avoids: each stretch's first and the periodic refreshes (scene cuts depend on the
        // threshold).
        let fixedKeyframes = segments.reduce(0) { $0 + 1 + (base.refresh > 0 ? ($1.count - 1) / base.refresh : 0) }
        // Where each stretch starts in `frames`.
        let starts = Set(segments.indices.map { i in segments[..<i].reduce(0) { $0 + $1.count } })
        var evaluations = 0
        func evaluate(
            _ settings: SkipSettings, _ stage: String, _ value: Float, watching layers: Set<String> = []
        ) throws(ModelError) -> Trial {
            let executor = try SkipExecutor(graph: graph, settings: settings, threads: options.threads)
            var fidelity = Array(repeating: OutputFidelity(), count: graph.outputs.count)
            for (t, frame) in frames.enumerated() {
                if t > 0 && starts.contains(t) {
                    executor.reset()
                    for k in fidelity.indices { fidelity[k].restart() }
                }
                try frame.withUnsafeBufferPointer { (b) throws(ModelError) in try executor.run(b) }
                for k in graph.outputs.indices {
                    reference[t][k].withUnsafeBufferPointer { fidelity[k].add(executor.output(k), dense: $0) }
                }
            }
            let saturated =
                executor.keyframes == fixedKeyframes
                && executor.layerStats.filter { layers.contains($0.name) }.allSatisfy {
                    $0.denseFrames == fixedKeyframes && $0.activePositions == $0.denseFrames * $0.positions
                }
            let trial = Trial(
                value: value, settings: settings, loss: lossOutputs.map { fidelity[$0].missedChangeRatio }.max() ?? 0,
                macRatio: executor.macRatio, saturated: saturated)
            evaluations += 1
            progress(
                Evaluation(
                    index: evaluations, stage: stage, value: value, loss: trial.loss, macRatio: trial.macRatio,
                    keyframes: executor.keyframes, accepted: trial.loss <= options.budget))
            return trial
        }

        var exactSettings = base
        exactSettings.inputThreshold = 0
        exactSettings.threshold = 0
        exactSettings.relative = false
        exactSettings.thresholds = [:]
        let exact = try evaluate(exactSettings, "exact", 0)
        guard exact.loss <= options.budget else {
            throw ModelError(
                "exact skip execution already misses the budget (loss \(exact.loss) > \(options.budget)): "
                    + "raise the budget or use a clip with more motion")
        }
        var current = exact

        // Layers the thresholds apply to, from one keyframe with every non-input threshold relative 1: the absolute
        // value each then reports is the layer's RMS in its gate's units.
        var probeSettings = base
        probeSettings.threshold = 1
        probeSettings.relative = true
        probeSettings.thresholds = [:]
        let probe = try SkipExecutor(graph: graph, settings: probeSettings, threads: options.threads)
        try frames[0].withUnsafeBufferPointer { (b) throws(ModelError) in try probe.run(b) }
        let nodes = Dictionary(graph.nodes.map { ($0.info.name, $0) }, uniquingKeysWith: { a, _ in a })
        let input = graph.inputs[0]
        func readsInput(_ node: Graph.Node) -> Bool {
            node.inputs.compactMap { $0 }.first { graph.constants[$0] == nil } == input
        }
        // Depthwise convs ignore their threshold (they always propagate exactly).
        func isDepthwise(_ node: Graph.Node) -> Bool {
            guard case .conv(let a) = node.op, a.group > 1, let x = node.inputs[0] else { return false }
            return a.group == graph.shape(of: x)[1] && a.group == graph.shape(of: node.outputs[0])[1]
        }
        let stats = probe.layerStats
        let inputLayers = Set(stats.filter { nodes[$0.name].map(readsInput) ?? false }.map(\.name))
        var candidates = stats.enumerated().filter { _, s in
            guard let node = nodes[s.name], !readsInput(node), !isDepthwise(node) else { return false }
            return s.threshold > 0 && s.threshold.isFinite
        }
        if options.inputOnly {
            candidates = []
        } else if options.layers > 0 {
            candidates = Array(candidates.sorted { $0.element.denseMACs > $1.element.denseMACs }.prefix(options.layers))
            candidates.sort { $0.offset < $1.offset }
        }

        /// Raises one threshold from `start` by `factor` while the loss stays within the budget and returns the last
        /// value that met it (0: none did, the threshold stays exact), with `current` set to it.
        func tune(
            _ stage: String, from start: Float, watching layers: Set<String>,
            _ apply: (inout SkipSettings, Float) -> Void
        ) throws(ModelError) -> Float {
            var chosen = current
            chosen.value = 0
            var value = start
            for _ in 0..<options.maxSteps {
                var settings = current.settings
                apply(&settings, value)
                let trial = try evaluate(settings, stage, value, watching: layers)
                guard trial.loss <= options.budget else { break }
                chosen = trial
                if trial.saturated { break }
                value *= options.factor
            }
            current = chosen
            return chosen.value
        }

        _ = try tune("input", from: options.inputStart, watching: inputLayers) { $0.inputThreshold = $1 }
        var layers: [Layer] = []
        for (_, s) in candidates {
            let chosen = try tune(s.name, from: options.start * s.threshold, watching: [s.name]) {
                $0.thresholds[s.name] = $1
            }
            layers.append(Layer(name: s.name, denseMACs: s.denseMACs, rms: s.threshold, threshold: chosen))
        }
        return Result(
            settings: current.settings, evaluations: evaluations, loss: current.loss, macRatio: current.macRatio,
            exactLoss: exact.loss, exactMACRatio: exact.macRatio, layers: layers)
    }
}

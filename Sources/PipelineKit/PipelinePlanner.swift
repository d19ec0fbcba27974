import CGStreamer
import Foundation

/// Turns a pipeline file into a ``PipelinePlan``, checking everything that can be checked before starting:
/// element names (asking GStreamer), properties and their values, the place of every stage, caps filters and
/// input files. The first problem is thrown as a ``PipelineDiagnostic`` pointing at the offending text.
public struct PipelinePlanner: Sendable {
    public var registry: StageRegistry
    /// Check that `filesrc location=…` files exist (relative paths against the working directory).
    public var checkFiles = true

    public init(registry: StageRegistry) {
        self.registry = registry
    }

    public func plan(file: String) throws(PipelineDiagnostic) -> PipelinePlan {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw PipelineDiagnostic(
                file: file, location: SourceLocation(line: 1, column: 1),
                message: "cannot read pipeline file: \(error.localizedDescription)", offending: "", sourceLine: "")
        }
        return try plan(text: text, file: file)
    }

    /// Plans a full pipeline: a GStreamer source segment is required.
    public func plan(text: String, file: String) throws(PipelineDiagnostic) -> PipelinePlan {
        try plan(text: text, file: file, stagesOnly: false)
    }

    /// Plans a chain of stages only (no GStreamer segments), for frames that come from Swift.
    public func planStages(_ text: String) throws(PipelineDiagnostic) -> PipelinePlan {
        try plan(text: text, file: "<stages>", stagesOnly: true)
    }

    private enum Item {
        case gst(ElementSyntax)
        case stage(ElementSyntax, any Stage.Type, StageInfo)
        case channel(ElementSyntax)
    }

    private func plan(text: String, file: String, stagesOnly: Bool) throws(PipelineDiagnostic) -> PipelinePlan {
        let context = DiagnosticContext(file: file, text: text)
        let syntax = try PipelineParser.parse(text, file: file)
        let items = try syntax.elements.map { (element) throws(PipelineDiagnostic) -> Item in
            try classify(element, context: context, stagesOnly: stagesOnly)
        }

        var sourceElements: [ElementSyntax] = []
        var sinkElements: [ElementSyntax] = []
        var stages: [StageSpec] = []
        var links: [LinkSpec] = []
        var linkLocations: [Int: SourceLocation] = [:]
        var stageCounts: [String: Int] = [:]
        /// Results attached by the stages so far, with the stage that attaches each first.
        var provided: Set<String> = []

        for (i, item) in items.enumerated() {
            switch item {
            case .gst(let element):
                if stages.isEmpty {
                    sourceElements.append(element)
                } else {
                    sinkElements.append(element)
                }
            case .stage(let element, let type, let info):
                if let first = sinkElements.first {
                    throw context.error(
                        "stage '\(info.name)' cannot follow the GStreamer sink segment that starts at "
                            + "\(first.head.location) ('\(first.head.text)'): stages form one chain between the "
                            + "GStreamer source and sink segments", at: element.head)
                }
                if stages.isEmpty, !stagesOnly, sourceElements.isEmpty {
                    throw context.error(
                        "stage '\(info.name)' needs a GStreamer source before it, e.g. "
                            + "'filesrc location=clip.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
                            + "\(info.name)'", at: element.head)
                }
                if !stagesOnly, let missing = info.requires.first(where: { !provided.contains($0) }) {
                    let providers = registry.all.map(registry.info(of:)).filter { $0.provides.contains(missing) }
                    let hint = providers.first.map { " (… ! \($0.name) ! \(info.name) ! …)" } ?? ""
                    throw context.error(
                        "stage '\(info.name)' needs '\(missing)' from a stage before it\(hint)", at: element.head)
                }
                provided.formUnion(info.provides)
                let properties = try stageProperties(element, info: info, context: context)
                let count = stageCounts[info.name, default: 0]
                stageCounts[info.name] = count + 1
                let name = properties.name ?? "\(info.name)\(count)"
                if stages.contains(where: { $0.name == name }) {
                    throw context.error(
                        "two stages are named '\(name)': instance names must be unique", at: element.head)
                }
                stages.append(
                    StageSpec(name: name, stage: type, properties: properties.values, location: element.head.location))
            case .channel(let element):
                let previousIsStage = i > 0 && { if case .stage = items[i - 1] { true } else { false } }()
                let nextIsStage = i + 1 < items.count && { if case .stage = items[i + 1] { true } else { false } }()
                guard previousIsStage || nextIsStage else {
                    throw context.error(
                        "'channel' configures a link next to a skipd stage; inside a GStreamer segment use 'queue'",
                        at: element.head)
                }
                let link = stages.count
                if let earlier = linkLocations[link] {
                    throw context.error(
                        "this link is already configured by the 'channel' at \(earlier)", at: element.head)
                }
                linkLocations[link] = element.head.location
                while links.count <= link { links.append(LinkSpec()) }
                links[link] = try linkSpec(element, context: context)
            }
        }
        guard !stages.isEmpty else {
            throw context.error(
                "no skipd stage in the pipeline: add one of \(registry.names.joined(separator: ", "))",
                at: syntax.elements[0].head)
        }
        while links.count <= stages.count { links.append(LinkSpec()) }

        var source: PipelinePlan.Segment?
        if let first = sourceElements.first {
            try checkSourceStart(first, context: context)
            source = PipelinePlan.Segment(description: launchText(sourceElements), location: first.head.location)
        }
        var sink: PipelinePlan.Segment?
        if let first = sinkElements.first, let last = sinkElements.last {
            try checkSinkEnd(last, context: context)
            sink = PipelinePlan.Segment(description: launchText(sinkElements), location: first.head.location)
        }
        return PipelinePlan(file: file, source: source, stages: stages, links: links, sink: sink)
    }

    // MARK: - Classification and GStreamer checks

    private func classify(_ element: ElementSyntax, context: DiagnosticContext, stagesOnly: Bool)
        throws(PipelineDiagnostic) -> Item
    {
        switch element.kind {
        case .caps(let caps):
            if stagesOnly { throw context.error("only skipd stages can appear here", at: caps) }
            try GStreamer.initializeForPlanning(context: context, at: caps)
            guard let parsed = gst_caps_from_string(caps.text) else {
                throw context.error("invalid caps filter '\(caps.text)'", at: caps)
            }
            swgst_caps_unref(parsed)
            return .gst(element)
        case .element(let name):
            if name.text == ChannelElement.info.name { return .channel(element) }
            if let stage = registry.stage(named: name.text) { return .stage(element, stage, registry.info(of: stage)) }
            if stagesOnly { throw unknown(name, context: context, gstreamer: false) }
            try GStreamer.initializeForPlanning(context: context, at: name)
            guard let factory = GStreamer.factory(named: name.text) else {
                throw unknown(name, context: context, gstreamer: true)
            }
            defer { gst_object_unref(UnsafeMutableRawPointer(factory)) }
            try checkGStreamerProperties(element, factory: factory, context: context)
            return .gst(element)
        }
    }

    private func unknown(_ name: SourceText, context: DiagnosticContext, gstreamer: Bool) -> PipelineDiagnostic {
        let candidates = registry.names + [ChannelElement.info.name]
        let near = candidates.min { editDistance($0, name.text) < editDistance($1, name.text) }
        var message =
            gstreamer
            ? "unknown element '\(name.text)': neither a skipd stage nor a GStreamer element installed here"
            : "unknown stage '\(name.text)'"
        if let near, editDistance(near, name.text) <= 2 { message += " (did you mean '\(near)'?)" }
        return context.error(message, at: name)
    }

    private func checkGStreamerProperties(
        _ element: ElementSyntax, factory: OpaquePointer, context: DiagnosticContext
    ) throws(PipelineDiagnostic) {
        guard !element.properties.isEmpty else { return }
        guard let instance = gst_element_factory_create(factory, nil) else {
            throw context.error("GStreamer cannot create element '\(element.head.text)'", at: element.head)
        }
        gst_object_ref_sink(instance)
        defer { gst_object_unref(instance) }
        for property in element.properties {
            switch GStreamer.checkProperty(element: instance, key: property.key.text, value: property.value.text) {
            case .ok: break
            case .unknown:
                throw context.error(
                    "element '\(element.head.text)' has no property '\(property.key.text)'", at: property.key)
            case .readOnly(let type):
                throw context.error(
                    "property '\(property.key.text)' of '\(element.head.text)' is read-only (\(type))",
                    at: property.key)
            case .badValue(let type):
                throw context.error(
                    "invalid value '\(property.value.text)' for property '\(property.key.text)' of "
                        + "'\(element.head.text)' (expects \(type))", at: property.value)
            }
            if checkFiles, element.head.text == "filesrc", property.key.text == "location",
                !FileManager.default.fileExists(atPath: property.value.text)
            {
                throw context.error("input file '\(property.value.text)' does not exist", at: property.value)
            }
        }
    }

    private func checkSourceStart(_ element: ElementSyntax, context: DiagnosticContext) throws(PipelineDiagnostic) {
        guard case .element(let name) = element.kind, let factory = GStreamer.factory(named: name.text) else {
            throw context.error(
                "a pipeline must start with a GStreamer source element, not a caps filter", at: element.head)
        }
        defer { gst_object_unref(UnsafeMutableRawPointer(factory)) }
        if swgst_factory_has_pads(factory, GST_PAD_SINK) != 0 {
            throw context.error(
                "'\(name.text)' is not a source: a pipeline starts with a source element such as filesrc, "
                    + "videotestsrc, uridecodebin or rtspsrc", at: name)
        }
    }

    private func checkSinkEnd(_ element: ElementSyntax, context: DiagnosticContext) throws(PipelineDiagnostic) {
        guard case .element(let name) = element.kind, let factory = GStreamer.factory(named: name.text) else {
            throw context.error(
                "the GStreamer segment after the stages must end in a sink element, not a caps filter",
                at: element.head)
        }
        defer { gst_object_unref(UnsafeMutableRawPointer(factory)) }
        if swgst_factory_has_pads(factory, GST_PAD_SRC) != 0 {
            throw context.error(
                "the GStreamer segment after the stages must end in a sink element (fakesink, filesink, "
                    + "multifilesink, …); '\(name.text)' has output pads", at: name)
        }
    }

    private func launchText(_ elements: [ElementSyntax]) -> String {
        elements.map { element in
            switch element.kind {
            case .caps(let caps): caps.text
            case .element(let name): ([name.text] + element.properties.map(\.launchText)).joined(separator: " ")
            }
        }.joined(separator: " ! ")
    }

    // MARK: - Stage and link properties

    private func stageProperties(_ element: ElementSyntax, info: StageInfo, context: DiagnosticContext)
        throws(PipelineDiagnostic) -> (values: StageProperties, name: String?)
    {
        var values: [String: PropertyValue] = [:]
        var name: String?
        for spec in info.properties { values[spec.name] = spec.defaultValue }
        var seen: Set<String> = []
        for property in element.properties {
            let key = property.key.text
            guard seen.insert(key).inserted else {
                throw context.error("property '\(key)' is set twice", at: property.key)
            }
            if key == "name" {
                guard !property.value.text.isEmpty else {
                    throw context.error("'name' needs a non-empty value", at: property.value)
                }
                name = property.value.text
                continue
            }
            guard let spec = info.properties.first(where: { $0.name == key }) else {
                let known = (info.properties.map(\.name) + ["name"]).joined(separator: ", ")
                throw context.error(
                    "stage '\(info.name)' has no property '\(key)' (it has: \(known))", at: property.key)
            }
            switch spec.parse(property.value.text) {
            case .success(let value):
                if spec.kind == .file, checkFiles, !FileManager.default.fileExists(atPath: property.value.text) {
                    throw context.error("\(key) file '\(property.value.text)' does not exist", at: property.value)
                }
                values[key] = value
            case .failure(let error):
                throw context.error("bad value for '\(info.name) \(key)': \(error.message)", at: property.value)
            }
        }
        for spec in info.properties where values[spec.name] == nil {
            throw context.error(
                "stage '\(info.name)' needs property '\(spec.name)' (\(spec.summary))", at: element.head)
        }
        return (StageProperties(values, explicit: seen.subtracting(["name"])), name)
    }

    private func linkSpec(_ element: ElementSyntax, context: DiagnosticContext) throws(PipelineDiagnostic)
        -> LinkSpec
    {
        let (values, _) = try stageProperties(element, info: ChannelElement.info, context: context)
        let explicit = Set(element.properties.map(\.key.text))
        return LinkSpec(
            capacity: explicit.contains("capacity") ? values.int("capacity") : nil,
            policy: OverflowPolicy(rawValue: values.string("overflow")))
    }
}

extension GStreamer {
    /// Initialises GStreamer for a planner check; a failure is reported at the element that needed it.
    static func initializeForPlanning(context: DiagnosticContext, at span: SourceText) throws(PipelineDiagnostic) {
        do {
            try initialize()
        } catch {
            throw context.error("GStreamer is not usable: \(error.message)", at: span)
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}

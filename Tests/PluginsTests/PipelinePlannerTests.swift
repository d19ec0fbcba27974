import PipelineKit
import Plugins
import Testing

/// Planning pipeline files against the standard stages and the GStreamer installed here.
///
/// Every expected `line:column` below was counted by hand from the text of its test (1-based, columns count
/// characters).
@Suite struct PipelinePlannerTests {
    static let file = "t.pipeline"

    static func plan(_ text: String, checkFiles: Bool = true) throws(PipelineDiagnostic) -> PipelinePlan {
        var planner = PipelinePlanner(registry: .standard)
        planner.checkFiles = checkFiles
        return try planner.plan(text: text, file: file)
    }

    static func at(_ line: Int, _ column: Int) -> PipelineKit.SourceLocation {
        PipelineKit.SourceLocation(line: line, column: column)
    }

    static func isStage(_ spec: StageSpec, _ type: any Stage.Type) -> Bool {
        ObjectIdentifier(spec.stage) == ObjectIdentifier(type)
    }

    static let residualDefaults: [String: PropertyValue] = ["threshold": .int(12), "block": .int(16)]
    static let gateDefaults: [String: PropertyValue] = [
        "min-changed": .double(0), "block": .int(0), "refresh": .int(300),
    ]

    // MARK: - Valid pipelines

    @Test func sourceStagesAndFakesink() throws {
        let plan = try Self.plan(
            "videotestsrc num-buffers=5 ! videoconvert ! video/x-raw,format=RGB ! residual threshold=10 block=8 ! gate ! fakesink"
        )
        #expect(plan.file == Self.file)
        #expect(plan.source?.description == "videotestsrc num-buffers=5 ! videoconvert ! video/x-raw,format=RGB")
        #expect(plan.source?.location == Self.at(1, 1))
        #expect(plan.stages.map(\.name) == ["residual0", "gate0"])
        #expect(plan.stages.count == 2)
        guard plan.stages.count == 2 else { return }
        #expect(Self.isStage(plan.stages[0], Residual.self))
        #expect(Self.isStage(plan.stages[1], Gate.self))
        #expect(plan.stages[0].location == Self.at(1, 70))
        #expect(plan.stages[1].location == Self.at(1, 102))
        #expect(plan.stages[0].properties.values == ["threshold": .int(10), "block": .int(8)])
        #expect(plan.stages[1].properties.values == Self.gateDefaults)
        #expect(plan.links == [LinkSpec(), LinkSpec(), LinkSpec()])
        #expect(plan.sink?.description == "fakesink")
        #expect(plan.sink?.location == Self.at(1, 109))
    }

    @Test func multiLineWithEncodingSinkSegment() throws {
        let text = """
            # encode the frames that pass the gate
            videotestsrc num-buffers=5
              ! videoconvert ! video/x-raw,format=RGB
              ! residual
              ! gate
              ! videoconvert ! jpegenc ! multifilesink location=/tmp/x/%05d.jpg
            """
        let plan = try Self.plan(text)
        #expect(plan.source?.description == "videotestsrc num-buffers=5 ! videoconvert ! video/x-raw,format=RGB")
        #expect(plan.source?.location == Self.at(2, 1))
        #expect(plan.stages.map(\.name) == ["residual0", "gate0"])
        #expect(plan.stages.map(\.location) == [Self.at(4, 5), Self.at(5, 5)])
        guard plan.stages.count == 2 else { return }
        #expect(plan.stages[0].properties.values == Self.residualDefaults)
        #expect(plan.stages[1].properties.values == Self.gateDefaults)
        #expect(plan.sink?.description == "videoconvert ! jpegenc ! multifilesink location=/tmp/x/%05d.jpg")
        #expect(plan.sink?.location == Self.at(6, 5))
        #expect(plan.links.count == 3)
    }

    @Test func capsWithSpacesAndTypesAcrossLines() throws {
        let text = """
            videotestsrc pattern=ball
              ! videoconvert
              ! video/x-raw, format=(string)RGB, width=(int)320, height=(int)240  # small
              ! residual ! fakesink
            """
        let plan = try Self.plan(text)
        #expect(
            plan.source?.description
                == "videotestsrc pattern=ball ! videoconvert ! video/x-raw, format=(string)RGB, width=(int)320, height=(int)240"
        )
        #expect(plan.stages.map(\.location) == [Self.at(4, 5)])
        #expect(plan.sink?.description == "fakesink")
        #expect(plan.sink?.location == Self.at(4, 16))
    }

    @Test func channelBetweenStagesConfiguresTheLinkFeedingTheNextStage() throws {
        let text = """
            videotestsrc ! videoconvert ! video/x-raw,format=RGB
              ! residual
              ! channel capacity=2 overflow=drop-oldest
              ! gate
              ! fakesink
            """
        let plan = try Self.plan(text)
        #expect(plan.stages.map(\.name) == ["residual0", "gate0"])
        #expect(plan.stages.map(\.location) == [Self.at(2, 5), Self.at(4, 5)])
        #expect(plan.links == [LinkSpec(), LinkSpec(capacity: 2, policy: .dropOldest), LinkSpec()])
        #expect(plan.source?.description == "videotestsrc ! videoconvert ! video/x-raw,format=RGB")
        #expect(plan.sink?.description == "fakesink")
        #expect(plan.sink?.location == Self.at(5, 5))
    }

    @Test func channelsAtBothEnds() throws {
        let plan = try Self.plan(
            "videotestsrc ! channel overflow=block ! residual ! gate ! channel capacity=8 ! fakesink")
        #expect(plan.source?.description == "videotestsrc")
        #expect(plan.stages.map(\.name) == ["residual0", "gate0"])
        // overflow defaults to auto (nil: the runner decides); capacity is nil unless written.
        #expect(plan.links == [LinkSpec(policy: .block), LinkSpec(), LinkSpec(capacity: 8)])
        #expect(plan.sink?.description == "fakesink")
    }

    @Test func channelAfterTheLastStageWithoutSink() throws {
        let plan = try Self.plan("videotestsrc ! residual ! channel capacity=3 overflow=auto")
        #expect(plan.sink == nil)
        #expect(plan.links == [LinkSpec(), LinkSpec(capacity: 3)])
    }

    @Test func namedStagesAndPositionalNames() throws {
        let text = """
            videotestsrc
              ! residual name=coarse block=32
              ! residual
              ! gate name="my gate" min-changed=0.25 refresh=0
              ! jsonsink location=/tmp/out.jsonl
            """
        let plan = try Self.plan(text)
        #expect(plan.source?.description == "videotestsrc")
        #expect(plan.sink == nil)
        #expect(plan.stages.map(\.name) == ["coarse", "residual1", "my gate", "jsonsink0"])
        guard plan.stages.count == 4 else { return }
        #expect(Self.isStage(plan.stages[0], Residual.self))
        #expect(Self.isStage(plan.stages[1], Residual.self))
        #expect(Self.isStage(plan.stages[2], Gate.self))
        #expect(Self.isStage(plan.stages[3], JSONSink.self))
        // `name` names the instance; it is not a stage property.
        #expect(plan.stages[0].properties.values == ["threshold": .int(12), "block": .int(32)])
        #expect(plan.stages[1].properties.values == Self.residualDefaults)
        #expect(
            plan.stages[2].properties.values == ["min-changed": .double(0.25), "block": .int(0), "refresh": .int(0)])
        #expect(plan.stages[3].properties.values == ["location": .string("/tmp/out.jsonl")])
        #expect(plan.links.count == 5)
    }

    @Test func quotedGStreamerValuesAreRequotedInTheDescription() throws {
        let text = #"filesrc location="/nonexistent/my clip.avi" ! decodebin ! videoconvert ! residual ! fakesink"#
        let plan = try Self.plan(text, checkFiles: false)
        #expect(
            plan.source?.description
                == #"filesrc location="/nonexistent/my clip.avi" ! decodebin ! videoconvert"#)
        #expect(plan.stages.map(\.name) == ["residual0"])
    }

    @Test func stagesOnly() throws {
        let plan = try PipelinePlanner(registry: .standard).planStages("residual threshold=5 ! gate")
        #expect(plan.file == "<stages>")
        #expect(plan.source == nil)
        #expect(plan.sink == nil)
        #expect(plan.stages.map(\.name) == ["residual0", "gate0"])
        #expect(plan.stages.first?.properties.values == ["threshold": .int(5), "block": .int(16)])
        #expect(plan.links.count == 3)
    }

    // MARK: - Malformed pipelines

    struct Malformed: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var line: Int
        var column: Int
        var message: String
        var testDescription: String { label }
    }

    static let malformed: [Malformed] = [
        Malformed(
            label: "typo of a stage name",
            text: """
                videotestsrc ! videoconvert ! video/x-raw,format=RGB
                  ! residul threshold=10
                  ! gate ! fakesink
                """,
            line: 2, column: 5, message: "unknown element 'residul'"),
        Malformed(
            label: "unknown GStreamer element",
            text: "videotestsrc ! nosuchfilter ! residual ! fakesink",
            line: 1, column: 16,
            message: "unknown element 'nosuchfilter': neither a skipd stage nor a GStreamer element installed here"),
        Malformed(
            label: "unknown stage property",
            text: "videotestsrc ! residual treshold=10 ! fakesink",
            line: 1, column: 25, message: "stage 'residual' has no property 'treshold' (it has: threshold, block, name)"
        ),
        Malformed(
            label: "stage int property that is not a number",
            text: """
                videotestsrc
                  ! residual threshold=ten
                  ! fakesink
                """,
            line: 2, column: 24, message: "bad value for 'residual threshold': expected an integer, got 'ten'"),
        Malformed(
            label: "stage double property that is not a number",
            text: "videotestsrc ! residual ! gate min-changed=lots ! fakesink",
            line: 1, column: 44, message: "bad value for 'gate min-changed': expected a number, got 'lots'"),
        Malformed(
            label: "gate without residual before it",
            text: "videotestsrc ! gate ! fakesink",
            line: 1, column: 16,
            message: "stage 'gate' needs 'residual' from a stage before it (… ! residual ! gate ! …)"),
        Malformed(
            label: "centerface without a model before it",
            text: "videotestsrc ! residual ! centerface ! fakesink",
            line: 1, column: 27, message: "stage 'centerface' needs 'outputs' from a stage before it"),
        Malformed(
            label: "input size that is not WxH",
            text: "videotestsrc ! model model=/etc/hostname input-size=foo ! fakesink",
            line: 1, column: 53, message: "bad value for 'model input-size': expected WxH (e.g. 768x576"),
        Malformed(
            label: "input size of zero",
            text: "videotestsrc ! skipconv model=/etc/hostname input-size=0x576 ! fakesink",
            line: 1, column: 56, message: "expected WxH"),
        Malformed(
            label: "two values for the mean",
            text: "videotestsrc ! model model=/etc/hostname mean=1,2 ! fakesink",
            line: 1, column: 47, message: "bad value for 'model mean': expected 1 or 3 comma-separated numbers"),
        Malformed(
            label: "a scale that is not a number",
            text: "videotestsrc ! model model=/etc/hostname scale=x ! fakesink",
            line: 1, column: 48, message: "expected 1 or 3 comma-separated numbers, got 'x'"),
        Malformed(
            label: "a policy scale above 1",
            text: "videotestsrc ! residual ! gate ! policy scales=1,2 ! fakesink",
            line: 1, column: 48, message: "'1,2': each must be within 0.01…1.0"),
        Malformed(
            label: "stage property out of range",
            text: "videotestsrc ! residual block=0 ! fakesink",
            line: 1, column: 31, message: "bad value for 'residual block': 0 is out of range 1…512"),
        Malformed(
            label: "stage property out of range on line 3 after leading spaces",
            text: """
                videotestsrc num-buffers=10
                  ! videoconvert ! video/x-raw,format=RGB
                      ! residual threshold=8 block=600
                  ! fakesink
                """,
            line: 3, column: 36, message: "bad value for 'residual block': 600 is out of range 1…512"),
        Malformed(
            label: "channel capacity out of range",
            text: "videotestsrc ! residual ! channel capacity=5000 ! gate ! fakesink",
            line: 1, column: 44, message: "bad value for 'channel capacity': 5000 is out of range 1…1024"),
        Malformed(
            label: "channel overflow not a choice",
            text: "videotestsrc ! residual ! channel overflow=drop-newest ! gate ! fakesink",
            line: 1, column: 44,
            message: "bad value for 'channel overflow': expected one of auto, block, drop-oldest, got 'drop-newest'"),
        Malformed(
            label: "unknown GStreamer property",
            text: "videotestsrc num-bufers=5 ! residual ! fakesink",
            line: 1, column: 14, message: "element 'videotestsrc' has no property 'num-bufers'"),
        Malformed(
            label: "bad GStreamer property value",
            text: "videotestsrc num-buffers=abc ! residual ! fakesink",
            line: 1, column: 26, message: "invalid value 'abc' for property 'num-buffers' of 'videotestsrc'"),
        Malformed(
            label: "read-only GStreamer property",
            text: "videotestsrc ! residual ! fakesink last-sample=x",
            line: 1, column: 36, message: "property 'last-sample' of 'fakesink' is read-only"),
        Malformed(
            label: "stage before any source",
            text: """
                # no source here
                  residual ! gate ! fakesink
                """,
            line: 2, column: 3, message: "stage 'residual' needs a GStreamer source before it"),
        Malformed(
            label: "stage after the GStreamer sink segment",
            text: "videotestsrc ! residual ! videoconvert ! gate ! fakesink",
            line: 1, column: 42,
            message: "stage 'gate' cannot follow the GStreamer sink segment that starts at 1:27 ('videoconvert')"),
        Malformed(
            label: "channel inside the source segment",
            text: """
                videotestsrc
                  ! channel capacity=2
                  ! videoconvert ! residual ! fakesink
                """,
            line: 2, column: 5,
            message: "'channel' configures a link next to a skipd stage; inside a GStreamer segment use 'queue'"),
        Malformed(
            label: "channel inside the sink segment",
            text: "videotestsrc ! residual ! videoconvert ! channel ! fakesink",
            line: 1, column: 42, message: "inside a GStreamer segment use 'queue'"),
        Malformed(
            label: "two channels on one link",
            text: "videotestsrc ! residual ! channel capacity=2 ! channel overflow=block ! gate ! fakesink",
            line: 1, column: 48, message: "this link is already configured by the 'channel' at 1:27"),
        Malformed(
            label: "stage property set twice",
            text: "videotestsrc ! residual threshold=5 threshold=6 ! fakesink",
            line: 1, column: 37, message: "property 'threshold' is set twice"),
        Malformed(
            label: "missing required property, on line 4",
            text: """
                videotestsrc
                  ! residual
                  ! gate
                    ! jsonsink
                """,
            line: 4, column: 7, message: "stage 'jsonsink' needs property 'location'"),
        Malformed(
            label: "missing input file",
            text: "filesrc location=/nonexistent/x.avi ! decodebin ! videoconvert ! residual ! fakesink",
            line: 1, column: 18, message: "input file '/nonexistent/x.avi' does not exist"),
        Malformed(
            label: "missing quoted input file on line 3",
            text: """
                # clip with a space in its name
                filesrc
                   location="/nonexistent/my clip.avi"
                   ! decodebin ! videoconvert ! residual ! fakesink
                """,
            line: 3, column: 13, message: "input file '/nonexistent/my clip.avi' does not exist"),
        Malformed(
            label: "sink segment ending in a filter",
            text: "videotestsrc ! residual ! gate ! videoconvert",
            line: 1, column: 34, message: "'videoconvert' has output pads"),
        Malformed(
            label: "sink segment ending in a caps filter",
            text: "videotestsrc ! residual ! videoconvert ! video/x-raw,format=I420",
            line: 1, column: 42, message: "must end in a sink element, not a caps filter"),
        Malformed(
            label: "pipeline starting with a filter",
            text: "videoconvert ! residual ! fakesink",
            line: 1, column: 1, message: "'videoconvert' is not a source"),
        Malformed(
            label: "pipeline starting with a filter after a blank line",
            text: """

                   videoconvert ! residual ! fakesink
                """,
            line: 2, column: 4, message: "'videoconvert' is not a source"),
        Malformed(
            label: "pipeline starting with a caps filter",
            text: "video/x-raw,format=RGB ! residual ! fakesink",
            line: 1, column: 1, message: "a pipeline must start with a GStreamer source element, not a caps filter"),
        Malformed(
            label: "invalid caps filter",
            text: "videotestsrc ! video/x-raw,width=(int)abc ! residual ! fakesink",
            line: 1, column: 16, message: "invalid caps filter 'video/x-raw,width=(int)abc'"),
        Malformed(
            label: "pad reference",
            text: "videotestsrc ! tee name=t ! t. ! residual ! fakesink",
            line: 1, column: 29, message: "pad references ('t.') are not supported"),
        Malformed(
            label: "property without '='",
            text: "videotestsrc ! residual threshold ! gate ! fakesink",
            line: 1, column: 25, message: "expected 'property=value' after 'residual', found 'threshold'"),
        Malformed(
            label: "no stage at all",
            text: "videotestsrc ! fakesink",
            line: 1, column: 1,
            message: "no skipd stage in the pipeline: add one of centerface, detect, fusion, gate, interval"),
        Malformed(
            label: "no stage at all, indented after a comment",
            text: """
                # only GStreamer
                    videotestsrc
                    ! fakesink
                """,
            line: 2, column: 5, message: "no skipd stage in the pipeline"),
        Malformed(
            label: "unbalanced quote reported through the planner",
            text: """
                videotestsrc
                  ! residual
                  ! jsonsink location="out.jsonl
                """,
            line: 3, column: 23, message: #"unbalanced quote: " is never closed on this line"#),
        Malformed(
            label: "empty pipeline through the planner",
            text: "\n  # nothing\n",
            line: 1, column: 1, message: "empty pipeline: no elements"),
    ]

    @Test(arguments: malformed)
    func malformedPipeline(_ test: Malformed) {
        do throws(PipelineDiagnostic) {
            let plan = try Self.plan(test.text)
            Issue.record("expected an error, planned \(plan.stages.map(\.name))")
        } catch {
            #expect(error.file == Self.file)
            #expect(error.location == Self.at(test.line, test.column), "\(error.headline)")
            #expect(error.message.contains(test.message), "\(error.headline)")
            #expect(error.headline == "\(Self.file):\(test.line):\(test.column): error: \(error.message)")
        }
    }

    @Test func typoSuggestsTheStage() {
        do throws(PipelineDiagnostic) {
            _ = try Self.plan("videotestsrc ! residul ! fakesink")
            Issue.record("expected an error")
        } catch {
            #expect(error.location == Self.at(1, 16))
            #expect(error.message.hasSuffix("(did you mean 'residual'?)"))
        }
    }

    @Test func unrelatedUnknownElementHasNoSuggestion() {
        do throws(PipelineDiagnostic) {
            _ = try Self.plan("videotestsrc ! nosuchfilter ! residual ! fakesink")
            Issue.record("expected an error")
        } catch {
            #expect(!error.message.contains("did you mean"))
        }
    }

    @Test func missingRequiredPropertyNamesItsSummary() {
        do throws(PipelineDiagnostic) {
            _ = try Self.plan("videotestsrc ! residual ! jsonsink")
            Issue.record("expected an error")
        } catch {
            #expect(
                error.headline == """
                    t.pipeline:1:27: error: stage 'jsonsink' needs property 'location' \
                    (output file; parent directories are created)
                    """)
        }
    }

    @Test func stagesOnlyRejectsGStreamerElements() {
        let planner = PipelinePlanner(registry: .standard)
        do throws(PipelineDiagnostic) {
            _ = try planner.planStages("residual ! videoconvert")
            Issue.record("expected an error")
        } catch {
            #expect(error.headline == "<stages>:1:12: error: unknown stage 'videoconvert'")
        }
        do throws(PipelineDiagnostic) {
            _ = try planner.planStages("residual ! gat")
            Issue.record("expected an error")
        } catch {
            #expect(error.headline == "<stages>:1:12: error: unknown stage 'gat' (did you mean 'gate'?)")
        }
    }
}

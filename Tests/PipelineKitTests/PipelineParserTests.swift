import PipelineKit
import Testing

/// The gst-launch-like syntax of pipeline files: what the parser accepts and where it points when it does not.
///
/// Every expected `line:column` below was counted by hand from the text of its test (1-based, columns count
/// characters, a tab is one column).
@Suite struct PipelineParserTests {
    static let file = "t.pipeline"

    static func parse(_ text: String) throws(PipelineDiagnostic) -> PipelineSyntax {
        try PipelineParser.parse(text, file: file)
    }

    static func names(_ syntax: PipelineSyntax) -> [String] { syntax.elements.map(\.head.text) }

    static func isCaps(_ element: ElementSyntax) -> Bool {
        if case .caps = element.kind { return true }
        return false
    }

    // MARK: - Valid inputs

    @Test func singleLineElementsAndPropertyLocations() throws {
        let syntax = try Self.parse("videotestsrc num-buffers=5 ! residual threshold=10")
        #expect(Self.names(syntax) == ["videotestsrc", "residual"])

        let source = syntax.elements[0]
        #expect(!Self.isCaps(source))
        #expect(source.head.location == PipelineKit.SourceLocation(line: 1, column: 1))
        #expect(source.properties.count == 1)
        #expect(
            source.properties[0].key == SourceText("num-buffers", at: PipelineKit.SourceLocation(line: 1, column: 14)))
        #expect(source.properties[0].value == SourceText("5", at: PipelineKit.SourceLocation(line: 1, column: 26)))
        #expect(source.properties[0].raw == "5")

        let stage = syntax.elements[1]
        #expect(stage.head == SourceText("residual", at: PipelineKit.SourceLocation(line: 1, column: 30)))
        #expect(stage.properties.count == 1)
        #expect(stage.properties[0].key == SourceText("threshold", at: PipelineKit.SourceLocation(line: 1, column: 39)))
        #expect(stage.properties[0].value == SourceText("10", at: PipelineKit.SourceLocation(line: 1, column: 49)))
    }

    @Test func commentsAndContinuationLines() throws {
        let text = """
            # A pipeline with comments
            videotestsrc pattern=ball # the source
              ! residual threshold=10 block=8   # detector
            # a full-line comment ! with a bang and a "quote
              ! gate
              ! fakesink
            """
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["videotestsrc", "residual", "gate", "fakesink"])
        #expect(
            syntax.elements.map(\.head.location) == [
                PipelineKit.SourceLocation(line: 2, column: 1), PipelineKit.SourceLocation(line: 3, column: 5),
                PipelineKit.SourceLocation(line: 5, column: 5), PipelineKit.SourceLocation(line: 6, column: 5),
            ])

        let source = syntax.elements[0]
        #expect(source.properties.map(\.key.text) == ["pattern"])
        #expect(source.properties[0].key.location == PipelineKit.SourceLocation(line: 2, column: 14))
        #expect(source.properties[0].value == SourceText("ball", at: PipelineKit.SourceLocation(line: 2, column: 22)))

        let residual = syntax.elements[1]
        #expect(residual.properties.map(\.key.text) == ["threshold", "block"])
        #expect(residual.properties.map(\.value.text) == ["10", "8"])
        #expect(
            residual.properties.map(\.key.location) == [
                PipelineKit.SourceLocation(line: 3, column: 14), PipelineKit.SourceLocation(line: 3, column: 27),
            ])
        #expect(
            residual.properties.map(\.value.location) == [
                PipelineKit.SourceLocation(line: 3, column: 24), PipelineKit.SourceLocation(line: 3, column: 33),
            ])
        #expect(syntax.elements[2].properties.isEmpty)
        #expect(syntax.elements[3].properties.isEmpty)
    }

    @Test func commentAfterLinkAndHashInsideWord() throws {
        // `#` starts a comment only at the start of a line or after whitespace, not inside a word.
        let text = """
            videotestsrc ! # the link is followed by a comment
            jsonsink location=out#1.jsonl
            """
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["videotestsrc", "jsonsink"])
        #expect(syntax.elements[1].head.location == PipelineKit.SourceLocation(line: 2, column: 1))
        #expect(
            syntax.elements[1].properties[0].value
                == SourceText("out#1.jsonl", at: PipelineKit.SourceLocation(line: 2, column: 19)))
    }

    @Test func quotedValuesWithSpacesBangsAndEscapes() throws {
        let text = #"""
            filesrc location="my clip!.avi"
              ! residual name='first ! stage'
              ! jsonsink location="say \"hi\" \\ bye.jsonl"
            """#
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["filesrc", "residual", "jsonsink"])

        let filesrc = syntax.elements[0].properties
        #expect(filesrc.count == 1)
        #expect(filesrc[0].key == SourceText("location", at: PipelineKit.SourceLocation(line: 1, column: 9)))
        #expect(filesrc[0].value == SourceText("my clip!.avi", at: PipelineKit.SourceLocation(line: 1, column: 18)))
        #expect(filesrc[0].raw == #""my clip!.avi""#)
        #expect(filesrc[0].launchText == #"location="my clip!.avi""#)

        let residual = syntax.elements[1]
        #expect(residual.head.location == PipelineKit.SourceLocation(line: 2, column: 5))
        #expect(residual.properties.count == 1)
        #expect(residual.properties[0].key == SourceText("name", at: PipelineKit.SourceLocation(line: 2, column: 14)))
        #expect(
            residual.properties[0].value
                == SourceText("first ! stage", at: PipelineKit.SourceLocation(line: 2, column: 19)))
        #expect(residual.properties[0].raw == "'first ! stage'")

        let jsonsink = syntax.elements[2]
        #expect(jsonsink.head.location == PipelineKit.SourceLocation(line: 3, column: 5))
        #expect(jsonsink.properties.count == 1)
        #expect(
            jsonsink.properties[0].key == SourceText("location", at: PipelineKit.SourceLocation(line: 3, column: 14)))
        #expect(
            jsonsink.properties[0].value
                == SourceText(#"say "hi" \ bye.jsonl"#, at: PipelineKit.SourceLocation(line: 3, column: 23)))
        #expect(jsonsink.properties[0].raw == #""say \"hi\" \\ bye.jsonl""#)
        #expect(jsonsink.properties[0].launchText == #"location="say \"hi\" \\ bye.jsonl""#)
    }

    @Test func singleQuotesDoNotEscapeAndQuotesMayStartMidValue() throws {
        let text = #"videotestsrc ! residual name='a\' ! jsonsink location=out/"my file".jsonl"#
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["videotestsrc", "residual", "jsonsink"])
        // residual at 16, name at 25, '=' at 29, value (opening quote) at 30.
        #expect(
            syntax.elements[1].properties[0].value
                == SourceText(#"a\"#, at: PipelineKit.SourceLocation(line: 1, column: 30)))
        // `'a\'` ends at 33; " ! " puts jsonsink at 37, location at 46, '=' at 54, value at 55.
        #expect(syntax.elements[2].head.location == PipelineKit.SourceLocation(line: 1, column: 37))
        #expect(
            syntax.elements[2].properties[0].value
                == SourceText("out/my file.jsonl", at: PipelineKit.SourceLocation(line: 1, column: 55)))
    }

    @Test func compactCapsFilter() throws {
        let syntax = try Self.parse("videotestsrc ! video/x-raw,format=RGB,width=320,height=240 ! residual")
        #expect(Self.names(syntax) == ["videotestsrc", "video/x-raw,format=RGB,width=320,height=240", "residual"])
        let caps = syntax.elements[1]
        #expect(Self.isCaps(caps))
        #expect(caps.properties.isEmpty)
        #expect(caps.head.location == PipelineKit.SourceLocation(line: 1, column: 16))
        #expect(syntax.elements[2].head.location == PipelineKit.SourceLocation(line: 1, column: 62))
    }

    @Test func capsFilterWithSpacesTypesAndComment() throws {
        let text = """
            videotestsrc
              ! video/x-raw, format=(string)RGB, width=(int)320 # caps
              ! residual
            """
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["videotestsrc", "video/x-raw, format=(string)RGB, width=(int)320", "residual"])
        #expect(Self.isCaps(syntax.elements[1]))
        #expect(syntax.elements[1].properties.isEmpty)
        #expect(syntax.elements[1].head.location == PipelineKit.SourceLocation(line: 2, column: 5))
        #expect(syntax.elements[2].head.location == PipelineKit.SourceLocation(line: 3, column: 5))
        #expect(!Self.isCaps(syntax.elements[2]))
    }

    @Test func capsFilterSpanningLinesAndQuotedBang() throws {
        let text = """
            videotestsrc ! video/x-raw,
                format=RGB ! image/jpeg,comment="a ! b" ! residual
            """
        let syntax = try Self.parse(text)
        // The newline becomes one space, followed by the four spaces of indentation.
        #expect(
            Self.names(syntax) == [
                "videotestsrc", "video/x-raw,     format=RGB", #"image/jpeg,comment="a ! b""#, "residual",
            ])
        #expect(syntax.elements.map(Self.isCaps) == [false, true, true, false])
        #expect(syntax.elements[1].head.location == PipelineKit.SourceLocation(line: 1, column: 16))
        // Line 2: "    format=RGB ! image/jpeg…": format at 5, '!' at 16, image/jpeg at 18.
        #expect(syntax.elements[2].head.location == PipelineKit.SourceLocation(line: 2, column: 18))
        // image/jpeg,comment="a ! b" is 26 characters (18…43): '!' at 45, residual at 47.
        #expect(syntax.elements[3].head.location == PipelineKit.SourceLocation(line: 2, column: 47))
    }

    @Test func slashesInPropertyValuesAreNotCaps() throws {
        let syntax = try Self.parse("videotestsrc ! residual ! multifilesink location=/tmp/x/%05d.jpg")
        #expect(Self.names(syntax) == ["videotestsrc", "residual", "multifilesink"])
        #expect(!Self.isCaps(syntax.elements[2]))
        // multifilesink at 27 (13 characters), location at 41, '=' at 49, value at 50.
        #expect(
            syntax.elements[2].properties[0].value
                == SourceText("/tmp/x/%05d.jpg", at: PipelineKit.SourceLocation(line: 1, column: 50)))
    }

    @Test func tabsCountAsOneColumn() throws {
        let syntax = try Self.parse("videotestsrc\t!\tresidual\tthreshold=3")
        #expect(Self.names(syntax) == ["videotestsrc", "residual"])
        #expect(syntax.elements[1].head.location == PipelineKit.SourceLocation(line: 1, column: 16))
        #expect(syntax.elements[1].properties[0].key.location == PipelineKit.SourceLocation(line: 1, column: 25))
        #expect(syntax.elements[1].properties[0].value.location == PipelineKit.SourceLocation(line: 1, column: 35))
    }

    @Test func windowsLineEndings() throws {
        // A file saved with CRLF line endings: the comment ends at the end of its line and lines are counted.
        let text = "videotestsrc # src\r\n! residual threshold=3\r\n! fakesink\r\n"
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["videotestsrc", "residual", "fakesink"])
        guard syntax.elements.count == 3 else { return }
        #expect(syntax.elements[1].head.location == PipelineKit.SourceLocation(line: 2, column: 3))
        #expect(syntax.elements[1].properties[0].key.location == PipelineKit.SourceLocation(line: 2, column: 12))
        #expect(
            syntax.elements[1].properties[0].value
                == SourceText("3", at: PipelineKit.SourceLocation(line: 2, column: 22)))
        #expect(syntax.elements[2].head.location == PipelineKit.SourceLocation(line: 3, column: 3))
    }

    @Test func windowsLineEndingsCountLines() throws {
        // Without comments a CRLF file parses, but every "\r\n" must still start a new line.
        let text = "videotestsrc\r\n! residual threshold=3\r\n  ! fakesink"
        let syntax = try Self.parse(text)
        #expect(Self.names(syntax) == ["videotestsrc", "residual", "fakesink"])
        guard syntax.elements.count == 3 else { return }
        #expect(syntax.elements[1].head.location == PipelineKit.SourceLocation(line: 2, column: 3))
        #expect(syntax.elements[1].properties[0].value.location == PipelineKit.SourceLocation(line: 2, column: 22))
        #expect(syntax.elements[2].head.location == PipelineKit.SourceLocation(line: 3, column: 5))
    }

    // MARK: - Malformed inputs

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
            label: "unbalanced double quote",
            text: """
                videotestsrc
                  ! jsonsink location="out.jsonl
                """,
            line: 2, column: 23, message: #"unbalanced quote: " is never closed on this line"#),
        Malformed(
            label: "unbalanced single quote (a '!' after it is swallowed)",
            text: "videotestsrc ! residual name='det ! gate",
            line: 1, column: 30, message: "unbalanced quote: ' is never closed on this line"),
        Malformed(
            label: "unbalanced quote in a caps filter",
            text: #"videotestsrc ! video/x-raw,format="RGB ! residual"#,
            line: 1, column: 35, message: #"unbalanced quote: " is never closed"#),
        Malformed(
            label: "quote closed on the next line only",
            text: """
                # line 1 comment
                videotestsrc pattern=snow
                    ! residual threshold=8
                    ! gate min-changed="0.5
                    "
                """,
            line: 4, column: 24, message: #"unbalanced quote: " is never closed on this line"#),
        Malformed(
            label: "leading '!'",
            text: "! videotestsrc ! residual ! fakesink",
            line: 1, column: 1, message: "expected an element before '!'"),
        Malformed(
            label: "leading '!' on an indented second line",
            text: """
                # starts with a link
                   ! videotestsrc ! residual
                """,
            line: 2, column: 4, message: "expected an element before '!'"),
        Malformed(
            label: "trailing '!'",
            text: "videotestsrc ! residual !",
            line: 1, column: 25, message: "expected an element after '!'"),
        Malformed(
            label: "trailing '!' followed by a comment on line 3",
            text: """
                videotestsrc
                  ! residual
                  ! # nothing follows
                """,
            line: 3, column: 3, message: "expected an element after '!'"),
        Malformed(
            label: "'! !' (empty element)",
            text: "videotestsrc ! ! residual",
            line: 1, column: 16, message: "expected an element before '!'"),
        Malformed(
            label: "'!' then a comment then '!'",
            text: """
                videotestsrc !
                  # forgot the element
                  ! residual
                """,
            line: 3, column: 3, message: "expected an element before '!'"),
        Malformed(
            label: "empty file",
            text: "",
            line: 1, column: 1, message: "empty pipeline: no elements"),
        Malformed(
            label: "comments and blank lines only",
            text: """
                # just a comment

                   # another
                """,
            line: 1, column: 1, message: "empty pipeline: no elements"),
        Malformed(
            label: "pad reference as an element",
            text: "videotestsrc ! tee name=t ! t. ! residual",
            line: 1, column: 29, message: "pad references ('t.') are not supported"),
        Malformed(
            label: "pad reference after an element",
            text: "videotestsrc ! tee name=t t.src_0 ! residual",
            line: 1, column: 27, message: "pad references ('t.src_0') are not supported"),
        Malformed(
            label: "bin in parentheses",
            text: "( videotestsrc ! residual )",
            line: 1, column: 1, message: "bins in parentheses are not supported"),
        Malformed(
            label: "property without '='",
            text: "videotestsrc ! residual threshold ! gate",
            line: 1, column: 25,
            message: "expected 'property=value' after 'residual', found 'threshold' (missing '!' between elements?)"),
        Malformed(
            label: "property without value",
            text: "videotestsrc ! residual threshold= ! gate",
            line: 1, column: 25, message: "property 'threshold' has no value"),
        Malformed(
            label: "invalid property name",
            text: "videotestsrc ! residual thresh@ld=5",
            line: 1, column: 25, message: "invalid property name 'thresh@ld'"),
        Malformed(
            label: "invalid element name",
            text: "videotestsrc ! 3dfilter ! residual",
            line: 1, column: 16, message: "invalid element name '3dfilter'"),
        Malformed(
            label: "property where an element name is expected",
            text: """
                videotestsrc
                  !   threshold=5 ! residual
                """,
            line: 2, column: 7, message: "expected an element name before property 'threshold=5'"),
        Malformed(
            label: "error after a tab",
            text: "videotestsrc\t!\tresidual\tthreshold",
            line: 1, column: 25, message: "found 'threshold'"),
    ]

    @Test(arguments: malformed)
    func malformedPipeline(_ test: Malformed) {
        do throws(PipelineDiagnostic) {
            let syntax = try Self.parse(test.text)
            Issue.record("expected an error, parsed \(Self.names(syntax))")
        } catch {
            #expect(error.file == Self.file)
            #expect(
                error.location == PipelineKit.SourceLocation(line: test.line, column: test.column), "\(error.headline)")
            #expect(error.message.contains(test.message), "\(error.headline)")
            #expect(error.headline == "\(Self.file):\(test.line):\(test.column): error: \(error.message)")
        }
    }

    @Test func diagnosticRendersLineAndCaret() {
        do throws(PipelineDiagnostic) {
            _ = try Self.parse("videotestsrc ! residual threshold ! gate")
            Issue.record("expected an error")
        } catch {
            #expect(error.offending == "threshold")
            #expect(
                error.description == """
                    t.pipeline:1:25: error: expected 'property=value' after 'residual', found 'threshold' \
                    (missing '!' between elements?)
                        videotestsrc ! residual threshold ! gate
                                                ^~~~~~~~~
                    """)
        }
    }

    @Test func diagnosticOnALaterLineQuotesThatLine() {
        let text = """
            videotestsrc
              ! jsonsink location="out.jsonl
            """
        do throws(PipelineDiagnostic) {
            _ = try Self.parse(text)
            Issue.record("expected an error")
        } catch {
            #expect(error.sourceLine == #"  ! jsonsink location="out.jsonl"#)
            #expect(error.offending == #""out.jsonl"#)
            #expect(error.headline.hasPrefix("t.pipeline:2:23: error: unbalanced quote"))
        }
    }
}

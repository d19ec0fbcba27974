import Testing

@testable import PipelineKit

@Suite struct CredentialRedactionTests {
    @Test(arguments: [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1"),
        ("error: 'rtsp://user@cam/x' refused", "error: 'rtsp://***@cam/x' refused"),
        ("two: http://a:b@h/ and rtsps://c:d@i/", "two: http://***@h/ and rtsps://***@i/"),
        ("rtsp://cam.local:554/stream", "rtsp://cam.local:554/stream"),
        ("mail me at someone@example.com", "mail me at someone@example.com"),
    ])
    func urlCredentialsAreRedacted(text: String, expected: String) {
        #expect(text.redactingCredentials == expected)
    }

    /// Whatever a GStreamer element or a stage puts in its message, a run error never shows the password.
    @Test func runErrorsAreRedacted() {
        struct Failure: Error, CustomStringConvertible {
            var description = "could not connect to rtsp://admin:hunter2@10.0.0.5/stream"
        }
        let error = PipelineRunError(Failure())
        #expect(error.description == "could not connect to rtsp://***@10.0.0.5/stream")
    }

    /// A diagnostic's excerpt keeps its columns: user and password become as many `*`, the caret stays under the
    /// value it points at, and the password is gone.
    @Test func diagnosticsMaskCredentialsInPlace() throws {
        #expect("postgresql://u:hunter2@h/db".maskingCredentials == "postgresql://*********@h/db")
        let text = "rtspsrc location=rtsp://admin:hunter2@cam/x protocols=tcpp ! fakesink\n"
        let error = #expect(throws: PipelineDiagnostic.self) {
            try PipelinePlanner(registry: StageRegistry([])).plan(text: text, file: "cam.pipeline")
        }
        let description = try #require(error).description
        #expect(!description.contains("hunter2"), "\(description)")
        let lines = description.split(separator: "\n")
        try #require(lines.count == 3)
        let caret = try #require(lines[2].firstIndex(of: "^")).utf16Offset(in: lines[2])
        #expect(lines[1].dropFirst(caret).hasPrefix("tcpp"), "\(description)")
    }
}

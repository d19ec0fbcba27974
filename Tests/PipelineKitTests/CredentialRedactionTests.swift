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
}

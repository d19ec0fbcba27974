import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// Properties the mqtt stage cannot work with are one clear configuration error (never holding the password);
/// none of these needs a broker.
@Suite final class MQTTSinkConfigurationTests {
    private let dir: URL
    private let secret = "s3cret-Passw0rd"

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-mqtt-config-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    /// The run's error for `properties` (the stage is built when the run starts).
    private func runError(_ properties: String) async -> PipelineRunError? {
        do {
            _ = try await StageChain("mqtt port=1 \(properties)", registry: .standard).run([])
            return nil
        } catch {
            return error as? PipelineRunError
        }
    }

    @Test func anOutOfRangePortIsRejectedWhenThePipelineIsPlanned() {
        #expect {
            try StageChain("mqtt port=70000", registry: .standard)
        } throws: { error in
            "\(error)".contains("bad value for 'mqtt port': 70000 is out of range 1…65535")
        }
        #expect(throws: PipelineDiagnostic.self) { try StageChain("mqtt qos=2", registry: .standard) }
    }

    @Test func anUnreadablePasswordFileIsAConfigurationErrorNamingTheFile() async throws {
        // A directory exists (so planning passes) but cannot be read as a file.
        let error = try #require(await runError("username=cam password-file=\(dir.path)"))
        #expect(error.isConfiguration)
        #expect("\(error)".contains("cannot read password-file '\(dir.path)': it is a directory"), "\(error)")
    }

    @Test func passwordSourcesAreCheckedWithoutEverShowingThePassword() async throws {
        let file = dir.appendingPathComponent("password")
        try "\(secret)\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try MQTTSink.password(file: file.path, variable: "", environment: [:]) == secret, "first line only")
        #expect(try MQTTSink.password(file: "", variable: "MQTT_PW", environment: ["MQTT_PW": secret]) == secret)
        #expect(try MQTTSink.password(file: "", variable: "", environment: [:]) == nil)

        for (properties, message) in [
            ("password-file=\(file.path)", "a password needs username= as well"),
            (
                "username=cam password-file=\(file.path) password-env=HOME",
                "set password-file or password-env, not both"
            ),
            ("username=cam password-env=SKIPD_TEST_UNSET_VARIABLE", "'SKIPD_TEST_UNSET_VARIABLE', which is not set"),
            ("prefix='home/#'", "prefix 'home/#' must be a topic without wildcards"),
        ] {
            let error = try #require(await runError(properties), "\(properties)")
            #expect(error.isConfiguration, "\(properties)")
            #expect("\(error)".contains(message), "\(error)")
            #expect(!"\(error)".contains(secret))
        }
    }

    @Test func topicsAreSafeWhateverThePipelineAndLabelNames() throws {
        #expect(try MQTTSink.prefix("home/skipd//") == "home/skipd")
        #expect(MQTTSink.topicLevel("a/b+c#d") == "a_b_c_d")
        #expect(MQTTSink.topicLevel("traffic light") == "traffic light")
    }
}

import Foundation
import Testing

/// `scripts/soak`, one minute: two pipelines under `skipd serve`, one per test camera, while the pattern camera is
/// killed and restarted and the file camera frozen and resumed. Both cameras come back (no pipeline silent at the
/// end) and the killed camera's pipeline shows the outage it recovered from.
@Suite struct SoakTests {
    @Test func camerasComeBackAfterKillsAndFreezes() throws {
        let environment = ProcessInfo.processInfo.environment.merging(
            ["SKIPD_BIN": CLITests.binary.deletingLastPathComponent().path]) { $1 }
        let soak = Process()
        soak.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        soak.arguments = [
            "python3", CLITests.root.appendingPathComponent("scripts/soak").path, "--minutes", "1", "--pipelines",
            "2", "--fault-interval", "15", "--lost", "20",
        ]
        soak.environment = environment
        let out = Pipe()
        soak.standardOutput = out
        try soak.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        soak.waitUntilExit()
        #expect(soak.terminationStatus == 0, "\(text)")
        #expect(text.contains("no camera lost"), "\(text)")
        let pattern = text.split(separator: "\n").first { $0.hasPrefix("cam2-pattern") }
        let recovered = pattern.flatMap { line in Int(line.split(separator: " ", omittingEmptySubsequences: true)[4]) }
        #expect((recovered ?? 0) >= 1, "\(text)")
    }
}

import Foundation
import Testing

/// The Debian package as an administrator uses it: built by `scripts/package-deb` (around the binary under test),
/// installed with `dpkg -i` on this machine, its unit verified by systemd, its binary checking the example pipeline
/// and the default config, then purged — binary, config and user gone.
@Suite struct PackageTests {
    private func run(_ arguments: [String], in directory: URL = CLITests.root) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Both pipes are small here (a few lines): reading one to its end cannot stall the child on the other.
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, stdout, stderr)
    }

    @Test func theDebInstallsVerifiesChecksAndPurges() throws {
        try #require(getuid() == 0, "dpkg -i needs root")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb"), "dpkg-deb missing")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("deb-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let built = try run(["scripts/package-deb", "--binary", CLITests.binary.path, "--output", dir.path])
        #expect(built.status == 0, "\(built.stderr)")
        let deb = built.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(deb.hasSuffix("_amd64.deb") && deb.contains("/skipd_"), "\(deb)")

        let installed = try run(["dpkg", "-i", deb])
        defer { _ = try? run(["dpkg", "--purge", "skipd"]) }
        #expect(installed.status == 0, "\(installed.stdout)\(installed.stderr)")
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/skipd"))
        #expect(try run(["getent", "passwd", "skipd"]).status == 0, "no system user skipd")

        let unit = "/lib/systemd/system/skipd.service"
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        #expect(text.contains("ExecStart=/usr/bin/skipd serve --config /etc/skipd/skipd.toml"))
        let verified = try run(["systemd-analyze", "verify", "--man=no", "--generators=no", unit])
        #expect(verified.status == 0 && verified.stderr.isEmpty, "\(verified.stderr)")

        let example = try run(["/usr/bin/skipd", "check", "/usr/share/skipd/pipelines/rtsp-camera.pipeline"])
        #expect(example.status == 0, "\(example.stderr)")
        let config = try run(["/usr/bin/skipd", "check", "/etc/skipd/skipd.toml"])
        #expect(config.status == 0 && config.stdout.contains("ok (serve config)"), "\(config.stderr)")

        let purged = try run(["dpkg", "--purge", "skipd"])
        #expect(purged.status == 0, "\(purged.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/usr/bin/skipd"))
        #expect(!FileManager.default.fileExists(atPath: "/etc/skipd/skipd.toml"))
        #expect(try run(["getent", "passwd", "skipd"]).status != 0, "the user outlived the purge")
    }
}

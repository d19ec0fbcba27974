import Foundation
import Synchronization
import Testing

/// `skipd serve` as a user runs it: a directory of pipeline files, SIGHUP, SIGTERM.
@Suite struct ServeTests {
    /// A live test pattern into `name.jsonl` (every line carries the frame index counted from the stream start).
    private func pipeline(_ output: URL) -> String {
        "videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1,format=GRAY8\n"
            + "  ! residual ! jsonsink location=\(output.path)\n"
    }

    private func frames(_ file: URL) throws -> [Int] {
        try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return try #require(object?["frame"] as? Int)
        }
    }

    /// Section 3 of the serve issue: one changed, one added, one removed and one broken file, one untouched.
    @Test func sighupRestartsChangedStartsNewStopsRemovedAndKeepsABrokenFilesOldVersion() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID())")
        let pipelines = dir.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func out(_ name: String) -> URL { dir.appendingPathComponent("\(name).jsonl") }
        func file(_ name: String) -> URL { pipelines.appendingPathComponent("\(name).pipeline") }
        for name in ["a", "b", "c", "e"] {
            try pipeline(out(name)).write(to: file(name), atomically: true, encoding: .utf8)
        }
        let config = dir.appendingPathComponent("skipd.toml")
        try "pipelines = \"\(pipelines.path)\"\npidfile = \"\(dir.path)/skipd.pid\"\n"
            .write(to: config, atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = CLITests.binary
        process.arguments = ["serve", "--config", config.path]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        let log = StderrLines(err)
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        #expect(try await log.wait(for: "serve: added a, b, c, e; 0 unchanged", limit: .seconds(60)) != nil)
        try await Task.sleep(for: .seconds(1.5))

        try pipeline(out("a2")).write(to: file("a"), atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: file("b"))
        try "videotestsrc is-live=true ! residual treshold=3\n".write(to: file("c"), atomically: true, encoding: .utf8)
        try pipeline(out("d")).write(to: file("d"), atomically: true, encoding: .utf8)
        let reload = try CLITests().skipd("reload", "--config", config.path)
        #expect(reload.status == 0, "\(reload.stderr)")
        let report = try await log.wait(for: "serve: reload:")
        #expect(report == "serve: reload: added d; changed a; removed b; invalid c; 1 unchanged")
        #expect(log.text.contains("c.pipeline:1:38: error: stage 'residual' has no property 'treshold'"))
        try await Task.sleep(for: .seconds(1.5))

        let sent = ContinuousClock.now
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(ContinuousClock.now - sent < .seconds(5))
        let (a, a2, b, c, d, e) = try (
            frames(out("a")), frames(out("a2")), frames(out("b")), frames(out("c")), frames(out("d")), frames(out("e"))
        )
        // Untouched and kept pipelines ran from start to SIGTERM as one stream: indices 0, 1, 2, … without a restart.
        for (name, f) in [("c", c), ("e", e)] {
            #expect(f == Array(0..<f.count), "\(name)")
            #expect(f.count > b.count + 20, "\(name) ran ~1.5 s longer than the removed b")
        }
        // The old a and b stopped at the reload; the new a and d started there.
        #expect(!a.isEmpty && !b.isEmpty && a.count < e.count && b.count < e.count)
        #expect(!a2.isEmpty && !d.isEmpty && a2.count < e.count && d.count < e.count)
    }

    /// SIGTERM mid-run: the drain ends the stream, the sqlite sink commits what it holds, and every frame that
    /// left the last stage is in the database; exit within 5 s.
    @Test func sigtermKeepsEveryFrameResultInSQLite() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID())")
        let pipelines = dir.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("results.sqlite").path
        try """
        videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1,format=GRAY8
          ! residual ! sqlite location=\(database) batch=1000 interval=60000
        """.write(to: pipelines.appendingPathComponent("cam.pipeline"), atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("skipd.toml")
        try "pipelines = \"\(pipelines.path)\"\npidfile = \"\(dir.path)/skipd.pid\"\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = CLITests.binary
        process.arguments = ["serve", "--config", config.path]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        let log = StderrLines(err)
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        #expect(try await log.wait(for: "serve: added cam", limit: .seconds(60)) != nil)
        try await Task.sleep(for: .seconds(1.5))
        let sent = ContinuousClock.now
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(ContinuousClock.now - sent < .seconds(5))
        // Nothing was committed before the drain (batch 1000, 60 s): every row comes from the SIGTERM path. The
        // rows are named after the pipeline's file (cam.pipeline) without a `pipeline=` property.
        let line = try #require(log.text.split(separator: "\n").first { $0.contains("end of stream") })
        let framesOut = try #require(line.split(separator: " ").first { $0.hasPrefix("frames-out=") })
        let expected = try #require(Int(framesOut.dropFirst("frames-out=".count)))
        #expect(expected > 10)
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        sqlite.arguments = [database, "SELECT count(*), min(frame), max(frame) FROM frames WHERE pipeline = 'cam'"]
        let out = Pipe()
        sqlite.standardOutput = out
        try sqlite.run()
        let rows = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        sqlite.waitUntilExit()
        #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "\(expected)|0|\(expected - 1)")
    }

    @Test func aBadConfigIsOneErrorWithItsLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bad.toml")
        try "watchdog = 5\npipelines = [\n".write(to: config, atomically: true, encoding: .utf8)
        let result = try CLITests().skipd("serve", "--config", config.path)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("\(config.path):2:"), "\(result.stderr)")
        try "watchdog = 5\npipelinez = \"/x\"\n".write(to: config, atomically: true, encoding: .utf8)
        let typo = try CLITests().skipd("serve", "--config", config.path)
        #expect(typo.status == 2 && typo.stderr.contains("unknown key(s) pipelinez"), "\(typo.stderr)")
        try "watchdog = \"soon\"\n".write(to: config, atomically: true, encoding: .utf8)
        let type = try CLITests().skipd("serve", "--config", config.path)
        #expect(type.status == 2 && type.stderr.contains("'watchdog' must be a number"), "\(type.stderr)")
    }
}

/// A child's standard error, collected line by line as it arrives.
final class StderrLines: Sendable {
    private let state = Mutex<(lines: [String], partial: String)>(([], ""))

    init(_ pipe: Pipe) {
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.state.withLock { s in
                s.partial += String(decoding: data, as: UTF8.self)
                while let newline = s.partial.firstIndex(of: "\n") {
                    s.lines.append(String(s.partial[..<newline]))
                    s.partial = String(s.partial[s.partial.index(after: newline)...])
                }
            }
        }
    }

    var text: String { state.withLock { $0.lines.joined(separator: "\n") } }

    /// The first line starting with `prefix` (waiting up to `limit` for it).
    func wait(for prefix: String, limit: Duration = .seconds(15)) async throws -> String? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let line = state.withLock({ $0.lines.first { $0.hasPrefix(prefix) } }) { return line }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}

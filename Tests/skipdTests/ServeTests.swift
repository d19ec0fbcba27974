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
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-out-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func out(_ name: String) -> URL { dir.appendingPathComponent("\(name).jsonl") }
        let serve = try ServeProcess(
            pipelines: Dictionary(uniqueKeysWithValues: ["a", "b", "c", "e"].map { ($0, pipeline(out($0))) }))
        let log = serve.log
        #expect(try await log.wait(for: "serve: added a, b, c, e; 0 unchanged", limit: .seconds(60)) != nil)
        try await Task.sleep(for: .seconds(1.5))

        try serve.write("a", pipeline(out("a2")))
        try FileManager.default.removeItem(at: serve.file("b"))
        try serve.write("c", "videotestsrc is-live=true ! residual treshold=3\n")
        try serve.write("d", pipeline(out("d")))
        let reload = try CLITests().skipd("reload", "--config", serve.config.path)
        #expect(reload.status == 0, "\(reload.stderr)")
        let report = try await log.wait(for: "serve: reload:")
        #expect(report == "serve: reload: added d; changed a; removed b; invalid c; 1 unchanged")
        #expect(log.text.contains("c.pipeline:1:38: error: stage 'residual' has no property 'treshold'"))
        try await Task.sleep(for: .seconds(1.5))

        let (status, took) = serve.terminate()
        #expect(status == 0)
        #expect(took < .seconds(5))
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

    /// A reload that cannot read the pipelines directory (here: it was moved away) changes nothing: the running
    /// pipeline keeps its stream (one run, frame indices without a restart, until SIGTERM) and the log says why. Read as empty, it
    /// would have stopped every pipeline.
    @Test func anUnreadableDirectoryStopsNothing() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-out-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("a.jsonl")
        let serve = try ServeProcess(pipelines: ["a": pipeline(out)])
        let log = serve.log
        #expect(try await log.wait(for: "serve: added a; 0 unchanged", limit: .seconds(60)) != nil)
        try await Task.sleep(for: .seconds(1))
        let moved = serve.pipelines.deletingLastPathComponent().appendingPathComponent("moved-\(UUID())")
        try FileManager.default.moveItem(at: serve.pipelines, to: moved)
        defer { try? FileManager.default.moveItem(at: moved, to: serve.pipelines) }
        let reload = try CLITests().skipd("reload", "--config", serve.config.path)
        #expect(reload.status == 0, "\(reload.stderr)")
        let report = try #require(await log.wait(for: "serve: reload:"))
        #expect(report.contains("cannot read the pipelines directory") && report.contains("1 running pipeline(s) stay"))
        try await Task.sleep(for: .seconds(1.5))
        #expect(!log.text.contains("pipeline stopped"), "\(log.text)")
        let (status, _) = serve.terminate()
        #expect(status == 0)
        // One stream from start to SIGTERM, ~2.5 s at 30 fps (stopped at the reload, it would hold ~1 s of them).
        let all = try frames(out)
        #expect(all == Array(0..<all.count) && all.count > 50, "\(all.count) frames")
    }

    /// SIGTERM mid-run: the drain ends the stream, the sqlite sink commits what it holds, and every frame that
    /// left the last stage is in the database; exit within 5 s. The database is the config's `store`.
    @Test func sigtermKeepsEveryFrameResultInSQLite() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-db-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let database = dir.appendingPathComponent("store/results.sqlite").path
        let serve = try ServeProcess(
            pipelines: [
                "cam": """
                videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1,format=GRAY8
                  ! residual ! sqlite batch=1000 interval=60000
                """
            ], config: "store = \"\(database)\"")
        let log = serve.log
        #expect(try await log.wait(for: "serve: added cam", limit: .seconds(60)) != nil)
        try await Task.sleep(for: .seconds(1.5))
        let (status, took) = serve.terminate()
        #expect(status == 0)
        #expect(took < .seconds(5))
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
        for (text, error) in [
            ("http = \"8470\"\n", "'http' must be HOST:PORT"),
            ("channel-capacity = 0\n", "'channel-capacity' must be 1 to"),
            ("channel-capacity = 2.5\n", "'channel-capacity' must be a whole number"),
            ("stuck = 0\n", "'stuck' must be a positive"), ("token = 5\n", "'token' must be a string"),
            // Seconds beyond any sane timeout once trapped converting to milliseconds.
            ("watchdog = 1e16\n", "'watchdog' must be a positive number of seconds, at most 1000000"),
            ("stuck = nan\n", "'stuck' must be a positive"), ("backoff-max = inf\n", "'backoff-max' must be"),
            ("live-fps = 0\n", "'live-fps' must be 0.1 to 60"),
            ("live-fps = \"fast\"\n", "'live-fps' must be a number"),
            ("live-max-width = 8\n", "'live-max-width' must be 16 to 16384"),
            ("live-max-width = 640.5\n", "'live-max-width' must be a whole number"),
        ] {
            try text.write(to: config, atomically: true, encoding: .utf8)
            let result = try CLITests().skipd("serve", "--config", config.path)
            #expect(result.status == 2 && result.stderr.contains(error), "\(text): \(result.stderr)")
        }
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

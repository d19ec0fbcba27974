import Foundation
import Testing

/// Runs the real `skipd` binary, as a user would.
@Suite struct CLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The binary built beside the test bundle (any scratch path), else the default debug build.
    static let binary: URL = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("skipd")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        return root.appendingPathComponent(".build/debug/skipd")
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    func skipd(_ arguments: String..., in directory: URL = CLITests.root) throws -> Result {
        try skipd(arguments, in: directory)
    }

    func skipd(_ arguments: [String], in directory: URL = CLITests.root) throws -> Result {
        let child = try ChildProcess(Self.binary, arguments, in: directory)
        child.process.waitUntilExit()
        // The pipes close when the child exits; their reader threads have everything by then.
        return Result(
            status: child.process.terminationStatus, stdout: child.stdout.all(timeout: 60),
            stderr: child.stderr.all(timeout: 60))
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func checkAcceptsEveryExamplePipeline() throws {
        let dir = Self.root.appendingPathComponent("pipelines")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasSuffix(".pipeline") }.map { "pipelines/\($0)" }
        #expect(!files.isEmpty)
        let result = try skipd(["check"] + files)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.components(separatedBy: ": ok").count - 1 == files.count)
    }

    @Test func checkRejectsABrokenFileWithLineAndColumn() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "videotestsrc ! video/x-raw,format=RGB\n  ! residual treshold=12\n".write(
            to: dir.appendingPathComponent("broken.pipeline"), atomically: true, encoding: .utf8)
        let result = try skipd("check", "broken.pipeline", in: dir)
        #expect(result.status == 2)
        #expect(result.stderr.contains("broken.pipeline:2:14: error: stage 'residual' has no property 'treshold'"))
        #expect(result.stderr.contains("  ! residual treshold=12"))
    }

    @Test func stagesListsEveryStageAndShowsProperties() throws {
        let list = try skipd("stages")
        #expect(list.status == 0)
        for name in ["residual", "gate", "model", "skipconv", "jsonsink", "channel"] {
            #expect(list.stdout.contains("\n\(name) ") || list.stdout.hasPrefix("\(name) "), "\(name)")
        }
        let residual = try skipd("stages", "residual")
        #expect(residual.stdout.contains("threshold"))
        #expect(residual.stdout.contains("int 0…255, default 12"))
        let skipconv = try skipd("stages", "skipconv")
        #expect(skipconv.stdout.contains("one of input-norm, output-norm, gumbel, input-select, default input-select"))
        let unknown = try skipd("stages", "nope")
        #expect(unknown.status != 0)
    }

    /// The stage reference in the docs is the command's output, so it cannot drift from the code.
    @Test func docsStagesPageIsTheGeneratedOne() throws {
        let generated = try skipd("stages", "--markdown")
        #expect(generated.status == 0)
        let page = try String(contentsOf: Self.root.appendingPathComponent("docs/stages.md"), encoding: .utf8)
        #expect(page == generated.stdout, "regenerate: skipd stages --markdown > docs/stages.md")
    }

    /// A timeout no supervisor could use is a usage error, not a trap converting it to milliseconds; configs and
    /// sidecars are checked by `skipd check` as pipeline files are.
    @Test func absurdTimeoutsAndBadSidecarsAreOneError() throws {
        let watchdog = try skipd("run", "--supervise", "--watchdog", "1e16", "pipelines/testsrc-snapshots.pipeline")
        #expect(watchdog.status == 64 && watchdog.stderr.contains("--watchdog must be positive"), "\(watchdog.stderr)")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sidecar = dir.appendingPathComponent("bad.skip.json")
        try #"{"block": 0}"#.write(to: sidecar, atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("bad.toml")
        try "watchdog = 1e16\n".write(to: config, atomically: true, encoding: .utf8)
        for (file, message) in [
            (sidecar, "'block' must be 1 to 1024 pixels"), (config, "'watchdog' must be a positive number of seconds"),
        ] {
            let checked = try skipd("check", file.path)
            #expect(checked.status == 2 && checked.stderr.contains(message), "\(checked.stderr)")
        }
    }

    @Test func runWritesOneLinePerFrameAndExitsZero() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        # test pattern, 25 frames
        videotestsrc num-buffers=25 pattern=ball ! video/x-raw,width=96,height=64,format=RGB
          ! residual block=8 ! gate ! jsonsink location=out/t.jsonl
        """.write(to: dir.appendingPathComponent("t.pipeline"), atomically: true, encoding: .utf8)
        let result = try skipd("run", "t.pipeline", in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try String(contentsOf: dir.appendingPathComponent("out/t.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 25)
        #expect(result.stderr.contains("25 frames"))
        #expect(result.stderr.contains("median changed-block fraction"))
    }

    @Test func runtimeFailureExitsOneNamingTheElement() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data((0..<4096).map { UInt8($0 % 241) }).write(to: dir.appendingPathComponent("junk.avi"))
        try "filesrc location=junk.avi ! decodebin ! videoconvert ! residual\n".write(
            to: dir.appendingPathComponent("j.pipeline"), atomically: true, encoding: .utf8)
        let result = try skipd("run", "j.pipeline", in: dir)
        #expect(result.status == 1)
        #expect(result.stderr.contains("GStreamer element '"))
    }

    @Test func runRejectsAnInvalidFileWithExitTwo() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "filesrc location=missing.avi ! decodebin ! residual\n".write(
            to: dir.appendingPathComponent("m.pipeline"), atomically: true, encoding: .utf8)
        let result = try skipd("run", "m.pipeline", in: dir)
        #expect(result.status == 2)
        #expect(result.stderr.contains("m.pipeline:1:18: error: input file 'missing.avi' does not exist"))
    }

    /// The main job of the README: every frame of the plaza clip becomes one JSON line.
    @Test func vtestPipelineProcessesAll795Frames() throws {
        let clip = Self.root.appendingPathComponent("assets/vtest.avi")
        try #require(
            FileManager.default.fileExists(atPath: clip.path), "assets/vtest.avi missing: run scripts/fetch-assets")
        let result = try skipd("run", "pipelines/vtest-residual.pipeline")
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try String(contentsOf: Self.root.appendingPathComponent("out/vtest.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 795)
        #expect(result.stderr.contains("795 frames"))
        #expect(result.stderr.contains("median changed-block fraction"))
    }

    /// `skipd run` without a file is the main job: faces on the plaza clip into a JSON-lines file and an annotated
    /// H.264 mp4, and a summary a user reads (faces, frames, share of the dense compute). Cut to 4 frames here; run
    /// in a directory of its own whose `assets` is the checkout's, so `out/` is created there.
    @Test func theDefaultJobFindsFacesIntoAnAnnotatedVideo() throws {
        let assets = Self.root.appendingPathComponent("assets")
        try #require(
            FileManager.default.fileExists(atPath: assets.appendingPathComponent("centerface.onnx").path),
            "run scripts/fetch-assets")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("assets"), withDestinationURL: assets)
        let result = try skipd("run", "--frames", "4", in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try String(contentsOf: dir.appendingPathComponent("out/vtest-faces.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines.allSatisfy { $0.contains("\"faces\":") })
        let video = try Data(contentsOf: dir.appendingPathComponent("out/vtest-faces.mp4"))
        // An ISO BMFF file: its first box is `ftyp`, and it holds H.264 (`avc1`) frames.
        #expect(video.count > 1000 && video[4..<8] == Data("ftyp".utf8) && video.range(of: Data("avc1".utf8)) != nil)
        #expect(video.range(of: Data("moov".utf8)) != nil, "the muxer was not finalised (end of stream)")
        #expect(result.stderr.contains("faces: "), "\(result.stderr)")
        #expect(result.stderr.contains("compute: "), "\(result.stderr)")
    }

    /// On 12 carphone frames at 192×160: dense agrees with itself, and interval-2 runs the model on 6 of 12 frames
    /// at the same size, so it costs exactly half the dense MACs.
    @Test func benchPolicyComparesEachConfigurationWithDense() throws {
        let clip = Self.root.appendingPathComponent("assets/carphone_pristine.mp4")
        try #require(FileManager.default.fileExists(atPath: clip.path), "run scripts/fetch-assets")
        let result = try skipd(
            "bench", "policy", "--model", "assets/centerface.onnx", "--video", "assets/carphone_pristine.mp4",
            "--input-size", "192x160", "--frames", "12", "--only", "interval-2",
            "--add", "mine={gate} ! policy scales=1,0.5 ! skipconv {model} ! centerface")
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let dense = try #require(rows.first { $0.first == "dense" })
        #expect(dense[2] == "1.000" && dense[4] == "1.000" && dense[5] == "1.000")
        let interval = try #require(rows.first { $0.first == "interval-2" })
        #expect(interval[2] == "0.500")
        #expect(rows.contains { $0.first == "mine" })
        #expect(result.stdout.contains("actions mine:"))
        #expect(result.stdout.contains("lowest GMAC/f with precision and recall ≥ 0.95"))
    }

    /// `bench dense --kernels K --versus V` runs both kernel sets on the same frames and prints both medians.
    @Test func benchDenseComparesKernelSets() throws {
        let avx2 =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
            .map { $0.contains(" avx2") && $0.contains(" fma") } ?? false
        let result = try skipd(
            "bench", "dense", "--model", "assets/centerface.onnx", "--video", "assets/vtest.avi", "--frames", "2",
            "--warmup", "0", "--input-size", "192x160", "--kernels", "portable", "--versus",
            avx2 ? "avx2" : "portable")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("BLAS ") && result.stdout.contains(", portable kernels,"))
        #expect(
            result.stdout.contains(
                avx2 ? "avx2 kernels median " : "portable kernels median ") && result.stdout.contains("x faster"))
        let bogus = try skipd(
            "bench", "dense", "--model", "assets/centerface.onnx", "--video", "assets/vtest.avi", "--kernels", "sse9")
        #expect(bogus.status != 0 && bogus.stderr.contains("sse9"))
    }

    @Test func benchPolicyRejectsAnUnknownConfiguration() throws {
        let result = try skipd(
            "bench", "policy", "--model", "assets/centerface.onnx", "--video", "assets/vtest.avi", "--only", "fast")
        #expect(result.status != 0)
        #expect(result.stderr.contains("unknown configuration(s) [\"fast\"]"))
    }

    /// `calibrate --segments S` takes its frames from S stretches spread evenly over the clip (carphone: 120 frames;
    /// stretches of 2 start at 0, 59 and 118) and writes a settings file; too few frames per stretch, or a clip
    /// shorter than the stretches, is one error and a non-zero exit.
    @Test func calibrateTakesStretchesSpreadOverTheClip() throws {
        let clip = Self.root.appendingPathComponent("assets/carphone_pristine.mp4")
        try #require(FileManager.default.fileExists(atPath: clip.path), "run scripts/fetch-assets")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let settings = dir.appendingPathComponent("c.skip.json").path
        let common = [
            "calibrate", "--model", "assets/centerface.onnx", "--video", "assets/carphone_pristine.mp4", "--scale",
            "2", "--budget", "0.5", "--input-only", "--factor", "4", "--output", settings,
        ]
        let result = try skipd(common + ["--frames", "6", "--segments", "3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("stretches start at frames 0, 59, 118 of 120"), "\(result.stderr)")
        #expect(result.stdout.contains("on 6 frames in 3 stretches"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: settings)))
        #expect((json as? [String: Any])?["inputThreshold"] is Double)
        // Calibrated under bounded context, the file carries it for `skipconv thresholds=` to load.
        let bounded = try skipd(common + ["--frames", "4", "--context", "16", "--rolling", "10"])
        #expect(bounded.status == 0, "\(bounded.stderr)")
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: settings)))
        #expect((written as? [String: Any])?["context"] as? Int == 16)
        #expect((written as? [String: Any])?["rollingRefresh"] as? Int == 10)

        let thin = try skipd(common + ["--frames", "5", "--segments", "3"])
        #expect(thin.status != 0 && thin.stderr.contains("--segments"), "\(thin.stderr)")
        let long = try skipd(common + ["--frames", "1000", "--segments", "2"])
        #expect(long.status != 0 && long.stderr.contains("has 120 frames, fewer than 2 stretches of 500"))
    }

    /// fit-policy writes a file the policy stage loads: actions cheapest first, one weight row each.
    @Test func fitPolicyWritesAPolicyThePolicyStageLoads() throws {
        let clip = Self.root.appendingPathComponent("assets/carphone_pristine.mp4")
        try #require(FileManager.default.fileExists(atPath: clip.path), "run scripts/fetch-assets")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("p.json").path
        let result = try skipd(
            "fit-policy", "--model", "assets/centerface.onnx", "--video", "assets/carphone_pristine.mp4",
            "--input-size", "192x160", "--frames", "10", "--scales", "0.5", "--output", policy)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("training accuracy"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: policy)))
        let object = try #require(json as? [String: Any])
        #expect(object["actions"] as? [String] == ["skip2", "0.5", "1"])
        #expect((object["weights"] as? [[Double]])?.count == 3)
        let pipeline = dir.appendingPathComponent("p.pipeline").path
        try "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=64,height=64 ! residual ! policy model=\(policy)"
            .write(toFile: pipeline, atomically: true, encoding: .utf8)
        let run = try skipd("run", pipeline)
        #expect(run.status == 0, "\(run.stderr)")
    }
}

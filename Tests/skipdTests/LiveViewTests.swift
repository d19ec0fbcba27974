import Foundation
import Testing

/// The live view of a real `skipd serve`: viewers that stop reading cost the pipelines nothing and do not hold up
/// SIGTERM; and headless Chromium shows the page with every pipeline and its annotated frames, and the stream.
@Suite(.serialized) struct LiveViewTests {
    /// frames_out of `name` now.
    private func framesOut(_ serve: ServeProcess, _ name: String, token: String? = nil) async throws -> Int {
        let headers = token.map { ["Authorization": "Bearer \($0)"] } ?? [:]
        let answer = try await serve.request("/pipelines/\(name)", headers: headers)
        let row = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
        return row["frames_out"] as? Int ?? 0
    }

    /// Frames out during `window`.
    private func framesOut(_ serve: ServeProcess, _ name: String, during window: Duration) async throws -> Int {
        let before = try await framesOut(serve, name)
        try await Task.sleep(for: window)
        return try await framesOut(serve, name) - before
    }

    /// Three viewers open `stream.mjpeg` and never read (their receive buffers shrunk, so the server's writes to
    /// them stall within a few parts of incompressible snow): the pipeline's frames out over 4 s stay what they
    /// were without them. A viewer that reads still gets pictures, and SIGTERM still drains and exits within 5 s.
    @Test func viewersThatStopReadingSlowNeitherThePipelineNorTheShutdown() async throws {
        let serve = try ServeProcess(
            pipelines: [
                "cam": """
                videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1,format=GRAY8
                  ! interval n=1
                """
            ], config: "live-fps = 10")
        let port = try await serve.httpPort()
        let deadline = ContinuousClock.now + .seconds(60)
        while try await framesOut(serve, "cam") < 30, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let alone = try await framesOut(serve, "cam", during: .seconds(4))
        #expect(alone >= 96, "without viewers: \(alone) frames in 4 s at 30 fps")

        let stalled = try (0..<3).map { _ in
            try HTTPStreamClient(port: port, path: "/pipelines/cam/stream.mjpeg", receiveBuffer: 1024)
        }
        try await Task.sleep(for: .seconds(1.5))
        let watched = try await framesOut(serve, "cam", during: .seconds(4))
        #expect(Double(watched) >= 0.9 * Double(alone), "with stalled viewers: \(watched) frames, alone \(alone)")

        // The server still serves: a viewer that reads gets parts while the stalled ones hang on.
        let reader = try HTTPStreamClient(port: port, path: "/pipelines/cam/stream.mjpeg")
        let parts = Array("Content-Type: image/jpeg".utf8)
        let bytes = reader.read { HTTPStreamClient.count(parts, in: $0) >= 3 }
        #expect(HTTPStreamClient.count(parts, in: bytes) >= 3, "\(bytes.count) bytes")

        let (status, took) = serve.terminate()
        #expect(status == 0 && took < .seconds(5), "exit \(status) after \(took)")
        #expect(!serve.log.text.contains("did not finish"), "\(serve.log.text)")
        withExtendedLifetime(stalled) {}
    }

    /// Headless Chromium opens the page of a real `skipd serve` (with a token, passed as `/?token=`) running two
    /// files at their own pace: faces on the car-phone clip, boxes drawn in magenta by `overlay`, and the plaza
    /// camera with the blocks that changed tinted. The screenshot (docs/images/live-view.png) must show both
    /// pictures and the overlay's boxes; the page's DOM must list both pipelines with their figures; and an `<img>`
    /// of `stream.mjpeg?token=` on another page must show the boxes too.
    @Test func chromiumShowsEveryPipelineWithItsAnnotatedFrame() async throws {
        let chromium = URL(fileURLWithPath: "/usr/bin/chromium")
        try #require(
            FileManager.default.isExecutableFile(atPath: chromium.path), "no chromium: run scripts/install-deps")
        let assets = CLITests.root.appendingPathComponent("assets")
        let (clip, plaza, model) = (
            assets.appendingPathComponent("carphone_pristine.mp4"), assets.appendingPathComponent("vtest.avi"),
            assets.appendingPathComponent("centerface.onnx")
        )
        for file in [clip, plaza, model] {
            try #require(FileManager.default.fileExists(atPath: file.path), "run scripts/setup (assets)")
        }
        let token = "view-\(UUID().uuidString.prefix(8))"
        // identity sync=true plays each file at its frame rate, as a camera would deliver it.
        let serve = try ServeProcess(
            pipelines: [
                "carphone": """
                filesrc location=\(clip.path) ! qtdemux ! h264parse ! avdec_h264 ! identity sync=true
                  ! videoconvert ! video/x-raw,format=RGB
                  ! residual threshold=12 block=16 ! gate min-changed=0.002 refresh=300
                  ! skipconv model=\(model.path) input-size=192x160 input-threshold=4 threads=1
                  ! centerface ! overlay color=magenta
                """,
                "plaza": """
                filesrc location=\(plaza.path) ! decodebin ! identity sync=true ! videoconvert ! videoscale
                  ! video/x-raw,format=RGB,width=384,height=288
                  ! residual threshold=12 block=16 ! gate min-changed=0.002 ! overlay
                """,
            ], config: "token = \"\(token)\"")
        let port = try await serve.httpPort()
        for name in ["carphone", "plaza"] {
            let deadline = ContinuousClock.now + .seconds(90)
            while try await serve.request(
                "/pipelines/\(name)/frame.jpg", headers: ["Authorization": "Bearer \(token)"]
            ).status != 200, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        try await Task.sleep(for: .seconds(2))

        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID())")
        defer { try? FileManager.default.removeItem(at: profile) }
        let (width, height) = (1280, 860)
        let page = "http://127.0.0.1:\(port)/?token=\(token)"
        // The page polls without end; virtual time lets it run 5 s of its timers, then Chromium takes the picture.
        func chromiumRun(_ output: String) throws -> ChildProcess {
            let run = try ChildProcess(
                chromium,
                [
                    "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                    "--user-data-dir=\(profile.path)", "--window-size=\(width),\(height)",
                    "--virtual-time-budget=5000", output, page,
                ])
            if run.waitForExit(timeout: 90) != 0 {
                run.stop()
                Issue.record("chromium \(output) failed: \(run.stderr.all())")
            }
            return run
        }
        let screenshot = CLITests.root.appendingPathComponent("docs/images/live-view.png")
        _ = try chromiumRun("--screenshot=\(screenshot.path)")
        let shot = try RGBImage(decoding: screenshot, width: width, height: height)

        // The overlay's boxes and landmarks: saturated magenta, which nothing else on the page or in the clips has.
        var magenta: [(x: Int, y: Int)] = []
        for y in 0..<height {
            for x in 0..<width {
                let c = shot.color(x, y)
                if c.x > 170 && c.z > 170 && c.y < 110 { magenta.append((x, y)) }
            }
        }
        #expect(magenta.count >= 100, "\(magenta.count) magenta pixels: no face box on the page")
        // Two pictures side by side: each half of the page holds a photograph's thousands of colours (the page's
        // own panels and text have a few dozen), and the face box sits in the car-phone picture on the left.
        let left = shot.distinctColors(0..<width / 2, 0..<height)
        let right = shot.distinctColors(width / 2..<width, 0..<height)
        #expect(left > 1000 && right > 1000, "distinct colours: left \(left), right \(right)")
        #expect(magenta.allSatisfy { $0.x < width / 2 }, "a magenta pixel in the plaza picture")

        let dom = try chromiumRun("--dump-dom").stdout.all()
        for text in [
            "<span class=\"name\">carphone</span>", "<span class=\"name\">plaza</span>", "fps in / out",
            "compute saved", "src=\"blob:",
        ] {
            #expect(dom.contains(text), "the page lacks \(text)")
        }
        // The page says when it cannot read /pipelines (with a token it failed to send, say) in its problem line.
        #expect(dom.contains("<span id=\"problem\"></span>"), "the page reports a problem")

        // The MJPEG stream in an <img> of another page, the token in its address: Chromium shows its parts.
        let embedding = profile.appendingPathComponent("embed.html")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        try """
        <html><body style="margin:0;background:#fff">
        <img src="http://127.0.0.1:\(port)/pipelines/carphone/stream.mjpeg?token=\(token)"></body></html>
        """.write(to: embedding, atomically: true, encoding: .utf8)
        let streamed = profile.appendingPathComponent("stream.png")
        let player = try ChildProcess(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--user-data-dir=\(profile.path)", "--window-size=320,240", "--timeout=3000",
                "--screenshot=\(streamed.path)", embedding.absoluteString,
            ])
        #expect(player.waitForExit(timeout: 60) == 0, "\(player.stderr.all())")
        player.stop()
        let frame = try RGBImage(decoding: streamed, width: 320, height: 240)
        var boxes = 0
        for y in 0..<144 {
            for x in 0..<176 where frame.color(x, y).x > 170 && frame.color(x, y).z > 170 && frame.color(x, y).y < 110 {
                boxes += 1
            }
        }
        #expect(boxes >= 20, "\(boxes) magenta pixels in the streamed picture")
        #expect(frame.distinctColors(0..<176, 0..<144) > 500, "the streamed picture is blank")
        #expect(serve.terminate().status == 0)
    }
}

import Foundation
import Testing

/// `skipd serve`'s HTTP API, asked over real HTTP: health, status, restart, errors, the token, and `/metrics`
/// read by an independent Prometheus parser (python3-prometheus-client).
@Suite struct HTTPAPITests {
    private static let testPattern = """
        videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1,format=GRAY8 ! residual
        """

    private func object(_ value: Any) throws -> [String: Any] { try #require(value as? [String: Any]) }

    /// The `/pipelines` row of `name`.
    private func row(_ serve: ServeProcess, _ name: String) async throws -> [String: Any] {
        let rows = try #require(try await serve.json("/pipelines") as? [[String: Any]])
        return try #require(rows.first { $0["name"] as? String == name }, "\(rows)")
    }

    /// Waits until `name`'s state is `state`.
    private func wait(_ serve: ServeProcess, _ name: String, state: String) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + .seconds(60)
        var last: [String: Any] = [:]
        while ContinuousClock.now < deadline {
            // Before the first reload has finished, the pipeline may not be listed yet.
            let rows = try await serve.json("/pipelines") as? [[String: Any]] ?? []
            last = rows.first { $0["name"] as? String == name } ?? [:]
            if last["state"] as? String == state { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("\(name) never became \(state): \(last)")
        return last
    }

    @Test func routesStatusRestartAndErrorsAreJSON() async throws {
        let serve = try ServeProcess(pipelines: [
            "cam": Self.testPattern,
            "broken": "videotestsrc ! residual treshold=3\n",
            // Nothing listens on port 1: the camera is unreachable, and its password must show nowhere.
            "door": "rtspsrc location=rtsp://viewer:secret@127.0.0.1:1/x protocols=tcp ! residual\n",
        ])
        let live = try await serve.request("/live")
        #expect(live.status == 200 && live.headers["content-type"] == "application/json")
        #expect(try object(JSONSerialization.jsonObject(with: Data(live.body.utf8)))["status"] as? String == "alive")
        // 503 until the pipelines have started, then 200.
        var ready = try await serve.request("/ready")
        let started = ContinuousClock.now
        while ready.status == 503, ContinuousClock.now - started < .seconds(60) {
            #expect(try object(JSONSerialization.jsonObject(with: Data(ready.body.utf8)))["ready"] as? Bool == false)
            try await Task.sleep(for: .milliseconds(50))
            ready = try await serve.request("/ready")
        }
        #expect(ready.status == 200)
        let readiness = try object(JSONSerialization.jsonObject(with: Data(ready.body.utf8)))
        #expect(readiness["ready"] as? Bool == true && readiness["pipelines"] as? Int == 3)

        let cam = try await wait(serve, "cam", state: "running")
        let broken = try await wait(serve, "broken", state: "failed")
        #expect((broken["reason"] as? String ?? "").contains("broken.pipeline:1:25: error"), "\(broken)")
        let door = try await wait(serve, "door", state: "reconnecting")
        #expect((door["attempt"] as? Int ?? 0) >= 1 && door["reason"] is String, "\(door)")
        let links = try #require(cam["links"] as? [[String: Any]])
        #expect(links.map { "\($0["from"] ?? "")→\($0["to"] ?? "")" } == ["source→residual0", "residual0→sink"])
        #expect((cam["frames_in"] as? Int ?? 0) > 0)
        let one = try object(try await serve.json("/pipelines/cam"))
        #expect(one["name"] as? String == "cam")
        for path in ["/pipelines", "/metrics", "/pipelines/door"] {
            let body = try await serve.request(path).body
            #expect(!body.contains("secret"), "\(path) shows the camera's password")
        }
        #expect(!serve.log.text.contains("secret"))

        // Errors: JSON, 404 for what does not exist, 405 with Allow for a route asked with another method.
        for (method, path, status, allow) in [
            ("GET", "/nope", 404, nil), ("GET", "/pipelines/nope", 404, nil),
            ("POST", "/pipelines/nope/restart", 404, nil),
            ("POST", "/live", 405, "GET"), ("DELETE", "/pipelines", 405, "GET"),
            ("GET", "/pipelines/cam/restart", 405, "POST"),
        ] as [(String, String, Int, String?)] {
            let answer = try await serve.request(path, method: method)
            #expect(answer.status == status, "\(method) \(path): \(answer.status)")
            #expect(answer.headers["allow"] == allow, "\(method) \(path)")
            let error = try object(JSONSerialization.jsonObject(with: Data(answer.body.utf8)))["error"] as? String
            #expect(error?.isEmpty == false, "\(method) \(path): \(answer.body)")
        }

        // A second daemon on the same address: one clear error, exit 1.
        let port = try await serve.httpPort()
        let twin = try ServeProcess(pipelines: [:], http: "127.0.0.1:\(port)")
        twin.process.waitUntilExit()
        #expect(twin.process.terminationStatus == 1)
        #expect(
            twin.log.text.contains("error: serve: cannot serve the HTTP API on 127.0.0.1:\(port)"), "\(twin.log.text)")

        // Restart: the stream ends cleanly and starts again at once, counters go on from where they were.
        let before = try await row(serve, "cam")["frames_in"] as? Int ?? 0
        let restart = try await serve.request("/pipelines/cam/restart", method: "POST")
        #expect(restart.status == 202, "\(restart.body)")
        let deadline = ContinuousClock.now + .seconds(30)
        while serve.log.count(containing: ["frames flowing", "/cam.pipeline"]) < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(serve.log.count(containing: ["frames flowing", "/cam.pipeline"]) == 2)
        #expect(serve.log.count(containing: ["pipeline restarting on request", "/cam.pipeline"]) == 1)
        let after = try await row(serve, "cam")
        #expect((after["frames_in"] as? Int ?? 0) > before)
        #expect(after["reconnects"] as? Int == 0, "a restart asked for is not a reconnect")
        #expect(serve.terminate().status == 0)
    }

    @Test func aTokenGuardsAnAPIBoundBeyondLoopback() async throws {
        let serve = try ServeProcess(
            pipelines: ["cam": Self.testPattern], config: "token = \"s3cret-token\"", http: "0.0.0.0:0")
        let missing = try await serve.request("/live")
        #expect(missing.status == 401 && missing.headers["www-authenticate"] == "Bearer")
        #expect(missing.body.contains("\"error\""))
        let wrong = try await serve.request("/pipelines", headers: ["Authorization": "Bearer s3cret-tokem"])
        #expect(wrong.status == 401)
        let right = try await serve.request("/pipelines", headers: ["Authorization": "Bearer s3cret-token"])
        #expect(right.status == 200, "\(right.body)")
        // Without the token the route is not even told apart from a missing one.
        #expect(try await serve.request("/nope").status == 401)
        #expect(serve.terminate().status == 0)

        let open = try ServeProcess(pipelines: [:], http: "0.0.0.0:0")
        open.process.waitUntilExit()
        #expect(open.process.terminationStatus == 2)
        #expect(
            open.log.text.contains("'http' binds 0.0.0.0, which other machines reach: set 'token'"), "\(open.log.text)")
    }

    /// A camera at 320×240 with the face model: written as `input-size=320x240`, which the model rejects (240 is
    /// not a multiple of 32), the pipeline is `failed` with the model's message and is not rebuilt; left `auto`,
    /// it runs (at 320×256).
    @Test func aModelThatRejectsItsSizeIsFailedNotReconnecting() async throws {
        let model = CLITests.root.appendingPathComponent("assets/centerface.onnx")
        try #require(FileManager.default.fileExists(atPath: model.path), "run scripts/setup (assets)")
        let camera = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=15/1,format=RGB"
        let serve = try ServeProcess(pipelines: [
            "fixed": "\(camera)\n  ! model model=\(model.path) input-size=320x240\n",
            "auto": "\(camera)\n  ! model model=\(model.path)\n",
        ])
        let fixed = try await wait(serve, "fixed", state: "failed")
        #expect((fixed["reason"] as? String)?.contains("cannot be broadcast together") == true, "\(fixed)")
        _ = try await wait(serve, "auto", state: "running")
        try await Task.sleep(for: .seconds(2))
        let later = try await row(serve, "fixed")
        #expect(later["state"] as? String == "failed" && later["reconnects"] as? Int == 0, "\(later)")
    }

    /// `/metrics` as Prometheus would read it, twice: the families are there with their types, and the counters
    /// grow as frames flow (frames, links, MACs, policy actions).
    @Test func metricsParseAsPrometheusTextAndCountersMove() async throws {
        let model = CLITests.root.appendingPathComponent("assets/centerface.onnx")
        try #require(FileManager.default.fileExists(atPath: model.path), "run scripts/setup (assets)")
        let serve = try ServeProcess(pipelines: [
            "faces": """
            videotestsrc is-live=true pattern=ball ! video/x-raw,width=128,height=96,framerate=15/1,format=RGB
              ! residual ! gate ! policy scales=1,0.5 ! skipconv model=\(model.path) ! centerface
            """
        ])
        _ = try await wait(serve, "faces", state: "running")
        try await Task.sleep(for: .seconds(1))
        let first = try parse(try await serve.request("/metrics"))
        try await Task.sleep(for: .seconds(2))
        let second = try parse(try await serve.request("/metrics"))

        let types = [
            "skipd_frames_in": "counter", "skipd_frames_out": "counter", "skipd_link_frames": "counter",
            "skipd_link_dropped_frames": "counter", "skipd_link_depth_frames": "gauge",
            "skipd_fps_in_frames_per_second": "gauge", "skipd_last_frame_age_seconds": "gauge",
            "skipd_reconnects": "counter", "skipd_dense_macs": "counter", "skipd_executed_macs": "counter",
            "skipd_skipped_frames": "counter", "skipd_policy_actions": "counter", "skipd_pipeline_state": "gauge",
        ]
        for (family, type) in types {
            #expect(second.types[family] == type, "\(family): \(second.types[family] ?? "missing")")
        }
        func value(_ m: Metrics, _ name: String, _ labels: [String: String] = [:]) -> Double {
            m.samples.filter { sample in
                sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
            }.map(\.value).reduce(0, +)
        }
        let faces = ["pipeline": "faces"]
        #expect(value(second, "skipd_pipeline_state", faces.merging(["state": "running"]) { $1 }) == 1)
        for name in ["skipd_frames_in_total", "skipd_frames_out_total", "skipd_dense_macs_total"] {
            #expect(value(second, name, faces) > value(first, name, faces), "\(name) did not grow")
        }
        for link in [("source", "residual0"), ("policy0", "skipconv0")] {
            let labels = faces.merging(["from": link.0, "to": link.1]) { $1 }
            #expect(value(second, "skipd_link_frames_total", labels) > value(first, "skipd_link_frames_total", labels))
        }
        // Skip-conv runs less than a dense network would, and something: the first frame is dense.
        let (dense, executed) = (value(second, "skipd_dense_macs_total"), value(second, "skipd_executed_macs_total"))
        #expect(executed > 0 && executed < dense, "executed \(executed) of \(dense)")
        // One policy decision per frame out, except the frames a skip carries.
        let decisions = value(second, "skipd_policy_actions_total", faces)
        #expect(decisions > 0 && decisions <= value(second, "skipd_frames_out_total", faces))
        #expect(value(second, "skipd_fps_in_frames_per_second", faces) > 5)
        #expect(value(second, "skipd_last_frame_age_seconds", faces) < 2)
        #expect(serve.terminate().status == 0)
    }

    struct Metrics {
        var types: [String: String]
        var samples: [(name: String, labels: [String: String], value: Double)]
    }

    /// Parses Prometheus text with prometheus_client's parser (not ours): it throws on a malformed exposition.
    private func parse(_ answer: (status: Int, headers: [String: String], body: String)) throws -> Metrics {
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            families = list(text_string_to_metric_families(sys.stdin.read()))
            print(json.dumps({"types": {f.name: f.type for f in families},
                              "samples": [[s.name, s.labels, s.value] for f in families for s in f.samples]}))
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", script]
        let (input, output, error) = (Pipe(), Pipe(), Pipe())
        python.standardInput = input
        python.standardOutput = output
        python.standardError = error
        try python.run()
        input.fileHandleForWriting.write(Data(answer.body.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        try #require(python.terminationStatus == 0, "prometheus_client rejects /metrics: \(problem)")
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let rows = try #require(json["samples"] as? [[Any]])
        return Metrics(
            types: try #require(json["types"] as? [String: String]),
            samples: rows.compactMap { row in
                guard row.count == 3, let name = row[0] as? String, let labels = row[1] as? [String: String],
                    let value = (row[2] as? NSNumber)?.doubleValue
                else { return nil }
                return (name, labels, value)
            })
    }
}

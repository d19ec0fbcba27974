import Foundation
import Synchronization
import Testing

/// Runs the real `skipd-testcam` binary as a local RTSP camera and reads it with the real `skipd run`.
@Suite struct TestCamTests {
    /// Built beside the test bundle (the test target depends on it), else the default debug build.
    static let binary: URL = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("skipd-testcam")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        return CLITests.root.appendingPathComponent(".build/debug/skipd-testcam")
    }()

    /// Everything read so far from one pipe, by a thread of its own (a full pipe would block the child).
    final class Output: Sendable {
        private let state = Mutex((data: Data(), closed: false))
        private let changed = DispatchSemaphore(value: 0)

        init(_ pipe: Pipe) {
            let handle = pipe.fileHandleForReading
            Thread.detachNewThread { [self] in
                while case let chunk = handle.availableData, !chunk.isEmpty {
                    state.withLock { $0.data.append(chunk) }
                    changed.signal()
                }
                state.withLock { $0.closed = true }
                changed.signal()
            }
        }

        var text: String { String(decoding: state.withLock { $0.data }, as: UTF8.self) }

        /// Waits until `found` returns a value for the text so far, the pipe closes or `timeout` s pass.
        @discardableResult
        func wait<T>(timeout: Double, for found: (String) -> T?) -> T? {
            let deadline = DispatchTime.now() + timeout
            while true {
                let (text, closed) = state.withLock { (String(decoding: $0.data, as: UTF8.self), $0.closed) }
                if let value = found(text) { return value }
                if closed || changed.wait(timeout: deadline) == .timedOut { return nil }
            }
        }

        /// The whole output once the pipe closes (what there is after `timeout` s).
        func all(timeout: Double = 5) -> String {
            wait(timeout: timeout) { _ in self.state.withLock { $0.closed } ? () : nil }
            return text
        }
    }

    /// A child process with its stdout and stderr collected.
    struct Child {
        let process = Process()
        let stdout: Output
        let stderr: Output

        init(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws {
            process.executableURL = executable
            process.arguments = arguments
            process.currentDirectoryURL = directory
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            stdout = Output(out)
            stderr = Output(err)
            try process.run()
        }

        /// Exit status, or nil if it is still running after `timeout` s.
        func waitForExit(timeout: Double) -> Int32? {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            return process.isRunning ? nil : process.terminationStatus
        }

        /// Ends a child a failed expectation left running.
        func stop() {
            guard process.isRunning else { return }
            process.terminate()
            if waitForExit(timeout: 5) == nil { kill(process.processIdentifier, SIGKILL) }
        }
    }

    /// Starts a camera; `url` is read from its `serving rtsp://…` line by `waitForURL`.
    func startCamera(_ arguments: [String]) throws -> Child {
        try Child(Self.binary, arguments)
    }

    func waitForURL(_ camera: Child, timeout: Double = 20) -> String? {
        camera.stdout.wait(timeout: timeout) { text in
            text.split(separator: "\n").first { $0.hasPrefix("serving ") }.map { String($0.dropFirst(8)) }
        }
    }

    @Test func skipdReadsTheTestPatternOverRTSP() throws {
        let camera = try startCamera(["--port", "0", "--width", "320", "--height", "240", "--fps", "15"])
        defer { camera.stop() }
        let url = try #require(waitForURL(camera), "no serving line: \(camera.stderr.text)")
        #expect(url.hasPrefix("rtsp://127.0.0.1:") && url.hasSuffix("/test"))

        let dir = try CLITests().temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // identity eos-after ends the stream after 20 frames; rtspsrc lets the EOS through like any source.
        try """
        rtspsrc location=\(url) protocols=tcp latency=200 ! rtph264depay ! avdec_h264 ! videoconvert
          ! video/x-raw,format=RGB ! identity eos-after=20 ! residual ! jsonsink location=out.jsonl
        """.write(to: dir.appendingPathComponent("rtsp.pipeline"), atomically: true, encoding: .utf8)
        let skipd = try Child(CLITests.binary, ["run", "rtsp.pipeline"], in: dir)
        defer { skipd.stop() }
        // 20 frames at 15 fps take under 2 s; past 60 s, Ctrl-C it (sinks flush) and count what arrived.
        if skipd.waitForExit(timeout: 60) == nil { skipd.process.interrupt() }
        #expect(skipd.waitForExit(timeout: 10) == 0, "\(skipd.stderr.all())")

        let lines = try String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count >= 15)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let residual = try #require(object["residual"] as? [String: Any])
            // 320×240 in 16-pixel blocks.
            #expect(residual["block"] as? Int == 16)
            #expect(residual["columns"] as? Int == 20)
            #expect(residual["rows"] as? Int == 15)
        }

        camera.process.terminate()  // SIGTERM
        #expect(camera.waitForExit(timeout: 5) == 0, "\(camera.stderr.all())")
    }

    @Test func aSecondCameraOnTheSamePortExitsTwo() throws {
        let first = try startCamera(["--port", "0"])
        defer { first.stop() }
        let url = try #require(waitForURL(first), "no serving line: \(first.stderr.text)")
        let port = try #require(URLComponents(string: url)?.port)

        let second = try startCamera(["--port", "\(port)"])
        defer { second.stop() }
        #expect(second.waitForExit(timeout: 20) == 2)
        let message = second.stderr.all()
        #expect(message.contains("port \(port)") && message.contains("in use"), "\(message)")
        #expect(!second.stdout.all().contains("serving"))
    }

    @Test func aMissingFileExitsTwo() throws {
        let camera = try startCamera(["--port", "0", "--file", "/nonexistent/clip.mp4"])
        defer { camera.stop() }
        #expect(camera.waitForExit(timeout: 20) == 2)
        #expect(camera.stderr.all().contains("'/nonexistent/clip.mp4' does not exist"))
    }
}

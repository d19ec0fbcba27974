import Foundation
import Hummingbird
import HummingbirdTesting
import PipelineKit
import Testing

@testable import SkipdService

/// The live view's routes in process, over real pipelines of a fleet: the page, frame.jpg decoded and compared
/// with the frame fed in, errors, the token as a header and as `?token=`, and an MJPEG stream read off a socket.
@Suite struct LiveViewRoutesTests {
    private static let first: [SIMD3<UInt8>] = [[220, 30, 30], [30, 200, 40], [30, 40, 210], [230, 230, 230]]
    private static let last: [SIMD3<UInt8>] = [[240, 200, 20], [20, 20, 20], [120, 40, 160], [40, 180, 190]]

    private func app(_ fleet: TestFleet, token: String = "", live: LiveViewSettings = LiveViewSettings())
        -> some ApplicationProtocol
    {
        let readiness = Readiness()
        readiness.set(true)
        return Application(
            router: HTTPAPI.router(
                fleet: fleet.fleet, metrics: FleetMetrics(), readiness: readiness, token: token, live: live))
    }

    /// Two 64×48 frames from a raw video file (the second's colours differ from the first's), through `residual`.
    private func fileFleet() async throws -> TestFleet {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("frames-\(UUID()).rgb")
        try Data(Pictures.rgb(Pictures.quadrants(Self.first)) + Pictures.rgb(Pictures.quadrants(Self.last)))
            .write(to: directory)
        return try await TestFleet([
            "file": """
            filesrc location=\(directory.path) ! rawvideoparse width=64 height=48 format=rgb framerate=10/1
              ! residual
            """
        ])
    }

    private func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    /// Asks until the pipeline's first frame is there (frame.jpg answers 503 before).
    private func waitForFrame(_ client: some TestClientProtocol, _ uri: String, headers: HTTPFields = [:])
        async throws -> TestResponse
    {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let response = try await client.execute(uri: uri, method: .get, headers: headers)
            if response.status != .serviceUnavailable || ContinuousClock.now > deadline { return response }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until the pipeline's state is `state`.
    private func waitForState(_ client: some TestClientProtocol, _ name: String, _ state: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let response = try await client.execute(uri: "/pipelines/\(name)", method: .get)
            if response.status == .ok, try json(response.body)["state"] as? String == state { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("\(name) never became \(state)")
    }

    @Test func frameJPEGIsTheLatestFrameOutDecodedToItsSizeAndColours() async throws {
        let fleet = try await fileFleet()
        try await app(fleet).test(.router) { client in
            // Both frames are out once the file has finished.
            try await waitForState(client, "file", "finished")
            let response = try await client.execute(uri: "/pipelines/file/frame.jpg", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "image/jpeg")
            let jpeg = Array(response.body.readableBytesView)
            #expect(jpeg.prefix(2) == [0xFF, 0xD8] && jpeg.suffix(2) == [0xFF, 0xD9])
            // The file has ended: the latest frame is its second, whose colours are not the first's.
            let picture = try await Pictures.decode(jpeg)
            #expect(picture.width == 64 && picture.height == 48)
            for (k, (x, y)) in [(16, 12), (48, 12), (16, 36), (48, 36)].enumerated() {
                let color = Pictures.color(picture, x, y)
                #expect(Pictures.near(color, Self.last[k]), "quadrant \(k): \(color), fed \(Self.last[k])")
            }

            // Unchanged frame, same tag: 304 without a body. Another size is another picture.
            let tag = try #require(response.headers[.eTag])
            let again = try await client.execute(
                uri: "/pipelines/file/frame.jpg", method: .get, headers: [.ifNoneMatch: tag])
            #expect(again.status == .notModified && again.body.readableBytes == 0)
            let small = try await client.execute(
                uri: "/pipelines/file/frame.jpg?width=32", method: .get, headers: [.ifNoneMatch: tag])
            #expect(small.status == .ok && small.headers[.eTag] != tag)
            let half = try await Pictures.decode(Array(small.body.readableBytesView))
            #expect(half.width == 32 && half.height == 24)
            for (k, (x, y)) in [(8, 6), (24, 6), (8, 18), (24, 18)].enumerated() {
                #expect(Pictures.near(Pictures.color(half, x, y), Self.last[k]), "quadrant \(k) at width 32")
            }
        }
        await fleet.stop()
    }

    @Test func unknownPipelinesNoFrameYetAndBadWidthsAreJSONErrors() async throws {
        let fleet = try await TestFleet(["broken cam": "videotestsrc ! residual treshold=3\n"])
        try await app(fleet).test(.router) { client in
            for path in ["/pipelines/nope/frame.jpg", "/pipelines/nope/stream.mjpeg"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .notFound, "\(path)")
                #expect(try json(response.body)["error"] as? String == "no pipeline 'nope'")
            }
            // Listed (failed: it does not plan) but without a frame. Its name is percent-encoded, as the page sends it.
            let none = try await client.execute(uri: "/pipelines/broken%20cam/frame.jpg", method: .get)
            #expect(none.status == .serviceUnavailable && none.headers[.retryAfter] == "1")
            #expect(try json(none.body)["error"] as? String == "no frame from pipeline 'broken cam' yet")
            for width in ["0", "abc", "99999", "-5", ""] {
                let response = try await client.execute(
                    uri: "/pipelines/broken%20cam/frame.jpg?width=\(width)", method: .get)
                #expect(response.status == .badRequest, "width=\(width)")
                #expect((try json(response.body)["error"] as? String)?.contains("'width' must be") == true)
            }
            let post = try await client.execute(uri: "/pipelines/broken%20cam/frame.jpg", method: .post)
            #expect(post.status == .methodNotAllowed && post.headers[.allow] == "GET")
        }
        await fleet.stop()
    }

    @Test func thePageIsOneSelfContainedHTMLFile() async throws {
        let fleet = try await TestFleet([:])
        var live = LiveViewSettings()
        (live.fps, live.maxWidth) = (2.5, 640)
        try await app(fleet, live: live).test(.router) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            let page = String(buffer: response.body)
            #expect(page.hasPrefix("<!doctype html>") && page.contains("</html>"))
            // Nothing from elsewhere: no external scripts, styles, fonts or images.
            for outside in ["http://", "https://", "<link", "src=", "@import", "url("] {
                #expect(!page.contains(outside), "the page refers to \(outside)")
            }
            #expect(page.contains("const FPS = 2.5, WIDTH = 640;"))
            #expect(page.contains("fetch(\"pipelines\""))
        }
        await fleet.stop()
    }

    @Test func aTokenGuardsTheLiveViewAsHeaderOrQuery() async throws {
        let fleet = try await fileFleet()
        try await app(fleet, token: "s3cret").test(.router) { client in
            for path in ["/", "/?token=wrong", "/pipelines/file/frame.jpg", "/pipelines/file/stream.mjpeg?token=s3cre"]
            {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .unauthorized, "\(path)")
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
                #expect(try json(response.body)["error"] as? String == "missing or wrong bearer token")
            }
            // Only the live view's routes take the query: the rest of the API still wants the header.
            #expect(try await client.execute(uri: "/pipelines?token=s3cret", method: .get).status == .unauthorized)
            #expect(try await client.execute(uri: "/?token=s3cret", method: .get).status == .ok)
            let frame = try await waitForFrame(client, "/pipelines/file/frame.jpg?token=s3cret")
            #expect(frame.status == .ok && frame.headers[.contentType] == "image/jpeg")
            let header = try await client.execute(
                uri: "/pipelines/file/frame.jpg", method: .get, headers: [.authorization: "Bearer s3cret"])
            #expect(header.status == .ok)
            // Percent-encoded, as a browser sends what the page's address holds.
            let encoded = try await client.execute(uri: "/?token=s3%63ret", method: .get)
            #expect(encoded.status == .ok)
        }
        await fleet.stop()
    }

    /// Read off a real socket: the multipart type and boundary, parts that are whole JPEGs of the live pattern,
    /// downscaled to `live-max-width`.
    @Test func theMJPEGStreamSendsJPEGPartsNoWiderThanTheLimit() async throws {
        let fleet = try await TestFleet([
            "cam": """
            videotestsrc is-live=true pattern=ball ! video/x-raw,width=128,height=96,framerate=30/1
              ! videoconvert ! video/x-raw,format=RGB ! residual
            """
        ])
        var live = LiveViewSettings()
        (live.fps, live.maxWidth) = (10, 64)
        try await app(fleet, live: live).test(.live) { client in
            let port = try #require(client.port)
            let connection = try RawHTTPConnection(port: port, path: "/pipelines/cam/stream.mjpeg")
            let bytes = connection.read { RawResponse($0)?.parts(boundary: MJPEGStream.boundary).count ?? 0 >= 3 }
            let response = try #require(RawResponse(bytes), "no response head")
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "multipart/x-mixed-replace; boundary=skipd-frame")
            let parts = response.parts(boundary: "skipd-frame")
            #expect(parts.count >= 3, "\(parts.count) parts in \(bytes.count) bytes")
            var pictures: [[UInt8]] = []
            for part in parts.prefix(3) {
                #expect(part.headers["content-type"] == "image/jpeg")
                #expect(part.body.prefix(2) == [0xFF, 0xD8] && part.body.suffix(2) == [0xFF, 0xD9])
                let picture = try await Pictures.decode(part.body)
                #expect(picture.width == 64 && picture.height == 48)
                pictures.append(part.body)
            }
            // A moving ball: consecutive parts are different frames, not one frame resent.
            #expect(Set(pictures).count == pictures.count)
        }
        await fleet.stop()
    }
}

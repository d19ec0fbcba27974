import Foundation
import Hummingbird
import NIOCore

/// The live view's routes: the page, and per pipeline its latest frame as a JPEG and as an MJPEG stream.
///
/// | route | answer |
/// |---|---|
/// | `GET /` | the page (``LivePage``) |
/// | `GET /pipelines/{name}/frame.jpg[?width=N]` | the latest frame that left the last stage; 503 before the first |
/// | `GET /pipelines/{name}/stream.mjpeg[?width=N]` | `multipart/x-mixed-replace` JPEGs, `live-fps` at most |
///
/// Pictures are encoded here, on the requests' tasks, only while someone asks; a pipeline keeps a reference to its
/// latest frame and nothing more (``FrameTap``).
enum LiveView {
    /// Routes a browser opens by URL, without headers: they also take the bearer token as `?token=`.
    static let queryTokenRoutes: [[String]] = [
        [], ["pipelines", "*", "frame.jpg"], ["pipelines", "*", "stream.mjpeg"],
    ]

    static func add(to router: Router<APIRequestContext>, fleet: PipelineFleet, settings: LiveViewSettings) {
        router.get("/") { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "text/html; charset=utf-8", .cacheControl: "no-cache",
                    // Everything is inline: nothing may come from elsewhere (the page's own meta tag keeps the token
                    // in its address out of Referer headers).
                    .contentSecurityPolicy:
                        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                        + "img-src 'self' blob:; connect-src 'self'",
                ],
                body: .init(byteBuffer: ByteBuffer(string: LivePage.html(settings: settings))))
        }
        router.get("pipelines/:name/frame.jpg") { request, context in
            let name = try HTTPAPI.pipelineName(context)
            guard let tap = await fleet.tap(name) else { throw HTTPAPI.noPipeline(name) }
            let width = try requestedWidth(request) ?? Int.max
            guard let latest = tap.latest else { throw noFrame(name) }
            // A page polling a pipeline whose frame has not changed (a finished file) costs no encoding.
            if let tags = request.headers[.ifNoneMatch], matches(tags, etag(tap, latest.sequence, width)) {
                return Response(status: .notModified, headers: [.eTag: etag(tap, latest.sequence, width)])
            }
            let encoded: FrameTap.Encoded
            do {
                guard let picture = try tap.jpeg(maxWidth: width, quality: settings.quality) else {
                    throw noFrame(name)
                }
                encoded = picture
            } catch let error as LiveViewError {
                throw httpError(error, name)
            }
            return Response(
                status: .ok,
                headers: [
                    .contentType: "image/jpeg", .cacheControl: "no-cache, private",
                    .eTag: etag(tap, encoded.sequence, width),
                ],
                body: .init(byteBuffer: ByteBuffer(bytes: encoded.jpeg)))
        }
        router.get("pipelines/:name/stream.mjpeg") { request, context in
            let name = try HTTPAPI.pipelineName(context)
            guard let tap = await fleet.tap(name) else { throw HTTPAPI.noPipeline(name) }
            let width = min(try requestedWidth(request) ?? settings.maxWidth, settings.maxWidth)
            // A format it can never show is said once, up front, rather than as a stream that stays empty.
            if let latest = tap.latest, JPEGEncoder.colorSpace(of: latest.image.format.pixelFormat) == nil {
                throw httpError(.unsupportedFormat(latest.image.format.pixelFormat), name)
            }
            let stream = MJPEGStream(tap: tap, width: width, settings: settings)
            return Response(
                status: .ok,
                headers: [
                    .contentType: "multipart/x-mixed-replace; boundary=\(MJPEGStream.boundary)",
                    .cacheControl: "no-cache, no-store, private",
                ],
                body: stream.body(closeConnection: { [channel = context.channel] in channel.close(promise: nil) }))
        }
    }

    /// `?width=N`: the widest picture wanted (nil: not given); a bad value is a 400.
    static func requestedWidth(_ request: Request) throws -> Int? {
        guard let text = request.uri.queryParameters["width"] else { return nil }
        guard let width = Int(text), LiveViewSettings.widths.contains(width) else {
            let range = LiveViewSettings.widths
            throw HTTPError(
                .badRequest,
                message: "'width' must be a whole number of pixels from \(range.lowerBound) to \(range.upperBound)")
        }
        return width
    }

    static func noFrame(_ name: String) -> HTTPError {
        HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "no frame from pipeline '\(name)' yet")
    }

    static func httpError(_ error: LiveViewError, _ name: String) -> HTTPError {
        switch error {
        case .unsupportedFormat: HTTPError(.notImplemented, message: "pipeline '\(name)': \(error)")
        case .encoding: HTTPError(.internalServerError, message: "pipeline '\(name)': \(error)")
        }
    }

    /// Names the picture: the tap (a changed file's pipeline starts its count over), the frame and the size asked.
    static func etag(_ tap: FrameTap, _ sequence: Int, _ width: Int) -> String {
        "\"\(tap.id)-\(sequence)-\(width == Int.max ? "full" : String(width))\""
    }

    /// Whether an `If-None-Match` list names `tag` (or is `*`).
    static func matches(_ tags: String, _ tag: String) -> Bool {
        tags.split(separator: ",").contains { candidate in
            let trimmed = candidate.trimmingCharacters(in: .whitespaces)
            return trimmed == "*" || trimmed == tag || trimmed == "W/\(tag)"
        }
    }
}

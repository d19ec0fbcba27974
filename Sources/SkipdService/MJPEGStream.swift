import Hummingbird
import ServiceLifecycle

/// One viewer's MJPEG stream of a pipeline: every 1/fps seconds, the latest frame if it is new, as one
/// `multipart/x-mixed-replace` part. The frames a viewer cannot take are never queued: while a write waits for a
/// slow client, the pipeline goes on replacing its latest frame, and the next part is whatever is latest then.
struct MJPEGStream: Sendable {
    static let boundary = "skipd-frame"

    let tap: FrameTap
    let width: Int
    let settings: LiveViewSettings

    /// The response body. It ends when the pipeline is stopped or replaced, the client goes away, or the server
    /// shuts down; then `closeConnection` runs, since a write to a client that does not read never returns.
    func body(closeConnection: @escaping @Sendable () -> Void) -> ResponseBody {
        ResponseBody { writer in
            // A failed write (the client left, or the connection closed for shutdown) ends the body with an error,
            // which Hummingbird answers by closing the connection.
            try await withGracefulShutdownHandler {
                try await stream(to: &writer)
                try await writer.finish(nil)
            } onGracefulShutdown: {
                closeConnection()
            }
        }
    }

    private func stream(to writer: inout any ResponseBodyWriter) async throws {
        // Each part ends with the next boundary, so a browser shows a picture as soon as it has arrived rather
        // than when the next one starts.
        try await writer.write(ByteBuffer(string: "--\(Self.boundary)\r\n"))
        let interval = Duration.seconds(1 / settings.fps)
        var sent = 0
        while !tap.isClosed && !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            if let latest = tap.latest, latest.sequence != sent,
                let picture = try tap.jpeg(maxWidth: width, quality: settings.quality)
            {
                var part = ByteBuffer(
                    string: "Content-Type: image/jpeg\r\nContent-Length: \(picture.jpeg.count)\r\n\r\n")
                part.writeBytes(picture.jpeg)
                part.writeString("\r\n--\(Self.boundary)\r\n")
                try await writer.write(part)
                sent = picture.sequence
            }
            try await Task.sleep(until: started + interval, clock: .continuous)
        }
    }
}

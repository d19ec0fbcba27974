import CGStreamer

/// The GStreamer part of a pipeline before the first stage, ending in an appsink that skipd adds.
/// Confined to one ``BlockingWorker``: every method blocks.
final class SourceSegment: @unchecked Sendable {
    static let appsinkName = "skipd_appsink"
    private let gst: GStreamerPipeline
    private let appsink: UnsafeMutablePointer<GstAppSink>
    private var nextIndex = 0

    init(description: String) throws(GStreamerError) {
        // Two buffers let decoding run one frame ahead; the appsink then blocks the streaming thread
        // (drop=false), which is how a blocked first link reaches the decoder.
        gst = try GStreamerPipeline(
            description: description + " ! appsink name=\(Self.appsinkName) sync=false max-buffers=2 drop=false")
        guard let sink = gst.element(named: Self.appsinkName) else {
            throw GStreamerError(element: Self.appsinkName, message: "appsink missing from the pipeline")
        }
        appsink = swgst_app_sink(sink)
        gst_object_unref(sink)
    }

    /// Starts the pipeline and tells whether its source is live (live sources do not preroll).
    func start() throws(GStreamerError) -> Bool {
        let paused = try gst.setState(GST_STATE_PAUSED)
        try gst.setState(GST_STATE_PLAYING)
        return paused == GST_STATE_CHANGE_NO_PREROLL
    }

    enum Pull {
        case frame(Frame)
        case timeout
        case endOfStream
    }

    /// Waits up to `timeout` nanoseconds for the next frame; bus errors are thrown.
    func pull(timeout: UInt64) throws(GStreamerError) -> Pull {
        try gst.checkBus()
        guard let sample = gst_app_sink_try_pull_sample(appsink, GstClockTime(timeout)) else {
            if gst_app_sink_is_eos(appsink) != 0 {
                try gst.checkBus()
                return .endOfStream
            }
            return .timeout
        }
        defer { swgst_sample_unref(sample) }
        return .frame(try frame(from: sample))
    }

    private func frame(from sample: OpaquePointer) throws(GStreamerError) -> Frame {
        var info = GstVideoInfo()
        guard let caps = gst_sample_get_caps(sample), gst_video_info_from_caps(&info, caps) != 0 else {
            throw GStreamerError(element: Self.appsinkName, message: "the source does not produce raw video")
        }
        guard let buffer = gst_sample_get_buffer(sample), let pixels = PixelStorage(gstBuffer: buffer) else {
            throw GStreamerError(element: Self.appsinkName, message: "could not map a video buffer")
        }
        let format = VideoFormat(
            pixelFormat: String(cString: gst_video_format_to_string(info.finfo.pointee.format)),
            width: Int(info.width), height: Int(info.height), stride: Int(info.stride.0),
            framerate: (Int(info.fps_n), Int(info.fps_d)))
        let pts = buffer.pointee.pts
        defer { nextIndex += 1 }
        // Planes other than the first start at info.offset; the first plane may be offset too.
        let image = VideoImage(format: format, pixels: pixels, offset: Int(info.offset.0))
        return Frame(index: nextIndex, pts: pts == GstClockTime.max ? nil : UInt64(pts), image: image)
    }

    func stop() {
        _ = try? gst.setState(GST_STATE_NULL)
    }
}

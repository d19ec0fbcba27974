import CGStreamer

/// The GStreamer part of a pipeline after the last stage, starting at an appsrc that skipd adds.
/// Confined to one ``BlockingWorker``: every method blocks.
final class SinkSegment: @unchecked Sendable {
    static let appsrcName = "skipd_appsrc"
    private let gst: GStreamerPipeline
    private let appsrc: UnsafeMutablePointer<GstAppSrc>
    private var format: VideoFormat?
    /// A frame of unknown frame rate waiting for the next PTS, which ends it (see ``push(_:)``).
    private var held: Frame?
    /// The last PTS gap of unknown-rate frames: the duration of the one still held at end-of-stream.
    private var lastGap: UInt64?

    init(description: String) throws(GStreamerError) {
        gst = try GStreamerPipeline(
            description: "appsrc name=\(Self.appsrcName) format=time block=true max-buffers=4 ! " + description)
        guard let src = gst.element(named: Self.appsrcName) else {
            throw GStreamerError(element: Self.appsrcName, message: "appsrc missing from the pipeline")
        }
        appsrc = swgst_app_src(src)
        gst_object_unref(src)
        try gst.setState(GST_STATE_PLAYING)
    }

    /// Pushes the frame's pixels (the decoder's own buffer when it came from GStreamer); blocks while the
    /// appsrc queue is full.
    ///
    /// Every buffer gets a duration: muxers need one to know how long the last frame lasts (mp4mux drops it
    /// otherwise, and the file's frame rate is then guessed from a short sample table). It comes from the frame
    /// rate; when that is unknown (0/1) the frame is held until the next one and lasts until its PTS.
    func push(_ frame: Frame) throws(GStreamerError) {
        let rate = frame.image.format.framerate
        if rate.numerator > 0, rate.denominator > 0 {
            try releaseHeld()
            let duration = gst_util_uint64_scale_int(
                1_000_000_000, Int32(clamping: rate.denominator), Int32(clamping: rate.numerator))
            try send(frame, duration: UInt64(duration))
            return
        }
        if let previous = held, let start = previous.pts, let end = frame.pts, end > start {
            lastGap = end - start
        }
        try releaseHeld()
        held = frame
    }

    /// Sends the held frame (if any) with the last PTS gap as its duration.
    private func releaseHeld() throws(GStreamerError) {
        guard let frame = held else { return }
        held = nil
        try send(frame, duration: lastGap)
    }

    private func send(_ frame: Frame, duration: UInt64?) throws(GStreamerError) {
        if format != frame.image.format {
            // The format's caps carry its frame rate, which encoders and muxers take as the stream's.
            let caps = gst_caps_from_string(frame.image.format.caps)
            gst_app_src_set_caps(appsrc, caps)
            if let caps { swgst_caps_unref(caps) }
            format = frame.image.format
        }
        guard let buffer = frame.image.pixels.makeGstBuffer(pts: frame.pts, duration: duration) else {
            throw GStreamerError(element: Self.appsrcName, message: "could not allocate a buffer")
        }
        let flow = gst_app_src_push_buffer(appsrc, buffer)
        try gst.checkBus()
        guard flow == GST_FLOW_OK else {
            throw GStreamerError(
                element: Self.appsrcName, message: "downstream refused the frame (flow \(flow.rawValue))")
        }
    }

    /// Sends the held frame and end-of-stream, and waits for it to reach the sinks, so files are complete.
    func finish(timeout: UInt64) throws(GStreamerError) {
        try releaseHeld()
        gst_app_src_end_of_stream(appsrc)
        guard try gst.checkBus(timeout: GstClockTime(timeout)) else {
            throw GStreamerError(element: Self.appsrcName, message: "end-of-stream did not reach the sink in time")
        }
        try gst.setState(GST_STATE_NULL)
    }

    func stop() {
        _ = try? gst.setState(GST_STATE_NULL)
    }
}

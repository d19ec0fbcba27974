import CGStreamer

/// The GStreamer part of a pipeline after the last stage, starting at an appsrc that skipd adds.
/// Confined to one ``BlockingWorker``: every method blocks.
final class SinkSegment: @unchecked Sendable {
    static let appsrcName = "skipd_appsrc"
    private let gst: GStreamerPipeline
    private let appsrc: UnsafeMutablePointer<GstAppSrc>
    private var format: VideoFormat?

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
    func push(_ frame: Frame) throws(GStreamerError) {
        if format != frame.image.format {
            let caps = gst_caps_from_string(frame.image.format.caps)
            gst_app_src_set_caps(appsrc, caps)
            if let caps { swgst_caps_unref(caps) }
            format = frame.image.format
        }
        guard let buffer = frame.image.pixels.makeGstBuffer(pts: frame.pts) else {
            throw GStreamerError(element: Self.appsrcName, message: "could not allocate a buffer")
        }
        let flow = gst_app_src_push_buffer(appsrc, buffer)
        try gst.checkBus()
        guard flow == GST_FLOW_OK else {
            throw GStreamerError(
                element: Self.appsrcName, message: "downstream refused the frame (flow \(flow.rawValue))")
        }
    }

    /// Sends end-of-stream and waits for it to reach the sinks, so files are complete.
    func finish(timeout: UInt64) throws(GStreamerError) {
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

import CGStreamer

/// A GStreamer pipeline built from a gst-launch description, with its bus. Blocking calls (state changes, bus
/// pops) happen here, so an instance is confined to one ``BlockingWorker`` thread.
final class GStreamerPipeline: @unchecked Sendable {
    let pipeline: UnsafeMutablePointer<GstElement>
    private let bus: UnsafeMutablePointer<GstBus>

    /// Builds the pipeline; GStreamer's own parse errors are returned as they are.
    init(description: String) throws(GStreamerError) {
        try GStreamer.initialize()
        var error: UnsafeMutablePointer<GError>?
        let element = gst_parse_launch(description, &error)
        // gst_parse_launch can return a partial pipeline *and* set the error.
        if let message = GStreamer.takeMessage(error) {
            if let element { gst_object_unref(element) }
            throw GStreamerError(element: "pipeline", message: message)
        }
        guard let element else { throw GStreamerError(element: "pipeline", message: "could not build \(description)") }
        pipeline = UnsafeMutablePointer(OpaquePointer(gst_object_ref_sink(element)))
        bus = gst_element_get_bus(pipeline)
    }

    deinit {
        gst_element_set_state(pipeline, GST_STATE_NULL)
        gst_object_unref(bus)
        gst_object_unref(pipeline)
    }

    func element(named name: String) -> UnsafeMutablePointer<GstElement>? {
        gst_bin_get_by_name(swgst_bin(pipeline), name)
    }

    /// Sets the state; a failure is reported with the error the failing element posted.
    @discardableResult
    func setState(_ state: GstState) throws(GStreamerError) -> GstStateChangeReturn {
        let result = gst_element_set_state(pipeline, state)
        if result == GST_STATE_CHANGE_FAILURE {
            try checkBus()
            throw GStreamerError(element: "pipeline", message: "could not change state")
        }
        return result
    }

    /// Throws the first ERROR message waiting on the bus; returns whether EOS was seen.
    @discardableResult
    func checkBus(timeout: GstClockTime = 0) throws(GStreamerError) -> Bool {
        let types = GstMessageType(rawValue: GST_MESSAGE_ERROR.rawValue | GST_MESSAGE_EOS.rawValue)
        while let message = gst_bus_timed_pop_filtered(bus, timeout, types) {
            defer { swgst_message_unref(message) }
            if message.pointee.type == GST_MESSAGE_EOS { return true }
            var error: UnsafeMutablePointer<GError>?
            var debug: UnsafeMutablePointer<gchar>?
            gst_message_parse_error(message, &error, &debug)
            let source = message.pointee.src.map { String(cString: swgst_object_name($0)) } ?? "pipeline"
            let text = GStreamer.takeMessage(error) ?? "unknown error"
            let debugText = debug.map { String(cString: $0) }
            g_free(debug)
            throw GStreamerError(element: source, message: text, debug: debugText)
        }
        return false
    }
}

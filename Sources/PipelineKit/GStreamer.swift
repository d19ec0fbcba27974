import CGStreamer
import Foundation

/// Process-wide GStreamer set-up and the questions the planner asks GStreamer about elements.
public enum GStreamer {
    private static let initialized: Result<Void, GStreamerError> = {
        var error: UnsafeMutablePointer<GError>?
        guard gst_init_check(nil, nil, &error) != 0 else {
            return .failure(GStreamerError(element: "gstreamer", message: takeMessage(error) ?? "gst_init failed"))
        }
        return .success(())
    }()

    /// Initialises GStreamer once; later calls return at once.
    public static func initialize() throws(GStreamerError) {
        try initialized.get()
    }

    public static var version: String {
        String(cString: gst_version_string())
    }

    /// Whether GStreamer has an element of this name (asks the registry, which may scan plug-ins once).
    static func factory(named name: String) -> OpaquePointer? {
        gst_element_factory_find(name)
    }

    enum PropertyCheck {
        case ok
        case unknown
        case readOnly(type: String)
        case badValue(type: String)
    }

    /// Checks `key=value` against a fresh instance of the element, as gst-launch would set it.
    static func checkProperty(element: UnsafeMutablePointer<GstElement>, key: String, value: String)
        -> PropertyCheck
    {
        var typeName: UnsafePointer<CChar>?
        let code = swgst_check_property(element, key, value, &typeName)
        let type = typeName.map { String(cString: $0) } ?? "?"
        switch code {
        case 0: return .ok
        case 1: return .unknown
        case 2: return .readOnly(type: type)
        default: return .badValue(type: type)
        }
    }

    /// Takes the message out of a `GError` and frees it.
    static func takeMessage(_ error: UnsafeMutablePointer<GError>?) -> String? {
        guard let error else { return nil }
        defer { g_error_free(error) }
        return error.pointee.message.map { String(cString: $0) }
    }
}

/// An error reported by GStreamer, naming the element that reported it.
public struct GStreamerError: Error, Sendable, CustomStringConvertible {
    public var element: String
    public var message: String
    public var debug: String?

    public init(element: String, message: String, debug: String? = nil) {
        self.element = element
        self.message = message
        self.debug = debug
    }

    public var description: String {
        var text = "GStreamer element '\(element)': \(message)"
        if let debug, !debug.isEmpty { text += " (\(debug.split(separator: "\n").last ?? ""))" }
        return text
    }
}

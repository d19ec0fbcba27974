extension String {
    /// The text with the user and password of every URL replaced by `***` (`rtsp://admin:pw@cam/…` →
    /// `rtsp://***@cam/…`): camera credentials must not reach logs, status lines or metrics.
    public var redactingCredentials: String {
        replacing(#/(?<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s"']+@/#) { "\($0.output.scheme)***@" }
    }
}

extension String {
    /// The text with the user and password of every URL replaced by as many `*`: for a diagnostic's excerpt, whose
    /// caret must stay under the column it points at.
    public var maskingCredentials: String {
        replacing(#/(?<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?<user>[^/@\s"']+)@/#) {
            "\($0.output.scheme)\(String(repeating: "*", count: $0.output.user.count))@"
        }
    }
}

/// One error in a pipeline file, reported as `file:line:col: error: message` followed by the offending line
/// and a caret under the offending text, like a compiler.
public struct PipelineDiagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var location: SourceLocation
    public var message: String
    /// The offending text, underlined in the rendered message.
    public var offending: String
    /// The full source line, for the excerpt.
    public var sourceLine: String

    public init(file: String, location: SourceLocation, message: String, offending: String, sourceLine: String) {
        self.file = file
        self.location = location
        self.message = message
        self.offending = offending
        self.sourceLine = sourceLine
    }

    /// `file:line:col: error: message`, the first line of ``description``.
    public var headline: String { "\(file):\(location.line):\(location.column): error: \(message)" }

    public var description: String {
        guard !sourceLine.isEmpty else { return headline }
        let pad = String(repeating: " ", count: max(0, location.column - 1))
        let marks = "^" + String(repeating: "~", count: max(0, min(offending.count, sourceLine.count) - 1))
        return "\(headline)\n    \(sourceLine)\n    \(pad)\(marks)"
    }
}

/// Builds diagnostics that point into one pipeline text.
struct DiagnosticContext: Sendable {
    let file: String
    let lines: [Substring]

    init(file: String, text: String) {
        self.file = file
        self.lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    }

    func error(_ message: String, at span: SourceText) -> PipelineDiagnostic {
        error(message, at: span.location, offending: span.text)
    }

    func error(_ message: String, at location: SourceLocation, offending: String) -> PipelineDiagnostic {
        let line = location.line - 1 < lines.count ? String(lines[location.line - 1]) : ""
        // A password in a URL (a camera's, a database's) stays out of the report, which may reach a log.
        let expanded = line.replacingTabs().maskingCredentials
        return PipelineDiagnostic(
            file: file, location: location, message: message.maskingCredentials,
            offending: offending.maskingCredentials, sourceLine: expanded)
    }
}

extension String {
    /// Tabs become one space so that the caret lines up with the column count.
    fileprivate func replacingTabs() -> String { String(map { $0 == "\t" ? " " : $0 }) }
}

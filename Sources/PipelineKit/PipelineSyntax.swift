/// A pipeline file as written: one linear chain of elements joined by `!`.
///
/// Each element is a GStreamer element, a skipd stage or a caps filter; which is which is decided later by
/// ``PipelinePlanner``, which knows the stage registry.
public struct PipelineSyntax: Sendable {
    public var elements: [ElementSyntax]
}

/// One element of the chain: `name key=value …` or a caps filter such as `video/x-raw,format=RGB`.
public struct ElementSyntax: Sendable {
    public enum Kind: Sendable {
        case element(name: SourceText)
        case caps(SourceText)
    }

    public var kind: Kind
    public var properties: [PropertySyntax]

    /// The element name or the caps text, with its location.
    public var head: SourceText {
        switch kind {
        case .element(let name): name
        case .caps(let caps): caps
        }
    }
}

/// `key=value`; `value` holds the unquoted text, `raw` the text as written (quotes included).
public struct PropertySyntax: Sendable {
    public var key: SourceText
    public var value: SourceText
    public var raw: String

    /// `key=value` in gst-launch syntax, quoted only when the value needs it.
    public var launchText: String { "\(key.text)=\(PropertySyntax.quoted(value.text))" }

    public static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.allSatisfy { !$0.isWhitespace && !"\"'!\\".contains($0) }
        if plain { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\"\(escaped)\""
    }
}

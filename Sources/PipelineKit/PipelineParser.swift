/// Parses the gst-launch syntax of a pipeline file into ``PipelineSyntax``.
///
/// Supported: `#` comments (at the start of a line or after whitespace), a pipeline spread over many lines,
/// `key=value` properties with `"double"` or `'single'` quoted values (`\"` and `\\` escape inside double
/// quotes), and caps filters (`video/x-raw,format=RGB,width=320`), which run to the next `!` as in gst-launch.
/// Not supported, with a clear error: branches (`name.` pad references) and bins in parentheses.
public struct PipelineParser {
    private let chars: [Character]
    private let context: DiagnosticContext
    private var index = 0
    private var line = 1
    private var column = 1

    public init(text: String, file: String) {
        self.chars = Array(text)
        self.context = DiagnosticContext(file: file, text: text)
    }

    public static func parse(_ text: String, file: String) throws(PipelineDiagnostic) -> PipelineSyntax {
        var parser = PipelineParser(text: text, file: file)
        return try parser.parse()
    }

    private enum Token {
        case link(SourceLocation)
        case word(raw: SourceText, unquoted: String)
        case caps(SourceText)
    }

    public mutating func parse() throws(PipelineDiagnostic) -> PipelineSyntax {
        var elements: [ElementSyntax] = []
        var current: [Token] = []
        var lastLink: SourceLocation?
        var expectElement = true

        func close(_ link: SourceLocation?) throws(PipelineDiagnostic) {
            guard !current.isEmpty else {
                let at = link ?? SourceLocation(line: 1, column: 1)
                throw context.error("expected an element before '!'", at: at, offending: "!")
            }
            elements.append(try element(from: current))
            current = []
        }

        while let token = try nextToken(capsAllowed: expectElement) {
            switch token {
            case .link(let at):
                try close(at)
                lastLink = at
                expectElement = true
            case .word, .caps:
                current.append(token)
                expectElement = false
            }
        }
        if current.isEmpty {
            if let lastLink {
                throw context.error("expected an element after '!'", at: lastLink, offending: "!")
            }
            throw context.error("empty pipeline: no elements", at: SourceLocation(line: 1, column: 1), offending: "")
        }
        try close(lastLink)
        return PipelineSyntax(elements: elements)
    }

    private func element(from tokens: [Token]) throws(PipelineDiagnostic) -> ElementSyntax {
        guard case .word(let head, let name) = tokens[0] else {
            guard case .caps(let caps) = tokens[0] else { preconditionFailure("a chunk never starts with '!'") }
            return ElementSyntax(kind: .caps(caps), properties: [])
        }
        if name.hasSuffix(".") || name.contains(".") && !name.contains("=") {
            throw context.error(
                "pad references ('\(name)') are not supported: a skipd pipeline is one linear chain", at: head)
        }
        if head.text.hasPrefix("(") || head.text.hasPrefix(")") {
            throw context.error("bins in parentheses are not supported: a skipd pipeline is one linear chain", at: head)
        }
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || "_-+".contains($0) }), name.first?.isLetter == true
        else {
            if name.contains("=") {
                throw context.error("expected an element name before property '\(head.text)'", at: head)
            }
            throw context.error("invalid element name '\(name)'", at: head)
        }
        var properties: [PropertySyntax] = []
        for token in tokens.dropFirst() {
            guard case .word(let raw, _) = token else { continue }
            properties.append(try property(raw, element: name))
        }
        return ElementSyntax(kind: .element(name: SourceText(name, at: head.location)), properties: properties)
    }

    private func property(_ raw: SourceText, element: String) throws(PipelineDiagnostic) -> PropertySyntax {
        guard let eq = raw.text.firstIndex(of: "=") else {
            if raw.text.contains(".") {
                throw context.error(
                    "pad references ('\(raw.text)') are not supported: a skipd pipeline is one linear chain",
                    at: raw)
            }
            throw context.error(
                "expected 'property=value' after '\(element)', found '\(raw.text)' (missing '!' between elements?)",
                at: raw)
        }
        let key = String(raw.text[..<eq])
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || "_-".contains($0) }) else {
            throw context.error("invalid property name '\(key)'", at: raw)
        }
        let rawValue = String(raw.text[raw.text.index(after: eq)...])
        let valueColumn = raw.location.column + key.count + 1
        let valueLocation = SourceLocation(line: raw.location.line, column: valueColumn)
        guard !rawValue.isEmpty else {
            throw context.error("property '\(key)' has no value", at: raw)
        }
        return PropertySyntax(
            key: SourceText(key, at: raw.location),
            value: SourceText(unquote(rawValue), at: valueLocation),
            raw: rawValue)
    }

    /// Removes quotes and escapes from a value already checked for balance by the lexer.
    private func unquote(_ raw: String) -> String {
        var out = ""
        var quote: Character?
        var escaping = false
        for c in raw {
            if escaping {
                out.append(c)
                escaping = false
            } else if let q = quote {
                if c == "\\" && q == "\"" {
                    escaping = true
                } else if c == q {
                    quote = nil
                } else {
                    out.append(c)
                }
            } else if c == "\"" || c == "'" {
                quote = c
            } else {
                out.append(c)
            }
        }
        return out
    }

    // MARK: - Lexer

    private var here: SourceLocation { SourceLocation(line: line, column: column) }

    private mutating func advance() {
        if chars[index].isNewline {
            line += 1
            column = 1
        } else {
            column += 1
        }
        index += 1
    }

    private mutating func skipSpaceAndComments() {
        var afterSpace = index == 0 || chars[index - 1].isWhitespace
        while index < chars.count {
            let c = chars[index]
            if c.isWhitespace {
                afterSpace = true
                advance()
            } else if c == "#" && afterSpace {
                while index < chars.count && !chars[index].isNewline { advance() }
            } else {
                return
            }
        }
    }

    private mutating func nextToken(capsAllowed: Bool) throws(PipelineDiagnostic) -> Token? {
        skipSpaceAndComments()
        guard index < chars.count else { return nil }
        let start = here
        if chars[index] == "!" {
            advance()
            return .link(start)
        }
        if capsAllowed && looksLikeCaps() { return .caps(try lexCaps(start)) }
        var raw = ""
        while index < chars.count {
            let c = chars[index]
            if c.isWhitespace || c == "!" { break }
            if c == "\"" || c == "'" {
                raw += try lexQuoted(c)
            } else {
                raw.append(c)
                advance()
            }
        }
        return .word(raw: SourceText(raw, at: start), unquoted: raw)
    }

    private mutating func lexQuoted(_ quote: Character) throws(PipelineDiagnostic) -> String {
        let start = here
        var text = String(quote)
        advance()
        while index < chars.count {
            let c = chars[index]
            if c.isNewline { break }
            text.append(c)
            advance()
            if c == "\\" && quote == "\"" && index < chars.count && !chars[index].isNewline {
                text.append(chars[index])
                advance()
            } else if c == quote {
                return text
            }
        }
        throw context.error("unbalanced quote: \(quote) is never closed on this line", at: start, offending: text)
    }

    /// A caps filter starts with a media type (`video/x-raw`, `audio/mpeg`, `image/jpeg`).
    private func looksLikeCaps() -> Bool {
        var i = index
        var sawSlash = false
        while i < chars.count {
            let c = chars[i]
            if c == "/" {
                sawSlash = true
            } else if c.isWhitespace || c == "," || c == "!" || c == "=" || c == "(" {
                break
            } else if !(c.isLetter || c.isNumber || "-_.+".contains(c)) {
                return false
            }
            i += 1
        }
        return sawSlash && i > index && chars[index].isLetter
    }

    private mutating func lexCaps(_ start: SourceLocation) throws(PipelineDiagnostic) -> SourceText {
        var text = ""
        while index < chars.count && chars[index] != "!" {
            let c = chars[index]
            if c == "#" && (text.last?.isWhitespace ?? false) {
                while index < chars.count && !chars[index].isNewline { advance() }
                continue
            }
            if c == "\"" {
                text += try lexQuoted(c)
                continue
            }
            text.append(c.isNewline ? " " : c)
            advance()
        }
        var trimmed = text
        while trimmed.last?.isWhitespace == true { trimmed.removeLast() }
        return SourceText(trimmed, at: start)
    }
}

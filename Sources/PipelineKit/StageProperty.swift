/// The declaration of one stage property: its name, type, range and default. `skipd stages` prints these and the
/// planner checks every `key=value` of a pipeline file against them before anything starts.
public struct PropertySpec: Sendable {
    public enum Kind: Sendable, Equatable {
        case int(ClosedRange<Int>)
        case double(ClosedRange<Double>)
        case bool
        case string
        /// A path to an existing file (checked when the pipeline is planned).
        case file
        case choice([String])
        /// `WxH` (each 1…16384), or `auto` when allowed; kept as written (a string).
        case size(allowsAuto: Bool)
        /// Comma-separated numbers within `range`: as many as one of `counts` (any number when empty; none only
        /// when `allowsEmpty`); kept as written (a string).
        case numbers(counts: [Int], range: ClosedRange<Double>, allowsEmpty: Bool)
    }

    public var name: String
    public var kind: Kind
    public var defaultValue: PropertyValue?
    public var summary: String
    /// A string property's own syntax (e.g. a URL), checked when the pipeline is planned: nil when the text is
    /// acceptable, else why not. The message is shown next to the text, so it must not repeat secrets.
    public var check: (@Sendable (String) -> PropertyError?)?

    public init(
        name: String, kind: Kind, defaultValue: PropertyValue?, summary: String,
        check: (@Sendable (String) -> PropertyError?)? = nil
    ) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.summary = summary
        self.check = check
    }

    public static func int(
        _ name: String, default value: Int, range: ClosedRange<Int>, _ summary: String
    ) -> PropertySpec {
        PropertySpec(name: name, kind: .int(range), defaultValue: .int(value), summary: summary)
    }

    public static func double(
        _ name: String, default value: Double, range: ClosedRange<Double>, _ summary: String
    ) -> PropertySpec {
        PropertySpec(name: name, kind: .double(range), defaultValue: .double(value), summary: summary)
    }

    public static func bool(_ name: String, default value: Bool, _ summary: String) -> PropertySpec {
        PropertySpec(name: name, kind: .bool, defaultValue: .bool(value), summary: summary)
    }

    /// A string property; `nil` default means the property is required. `check` validates its syntax when the
    /// pipeline is planned (see ``check``).
    public static func string(
        _ name: String, default value: String?, _ summary: String,
        check: (@Sendable (String) -> PropertyError?)? = nil
    ) -> PropertySpec {
        PropertySpec(
            name: name, kind: .string, defaultValue: value.map { .string($0) }, summary: summary, check: check)
    }

    /// A path to a file that must exist when the pipeline starts (e.g. a model); required unless `optional`,
    /// whose default is the empty string (no file).
    public static func file(_ name: String, optional: Bool = false, _ summary: String) -> PropertySpec {
        PropertySpec(name: name, kind: .file, defaultValue: optional ? .string("") : nil, summary: summary)
    }

    public static func choice(
        _ name: String, default value: String, _ choices: [String], _ summary: String
    ) -> PropertySpec {
        PropertySpec(name: name, kind: .choice(choices), defaultValue: .string(value), summary: summary)
    }

    /// A size `WxH` (`auto` allowed when `allowsAuto`), checked when the pipeline is planned.
    public static func size(_ name: String, default value: String, allowsAuto: Bool, _ summary: String)
        -> PropertySpec
    {
        PropertySpec(name: name, kind: .size(allowsAuto: allowsAuto), defaultValue: .string(value), summary: summary)
    }

    /// A comma-separated list of numbers (see ``Kind/numbers(counts:range:allowsEmpty:)``).
    public static func numbers(
        _ name: String, default value: String, counts: [Int] = [], range: ClosedRange<Double>,
        allowsEmpty: Bool = false, _ summary: String
    ) -> PropertySpec {
        PropertySpec(
            name: name, kind: .numbers(counts: counts, range: range, allowsEmpty: allowsEmpty),
            defaultValue: .string(value), summary: summary)
    }

    /// `WxH` → (W, H) with both in 1…16384, else nil.
    public static func parseSize(_ text: String) -> (width: Int, height: Int)? {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), (1...16384).contains(w),
            (1...16384).contains(h)
        else { return nil }
        return (w, h)
    }

    /// `1, 0.5` → [1, 0.5] (nil if any part is not a finite number).
    public static func parseNumbers(_ text: String) -> [Double]? {
        var values: [Double] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)), v.isFinite else { return nil }
            values.append(v)
        }
        return values
    }

    /// `int 0…255`, `double 0.0…1.0`, `one of block, drop-oldest`, for listings.
    public var typeDescription: String {
        switch kind {
        case .int(let r): "int \(r.lowerBound)…\(r.upperBound)"
        case .double(let r): "double \(r.lowerBound)…\(r.upperBound)"
        case .bool: "bool"
        case .string: "string"
        case .file: "file path"
        case .choice(let c): "one of \(c.joined(separator: ", "))"
        case .size(let auto): auto ? "WxH or auto" : "WxH"
        case .numbers(let counts, let r, _):
            (counts.isEmpty ? "numbers" : "\(counts.map(String.init).joined(separator: " or ")) numbers")
                + " \(r.lowerBound)…\(r.upperBound)"
        }
    }

    /// Parses and range-checks a value as written in a pipeline file; the error message says what was expected.
    public func parse(_ text: String) -> Result<PropertyValue, PropertyError> {
        switch kind {
        case .int(let range):
            guard let v = Int(text) else { return .failure(PropertyError("expected an integer, got '\(text)'")) }
            guard range.contains(v) else {
                return .failure(PropertyError("\(v) is out of range \(range.lowerBound)…\(range.upperBound)"))
            }
            return .success(.int(v))
        case .double(let range):
            guard let v = Double(text), v.isFinite else {
                return .failure(PropertyError("expected a number, got '\(text)'"))
            }
            guard range.contains(v) else {
                return .failure(PropertyError("\(text) is out of range \(range.lowerBound)…\(range.upperBound)"))
            }
            return .success(.double(v))
        case .bool:
            switch text.lowercased() {
            case "true", "yes", "1", "on": return .success(.bool(true))
            case "false", "no", "0", "off": return .success(.bool(false))
            default: return .failure(PropertyError("expected true or false, got '\(text)'"))
            }
        case .string, .file:
            guard !text.isEmpty else { return .failure(PropertyError("expected a non-empty string")) }
            if let problem = check?(text) { return .failure(problem) }
            return .success(.string(text))
        case .choice(let choices):
            guard choices.contains(text) else {
                return .failure(PropertyError("expected one of \(choices.joined(separator: ", ")), got '\(text)'"))
            }
            return .success(.string(text))
        case .size(let auto):
            guard (auto && text == "auto") || Self.parseSize(text) != nil else {
                return .failure(
                    PropertyError("expected WxH (e.g. 768x576, each 1…16384)\(auto ? " or auto" : ""), got '\(text)'"))
            }
            return .success(.string(text))
        case .numbers(let counts, let range, let allowsEmpty):
            if text.isEmpty && allowsEmpty { return .success(.string(text)) }
            let expected =
                counts.isEmpty
                ? "comma-separated numbers"
                : "\(counts.map(String.init).joined(separator: " or ")) comma-separated numbers"
            guard let values = Self.parseNumbers(text), !values.isEmpty,
                counts.isEmpty || counts.contains(values.count)
            else { return .failure(PropertyError("expected \(expected), got '\(text)'")) }
            guard values.allSatisfy(range.contains) else {
                return .failure(PropertyError("'\(text)': each must be within \(range.lowerBound)…\(range.upperBound)"))
            }
            return .success(.string(text))
        }
    }
}

public struct PropertyError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

public enum PropertyValue: Sendable, Equatable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)

    public var description: String {
        switch self {
        case .int(let v): "\(v)"
        case .double(let v): "\(v)"
        case .bool(let v): "\(v)"
        case .string(let v): PropertySyntax.quoted(v)
        }
    }
}

/// The effective properties of one stage instance: every declared property, from the file or its default.
public struct StageProperties: Sendable {
    public private(set) var values: [String: PropertyValue]
    /// The properties written in the pipeline file; the others hold their defaults. A stage with another source of
    /// settings (e.g. `skipconv`'s sidecar file) lets only these override it.
    public let explicit: Set<String>

    /// `explicit` nil: every value given counts as written.
    public init(_ values: [String: PropertyValue] = [:], explicit: Set<String>? = nil) {
        self.values = values
        self.explicit = explicit ?? Set(values.keys)
    }

    /// Whether the pipeline file wrote `name` (rather than leaving its default).
    public func isSet(_ name: String) -> Bool { explicit.contains(name) }

    public func int(_ name: String) -> Int {
        guard case .int(let v) = values[name] else { preconditionFailure("stage property \(name) is not an int") }
        return v
    }

    public func double(_ name: String) -> Double {
        switch values[name] {
        case .double(let v): return v
        case .int(let v): return Double(v)
        default: preconditionFailure("stage property \(name) is not a number")
        }
    }

    public func bool(_ name: String) -> Bool {
        guard case .bool(let v) = values[name] else { preconditionFailure("stage property \(name) is not a bool") }
        return v
    }

    public func string(_ name: String) -> String {
        guard case .string(let v) = values[name] else {
            preconditionFailure("stage property \(name) is not a string")
        }
        return v
    }
}

/// Names a kind of result that stages attach to frames, and its type.
///
/// ```swift
/// enum ChangedFraction: FrameMetadataKey {
///     typealias Value = Double
///     static let name = "changed"
/// }
/// frame.metadata[ChangedFraction.self] = 0.08
/// ```
/// `name` is the key under which `jsonsink` writes the value.
public protocol FrameMetadataKey {
    associatedtype Value: Sendable & Encodable
    static var name: String { get }
}

/// Typed results attached to a frame: residual maps, masks, model outputs, detections, counters.
public struct FrameMetadata: Sendable {
    private var entries: [ObjectIdentifier: (name: String, value: any Sendable & Encodable)] = [:]

    public init() {}

    public subscript<Key: FrameMetadataKey>(key: Key.Type) -> Key.Value? {
        get { entries[ObjectIdentifier(key)]?.value as? Key.Value }
        set {
            if let newValue {
                entries[ObjectIdentifier(key)] = (Key.name, newValue)
            } else {
                entries[ObjectIdentifier(key)] = nil
            }
        }
    }

    /// Every attached value by its key's name, sorted by name, for sinks that write all results.
    public var all: [(name: String, value: any Sendable & Encodable)] {
        entries.values.sorted { $0.name < $1.name }
    }
}

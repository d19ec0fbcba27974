import Foundation
import PipelineKit

/// Writes one JSON object per frame to a file (JSON Lines), flushed at end of stream; frames pass on unchanged.
///
/// ```
/// … ! residual ! gate ! jsonsink location=out/vtest.jsonl
/// ```
/// Each line has `frame` (index), `pts` (seconds, or null), `skipped`, `changed` (residual's changed-block
/// fraction, when a residual stage ran) and every result earlier stages attached, under its metadata name.
public struct JSONSink: Stage {
    public static let info = StageInfo(
        name: "jsonsink",
        summary: "One JSON object per frame (JSON Lines): index, pts, changed fraction, skipped, all results",
        example: "residual ! gate ! jsonsink location=out/vtest.jsonl",
        properties: [.string("location", default: nil, "output file; parent directories are created")])

    private let handle: FileHandle
    private let location: String
    private var pending = Data()
    private let encoder = JSONEncoder()

    public init(properties: StageProperties, context: StageContext) throws {
        location = properties.string("location")
        let url = URL(fileURLWithPath: location)
        do {
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: location, contents: nil) else {
                throw JSONSinkError("cannot create \(location)")
            }
            handle = try FileHandle(forWritingTo: url)
        } catch let error as JSONSinkError {
            throw error
        } catch {
            throw JSONSinkError("cannot open \(location): \(error.localizedDescription)")
        }
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        pending.append(try encoder.encode(FrameRecord(frame: frame)))
        pending.append(0x0A)
        if pending.count >= 1 << 16 { try flush() }
        return frame
    }

    public mutating func finish() async throws {
        try flush()
        try handle.close()
    }

    private mutating func flush() throws {
        do {
            try handle.write(contentsOf: pending)
        } catch {
            throw JSONSinkError("cannot write \(location): \(error.localizedDescription)")
        }
        pending.removeAll(keepingCapacity: true)
    }
}

struct JSONSinkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The line written for one frame.
private struct FrameRecord: Encodable {
    let frame: Frame

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(frame.index, forKey: Key("frame"))
        if let pts = frame.pts {
            try c.encode(Double(pts) / 1e9, forKey: Key("pts"))
        } else {
            try c.encodeNil(forKey: Key("pts"))
        }
        try c.encode(frame.skipped, forKey: Key("skipped"))
        if let residual = frame.metadata[ResidualMap.Key.self] {
            try c.encode(residual.changedFraction, forKey: Key("changed"))
        }
        for (name, value) in frame.metadata.all {
            try c.encode(value, forKey: Key(name))
        }
    }
}

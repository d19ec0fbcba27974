import PipelineKit

/// What `residual` found: per block of `block`×`block` pixels, the change against its reference frame.
public struct ResidualMap: Sendable, Encodable {
    public var block: Int
    public var columns: Int
    public var rows: Int
    /// Mean |x − ref| per block, over pixels and channels, in 8-bit levels (row-major, `columns × rows`).
    public var energy: [Float]
    /// Largest |x − ref| of any channel of any pixel of the block.
    public var peak: [UInt8]
    /// Blocks whose peak exceeded the threshold: their change is passed on and their reference updated.
    public var changed: [Bool]

    public init(block: Int, columns: Int, rows: Int, energy: [Float], peak: [UInt8], changed: [Bool]) {
        self.block = block
        self.columns = columns
        self.rows = rows
        self.energy = energy
        self.peak = peak
        self.changed = changed
    }

    public var changedCount: Int { changed.reduce(0) { $0 + ($1 ? 1 : 0) } }
    public var changedFraction: Double { changed.isEmpty ? 0 : Double(changedCount) / Double(changed.count) }

    private enum CodingKeys: String, CodingKey {
        case block, columns, rows
        case changedBlocks = "changed_blocks"
        case changedFraction = "changed_fraction"
        case meanEnergy = "mean_energy"
    }

    /// A summary: the full map is for stages, not for the JSON lines.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(block, forKey: .block)
        try c.encode(columns, forKey: .columns)
        try c.encode(rows, forKey: .rows)
        try c.encode(changedCount, forKey: .changedBlocks)
        try c.encode(changedFraction, forKey: .changedFraction)
        try c.encode(energy.isEmpty ? 0 : energy.reduce(0, +) / Float(energy.count), forKey: .meanEnergy)
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = ResidualMap
        public static let name = "residual"
    }
}

/// What `gate` decided: the blocks later stages must recompute (empty when the frame is skipped).
public struct BlockMask: Sendable, Encodable {
    public var block: Int
    public var columns: Int
    public var rows: Int
    public var active: [Bool]
    /// Whether this frame was a forced refresh (every block active).
    public var refresh: Bool

    public init(block: Int, columns: Int, rows: Int, active: [Bool], refresh: Bool) {
        self.block = block
        self.columns = columns
        self.rows = rows
        self.active = active
        self.refresh = refresh
    }

    public var activeCount: Int { active.reduce(0) { $0 + ($1 ? 1 : 0) } }
    public var activeFraction: Double { active.isEmpty ? 0 : Double(activeCount) / Double(active.count) }

    private enum CodingKeys: String, CodingKey {
        case block, columns, rows, refresh
        case activeBlocks = "active_blocks"
        case activeFraction = "active_fraction"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(block, forKey: .block)
        try c.encode(columns, forKey: .columns)
        try c.encode(rows, forKey: .rows)
        try c.encode(activeCount, forKey: .activeBlocks)
        try c.encode(activeFraction, forKey: .activeFraction)
        try c.encode(refresh, forKey: .refresh)
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = BlockMask
        public static let name = "mask"
    }
}

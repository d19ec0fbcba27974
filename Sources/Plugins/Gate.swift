import PipelineKit

/// Turns `residual`'s changed blocks into the binary mask of blocks later stages recompute; a frame with an
/// empty mask is marked skipped, and later stages reuse their previous result.
///
/// ```
/// … ! residual threshold=12 block=16 ! gate min-changed=0.002 block=32 refresh=300 ! jsonsink location=out.jsonl
/// ```
/// A mask block is active when any residual block inside it changed. When the active fraction is below
/// `min-changed`, the frame is skipped but its active blocks are kept pending and join the next mask that is
/// passed on: `residual` already committed their change, so dropping them would lose it for good. Every
/// `refresh` frames the whole mask is active (a keyframe). Attaches a ``BlockMask`` and sets `Frame.skipped`.
public struct Gate: Stage {
    public static let info = StageInfo(
        name: "gate",
        summary: "Binary block mask from residual's map; skips frames whose mask is empty",
        example: "residual threshold=12 block=16 ! gate min-changed=0.002 refresh=300",
        properties: [
            .double("min-changed", default: 0, range: 0...1, "below this active fraction the frame is skipped"),
            .int("block", default: 0, range: 0...1024, "mask block in pixels, a multiple of residual's; 0: the same"),
            .int(
                "refresh", default: 300, range: 0...1_000_000,
                "every this many frames the whole mask is active; 0: never"),
        ],
        requires: ["residual"], provides: ["mask"])

    private let minChanged: Double
    private let block: Int
    private let refresh: Int
    private var pending: [Bool] = []
    private var sinceRefresh = 0

    public init(properties: StageProperties, context: StageContext) {
        minChanged = properties.double("min-changed")
        block = properties.int("block")
        refresh = properties.int("refresh")
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        guard let residual = frame.metadata[ResidualMap.Key.self] else { throw GateError.noResidual }
        let size = block == 0 ? residual.block : block
        guard size % residual.block == 0 else { throw GateError.blockMismatch(gate: size, residual: residual.block) }
        let factor = size / residual.block
        let columns = (residual.columns + factor - 1) / factor
        let rows = (residual.rows + factor - 1) / factor
        if pending.count != columns * rows { pending = Array(repeating: false, count: columns * rows) }

        var active = pending
        for r in 0..<residual.rows {
            for c in 0..<residual.columns where residual.changed[r * residual.columns + c] {
                active[(r / factor) * columns + c / factor] = true
            }
        }
        sinceRefresh += 1
        let isRefresh = refresh > 0 && sinceRefresh >= refresh
        if isRefresh {
            active = Array(repeating: true, count: active.count)
            sinceRefresh = 0
        }
        var mask = BlockMask(block: size, columns: columns, rows: rows, active: active, refresh: isRefresh)
        let skip = !isRefresh && (mask.activeCount == 0 || mask.activeFraction < minChanged)
        if skip {
            pending = active
            mask.active = Array(repeating: false, count: active.count)
        } else {
            pending = Array(repeating: false, count: active.count)
        }
        var frame = frame
        frame.skipped = skip
        frame.metadata[BlockMask.Key.self] = mask
        return frame
    }
}

enum GateError: Error, CustomStringConvertible {
    case noResidual
    case blockMismatch(gate: Int, residual: Int)

    var description: String {
        switch self {
        case .noResidual: "gate needs a residual stage before it (… ! residual ! gate)"
        case .blockMismatch(let g, let r): "gate block \(g) is not a multiple of residual block \(r)"
        }
    }
}

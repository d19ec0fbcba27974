import Testing

@testable import SkipNet

/// The rectangles a fused skip block recomputes (`BlockCover`), on hand-made masks: what they cover, where they
/// merge and where they stay apart. (The values they produce are checked against dense in `SkipExecutorBoundTests`
/// and `SkipExecutorRealFramesTests`.)
@Suite struct BlockCoverTests {
    /// A stride-1 block on a 64 × 64 image: 3×3 depthwise "same" conv, expand from `inputChannels`.
    static func cover(inputChannels: Int = 8, width: Int = 64) -> BlockCover {
        let d = Conv2DParams(
            inC: 48, inH: 64, inW: width, outC: 48, outH: 64, outW: width, kH: 3, kW: 3, padTop: 1, padLeft: 1,
            padBottom: 1, padRight: 1, groups: 48)
        return BlockCover(depthwise: d, inputChannels: inputChannels, expands: true)
    }

    /// Expand 8 → 48 per window position; depthwise 9 · 48 plus project 48 → 16 per output.
    static let cost = BlockCover.Cost(input: 8 * 48, output: 9 * 48 + 48 * 16)

    static func runs(rows: Range<Int>, columns: Range<Int>) -> [MaskRun] {
        rows.map { MaskRun(y: $0, x0: columns.lowerBound, x1: columns.upperBound) }
    }

    static func rectangles(_ runs: [MaskRun], cover: BlockCover = cover()) -> [BlockCover.Rectangle] {
        var rects: [BlockCover.Rectangle] = []
        cover.rectangles(covering: runs.sorted { ($0.y, $0.x0) < ($1.y, $1.x0) }, cost: cost, into: &rects)
        return rects
    }

    /// A band's groups: runs merged across gaps of up to 2 columns, each group trimmed to the rows its runs lie on
    /// (not the whole band), narrow groups widened to the minimum inside the image.
    @Test func bandGroupsCoverTheRunsOnTheirRowsOnly() {
        let runs = [
            MaskRun(y: 8, x0: 10, x1: 20), MaskRun(y: 9, x0: 22, x1: 30),  // a gap of 2: one group on rows 8–9
            MaskRun(y: 9, x0: 33, x1: 36),  // 3 columns after the group: its own, one row, widened to 4
            MaskRun(y: 8, x0: 63, x1: 64),  // widened leftwards at the right border
        ]
        let groups = BlockCover.columnRuns(runs[...], width: 64, minimum: 4)
        #expect(groups.map(\.columns) == [10..<30, 33..<37, 60..<64])
        #expect(groups.map(\.rows) == [8..<10, 9..<10, 8..<9])
    }

    /// A change 24 rows tall: twelve 2-row bands, one rectangle. Its window is the change plus one halo row and
    /// column each side, each expanded input computed once (twelve bands alone would compute 48 rows of window).
    @Test func aTallChangeIsOneRectangle() {
        let rects = Self.rectangles(Self.runs(rows: 4..<28, columns: 10..<16))
        #expect(
            rects == [
                BlockCover.Rectangle(
                    rows: 4..<28, columns: 10..<16, windowRows: 3..<29, windowColumns: 9..<17, computed: 9..<17)
            ])
    }

    /// Changes far apart side by side, or shifted far between bands, stay separate: their hull would compute more
    /// than the halo rows it saves.
    @Test func distantChangesStayApart() {
        let sideBySide = Self.rectangles(
            Self.runs(rows: 0..<10, columns: 0..<6) + Self.runs(rows: 0..<10, columns: 40..<46))
        #expect(sideBySide.map(\.columns) == [0..<6, 40..<46])
        #expect(sideBySide.map(\.rows) == [0..<10, 0..<10])
        let staircase = Self.rectangles(
            Self.runs(rows: 0..<2, columns: 0..<6) + Self.runs(rows: 2..<4, columns: 30..<36))
        #expect(staircase.map(\.columns) == [0..<6, 30..<36])
    }

    /// On a scattered mask: every changed position lies in a rectangle, no rectangle computes more MACs than the
    /// bands it replaced did (the sum over the cover is at most the unmerged bands'), and none outgrows the window
    /// cap.
    @Test func aScatteredMaskIsCoveredForLessThanItsBands() {
        var generator = SeededGenerator(seed: 7)
        var runs: [MaskRun] = []
        for y in 0..<64 {
            var x = Int(generator.next() % 8)
            while x < 60 {
                let n = 1 + Int(generator.next() % 6)
                runs.append(MaskRun(y: y, x0: x, x1: min(64, x + n)))
                x += n + 1 + Int(generator.next() % 12)
            }
        }
        let cover = Self.cover()
        let rects = Self.rectangles(runs, cover: cover)
        for r in runs {
            for x in r.x0..<r.x1 {
                #expect(rects.contains { $0.rows.contains(r.y) && $0.columns.contains(x) }, "(\(x), \(r.y))")
            }
        }
        var bands = 0
        for band in stride(from: 0, to: 64, by: cover.bandRows) {
            let slice = runs.filter { $0.y / cover.bandRows == band / cover.bandRows }
            for g in BlockCover.columnRuns(slice[...], width: 64, minimum: cover.minimumWidth) {
                bands += Self.cost.macs(cover.rectangle(rows: g.rows, columns: g.columns))
            }
        }
        let merged = rects.reduce(0) { $0 + Self.cost.macs($1) }
        #expect(merged < bands)
        #expect(rects.count > 1)
    }

    /// A change over the whole image of a wide block: rectangles as tall as the window cap allows, no taller.
    @Test func mergedWindowsStayWithinTheCap() {
        let cover = Self.cover(inputChannels: 1024)
        let rects = Self.rectangles(Self.runs(rows: 0..<64, columns: 0..<64), cover: cover)
        #expect(rects.count > 1)
        #expect(rects.allSatisfy { 1024 * $0.windowPositions <= BlockCover.windowFloats })
        #expect(rects.map(\.rows.count).reduce(0, +) == 64)
    }
}

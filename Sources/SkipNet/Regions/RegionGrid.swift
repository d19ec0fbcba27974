/// The tiles a ``RegionExecutor`` cuts a model input into, each with the crop the model runs on to recompute it:
/// the tile and `margin` pixels around it, moved inside the image where the tile touches a border (a crop never
/// reaches past the image, so at the border its padding is the image's own).
public struct RegionGrid: Sendable, Equatable {
    public struct Tile: Sendable, Equatable {
        /// Input pixels whose outputs this tile's crop gives.
        public var columns: Range<Int>
        public var rows: Range<Int>
        /// The crop's top-left input pixel.
        public var cropX: Int
        public var cropY: Int
    }

    public let width: Int
    public let height: Int
    /// Every crop's size: the tile and both margins, at most the image.
    public let cropWidth: Int
    public let cropHeight: Int
    public let tiles: [Tile]

    /// `tile` and `margin` in input pixels; both must be multiples of `alignment` (the model's largest stride), so
    /// that a crop samples the image on the same grid as the whole image does and its outputs fall on whole output
    /// positions.
    public init(width: Int, height: Int, tile: Int, margin: Int, alignment: Int) throws(ModelError) {
        guard tile > 0, margin >= 0, alignment > 0, tile % alignment == 0, margin % alignment == 0 else {
            throw ModelError(
                "tile \(tile) and margin \(margin) must be multiples of \(alignment), the model's largest stride")
        }
        guard width % alignment == 0, height % alignment == 0 else {
            throw ModelError("a \(width)×\(height) input is not a multiple of the model's stride \(alignment)")
        }
        self.width = width
        self.height = height
        cropWidth = min(width, tile + 2 * margin)
        cropHeight = min(height, tile + 2 * margin)
        var tiles: [Tile] = []
        for y in stride(from: 0, to: height, by: tile) {
            for x in stride(from: 0, to: width, by: tile) {
                tiles.append(
                    Tile(
                        columns: x..<min(width, x + tile), rows: y..<min(height, y + tile),
                        cropX: min(max(0, x - margin), width - cropWidth),
                        cropY: min(max(0, y - margin), height - cropHeight)))
            }
        }
        self.tiles = tiles
    }
}

import Foundation
import Testing

@testable import Plugins

/// A tracker's ID is written as `id`, and only when there is one: lines without tracking stay as they were.
@Suite struct DetectionIDEncodingTests {
    @Test func theTrackIDIsEncodedAsIDOnlyWhenPresent() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let face = Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.5)
        #expect(
            String(decoding: try encoder.encode(face), as: UTF8.self)
                == #"{"box":[1,2,3,4],"landmarks":[],"score":0.5}"#)
        let tracked = Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.5, label: "person", trackID: 17)
        #expect(
            String(decoding: try encoder.encode(tracked), as: UTF8.self)
                == #"{"box":[1,2,3,4],"id":17,"label":"person","landmarks":[],"score":0.5}"#)
    }
}

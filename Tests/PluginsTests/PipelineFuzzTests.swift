import Foundation
import PipelineKit
import Plugins
import Testing

/// Mutated pipeline files — bytes flipped, spans cut or repeated, values swapped for hostile ones — through the
/// planner and, when one plans, through every stage's initialiser: each is a plan or one diagnostic with a location,
/// never a trap (which would end this process). Seeded, so every run tries the same inputs; `scripts/fuzz` runs the
/// same mutations for as long as asked.
@Suite struct PipelineFuzzTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The example pipelines plus lines that exercise every stage and property kind.
    static func seeds() throws -> [String] {
        let dir = root.appendingPathComponent("pipelines")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".pipeline") }
        let cf = root.appendingPathComponent("assets/centerface.onnx").path
        return try files.sorted().map { try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8) } + [
            "videotestsrc ! video/x-raw,format=RGB,width=64,height=48 ! residual threshold=12 block=16 "
                + "! gate min-changed=0.002 refresh=300 ! policy scales=1,0.5 skip=2 ! model model=\(cf) "
                + "input-size=64x64 mean=0,0,0 scale=1 ! centerface threshold=0.5 ! fusion unit=s+st taps=3 "
                + "weights=0.5,0.3,0.2 ! overlay color=red ! channel capacity=2 overflow=drop-oldest "
                + "! sqlite batch=3 ! jsonsink location=out/x.jsonl ! fakesink",
            "videotestsrc ! residual ! gate ! interval n=3 ! skipconv model=\(cf) input-threshold=4 threshold=0.1 "
                + "block=32 refresh=10 min-pixels=4 context=16 rolling-refresh=30 gate=output-norm ! jsonsink "
                + "location='out/a b.jsonl'",
        ]
    }

    static let hostile = [
        "", "!", "=", "\"", "'", "#", "\n", " ", "\\", "-1", "0", "1e309", "nan", "inf", "-inf", "99999999999999999999",
        "9223372036854775807", "-9223372036854775808", "0x0", "16384x16384", "16385x1", "1,2,3,4", ",", "1,,2", "t.",
        "(", ")", "video/x-raw", "residual", "gate", "skipconv", "channel", "name=x", "location=", "é", "\u{0}",
    ]

    /// One mutation of `text`, drawn from `random`.
    static func mutate(_ text: String, _ random: inout SplitMix64) -> String {
        var chars = Array(text)
        if chars.isEmpty { return hostile[random.below(hostile.count)] }
        let at = random.below(chars.count)
        switch random.below(6) {
        case 0: chars[at] = Character(UnicodeScalar(UInt8(32 + random.below(95))))
        case 1: chars.removeSubrange(at..<min(chars.count, at + 1 + random.below(20)))
        case 2: chars.insert(contentsOf: Array(hostile[random.below(hostile.count)]), at: at)
        case 3:
            let end = min(chars.count, at + 1 + random.below(40))
            chars.insert(contentsOf: chars[at..<end], at: end)
        case 4:
            // A value after '=' replaced by a hostile one.
            if let eq = chars[at...].firstIndex(of: "=") {
                let end = chars[(eq + 1)...].firstIndex { $0 == " " || $0 == "\n" } ?? chars.count
                chars.replaceSubrange((eq + 1)..<end, with: Array(hostile[random.below(hostile.count)]))
            }
        default: chars = Array(chars[..<at])
        }
        return String(chars)
    }

    @Test func mutatedPipelinesPlanOrFailWithOneDiagnostic() throws {
        var planner = PipelinePlanner(registry: .standard)
        planner.checkFiles = true
        var random = SplitMix64(seed: 20_261_207)
        let seeds = try Self.seeds()
        var (planned, rejected) = (0, 0)
        for i in 0..<400 {
            var text = seeds[i % seeds.count]
            for _ in 0...random.below(3) { text = Self.mutate(text, &random) }
            do throws(PipelineDiagnostic) {
                let plan = try planner.plan(text: text, file: "fuzz.pipeline")
                planned += 1
                // A stage that refuses its (checked) properties says so with an error, never a trap. Sinks are left
                // out: they create their files when built, and a mutated location would litter the checkout.
                for spec in plan.stages where !["jsonsink", "sqlite"].contains(spec.stage.info.name) {
                    _ = try? spec.stage.init(properties: spec.properties, context: .detached())
                }
            } catch {
                rejected += 1
                #expect(error.location.line >= 1 && error.location.column >= 1, "\(error.headline)")
                #expect(!error.message.isEmpty)
            }
        }
        #expect(planned + rejected == 400)
        #expect(
            planned > 20 && rejected > 100, "planned \(planned), rejected \(rejected): the mutations should hit both")
    }
}

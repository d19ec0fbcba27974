import Foundation
import Testing

/// `skipd calibrate --agreement`: settings chosen by the detections they keep.
@Suite struct CalibrateAgreementTests {
    let cli = CLITests()

    /// Exact propagation at input threshold 0 recomputes every change, so its faces are the dense model's: the
    /// only candidate meets a target of 1 and is written.
    @Test func exactSettingKeepsEveryDetection() throws {
        let dir = try cli.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.skip.json")
        let result = try cli.skipd(
            "calibrate", "--model", "assets/centerface.onnx", "--video", "assets/vtest.avi", "--scale", "2",
            "--frames", "6", "--agreement", "1", "--input-thresholds", "0", "--contexts", "0", "--output", file.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("precision 1.000, recall 1.000"), "\(result.stdout)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
        #expect(json?["inputThreshold"] as? Double == 0 && json?["context"] as? Int == 0)
        // The dense run found faces to compare (else agreement would be trivially perfect).
        #expect(result.stderr.contains("dense: ") && !result.stderr.contains("dense: 0 detections"), "\(result.stderr)")
    }

    @Test func badOptionsAreOneClearError() throws {
        let base = ["calibrate", "--model", "assets/centerface.onnx", "--video", "assets/vtest.avi"]
        let neither = try cli.skipd(base)
        #expect(neither.status != 0 && neither.stderr.contains("give one of --budget"))
        let both = try cli.skipd(base + ["--budget", "0.1", "--agreement", "0.9"])
        #expect(both.status != 0 && both.stderr.contains("give one of --budget"))
        let list = try cli.skipd(base + ["--agreement", "0.9", "--contexts", "16,x"])
        #expect(list.status != 0 && list.stderr.contains("comma-separated numbers"))
        let decoder = try cli.skipd(base + ["--agreement", "0.9", "--decoder", "yolo9"])
        #expect(decoder.status != 0 && decoder.stderr.contains("--decoder must be centerface or detect"))
    }
}

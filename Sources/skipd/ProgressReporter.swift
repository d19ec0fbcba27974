import Foundation
import PipelineKit
import Plugins
import SkipNet
import SkipdTools
import Synchronization

/// Follows the frames leaving the last stage: a live line on a terminal, a plain line every few seconds
/// otherwise, and the end-of-run summary (with the median changed-block fraction).
final class ProgressReporter: Sendable {
    private struct State {
        var frames = 0
        var skipped = 0
        var changed: [Double] = []
        var lastPrint = ContinuousClock.now
        var started = ContinuousClock.now
        var printedLive = false
        /// Faces found (a `centerface` stage's detections) and on how many frames.
        var faces = 0
        var framesWithFaces = 0
        var decoded = false
        /// Some detection had a class (a `detect` stage): they are objects, not faces.
        var classed = false
        /// MACs a model stage executed, and what a dense model on every frame at full size would have.
        var executedMACs = 0
        var denseMACs = 0
    }

    private let state = Mutex(State())
    private let quiet: Bool
    private let terminal = isatty(STDERR_FILENO) != 0
    init(quiet: Bool) {
        self.quiet = quiet
    }

    func record(_ frame: Frame) {
        let line: String? = state.withLock { s in
            s.frames += 1
            if frame.skipped { s.skipped += 1 }
            if let found = frame.metadata[Detections.Key.self] {
                s.decoded = true
                s.faces += found.items.count
                if !found.items.isEmpty { s.framesWithFaces += 1 }
                if found.items.contains(where: { $0.classIndex != nil }) { s.classed = true }
            }
            if let cost = frame.metadata[ComputeCost.Key.self] {
                s.executedMACs += cost.executedMACs
                s.denseMACs += cost.denseMACs
            }
            if let residual = frame.metadata[ResidualMap.Key.self] { s.changed.append(residual.changedFraction) }
            let now = ContinuousClock.now
            let every: Duration = terminal ? .milliseconds(250) : .seconds(5)
            guard !quiet, now - s.lastPrint >= every else { return nil }
            s.lastPrint = now
            s.printedLive = terminal
            let seconds = (now - s.started).seconds
            let fps = seconds > 0 ? Double(s.frames) / seconds : 0
            let changed = s.changed.last.map { String(format: "  changed %5.1f%%", $0 * 100) } ?? ""
            return String(format: "frames %6d  %6.1f fps", s.frames, fps) + changed
                + (s.skipped > 0 ? "  skipped \(s.skipped)" : "")
        }
        guard let line else { return }
        if terminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            printError(line)
        }
    }

    /// Ends the live line so that what follows starts on a fresh one.
    func end() {
        if state.withLock({ $0.printedLive }) { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    func summary(_ report: RunReport) -> String {
        state.withLock { s in
            let seconds = report.elapsed.seconds
            var lines = [
                String(
                    format: "%d frames in %.1f s (%.1f fps), %d skipped", report.framesOut, seconds,
                    seconds > 0 ? Double(report.framesOut) / seconds : 0, s.skipped)
            ]
            if s.decoded {
                lines.append(
                    "\(s.classed ? "objects" : "faces"): \(s.faces) found, on \(s.framesWithFaces) of "
                        + "\(report.framesOut) frames")
            }
            if s.denseMACs > 0 {
                lines.append(
                    String(
                        format: "compute: %.1f %% of a dense model on every frame (%.2f of %.2f GMAC a frame)",
                        100 * Double(s.executedMACs) / Double(s.denseMACs),
                        Double(s.executedMACs) / 1e9 / Double(max(1, report.framesOut)),
                        Double(s.denseMACs) / 1e9 / Double(max(1, report.framesOut))))
            }
            if let median = median(s.changed) {
                lines.append(String(format: "median changed-block fraction: %.4f (%.2f %%)", median, median * 100))
            }
            for link in report.links {
                let st = link.stats
                lines.append(
                    "link \(link.name): sent \(st.sent), dropped \(st.dropped), high-water \(st.highWater)")
            }
            return lines.joined(separator: "\n")
        }
    }
}

import Foundation
import Logging
import PipelineKit
import Plugins

/// The pipelines `skipd serve` runs: one ``PipelineSupervisor`` per `*.pipeline` file of a directory, named after
/// the file. One pipeline's failure never touches another: each has its own supervisor, task and stop signal.
public actor PipelineFleet {
    private struct Member {
        var text: String
        var supervisor: PipelineSupervisor
        var stop: StopSignal
        var task: Task<Void, Never>
        var tally: OutputTally
        /// The latest frame out, for the live view.
        var tap: FrameTap
        var rates = FrameRates()
    }

    /// What one reload did, by pipeline name.
    struct Report: Equatable, CustomStringConvertible {
        var added: [String] = []
        var changed: [String] = []
        var removed: [String] = []
        var unchanged: [String] = []
        /// Files that do not plan: `file:line:col: error: …`; a running older version of the same name stays.
        var invalid: [String: String] = [:]
        /// The directory could not be read: nothing was started, changed or stopped.
        var unreadable: String?

        var description: String {
            if let unreadable { return unreadable }
            var parts: [String] = []
            for (label, names) in [("added", added), ("changed", changed), ("removed", removed)] where !names.isEmpty {
                parts.append("\(label) \(names.joined(separator: ", "))")
            }
            if !invalid.isEmpty { parts.append("invalid \(invalid.keys.sorted().joined(separator: ", "))") }
            parts.append("\(unchanged.count) unchanged")
            return parts.joined(separator: "; ")
        }
    }

    private let directory: String
    private let settings: PipelineSupervisor.Settings
    private let logger: Logger
    private var members: [String: Member] = [:]
    /// Files whose latest version does not plan, with the error.
    private var invalid: [String: String] = [:]

    public init(directory: String, settings: PipelineSupervisor.Settings, logger: Logger) {
        self.directory = directory
        self.settings = settings
        self.logger = logger
    }

    /// Reads the directory and makes the running set match it: new files start, changed ones restart, removed
    /// ones stop, unchanged ones are not touched; a file that does not plan leaves its running version in place.
    func reload() async -> Report {
        var report = Report()
        let files: [String: String]
        do {
            files = try Self.pipelineFiles(in: directory)
        } catch {
            // Read as empty, it would stop every pipeline: an unreadable directory changes nothing.
            let message =
                "\(directory): error: cannot read the pipelines directory (\(error.localizedDescription)); "
                + "\(members.count) running pipeline(s) stay as they are"
            report.unreadable = message
            logger.error("cannot read the pipelines directory", metadata: ["error": "\(message)"])
            return report
        }
        let planner = PipelinePlanner(registry: .standard)
        for (name, path) in files.sorted(by: { $0.key < $1.key }) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                report.invalid[name] = "\(path): error: cannot read the file"
                continue
            }
            if let member = members[name], member.text == text {
                report.unchanged.append(name)
                continue
            }
            let plan: PipelinePlan
            do throws(PipelineDiagnostic) {
                plan = try planner.plan(text: text, file: path)
            } catch {
                report.invalid[name] = error.description
                continue
            }
            if members[name] != nil {
                await stopMember(name)
                report.changed.append(name)
            } else {
                report.added.append(name)
            }
            start(name, text: text, plan: plan)
        }
        for name in members.keys where files[name] == nil {
            await stopMember(name)
            report.removed.append(name)
        }
        invalid = report.invalid
        for (name, error) in report.invalid.sorted(by: { $0.key < $1.key }) {
            let kept = members[name] != nil ? " (the running version stays)" : ""
            logger.error("invalid pipeline\(kept)", metadata: ["pipeline": "\(name)", "error": "\(error)"])
        }
        return report
    }

    /// Every pipeline, by name: its state, counters and tallies; a file that never planned is `failed` with its
    /// `file:line:col` error.
    func status() -> [PipelineStatus] {
        let now = ContinuousClock.now
        var rows = members.map { name, member in
            PipelineStatus(
                name: name, supervisor: member.supervisor, monitor: member.supervisor.monitor.snapshot(),
                tally: member.tally.value, rates: member.rates, now: now)
        }
        for (name, error) in invalid where members[name] == nil {
            rows.append(PipelineStatus(name: name, failed: error))
        }
        return rows.sorted { $0.name < $1.name }
    }

    var reconnects: Int { members.values.reduce(0) { $0 + $1.supervisor.reconnects } }

    /// Records every pipeline's frame counts for its frames-per-second (call about once a second).
    func sample() {
        let now = ContinuousClock.now
        for name in members.keys {
            let snapshot = members[name]!.supervisor.monitor.snapshot()
            members[name]!.rates.record(framesIn: snapshot.framesIn, framesOut: snapshot.framesOut, at: now)
        }
    }

    /// `pipeline/step` for every step holding one frame longer than `limit`.
    func stuck(longerThan limit: Duration) -> [String] {
        members.sorted { $0.key < $1.key }.flatMap { name, member in
            member.supervisor.monitor.snapshot().stuck(longerThan: limit).map { "\(name)/\($0)" }
        }
    }

    /// Where the live view finds `name`'s latest frame; nil if there is no such pipeline. A file that never
    /// planned has no frames: its tap is empty and closed.
    func tap(_ name: String) -> FrameTap? {
        if let member = members[name] { return member.tap }
        guard invalid[name] != nil else { return nil }
        let empty = FrameTap()
        empty.close()
        return empty
    }

    /// Rebuilds one pipeline at once (its stream ends cleanly first); false if there is no such pipeline.
    func restart(_ name: String) -> Bool {
        guard let member = members[name] else { return false }
        logger.info("pipeline restart requested", metadata: ["pipeline": "\(name)"])
        member.supervisor.restart()
        return true
    }

    /// Stops every pipeline: sources end their streams, channels drain, sinks flush.
    func stopAll() async {
        for member in members.values { member.stop.request() }
        for name in Array(members.keys) { await stopMember(name) }
    }

    private func start(_ name: String, text: String, plan: PipelinePlan) {
        let supervisor = PipelineSupervisor(plan: plan, settings: settings, logger: logger)
        let stop = StopSignal()
        let tally = OutputTally()
        let tap = FrameTap()
        let task = Task {
            await supervisor.run(stop: stop) { frame in
                tally.add(frame)
                tap.publish(frame)
            }
        }
        members[name] = Member(text: text, supervisor: supervisor, stop: stop, task: task, tally: tally, tap: tap)
        logger.info("pipeline started", metadata: ["pipeline": "\(name)"])
    }

    private func stopMember(_ name: String) async {
        guard let member = members.removeValue(forKey: name) else { return }
        member.tap.close()
        member.stop.request()
        // A stop that cannot drain (a sink that never takes its frame) ends when the caller is cancelled: the
        // service group's shutdown deadline cancels the run, which unblocks its sink.
        await withTaskCancellationHandler {
            await member.task.value
        } onCancel: {
            member.task.cancel()
        }
        logger.info("pipeline stopped", metadata: ["pipeline": "\(name)"])
    }

    /// `*.pipeline` files of `directory`, by name without the extension; throws when it cannot be read.
    static func pipelineFiles(in directory: String) throws -> [String: String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        var files: [String: String] = [:]
        for file in names where file.hasSuffix(".pipeline") && !file.hasPrefix(".") {
            files[String(file.dropLast(".pipeline".count))] = (directory as NSString).appendingPathComponent(file)
        }
        return files
    }
}

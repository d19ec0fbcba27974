import Foundation
import Logging
import PipelineKit
import Plugins

/// The pipelines `skipd serve` runs: one ``PipelineSupervisor`` per `*.pipeline` file of a directory, named after
/// the file. One pipeline's failure never touches another: each has its own supervisor, task and stop signal.
actor PipelineFleet {
    private struct Member {
        var text: String
        var supervisor: PipelineSupervisor
        var stop: StopSignal
        var task: Task<Void, Never>
    }

    /// What one reload did, by pipeline name.
    struct Report: Equatable, CustomStringConvertible {
        var added: [String] = []
        var changed: [String] = []
        var removed: [String] = []
        var unchanged: [String] = []
        /// Files that do not plan: `file:line:col: error: …`; a running older version of the same name stays.
        var invalid: [String: String] = [:]

        var description: String {
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

    init(directory: String, settings: PipelineSupervisor.Settings, logger: Logger) {
        self.directory = directory
        self.settings = settings
        self.logger = logger
    }

    /// Reads the directory and makes the running set match it: new files start, changed ones restart, removed
    /// ones stop, unchanged ones are not touched; a file that does not plan leaves its running version in place.
    func reload() async -> Report {
        var report = Report()
        let files = Self.pipelineFiles(in: directory)
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

    /// Every pipeline's state: `running`, `reconnecting (…)`, …, or `failed: file:line:col: …` for a file that
    /// never planned.
    func status() -> [(name: String, state: String)] {
        var rows = members.map { (name: $0.key, state: $0.value.supervisor.state.description) }
        for (name, error) in invalid where members[name] == nil { rows.append((name, "failed: \(error)")) }
        return rows.sorted { $0.name < $1.name }
    }

    var reconnects: Int { members.values.reduce(0) { $0 + $1.supervisor.reconnects } }

    /// Stops every pipeline: sources end their streams, channels drain, sinks flush.
    func stopAll() async {
        for member in members.values { member.stop.request() }
        for name in Array(members.keys) { await stopMember(name) }
    }

    private func start(_ name: String, text: String, plan: PipelinePlan) {
        let supervisor = PipelineSupervisor(plan: plan, settings: settings, logger: logger)
        let stop = StopSignal()
        let task = Task { await supervisor.run(stop: stop) }
        members[name] = Member(text: text, supervisor: supervisor, stop: stop, task: task)
        logger.info("pipeline started", metadata: ["pipeline": "\(name)"])
    }

    private func stopMember(_ name: String) async {
        guard let member = members.removeValue(forKey: name) else { return }
        member.stop.request()
        await member.task.value
        logger.info("pipeline stopped", metadata: ["pipeline": "\(name)"])
    }

    /// `*.pipeline` files of `directory`, by name without the extension (none if it cannot be read).
    static func pipelineFiles(in directory: String) -> [String: String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var files: [String: String] = [:]
        for file in names where file.hasSuffix(".pipeline") && !file.hasPrefix(".") {
            files[String(file.dropLast(".pipeline".count))] = (directory as NSString).appendingPathComponent(file)
        }
        return files
    }
}

import ArgumentParser
import PipelineKit
import Plugins
import SkipNet
import SkipdService
import SkipdTools

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate pipeline files, serve configs and skip-settings sidecars without running anything.",
        discussion: "A pipeline file's elements are checked with GStreamer; it prints the segments and the effective "
            + "properties of its stages. A *.toml file is checked as a `skipd serve` config, a *.json file as a "
            + "`skipd calibrate` sidecar. Exit codes: 0 all valid, 2 some file invalid.")

    @Argument(help: "Pipeline files (*.pipeline), serve configs (*.toml) or skip-settings sidecars (*.json).")
    var files: [String]

    func run() async throws {
        let planner = PipelinePlanner(registry: .standard)
        var failed = false
        for file in files {
            do {
                if file.hasSuffix(".toml") {
                    _ = try ServeConfig.load(path: file)
                    print("\(file): ok (serve config)")
                } else if file.hasSuffix(".json") {
                    _ = try SkipSettings.load(path: file)
                    print("\(file): ok (skip settings)")
                } else {
                    print(describe(try planner.plan(file: file)))
                }
            } catch {
                printError("\(error)")
                failed = true
            }
        }
        if failed { throw Exit.invalidFile }
    }

    private func describe(_ plan: PipelinePlan) -> String {
        // Passwords in URLs (a camera's, a database's) are not echoed: this output ends up in terminals and logs.
        var lines = ["\(plan.file): ok"]
        if let source = plan.source { lines.append("  source  \(source.description.redactingCredentials)") }
        for (k, stage) in plan.stages.enumerated() {
            let link = plan.links[k]
            if link != LinkSpec() { lines.append("  channel \(describe(link))") }
            let props = stage.stage.info.properties.map { "\($0.name)=\(stage.properties.values[$0.name]!)" }
            let line = ([stage.name + " (\(stage.stage.info.name))"] + props).joined(separator: " ")
            lines.append("  stage   \(line.redactingCredentials)")
        }
        if let last = plan.links.last, last != LinkSpec() { lines.append("  channel \(describe(last))") }
        if let sink = plan.sink { lines.append("  sink    \(sink.description.redactingCredentials)") }
        return lines.joined(separator: "\n")
    }

    private func describe(_ link: LinkSpec) -> String {
        "capacity=\(link.capacity ?? ChannelElement.defaultCapacity) overflow=\(link.policy?.rawValue ?? "auto")"
    }
}

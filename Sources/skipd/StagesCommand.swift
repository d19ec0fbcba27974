import ArgumentParser
import PipelineKit
import Plugins

struct StagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stages",
        abstract: "List the stages a pipeline file can use, or show one with its properties (like gst-inspect-1.0).")

    @Argument(help: "Show only this stage.")
    var name: String?

    func run() async throws {
        let infos = StageRegistry.standard.all.map { $0.info } + [ChannelElement.info]
        guard let name else {
            let width = infos.map(\.name.count).max() ?? 0
            for info in infos {
                print("\(info.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(info.summary)")
            }
            print("\n\(infos.count) elements. 'skipd stages NAME' shows one with its properties.")
            return
        }
        guard let info = infos.first(where: { $0.name == name }) else {
            printError("error: no stage named '\(name)' (known: \(infos.map(\.name).joined(separator: ", ")))")
            throw ExitCode.failure
        }
        print(render(info))
    }

    private func render(_ info: StageInfo) -> String {
        var lines = [
            "Stage \(info.name)", "  \(info.summary)", "", "Example:", "  … ! \(info.example) ! …", "",
        ]
        if !info.requires.isEmpty {
            lines.append("Needs from a stage before it: \(info.requires.joined(separator: ", "))")
        }
        if !info.provides.isEmpty { lines.append("Attaches: \(info.provides.joined(separator: ", "))") }
        if !info.requires.isEmpty || !info.provides.isEmpty { lines.append("") }
        lines.append("Properties:")
        for spec in info.properties {
            lines.append("  \(spec.name)")
            lines.append("      \(spec.summary)")
            let value = spec.defaultValue.map { "default \($0)" } ?? "required"
            lines.append("      \(spec.typeDescription), \(value)")
        }
        if info.name != ChannelElement.info.name {
            lines.append("  name")
            lines.append("      instance name used in errors and metrics")
            lines.append("      string, default \(info.name)N (N counts stages of this kind)")
        }
        return lines.joined(separator: "\n")
    }
}

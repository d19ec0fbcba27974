import ArgumentParser
import Foundation

@main
struct Skipd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skipd",
        abstract: "Video analytics that computes only what changed.",
        subcommands: [RunCommand.self, CheckCommand.self, StagesCommand.self, InspectCommand.self])
}

/// Exit codes shared by the commands.
enum Exit {
    static let runtimeFailure = ExitCode(1)
    static let invalidFile = ExitCode(2)
}

/// Writes to standard error, unbuffered, so messages survive a pipe and a kill.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

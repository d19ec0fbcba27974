import ArgumentParser
import Foundation
import Logging
import PipelineKit
import SkipdTools
import Synchronization

@main
struct Skipd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skipd",
        abstract: "Video analytics that computes only what changed.",
        version: Skipd.version,
        subcommands: [
            RunCommand.self, CheckCommand.self, StagesCommand.self, InspectCommand.self, BenchCommand.self,
            CalibrateCommand.self, InferCommand.self, FitPolicyCommand.self, ServeCommand.self, ReloadCommand.self,
        ])

    /// The release, as `skipd --version` prints it and the Debian package is named.
    static let version = "0.9.0"

    /// Log level for loggers created from now on; `run --verbose` raises it before building its pipeline.
    static let logLevel = Mutex(Logger.Level.warning)

    static func main() async {
        unblockStopSignals()
        BLASSetup.reexecWithCoreTypeIfNeeded()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Skipd.logLevel.withLock { $0 }
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// A parent may start skipd with SIGTERM, SIGINT and SIGHUP blocked (test runners, some supervisors); blocked, they
/// would never reach the handlers that drain pipelines and reload, so unblock them first (before any thread exists
/// that would inherit the mask, and before re-exec, which keeps it).
private func unblockStopSignals() {
    var signals = sigset_t()
    sigemptyset(&signals)
    for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
    pthread_sigmask(SIG_UNBLOCK, &signals, nil)
}

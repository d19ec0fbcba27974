import ArgumentParser
import Foundation
import Logging
import PipelineKit
import Plugins
import Synchronization

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one pipeline in the foreground until end of stream (Ctrl-C ends it cleanly).",
        discussion: "Without FILE, runs the embedded default: assets/vtest.avi through residual and gate into "
            + "out/vtest.jsonl. Exit codes: 0 ok, 1 runtime failure, 2 invalid file.")

    @Argument(help: "Pipeline file (gst-launch syntax with skipd stages).")
    var file: String?

    @Flag(name: .shortAndLong, help: "No progress output, only the summary.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Log pipeline events (start, liveness, end of stream) to standard error.")
    var verbose = false

    func run() async throws {
        if verbose { Skipd.logLevel.withLock { $0 = .info } }
        let planner = PipelinePlanner(registry: .standard)
        let plan: PipelinePlan
        do throws(PipelineDiagnostic) {
            if let file {
                plan = try planner.plan(file: file)
            } else {
                plan = try planner.plan(text: DefaultPipeline.text, file: DefaultPipeline.name)
            }
        } catch {
            printError(error.description)
            if file == nil { printError("hint: run scripts/setup first to fetch assets/vtest.avi") }
            throw Exit.invalidFile
        }

        let stop = StopSignal()
        let interrupts = InterruptHandler { stop.request() }
        let progress = ProgressReporter(quiet: quiet)
        let report: RunReport
        do {
            report = try await PipelineRunner(plan: plan).run(stop: stop, onOutput: progress.record)
        } catch {
            progress.end()
            printError("\(plan.file): error: \(error)")
            throw Exit.runtimeFailure
        }
        withExtendedLifetime(interrupts) {}
        progress.end()
        printError(progress.summary(report))
    }
}

/// Ctrl-C once ends the stream cleanly; twice exits at once.
final class InterruptHandler {
    private let source: any DispatchSourceSignal

    init(onInterrupt: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        let count = Atomic(0)
        source.setEventHandler {
            if count.add(1, ordering: .relaxed).newValue > 1 { exit(130) }
            printError("\nstopping: finishing the stream (Ctrl-C again to quit at once)")
            onInterrupt()
        }
        source.resume()
        self.source = source
    }

    deinit { source.cancel() }
}

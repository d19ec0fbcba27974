import ArgumentParser
import Foundation
import Logging
import PipelineKit
import Plugins
import SkipdService
import SkipdTools
import Synchronization

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one pipeline in the foreground until end of stream (Ctrl-C ends it cleanly).",
        discussion: "Without FILE, runs the embedded default: faces on assets/vtest.avi with skip-convolutions, into "
            + "out/vtest-faces.jsonl and the annotated out/vtest-faces.mp4. Exit codes: 0 ok, 1 runtime failure, "
            + "2 invalid file.")

    @Argument(help: "Pipeline file (gst-launch syntax with skipd stages).")
    var file: String?

    @Flag(name: .shortAndLong, help: "No progress output, only the summary.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Log pipeline events (start, liveness, end of stream) to standard error.")
    var verbose = false

    @Flag(
        help: ArgumentHelp(
            "Keep a live source running: rebuild the pipeline after an error, end of stream or silence.",
            discussion: "Runs until Ctrl-C; a file still ends at its end."))
    var supervise = false

    @Option(help: "With --supervise: seconds without a frame before the pipeline is rebuilt.")
    var watchdog: Double = 5

    @Option(help: "End the stream after this many frames from the source (a quick look at a long clip).")
    var frames: Int?

    func run() async throws {
        if verbose { Skipd.logLevel.withLock { $0 = .info } }
        let planner = PipelinePlanner(registry: .standard)
        let plan: PipelinePlan
        do throws(PipelineDiagnostic) {
            if let file {
                plan = try planner.plan(file: file)
            } else {
                // The default job's sink segment opens its file when it starts: the directory must be there.
                try? FileManager.default.createDirectory(
                    atPath: DefaultPipeline.outputDirectory, withIntermediateDirectories: true)
                plan = try planner.plan(text: DefaultPipeline.text, file: DefaultPipeline.name)
            }
        } catch {
            printError(error.description)
            if file == nil { printError("hint: run scripts/setup first to fetch assets/vtest.avi") }
            throw Exit.invalidFile
        }

        if let frames, frames < 1 { throw ValidationError("--frames must be at least 1") }
        let stop = StopSignal()
        let interrupts = InterruptHandler { stop.request() }
        let progress = ProgressReporter(quiet: quiet)
        if supervise {
            guard frames == nil else { throw ValidationError("--frames ends a run; --supervise keeps one going") }
            guard watchdog > 0, watchdog <= ServeConfig.maximumSeconds else {
                throw ValidationError("--watchdog must be positive, at most \(Int(ServeConfig.maximumSeconds)) seconds")
            }
            var settings = PipelineSupervisor.Settings()
            settings.watchdog = .milliseconds(Int(watchdog * 1000))
            let supervisor = PipelineSupervisor(plan: plan, settings: settings)
            let systemd = SystemdNotifier()
            let frames = SharedCount()
            let heartbeat = Task {
                systemd.notify("READY=1", "STATUS=\(plan.file): starting")
                // WATCHDOG=1 only while the supervisor loop runs: a camera that is down is its job, not systemd's.
                let every = systemd.watchdogInterval ?? .seconds(5)
                while !Task.isCancelled, !supervisor.state.isFinal {
                    systemd.notify(
                        "WATCHDOG=1",
                        "STATUS=\(plan.file): \(supervisor.state), \(frames.value) frames, "
                            + "\(supervisor.reconnects) rebuilds")
                    try? await Task.sleep(for: min(every, .seconds(5)))
                }
            }
            await supervisor.run(stop: stop) { frame in
                frames.increment()
                progress.record(frame)
            }
            heartbeat.cancel()
            systemd.notify("STOPPING=1")
            withExtendedLifetime(interrupts) {}
            progress.end()
            if case .failed(let reason) = supervisor.state {
                printError("\(plan.file): error: \(reason)")
                throw Exit.runtimeFailure
            }
            printError("\(plan.file): stopped after \(supervisor.reconnects) rebuilds")
            return
        }
        let report: RunReport
        do {
            var runner = PipelineRunner(plan: plan)
            runner.frameLimit = frames
            report = try await runner.run(stop: stop, onOutput: progress.record)
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

/// Ctrl-C (or systemd's SIGTERM) once ends the stream cleanly; twice exits at once.
final class InterruptHandler {
    private let sources: [any DispatchSourceSignal]

    init(onInterrupt: @escaping @Sendable () -> Void) {
        let count = SharedCount()
        sources = [SIGINT, SIGTERM].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                if count.increment() > 1 { exit(128 + signalNumber) }
                printError("\nstopping: finishing the stream (Ctrl-C again to quit at once)")
                onInterrupt()
            }
            source.resume()
            return source
        }
    }

    deinit { for source in sources { source.cancel() } }
}

/// A counter shared between tasks and signal handlers.
final class SharedCount: Sendable {
    private let count = Atomic(0)
    /// Adds one; the new value.
    @discardableResult func increment() -> Int { count.add(1, ordering: .relaxed).newValue }
    var value: Int { count.load(ordering: .relaxed) }
}

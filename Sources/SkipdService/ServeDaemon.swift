import Foundation
import Logging
import PipelineKit
import ServiceLifecycle
import UnixSignals

/// The pipelines half of `skipd serve`, as a service of its service group (the HTTP API is the other): starts the
/// fleet, re-reads it on SIGHUP, samples frame rates, speaks sd_notify, and on graceful shutdown (SIGTERM) drains
/// every pipeline.
///
/// WATCHDOG=1 goes out every second (or half of WATCHDOG_USEC if shorter) while the loop runs and no stage has
/// held one frame longer than `stuck`: a hung stage (frames arriving, none leaving) stops it, and systemd restarts
/// the service after WatchdogSec.
public struct ServeDaemon: Service {
    let fleet: PipelineFleet
    let readiness: Readiness
    let stuck: Duration
    let systemd = SystemdNotifier()
    let logger: Logger
    /// SIGTERM must end the process within 5 s (systemd's stop timeout is longer, but a stop should be prompt).
    static let drainDeadline = 4.5

    public init(fleet: PipelineFleet, readiness: Readiness, stuck: Duration, logger: Logger) {
        (self.fleet, self.readiness, self.stuck, self.logger) = (fleet, readiness, stuck, logger)
    }

    public func run() async throws {
        // Trapped before the first reload: SIGHUP's default action would end the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        printError("serve: \(await fleet.reload())")
        readiness.set(true)
        systemd.notify("READY=1", "STATUS=\(await summary())")
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in hangups {
                    printError("serve: reload: \(await fleet.reload())")
                    systemd.notify("STATUS=\(await summary())")
                }
            }
            group.addTask { await heartbeat() }
            // Returns on SIGTERM/SIGINT (graceful shutdown), throws if the group is cancelled: stop either way.
            try? await gracefulShutdown()
            group.cancelAll()
        }
        readiness.set(false)
        systemd.notify("STOPPING=1")
        printError("serve: stopping every pipeline")
        // A GStreamer element blocked inside its streaming thread cannot be stopped from outside, and neither can
        // the pipeline holding it: past the deadline the process leaves without it (what the sinks committed stays).
        let hung = await fleet.stuck(longerThan: .zero)
        // A thread of its own: threads blocked in GStreamer calls can starve the shared pools a timer would use.
        let deadline = Self.drainDeadline
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: deadline)
            printError(
                "error: serve: the drain did not finish within \(Self.drainDeadline) s"
                    + (hung.isEmpty ? "" : " (holding a frame at SIGTERM: \(hung.joined(separator: ", ")))")
                    + "; exiting without it")
            _exit(1)
        }
        await fleet.stopAll()
    }

    private func heartbeat() async {
        var reported: [String] = []
        while !Task.isCancelled {
            await fleet.sample()
            let hung = await fleet.stuck(longerThan: stuck)
            if hung.isEmpty {
                systemd.notify("WATCHDOG=1", "STATUS=\(await summary())")
            } else {
                // No WATCHDOG=1: systemd restarts the service once WatchdogSec passes without one.
                systemd.notify("STATUS=stuck: \(hung.joined(separator: ", "))")
            }
            if hung != reported {
                if !hung.isEmpty {
                    logger.error(
                        "stage stuck: holds one frame for longer than \(stuck); watchdog pings stop",
                        metadata: ["steps": "\(hung.joined(separator: ","))"])
                } else {
                    logger.info("no stage is stuck any more; watchdog pings resume")
                }
                reported = hung
            }
            try? await Task.sleep(for: min(systemd.watchdogInterval ?? .seconds(1), .seconds(1)))
        }
    }

    /// `3 pipelines: 2 running, 1 reconnecting; 4 rebuilds` (one line, for systemd's STATUS=).
    func summary() async -> String {
        let status = await fleet.status()
        var counts: [String: Int] = [:]
        for row in status { counts[row.state, default: 0] += 1 }
        let states = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return "\(status.count) pipelines: \(states.isEmpty ? "none" : states); \(await fleet.reconnects) rebuilds"
    }
}

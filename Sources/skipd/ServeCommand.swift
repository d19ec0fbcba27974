import ArgumentParser
import Foundation
import Logging
import PipelineKit

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run every pipeline file of a directory as a supervised pipeline, as a systemd service.",
        discussion: """
            Each *.pipeline file in the config's `pipelines` directory is one pipeline, named after the file, \
            rebuilt whenever its source fails (error, end of stream, no frame within `watchdog`) with backoff. \
            SIGHUP or `skipd reload` re-reads the directory: changed files restart, new ones start, removed ones \
            stop, unchanged ones are not touched, and a file that does not plan leaves its running version in \
            place. SIGTERM or Ctrl-C drains every pipeline and exits. Speaks sd_notify under systemd (READY, \
            STATUS, WATCHDOG, STOPPING).
            """)

    @Option(help: "TOML config (default: /etc/skipd/skipd.toml if it exists, else every default).")
    var config: String?

    func run() async throws {
        // A daemon's log is its journal: pipeline starts, stops and recoveries belong in it.
        Skipd.logLevel.withLock { $0 = .info }
        let settings: ServeConfig
        do {
            if let config {
                settings = try ServeConfig.load(path: config)
            } else if FileManager.default.fileExists(atPath: "/etc/skipd/skipd.toml") {
                settings = try ServeConfig.load(path: "/etc/skipd/skipd.toml")
            } else {
                settings = ServeConfig()
            }
        } catch {
            printError(error.description)
            throw Exit.invalidFile
        }
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: settings.pipelines, isDirectory: &isDirectory)
            || !isDirectory.boolValue
        {
            printError("warning: pipeline directory \(settings.pipelines) does not exist; serving nothing until reload")
        }
        let pidfile = PidFile(path: settings.pidfile)
        pidfile.write()
        defer { pidfile.remove() }

        let logger = Logger(label: "skipd.serve")
        let fleet = PipelineFleet(directory: settings.pipelines, settings: settings.supervision, logger: logger)
        let signals = SignalEvents()
        let systemd = SystemdNotifier()

        printError("serve: \(await fleet.reload())")
        systemd.notify("READY=1", "STATUS=\(await Self.summary(fleet))")
        let heartbeat = Task {
            let every = systemd.watchdogInterval ?? .seconds(5)
            while !Task.isCancelled {
                systemd.notify("WATCHDOG=1", "STATUS=\(await Self.summary(fleet))")
                try? await Task.sleep(for: min(every, .seconds(5)))
            }
        }
        for await event in signals.events {
            switch event {
            case .reload:
                printError("serve: reload: \(await fleet.reload())")
                systemd.notify("STATUS=\(await Self.summary(fleet))")
                continue
            case .stop:
                break
            }
            break
        }
        heartbeat.cancel()
        systemd.notify("STOPPING=1")
        printError("serve: stopping every pipeline")
        await fleet.stopAll()
        withExtendedLifetime(signals) {}
    }

    /// `3 pipelines: 2 running, 1 reconnecting; 4 rebuilds` (one line, for systemd's STATUS=).
    static func summary(_ fleet: PipelineFleet) async -> String {
        let status = await fleet.status()
        var counts: [String: Int] = [:]
        for row in status { counts[String(row.state.prefix { $0 != " " && $0 != ":" }), default: 0] += 1 }
        let states = counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return "\(status.count) pipelines: \(states.isEmpty ? "none" : states); \(await fleet.reconnects) rebuilds"
    }
}

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Ask a running `skipd serve` to re-read its pipeline directory (SIGHUP).")

    @Option(help: "The config `skipd serve` runs with (for its pidfile).") var config: String?

    func run() throws {
        let settings: ServeConfig
        do {
            settings =
                try config.map { (path) throws(ConfigError) in try ServeConfig.load(path: path) } ?? ServeConfig()
        } catch {
            printError(error.description)
            throw Exit.invalidFile
        }
        guard let pid = PidFile(path: settings.pidfile).read() else {
            printError("error: skipd serve is not running (no pid in \(settings.pidfile))")
            throw Exit.runtimeFailure
        }
        guard kill(pid, SIGHUP) == 0 else {
            printError("error: cannot signal skipd serve (pid \(pid)): \(String(cString: strerror(errno)))")
            throw Exit.runtimeFailure
        }
        print("reload requested (pid \(pid))")
    }
}

/// The daemon's process id in a file, for `skipd reload`.
struct PidFile {
    var path: String

    func write() {
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            try "\(getpid())\n".write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            printError("warning: cannot write pidfile \(path); `skipd reload` will not find this process")
        }
    }

    func read() -> pid_t? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap {
            pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func remove() {
        if read() == getpid() { try? FileManager.default.removeItem(atPath: path) }
    }
}

/// SIGHUP as reload and SIGTERM/SIGINT as stop, delivered as an async sequence.
final class SignalEvents {
    enum Event { case reload, stop }

    let events: AsyncStream<Event>
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream<Event>.makeStream()
        events = stream
        sources = [(SIGHUP, Event.reload), (SIGTERM, .stop), (SIGINT, .stop)].map { number, event in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(event) }
            source.resume()
            return source
        }
    }

    deinit { for source in sources { source.cancel() } }
}

import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PipelineKit
import ServiceLifecycle
import SkipdService
import SkipdTools
import UnixSignals

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
            STATUS, WATCHDOG while no stage is stuck, STOPPING). Serves an HTTP API on `http` (default \
            127.0.0.1:8470): /live, /ready, /metrics (Prometheus), /pipelines, POST /pipelines/NAME/restart, and \
            the live view: the page at /, /pipelines/NAME/frame.jpg and /pipelines/NAME/stream.mjpeg.
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
        let readiness = Readiness()
        let daemon = ServeDaemon(
            fleet: fleet, readiness: readiness, stuck: .milliseconds(Int(settings.stuck * 1000)), logger: logger)
        // load() checked the address; the default config's is valid.
        let (host, port) = settings.httpAddress ?? ("127.0.0.1", 8470)
        var httpLogger = Logger(label: "skipd.http")
        httpLogger.logLevel = .warning
        let app = Application(
            router: HTTPAPI.router(
                fleet: fleet, metrics: FleetMetrics(), readiness: readiness, token: settings.token,
                live: settings.liveView),
            configuration: .init(address: .hostname(host, port: port), serverName: "skipd"),
            onServerRunning: { channel in
                printError("serve: http on \(host):\(channel.localAddress?.port ?? port)")
            },
            logger: httpLogger)
        // The HTTP API stops first on SIGTERM (services stop in reverse order), then the pipelines drain; a drain
        // that has not finished in 4 s (a stuck stage or sink) is cancelled, so the process exits within 5 s.
        var group = ServiceGroupConfiguration(
            services: [.init(service: daemon), .init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: httpLogger)
        group.maximumGracefulShutdownDuration = .seconds(4)
        do {
            try await ServiceGroup(configuration: group).run()
        } catch {
            // Only the HTTP service throws (the pipelines' never does): say which address could not be served.
            printError("error: serve: cannot serve the HTTP API on \(host):\(port): \(error)")
            throw Exit.runtimeFailure
        }
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

import Foundation
import PipelineKit
import TOMLKit

/// `skipd serve --config FILE`: TOML; every key has a default, so an empty file works. Unknown keys are errors
/// (a typo must not silently fall back to a default).
///
/// ```toml
/// pipelines = "/etc/skipd/pipelines"   # one supervised pipeline per *.pipeline file
/// pidfile = "/run/skipd/skipd.pid"     # where `skipd reload` finds the daemon
/// watchdog = 5                         # seconds without a frame before a pipeline is rebuilt
/// backoff-min = 1                      # first wait before a rebuild, doubling up to backoff-max
/// backoff-max = 30
/// http = "127.0.0.1:8470"              # HTTP API (/live, /ready, /metrics, /pipelines); port 0: any free port
/// token = ""                           # bearer token the API requires; must be set to bind beyond loopback
/// store = ""                           # results database of sqlite stages without location=
///                                      # ("": $STATE_DIRECTORY/results.sqlite, else out/results.sqlite)
/// channel-capacity = 4                 # frames a link buffers when its file does not say
/// stuck = 15                           # seconds a stage may hold one frame before WATCHDOG=1 stops
/// live-fps = 5                         # pictures a second a live-view stream sends at most
/// live-max-width = 1280                # wider frames are downscaled for a live-view stream
/// ```
public struct ServeConfig: Decodable, Equatable {
    public var pipelines = "/etc/skipd/pipelines"
    public var pidfile = "/run/skipd/skipd.pid"
    public var watchdog = 5.0
    public var backoffMin = 1.0
    public var backoffMax = 30.0
    public var http = "127.0.0.1:8470"
    public var token = ""
    public var store = ""
    public var channelCapacity = ChannelElement.defaultCapacity
    public var stuck = 15.0
    public var liveFPS = LiveViewSettings().fps
    public var liveMaxWidth = LiveViewSettings().maxWidth

    public init() {}

    static let keys = CodingKeys.allCases.map(\.stringValue).joined(separator: ", ")

    enum CodingKeys: String, CodingKey, CaseIterable {
        case pipelines, pidfile, watchdog
        case backoffMin = "backoff-min"
        case backoffMax = "backoff-max"
        case http, token, store
        case channelCapacity = "channel-capacity"
        case stuck
        case liveFPS = "live-fps"
        case liveMaxWidth = "live-max-width"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pipelines = try Self.decode(String.self, c, .pipelines) ?? pipelines
        pidfile = try Self.decode(String.self, c, .pidfile) ?? pidfile
        watchdog = try Self.seconds(c, .watchdog) ?? watchdog
        backoffMin = try Self.seconds(c, .backoffMin) ?? backoffMin
        backoffMax = try Self.seconds(c, .backoffMax) ?? backoffMax
        http = try Self.decode(String.self, c, .http) ?? http
        token = try Self.decode(String.self, c, .token) ?? token
        store = try Self.decode(String.self, c, .store) ?? store
        channelCapacity = try Self.decode(Int.self, c, .channelCapacity) ?? channelCapacity
        stuck = try Self.seconds(c, .stuck) ?? stuck
        liveFPS = try Self.seconds(c, .liveFPS) ?? liveFPS
        liveMaxWidth = try Self.decode(Int.self, c, .liveMaxWidth) ?? liveMaxWidth
    }

    /// `http` as host and port: `127.0.0.1:8470`, `[::1]:8470`, `0.0.0.0:0`.
    public var httpAddress: (host: String, port: Int)? {
        guard let colon = http.lastIndex(of: ":"), let port = Int(http[http.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(http[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Whether only this machine can reach `host` (then the API may run without a token).
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The value of `key` if present. TOMLKit reports a value of the wrong type as a missing key: this says what
    /// is wrong instead.
    private static func decode<T: Decodable>(_ type: T.Type, _ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys)
        throws -> T?
    {
        guard c.contains(key) else { return nil }
        guard let value = try? c.decode(type, forKey: key) else {
            throw DecodingError.typeMismatch(type, .init(codingPath: [key], debugDescription: "wrong type"))
        }
        return value
    }

    /// A number (of seconds, or frames a second) written as `5` or `0.5` (TOML keeps integers and floats apart).
    private static func seconds(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Double? {
        guard c.contains(key) else { return nil }
        if let value = try? c.decode(Int.self, forKey: key) { return Double(value) }
        do {
            return try c.decode(Double.self, forKey: key)
        } catch {
            throw DecodingError.typeMismatch(
                Double.self, .init(codingPath: [key], debugDescription: "\(key.stringValue) is not a number"))
        }
    }

    /// Longest time any key may give, in seconds (11.6 days): longer is a typo, and time arithmetic on it in
    /// milliseconds stays far from overflow.
    public static let maximumSeconds = 1_000_000.0

    /// Reads and checks a config file; the error is one line, `file:line:col: error: …` where the parser knows.
    public static func load(path: String) throws(ConfigError) -> ServeConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("\(path): error: cannot read the config file (\(error.localizedDescription))")
        }
        let config: ServeConfig
        do {
            config = try TOMLDecoder(strictDecoding: true).decode(ServeConfig.self, from: text)
        } catch let error as TOMLParseError {
            let at = error.source.begin
            throw ConfigError("\(path):\(at.line):\(at.column): error: \(error.description)")
        } catch let error as UnexpectedKeysError {
            let keys = error.keys.keys.sorted().joined(separator: ", ")
            throw ConfigError(
                "\(path): error: unknown key(s) \(keys) (known: \(Self.keys))")
        } catch let DecodingError.typeMismatch(type, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            let kind = type == String.self ? "string" : type == Int.self ? "whole number" : "number"
            throw ConfigError("\(path): error: '\(key)' must be a \(kind)")
        } catch {
            throw ConfigError("\(path): error: \(error)")
        }
        for (name, value) in [
            ("watchdog", config.watchdog), ("backoff-min", config.backoffMin), ("stuck", config.stuck),
        ]
        where !(value > 0 && value <= maximumSeconds) {
            throw ConfigError(
                "\(path): error: '\(name)' must be a positive number of seconds, at most \(Int(maximumSeconds))")
        }
        guard config.backoffMax >= config.backoffMin, config.backoffMax <= maximumSeconds else {
            throw ConfigError(
                "\(path): error: 'backoff-max' must be at least 'backoff-min' and at most \(Int(maximumSeconds))")
        }
        guard (1...1024).contains(config.channelCapacity) else {
            throw ConfigError("\(path): error: 'channel-capacity' must be 1 to 1024 frames")
        }
        guard config.liveFPS >= 0.1, config.liveFPS <= 60 else {
            throw ConfigError("\(path): error: 'live-fps' must be 0.1 to 60 pictures a second")
        }
        let widths = LiveViewSettings.widths
        guard widths.contains(config.liveMaxWidth) else {
            throw ConfigError(
                "\(path): error: 'live-max-width' must be \(widths.lowerBound) to \(widths.upperBound) pixels")
        }
        guard let address = config.httpAddress else {
            throw ConfigError("\(path): error: 'http' must be HOST:PORT, e.g. \"127.0.0.1:8470\"")
        }
        guard config.token.isEmpty == false || isLoopback(address.host) else {
            throw ConfigError(
                "\(path): error: 'http' binds \(address.host), which other machines reach: set 'token' "
                    + "(clients then send Authorization: Bearer TOKEN)")
        }
        return config
    }

    public var liveView: LiveViewSettings {
        var s = LiveViewSettings()
        s.fps = liveFPS
        s.maxWidth = liveMaxWidth
        return s
    }

    public var supervision: PipelineSupervisor.Settings {
        var s = PipelineSupervisor.Settings()
        s.watchdog = .milliseconds(Int(watchdog * 1000))
        s.minimumBackoff = .milliseconds(Int(backoffMin * 1000))
        s.maximumBackoff = .milliseconds(Int(backoffMax * 1000))
        s.channelCapacity = channelCapacity
        s.store = store.isEmpty ? nil : store
        return s
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

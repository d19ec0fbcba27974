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
/// ```
struct ServeConfig: Decodable, Equatable {
    var pipelines = "/etc/skipd/pipelines"
    var pidfile = "/run/skipd/skipd.pid"
    var watchdog = 5.0
    var backoffMin = 1.0
    var backoffMax = 30.0

    init() {}

    private enum CodingKeys: String, CodingKey {
        case pipelines, pidfile, watchdog
        case backoffMin = "backoff-min"
        case backoffMax = "backoff-max"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        pipelines = try c.decodeIfPresent(String.self, forKey: .pipelines) ?? pipelines
        pidfile = try c.decodeIfPresent(String.self, forKey: .pidfile) ?? pidfile
        watchdog = try Self.seconds(c, .watchdog) ?? watchdog
        backoffMin = try Self.seconds(c, .backoffMin) ?? backoffMin
        backoffMax = try Self.seconds(c, .backoffMax) ?? backoffMax
    }

    /// A number of seconds written as `5` or `0.5` (TOML keeps integers and floats apart).
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

    /// Reads and checks a config file; the error is one line, `file:line:col: error: …` where the parser knows.
    static func load(path: String) throws(ConfigError) -> ServeConfig {
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
                "\(path): error: unknown key(s) \(keys) (known: pipelines, pidfile, watchdog, backoff-min, backoff-max)"
            )
        } catch let DecodingError.typeMismatch(type, context) {
            let key = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ConfigError("\(path): error: '\(key)' must be a \(type == String.self ? "string" : "number")")
        } catch {
            throw ConfigError("\(path): error: \(error)")
        }
        for (name, value) in [("watchdog", config.watchdog), ("backoff-min", config.backoffMin)]
        where !(value > 0 && value.isFinite) {
            throw ConfigError("\(path): error: '\(name)' must be a positive number of seconds")
        }
        guard config.backoffMax >= config.backoffMin, config.backoffMax.isFinite else {
            throw ConfigError("\(path): error: 'backoff-max' must be at least 'backoff-min'")
        }
        return config
    }

    var supervision: PipelineSupervisor.Settings {
        var s = PipelineSupervisor.Settings()
        s.watchdog = .milliseconds(Int(watchdog * 1000))
        s.minimumBackoff = .milliseconds(Int(backoffMin * 1000))
        s.maximumBackoff = .milliseconds(Int(backoffMax * 1000))
        return s
    }
}

struct ConfigError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

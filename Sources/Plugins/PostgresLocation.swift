import Foundation
import PipelineKit

/// `postgres location=`: `postgresql://user@host:port/database[?sslmode=…]`, parsed and checked when the pipeline
/// is planned. A password in the URL is accepted but never shown: ``redacted`` is what logs and errors print.
struct PostgresLocation: Sendable, Equatable {
    enum TLSMode: String, Sendable, CaseIterable {
        /// `prefer` and `require` encrypt without checking the certificate, as libpq's modes of those names do.
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    var user: String
    var host: String
    var port: Int
    var database: String
    /// From the URL itself; `password-env` / `password-file` are the places meant for it.
    var password: String?
    var tls: TLSMode

    static let example = "postgresql://user@host:5432/database"

    /// `postgresql://user@host:port/database`, without the password: what logs and errors name.
    var redacted: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgresql://\(user)@\(shownHost):\(port)/\(database)"
            + (tls == .prefer ? "" : "?sslmode=\(tls.rawValue)")
    }

    /// The location, or why not; messages never repeat the text (it may hold a password).
    static func parse(_ text: String) -> Result<PostgresLocation, PropertyError> {
        func failure(_ message: String) -> Result<PostgresLocation, PropertyError> {
            .failure(PropertyError(message))
        }
        guard text.contains("://"), let url = URLComponents(string: text), let scheme = url.scheme?.lowercased()
        else {
            return failure("not a URL: expected \(example)")
        }
        guard scheme == "postgresql" || scheme == "postgres" else {
            return failure("'\(scheme)://' is not a PostgreSQL URL: expected \(example)")
        }
        guard let rawHost = url.percentEncodedHost, !rawHost.isEmpty,
            let host = rawHost.removingPercentEncoding?.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        else { return failure("the URL needs a host: \(example) (Unix sockets are not supported)") }
        guard let user = url.percentEncodedUser?.removingPercentEncoding, !user.isEmpty else {
            return failure("the URL needs a user: \(example)")
        }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { return failure("port \(port) is out of range 1…65535") }
        let path = url.percentEncodedPath.dropFirst()
        guard url.percentEncodedPath.hasPrefix("/"), !path.isEmpty, !path.contains("/"),
            let database = String(path).removingPercentEncoding
        else { return failure("the URL needs one database name as its path: \(example)") }
        guard url.fragment == nil else { return failure("the URL cannot have a fragment ('#…')") }
        var tls = TLSMode.prefer
        for item in url.queryItems ?? [] {
            guard item.name == "sslmode" else {
                return failure("unknown parameter '\(item.name)' in the URL (supported: sslmode)")
            }
            guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                let modes = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                return failure("sslmode must be one of \(modes)")
            }
            tls = mode
        }
        let password = url.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        return .success(
            PostgresLocation(
                user: user, host: host, port: port, database: database, password: password, tls: tls))
    }
}

/// Where the password comes from: `password-env`, `password-file` or (discouraged) the URL; none: the server must
/// not ask for one (trust or peer authentication).
enum PostgresPassword {
    /// The password, or a configuration error naming its source (never its value).
    static func resolve(
        location: PostgresLocation, environmentName: String?, file: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(PostgresConfigurationError) -> String? {
        let sources = [location.password != nil, environmentName != nil, file != nil].filter { $0 }.count
        guard sources <= 1 else {
            throw PostgresConfigurationError(
                "give the password once: in password-env, in password-file or (shown redacted) in location")
        }
        if let environmentName {
            guard let value = environment[environmentName] else {
                throw PostgresConfigurationError("password-env: the environment variable \(environmentName) is not set")
            }
            return value
        }
        if let file {
            let contents: String
            do {
                contents = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw PostgresConfigurationError(
                    "password-file: cannot read \(file): \((error as NSError).localizedDescription)")
            }
            // The first line: a file written by `echo` (or an editor) ends in a newline that is not the password's.
            return String(contents.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? "")
        }
        return location.password
    }
}

/// A `postgres` setting that cannot work as written: the pipeline is `failed`, not retried.
struct PostgresConfigurationError: ConfigurationError, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

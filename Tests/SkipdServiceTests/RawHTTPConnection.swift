import Foundation
import Testing

/// HTTP/1.1 over a bare socket, for what a test client cannot do: read part of an endless response.
final class RawHTTPConnection {
    private let fd: Int32
    private var received: [UInt8] = []

    /// Connects to 127.0.0.1:`port` and sends `GET path`.
    init(port: Int, path: String, headers: [String: String] = [:]) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0, "cannot connect to port \(port)")
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let lines = ["GET \(path) HTTP/1.1", "Host: 127.0.0.1"] + headers.map { "\($0.key): \($0.value)" }
        let request = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
        try #require(send(fd, request, request.count, 0) == request.count)
    }

    deinit { close(fd) }

    /// Reads until `done` holds for everything received so far, the peer closes, or `limit` passes.
    func read(limit: Duration = .seconds(20), until done: ([UInt8]) -> Bool) -> [UInt8] {
        let deadline = ContinuousClock.now + limit
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !done(received), ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            if n > 0 { received += buffer[..<n] }
        }
        return received
    }
}

/// An HTTP/1.1 response read off the wire: the status line and headers, and the body with chunking undone.
struct RawResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    /// Parses what has arrived so far; nil until the head is complete. A chunk cut off at the end is left out.
    init?(_ bytes: [UInt8]) {
        guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        let lines = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        guard let first = lines.first, let code = first.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        status = code
        headers = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let rest = Array(bytes[end.upperBound...])
        body = headers["transfer-encoding"] == "chunked" ? Self.dechunk(rest) : rest
    }

    private static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var body: [UInt8] = []
        var at = 0
        while let line = bytes[at...].firstRange(of: Array("\r\n".utf8)),
            let size = Int(String(decoding: bytes[at..<line.lowerBound], as: UTF8.self), radix: 16),
            size > 0, line.upperBound + size <= bytes.count
        {
            body += bytes[line.upperBound..<line.upperBound + size]
            at = line.upperBound + size + 2
            guard at <= bytes.count else { break }
        }
        return body
    }

    /// The complete parts of a `multipart/x-mixed-replace` body: each part's headers (lower-cased names) and bytes.
    func parts(boundary: String) -> [(headers: [String: String], body: [UInt8])] {
        let delimiter = Array("--\(boundary)\r\n".utf8)
        var parts: [(headers: [String: String], body: [UInt8])] = []
        guard var at = body.firstRange(of: delimiter)?.upperBound else { return [] }
        while let headEnd = body[at...].firstRange(of: Array("\r\n\r\n".utf8)) {
            var headers: [String: String] = [:]
            for line in String(decoding: body[at..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] =
                    line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            guard let length = headers["content-length"].flatMap({ Int($0) }),
                headEnd.upperBound + length + delimiter.count + 2 <= body.count
            else { break }
            let end = headEnd.upperBound + length
            parts.append((headers, Array(body[headEnd.upperBound..<end])))
            // Each part ends with CRLF and the next delimiter.
            guard Array(body[end..<end + 2 + delimiter.count]) == Array("\r\n".utf8) + delimiter else { break }
            at = end + 2 + delimiter.count
        }
        return parts
    }
}

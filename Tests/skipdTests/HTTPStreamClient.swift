import Foundation
import Testing

/// A GET over a bare socket, for what URLSession cannot do: hold an endless response open without reading it (a
/// viewer whose network stalled), or read only the start of one.
final class HTTPStreamClient {
    private let fd: Int32

    /// Connects to 127.0.0.1:`port` and sends the request. `receiveBuffer` shrinks the socket's receive buffer
    /// (before connecting, so the window the server sees is small too).
    init(port: Int, path: String, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
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
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        try #require(send(fd, request, request.count, 0) == request.count)
    }

    deinit { close(fd) }

    /// Reads until `done` holds for all bytes read so far, the server closes, or `limit` passes.
    func read(limit: Duration = .seconds(20), until done: ([UInt8]) -> Bool) -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + limit
        while !done(received), ContinuousClock.now < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            if n > 0 { received += buffer[..<n] }
        }
        return received
    }

    /// How many times `pattern` occurs in `bytes` (JPEG start markers in a stream, say).
    static func count(_ pattern: [UInt8], in bytes: [UInt8]) -> Int {
        guard bytes.count >= pattern.count else { return 0 }
        return (0...bytes.count - pattern.count).filter { bytes[$0..<$0 + pattern.count].elementsEqual(pattern) }.count
    }
}

import Foundation
import Synchronization

/// Everything read so far from one pipe, by a thread of its own (a full pipe would block the child).
final class ChildOutput: Sendable {
    private let state = Mutex((data: Data(), closed: false))
    private let changed = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread { [self] in
            while case let chunk = handle.availableData, !chunk.isEmpty {
                state.withLock { $0.data.append(chunk) }
                changed.signal()
            }
            state.withLock { $0.closed = true }
            changed.signal()
        }
    }

    var text: String { String(decoding: state.withLock { $0.data }, as: UTF8.self) }

    /// Waits until `found` returns a value for the text so far, the pipe closes or `timeout` s pass.
    @discardableResult
    func wait<T>(timeout: Double, for found: (String) -> T?) -> T? {
        let deadline = DispatchTime.now() + timeout
        while true {
            let (text, closed) = state.withLock { (String(decoding: $0.data, as: UTF8.self), $0.closed) }
            if let value = found(text) { return value }
            if closed || changed.wait(timeout: deadline) == .timedOut { return nil }
        }
    }

    /// The whole output once the pipe closes (what there is after `timeout` s).
    func all(timeout: Double = 5) -> String {
        wait(timeout: timeout) { _ in self.state.withLock { $0.closed } ? () : nil }
        return text
    }
}

/// A child process with its stdout and stderr collected.
struct ChildProcess {
    let process = Process()
    let stdout: ChildOutput
    let stderr: ChildOutput

    init(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        stdout = ChildOutput(out)
        stderr = ChildOutput(err)
        try process.run()
    }

    /// Exit status, or nil if it is still running after `timeout` s.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Ends a child a failed expectation left running.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if waitForExit(timeout: 5) == nil { kill(process.processIdentifier, SIGKILL) }
    }
}

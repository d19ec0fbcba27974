import Foundation

/// Writes a line to standard error, unbuffered, so messages survive a pipe and a kill (the commands' and the
/// daemon's one way to tell the user something outside the log).
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

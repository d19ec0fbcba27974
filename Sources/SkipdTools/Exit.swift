import ArgumentParser

/// Exit codes shared by the commands: 0 ok, 1 a run failed, 2 an input (file, model, option) is invalid.
public enum Exit {
    public static let runtimeFailure = ExitCode(1)
    public static let invalidFile = ExitCode(2)
}

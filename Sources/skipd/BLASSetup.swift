import Foundation
import PipelineKit
import SkipNet

enum BLASSetup {
    /// Re-executes skipd with `OPENBLAS_CORETYPE` set when the user has not set it and the CPU calls for it.
    /// Returns (and carries on with OpenBLAS's own choice) if it cannot.
    static func reexecWithCoreTypeIfNeeded() {
        guard ProcessInfo.processInfo.environment[BLASCoreType.environmentVariable] == nil,
            let core = BLASCoreType.recommended(cpuFlags: BLASCoreType.cpuFlags())
        else { return }
        setenv(BLASCoreType.environmentVariable, core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}

import Foundation

/// OpenBLAS 0.3.21 (Debian 12) misdetects some CPUs (KVM guests of family 6 model 207 come out as Prescott) and
/// then runs SGEMM about 5× slower. The core type is read in OpenBLAS's load-time constructor, before `main`, so it
/// must be in the environment when the process starts: `skipd` re-executes itself once with it set.
public enum BLASCoreType {
    public static let environmentVariable = "OPENBLAS_CORETYPE"

    /// The core type for a CPU with these `/proc/cpuinfo` flags, or nil to leave OpenBLAS's own choice.
    /// Chosen from the CPU's features, never hard-coded: a core type the CPU lacks dies on an illegal instruction.
    public static func recommended(cpuFlags flags: Set<Substring>) -> String? {
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains) { return "SkylakeX" }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return "Haswell" }
        return nil
    }

    /// The flags of the first CPU in `/proc/cpuinfo`.
    public static func cpuFlags() -> Set<Substring> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " "))
    }
}

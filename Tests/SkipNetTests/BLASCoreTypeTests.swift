import Testing

@testable import SkipNet

@Suite struct BLASCoreTypeTests {
    @Test func choosesFromTheCPUsOwnFeatures() {
        let avx512: Set<Substring> = ["fpu", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]
        #expect(BLASCoreType.recommended(cpuFlags: avx512) == "SkylakeX")
        #expect(BLASCoreType.recommended(cpuFlags: ["avx", "avx2", "fma", "sse4_2"]) == "Haswell")
        // AVX-512 foundation alone (no BW/VL) must not select SkylakeX kernels.
        #expect(BLASCoreType.recommended(cpuFlags: ["avx2", "fma", "avx512f"]) == "Haswell")
        #expect(BLASCoreType.recommended(cpuFlags: ["sse2", "avx"]) == nil)
        #expect(BLASCoreType.recommended(cpuFlags: []) == nil)
    }

    @Test func readsThisMachinesFlags() {
        #expect(BLASCoreType.cpuFlags().contains("sse2"))
    }
}

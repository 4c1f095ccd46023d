using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DirectPmem.Persistence;

/// <summary>The processor features the persistence layer uses, read once with CPUID.</summary>
/// <param name="Clflush">CLFLUSH (leaf 1, EDX bit 19).</param>
/// <param name="ClflushOpt">CLFLUSHOPT (leaf 7, EBX bit 23).</param>
/// <param name="Clwb">CLWB (leaf 7, EBX bit 24).</param>
/// <param name="Avx2">AVX2 usable (the runtime's view, which includes OS support for the registers).</param>
/// <param name="Avx512F">AVX-512F usable (the runtime's view).</param>
/// <param name="MovDir64B">MOVDIR64B (leaf 7, ECX bit 28).</param>
public readonly record struct CpuFeatures(bool Clflush, bool ClflushOpt, bool Clwb, bool Avx2, bool Avx512F, bool MovDir64B)
{
    /// <summary>The features of the processor this process runs on.</summary>
    public static CpuFeatures Current { get; } = Detect();

    private static CpuFeatures Detect()
    {
        if (!X86Base.IsSupported)
        {
            return default;
        }
        (_, _, _, int edx1) = X86Base.CpuId(1, 0);
        (int maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        int ebx7 = 0, ecx7 = 0;
        if (maxLeaf >= 7)
        {
            (_, ebx7, ecx7, _) = X86Base.CpuId(7, 0);
        }
        return new CpuFeatures(
            Clflush: (edx1 & (1 << 19)) != 0,
            ClflushOpt: (ebx7 & (1 << 23)) != 0,
            Clwb: (ebx7 & (1 << 24)) != 0,
            // The runtime checks XCR0 as well as CPUID, so the vector paths are only taken where the OS saves the registers.
            Avx2: System.Runtime.Intrinsics.X86.Avx2.IsSupported && Vector256.IsHardwareAccelerated,
            Avx512F: System.Runtime.Intrinsics.X86.Avx512F.IsSupported && Vector512.IsHardwareAccelerated,
            MovDir64B: (ecx7 & (1 << 28)) != 0);
    }
}

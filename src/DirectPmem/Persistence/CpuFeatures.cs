using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DirectPmem.Persistence;

/// <summary>The processor features the persistence layer uses, read once with CPUID; only DirectPmem creates them.</summary>
public readonly struct CpuFeatures : IEquatable<CpuFeatures>
{
    internal CpuFeatures(bool Clflush, bool ClflushOpt, bool Clwb, bool Avx2, bool Avx512F, bool MovDir64B)
    {
        this.Clflush = Clflush;
        this.ClflushOpt = ClflushOpt;
        this.Clwb = Clwb;
        this.Avx2 = Avx2;
        this.Avx512F = Avx512F;
        this.MovDir64B = MovDir64B;
    }

    /// <summary>CLFLUSH (leaf 1, EDX bit 19).</summary>
    public bool Clflush { get; internal init; }

    /// <summary>CLFLUSHOPT (leaf 7, EBX bit 23).</summary>
    public bool ClflushOpt { get; internal init; }

    /// <summary>CLWB (leaf 7, EBX bit 24).</summary>
    public bool Clwb { get; internal init; }

    /// <summary>AVX2 usable (the runtime's view, which includes OS support for the registers).</summary>
    public bool Avx2 { get; internal init; }

    /// <summary>AVX-512F usable (the runtime's view).</summary>
    public bool Avx512F { get; internal init; }

    /// <summary>MOVDIR64B (leaf 7, ECX bit 28).</summary>
    public bool MovDir64B { get; internal init; }

    /// <inheritdoc/>
    public bool Equals(CpuFeatures other) => Clflush == other.Clflush && ClflushOpt == other.ClflushOpt && Clwb == other.Clwb
        && Avx2 == other.Avx2 && Avx512F == other.Avx512F && MovDir64B == other.MovDir64B;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is CpuFeatures other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Clflush, ClflushOpt, Clwb, Avx2, Avx512F, MovDir64B);

    /// <summary>Whether two feature sets are equal.</summary>
    /// <param name="left">One feature set.</param>
    /// <param name="right">The other.</param>
    /// <returns><see langword="true"/> when every feature is the same.</returns>
    public static bool operator ==(CpuFeatures left, CpuFeatures right) => left.Equals(right);

    /// <summary>Whether two feature sets differ.</summary>
    /// <param name="left">One feature set.</param>
    /// <param name="right">The other.</param>
    /// <returns><see langword="true"/> when a feature differs.</returns>
    public static bool operator !=(CpuFeatures left, CpuFeatures right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString()
        => $"CpuFeatures {{ Clflush = {Clflush}, ClflushOpt = {ClflushOpt}, Clwb = {Clwb}, Avx2 = {Avx2}, Avx512F = {Avx512F}, MovDir64B = {MovDir64B} }}";

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

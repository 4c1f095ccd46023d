namespace DirectPmem.Persistence;

/// <summary>The instruction that writes cache lines back to memory (preference: CLWB, then CLFLUSHOPT, then CLFLUSH).</summary>
public enum FlushInstruction
{
    /// <summary>No flush instruction is used: the platform does not need one (eADR, or flushing disabled) or cannot run one (no executable memory).</summary>
    None,

    /// <summary>CLFLUSH (<c>0F AE /7</c>): evicts the line; serialized with other CLFLUSHes.</summary>
    Clflush,

    /// <summary>CLFLUSHOPT (<c>66 0F AE /7</c>): evicts the line; weakly ordered, needs SFENCE.</summary>
    ClflushOpt,

    /// <summary>CLWB (<c>66 0F AE /6</c>): writes the line back and may keep it cached; weakly ordered, needs SFENCE.</summary>
    Clwb,
}

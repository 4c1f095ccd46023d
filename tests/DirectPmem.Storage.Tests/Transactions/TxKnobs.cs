namespace DirectPmem.Storage.Tests.Transactions;

/// <summary>
/// Sizes of the transaction proofs. CI runs the defaults; DIRECTPMEM_STORAGE_LONG=1 (the storage
/// tests' long-run switch) selects the long values, and each knob can be set on its own.
/// </summary>
internal static class TxKnobs
{
    /// <summary>Random images per crash point when a point has more than <see cref="ExhaustiveLimit"/>.</summary>
    public static int RandomImages => Get("DIRECTPMEM_TX_CRASH_RANDOM", 96, 512);

    /// <summary>A crash point with at most this many images is enumerated exhaustively.</summary>
    public static int ExhaustiveLimit => Get("DIRECTPMEM_TX_CRASH_EXHAUSTIVE", 256, 1024);

    /// <summary>Byte flips in the undo-log fuzz.</summary>
    public static int FuzzCases => Get("DIRECTPMEM_TX_FUZZ_CASES", 3000, 100_000);

    /// <summary>kill -9 rounds of the key-value store.</summary>
    public static int KillRounds => Get("DIRECTPMEM_TX_KILL_ROUNDS", 24, 200);

    private static int Get(string name, int normal, int longRun) => TestKnobs.Get(name, normal, longRun);
}

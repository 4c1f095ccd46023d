namespace DirectPmem.Storage.Tests;

/// <summary>
/// Sizes of the long-running proofs. CI runs the defaults; DIRECTPMEM_STORAGE_LONG=1 switches every
/// knob to its long value, and each knob can be set on its own.
/// </summary>
internal static class Knobs
{
    /// <summary>Random crash images per crash point when a point has too many to enumerate.</summary>
    public static int CrashRandomImages => Get("DIRECTPMEM_STORAGE_CRASH_RANDOM", 48, 512);

    /// <summary>Random log-region mutations in the log fuzz.</summary>
    public static int LogFuzzCases => Get("DIRECTPMEM_STORAGE_FUZZ_CASES", 4000, 100_000);

    /// <summary>Random header mutations on top of the every-byte sweep.</summary>
    public static int HeaderFuzzCases => Get("DIRECTPMEM_STORAGE_HEADER_FUZZ_CASES", 2000, 100_000);

    /// <summary>kill -9 rounds.</summary>
    public static int KillRounds => Get("DIRECTPMEM_STORAGE_KILL_ROUNDS", 24, 200);

    /// <summary>Appends a line to the file named by DIRECTPMEM_STORAGE_SWEEP_LOG, if set: how sweep and fuzz totals are collected for a report.</summary>
    public static void Record(string line)
    {
        string? path = Environment.GetEnvironmentVariable("DIRECTPMEM_STORAGE_SWEEP_LOG");
        if (!string.IsNullOrEmpty(path))
        {
            lock (s_gate)
            {
                File.AppendAllText(path, line + Environment.NewLine);
            }
        }
    }

    private static readonly Lock s_gate = new();

    internal static int Get(string name, int normal, int longRun) => TestKnobs.Get(name, normal, longRun);
}

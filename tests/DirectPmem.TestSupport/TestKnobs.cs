using System.Globalization;

namespace DirectPmem.TestSupport;

/// <summary>
/// The sizes of long-running proofs (rounds, cases, images), read from environment variables: CI runs the
/// defaults, <see cref="LongVariable"/>=1 selects each proof's long value, and each knob can be set on its own.
/// </summary>
public static class TestKnobs
{
    /// <summary>The switch that selects the long value of every knob that has one.</summary>
    public const string LongVariable = "DIRECTPMEM_STORAGE_LONG";

    /// <summary>Whether <see cref="LongVariable"/> is 1.</summary>
    public static bool LongRun => Environment.GetEnvironmentVariable(LongVariable) == "1";

    /// <summary>The non-negative integer in <paramref name="name"/>, else <paramref name="longRun"/> when <see cref="LongRun"/>, else <paramref name="normal"/>.</summary>
    public static int Get(string name, int normal, int longRun)
    {
        string? text = Environment.GetEnvironmentVariable(name);
        if (text is not null && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
        {
            return value;
        }
        return LongRun ? longRun : normal;
    }
}

using System.Diagnostics;
using System.Globalization;

namespace DirectPmem.TestSupport;

/// <summary>
/// Every time limit of every test project, in one place: a generous default (minutes for a child process),
/// multiplied by <c>DIRECTPMEM_TEST_TIME_SCALE</c> (default 1) so a slow machine (an emulated CPU, a loaded
/// CI runner) raises them all with one variable. A message about an expired limit says the limit and the knob
/// (<see cref="Describe"/>).
/// </summary>
/// <remarks>In DirectPmem.TestSupport, referenced by every project under tests/ (Directory.Build.targets).</remarks>
public static class TestTime
{
    /// <summary>The environment variable that multiplies every test time limit.</summary>
    public const string Variable = "DIRECTPMEM_TEST_TIME_SCALE";

    /// <summary>The default limit for a child process to start, run and exit.</summary>
    public static readonly TimeSpan ChildProcessDefault = TimeSpan.FromMinutes(10);

    /// <summary>The multiplier read from <see cref="Variable"/> (1 when unset; an unparsable or non-positive value throws).</summary>
    public static double Scale { get; } = ReadScale(Environment.GetEnvironmentVariable(Variable));

    /// <summary><paramref name="limit"/> multiplied by <see cref="Scale"/>.</summary>
    public static TimeSpan Limit(TimeSpan limit) => limit * Scale;

    /// <summary>The scaled limit for a child process (<see cref="ChildProcessDefault"/>).</summary>
    public static TimeSpan ChildProcess => Limit(ChildProcessDefault);

    /// <summary>"within N s (the limit; DIRECTPMEM_TEST_TIME_SCALE=S multiplies every test limit)" for a failure message.</summary>
    public static string Describe(TimeSpan scaledLimit)
        => string.Create(CultureInfo.InvariantCulture,
            $"within {scaledLimit.TotalSeconds:0} s (the test's limit; set {Variable} to multiply every test time limit, now {Scale:0.##})");

    /// <summary>
    /// Waits for <paramref name="process"/> to exit within the scaled <paramref name="limit"/> (default
    /// <see cref="ChildProcess"/>). On expiry it kills the whole process tree and waits until it is gone, so
    /// no file the child held (a pool's flock) is still held when the next case starts, then throws a
    /// <see cref="TimeoutException"/> that says the limit and the knob.
    /// </summary>
    public static void WaitForExit(Process process, string what, TimeSpan? limit = null)
    {
        TimeSpan scaled = limit is { } given ? Limit(given) : ChildProcess;
        if (process.WaitForExit(scaled))
        {
            process.WaitForExit(); // drains redirected output
            return;
        }
        KillAndWait(process);
        throw new TimeoutException($"{what} did not exit {Describe(scaled)}; it was killed.");
    }

    /// <summary>Kills the process tree and waits until it has exited (a killed child may still hold its files until then).</summary>
    public static void KillAndWait(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill: nothing to kill.
        }
        process.WaitForExit();
    }

    internal static double ReadScale(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return 1;
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double scale) || !(scale > 0) || double.IsInfinity(scale))
        {
            throw new InvalidOperationException($"{Variable}='{text}' is not a positive number (it multiplies every test time limit, e.g. 4 on an emulated CPU).");
        }
        return scale;
    }
}

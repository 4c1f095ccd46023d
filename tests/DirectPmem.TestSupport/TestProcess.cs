using System.ComponentModel;
using System.Diagnostics;

namespace DirectPmem.TestSupport;

/// <summary>Runs a program a test needs (mount, umount, daxctl...) to its end and hands back what it said.</summary>
public static class TestProcess
{
    /// <summary>What a finished program returned and wrote.</summary>
    public readonly record struct Result(int ExitCode, string Output, string Error);

    /// <summary>
    /// Runs <paramref name="program"/> (a path, or a name looked up on PATH) with <paramref name="args"/>, reading its
    /// standard output and error together, within <see cref="TestTime.ChildProcess"/> (on expiry it is killed and a
    /// <see cref="TimeoutException"/> names the limit). A program that cannot be started is exit code -1 with the
    /// reason in <see cref="Result.Error"/>, for the caller to skip or fail on.
    /// </summary>
    public static Result Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception e)
        {
            return new Result(-1, "", $"{program} could not be started: {e.Message}");
        }
        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            TestTime.WaitForExit(process, $"{program} {string.Join(' ', args)}");
            return new Result(process.ExitCode, stdout.Result, stderr.Result);
        }
    }
}

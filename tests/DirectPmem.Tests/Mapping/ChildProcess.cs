using System.Diagnostics;
using DirectPmem.TestSupport;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Runs one explicit test method of this assembly in a child process, for cases where a bug would
/// end in a signal (SIGSEGV, SIGBUS): the signal then fails the parent's test instead of killing the
/// test runner. The child gets <see cref="ChildVariable"/> set so its method knows it is the child.
/// </summary>
internal static class ChildProcess
{
    /// <summary>Set in the child's environment; the explicit child methods refuse to run without it.</summary>
    internal const string ChildVariable = "DIRECTPMEM_TEST_CHILD";

    /// <summary>Where the child writes what it reports (<see cref="Report"/>).</summary>
    internal const string ReportVariable = "DIRECTPMEM_TEST_CHILD_REPORT";

    /// <summary>The result: exit code (non-zero when a signal or a failed assertion ended it), the output and the child's report lines.</summary>
    internal readonly record struct Result(int ExitCode, string Output, string[] Report);

    internal static Result Run(Type type, string method, params (string Name, string Value)[] variables)
    {
        var start = new ProcessStartInfo(DotnetHost.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { type.Assembly.Location, "-method", type.FullName + "." + method, "-explicit", "only", "-noLogo", "-noColor" })
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment[ChildVariable] = "1";
        string report = Path.Combine(Path.GetTempPath(), "directpmem-child-" + Guid.NewGuid().ToString("N"));
        start.Environment[ReportVariable] = report;
        // A crash should not leave a core file behind for every round.
        start.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        foreach ((string name, string value) in variables)
        {
            start.Environment[name] = value;
        }
        using Process child = Process.Start(start)!;
        Task<string> stdout = child.StandardOutput.ReadToEndAsync();
        Task<string> stderr = child.StandardError.ReadToEndAsync();
        TestTime.WaitForExit(child, $"the child test process ({method})");
        string[] lines = File.Exists(report) ? File.ReadAllLines(report) : [];
        File.Delete(report);
        return new Result(child.ExitCode, stdout.Result + "\n" + stderr.Result, lines);
    }

    /// <summary>Runs the child and asserts that it passed: exit 0, and its method really ran (not skipped or filtered out).</summary>
    internal static string[] RunPassing(Type type, string method, params (string Name, string Value)[] variables)
    {
        Result result = Run(type, method, variables);
        Assert.True(result.ExitCode == 0 && result.Report.Contains("done"),
            $"the child {method} failed (exit code {result.ExitCode}, report [{string.Join("; ", result.Report)}]):\n{result.Output}");
        return result.Report;
    }

    /// <summary>In an explicit child method: skips unless running as the child.</summary>
    internal static void RequireChild()
    {
        if (Environment.GetEnvironmentVariable(ChildVariable) != "1")
        {
            Assert.Skip("runs only in a child process started by its parent test");
        }
    }

    /// <summary>In the child: appends a line to the report the parent reads (flushed at once, so it survives a crash after it).</summary>
    internal static void Report(string line)
    {
        string? path = Environment.GetEnvironmentVariable(ReportVariable);
        if (path is not null)
        {
            File.AppendAllLines(path, [line]);
        }
    }

    /// <summary>A round count from <paramref name="variable"/>, or <paramref name="fallback"/>.</summary>
    internal static int Rounds(string variable, int fallback)
        => int.TryParse(Environment.GetEnvironmentVariable(variable), out int rounds) && rounds > 0 ? rounds : fallback;
}

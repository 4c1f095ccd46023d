using System.Diagnostics;
using Xunit;

namespace DirectPmem.TestSupport;

/// <summary>
/// Runs one explicit test method of a test assembly (the one declaring the method's type) in a child process, for cases where a bug would
/// end in a signal (SIGSEGV, SIGBUS): the signal then fails the parent's test instead of killing the
/// test runner. The child gets <see cref="ChildVariable"/> set so its method knows it is the child.
/// </summary>
public static class ChildProcess
{
    /// <summary>Set in the child's environment; the explicit child methods refuse to run without it.</summary>
    public const string ChildVariable = "DIRECTPMEM_TEST_CHILD";

    /// <summary>Where the child writes what it reports (<see cref="Report"/>).</summary>
    public const string ReportVariable = "DIRECTPMEM_TEST_CHILD_REPORT";

    /// <summary>The result: exit code (non-zero when a signal or a failed assertion ended it), the output and the child's report lines.</summary>
    public readonly record struct Result(int ExitCode, string Output, string[] Report);

    /// <summary>Runs <paramref name="type"/>.<paramref name="method"/> alone in a child test process with <paramref name="variables"/> set; waits within <see cref="TestTime.ChildProcess"/>.</summary>
    public static Result Run(Type type, string method, params (string Name, string Value)[] variables)
    {
        string report = NewReportPath();
        using Process child = Process.Start(StartInfo(type, method, report, variables))!;
        Task<string> stdout = child.StandardOutput.ReadToEndAsync();
        Task<string> stderr = child.StandardError.ReadToEndAsync();
        TestTime.WaitForExit(child, $"the child test process ({method})");
        string[] lines = File.Exists(report) ? File.ReadAllLines(report) : [];
        File.Delete(report);
        return new Result(child.ExitCode, stdout.Result + "\n" + stderr.Result, lines);
    }

    /// <summary>
    /// Starts <paramref name="type"/>.<paramref name="method"/> alone in a child test process that reports to
    /// <paramref name="report"/> (<see cref="NewReportPath"/>; the caller deletes it) and returns at once, for a parent
    /// that kills the child (<see cref="TestTime.KillAndWait"/>) or waits for it (<see cref="TestTime.WaitForExit"/>).
    /// Its output is read in the background (a full pipe would stall it): <see cref="Started.Output"/>.
    /// </summary>
    public static Started Start(Type type, string method, string report, params (string Name, string Value)[] variables)
    {
        Process child = Process.Start(StartInfo(type, method, report, variables))!;
        Task<string> stdout = child.StandardOutput.ReadToEndAsync();
        Task<string> stderr = child.StandardError.ReadToEndAsync();
        return new Started(child, Task.WhenAll(stdout, stderr).ContinueWith(t => string.Join("\n", t.Result), TaskScheduler.Default));
    }

    /// <summary>A child <see cref="Start"/> started: the process (the caller disposes it) and all it will have written to stdout and stderr once it exits.</summary>
    public readonly record struct Started(Process Process, Task<string> Output);

    /// <summary>A fresh path in the temporary directory for a child's report (not created).</summary>
    public static string NewReportPath() => Path.Combine(Path.GetTempPath(), "directpmem-child-" + Guid.NewGuid().ToString("N"));

    /// <summary>
    /// The complete lines of a report a child may still be writing (or was killed writing): a last line without
    /// its newline is left out. None when the child has not written yet.
    /// </summary>
    public static string[] ReadReport(string report)
    {
        string text;
        try
        {
            using var stream = new FileStream(report, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            text = reader.ReadToEnd();
        }
        catch (FileNotFoundException)
        {
            return [];
        }
        int end = text.LastIndexOf('\n');
        return end < 0 ? [] : text[..end].Split('\n');
    }

    private static ProcessStartInfo StartInfo(Type type, string method, string report, (string Name, string Value)[] variables)
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
        start.Environment[ReportVariable] = report;
        // A crash should not leave a core file behind for every round.
        start.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        foreach ((string name, string value) in variables)
        {
            start.Environment[name] = value;
        }
        return start;
    }

    /// <summary>Runs the child and asserts that it passed: exit 0, and its method really ran (not skipped or filtered out).</summary>
    public static string[] RunPassing(Type type, string method, params (string Name, string Value)[] variables)
    {
        Result result = Run(type, method, variables);
        Assert.True(result.ExitCode == 0 && result.Report.Contains("done"),
            $"the child {method} failed (exit code {result.ExitCode}, report [{string.Join("; ", result.Report)}]):\n{result.Output}");
        return result.Report;
    }

    /// <summary>In an explicit child method: skips unless running as the child.</summary>
    public static void RequireChild()
    {
        if (Environment.GetEnvironmentVariable(ChildVariable) != "1")
        {
            Assert.Skip("runs only in a child process started by its parent test");
        }
    }

    /// <summary>In the child: appends a line to the report the parent reads (flushed at once, so it survives a crash after it).</summary>
    public static void Report(string line)
    {
        string? path = Environment.GetEnvironmentVariable(ReportVariable);
        if (path is not null)
        {
            File.AppendAllLines(path, [line]);
        }
    }

    /// <summary>A round count from <paramref name="variable"/>, or <paramref name="fallback"/>.</summary>
    public static int Rounds(string variable, int fallback)
        => int.TryParse(Environment.GetEnvironmentVariable(variable), out int rounds) && rounds > 0 ? rounds : fallback;
}

using System.Diagnostics;
using Xunit;

namespace DirectPmem.Tool.Tests.Support;

/// <summary>Runs dpmem (and other children) as separate processes, exactly as users run them.</summary>
internal static class Dpmem
{
    internal static (int Code, string Output, string Error) Run(params string[] args) => RunWithInput(null, args);

    internal static (int Code, string Output, string Error) RunWithInput(string? input, params string[] args) => RunWithColumns("200", input, args);

    /// <summary>Runs dpmem with <c>COLUMNS</c> set to <paramref name="columns"/> (unset when null).</summary>
    internal static (int Code, string Output, string Error) RunWithColumns(string? columns, string? input, params string[] args)
    {
        var start = new ProcessStartInfo(DotnetHost.Path) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dpmem.dll"));
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["COLUMNS"] = columns;
        return Wait(start, input, TestTime.ChildProcessDefault);
    }

    /// <summary>Runs the child to its end; <paramref name="timeout"/> is scaled by <see cref="TestTime.Scale"/>.</summary>
    internal static (int Code, string Output, string Error) Wait(ProcessStartInfo start, string? input, TimeSpan timeout)
    {
        start.RedirectStandardInput = true;
        using Process process = Process.Start(start)!;
        Task<string> error = process.StandardError.ReadToEndAsync();
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        if (input is not null)
        {
            process.StandardInput.Write(input);
        }
        process.StandardInput.Close();
        TestTime.WaitForExit(process, $"{start.FileName} {string.Join(' ', start.ArgumentList)}", timeout);
        return (process.ExitCode, output.Result, error.Result);
    }
}

/// <summary>The test child (tests/DirectPmem.Tool.TestChild): persists in a loop, or idles without DirectPmem.</summary>
internal sealed class Child : IDisposable
{
    private readonly Process _process;

    internal Child(string mode, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(DotnetHost.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "DirectPmem.Tool.TestChild.dll"));
        start.ArgumentList.Add(mode);
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        _process = Process.Start(start)!;
        Task<string?> ready = _process.StandardOutput.ReadLineAsync();
        TimeSpan limit = TestTime.Limit(TimeSpan.FromMinutes(5));
        if (!ready.Wait(limit) || ready.Result != "ready")
        {
            string error = _process.HasExited ? _process.StandardError.ReadToEnd() : "";
            Dispose();
            Assert.Fail($"the test child ({mode}) did not say ready {TestTime.Describe(limit)}: {ready.Status} {error}");
        }
    }

    internal int Id => _process.Id;

    public void Dispose()
    {
        try
        {
            // Closing stdin tells the child to stop.
            _process.StandardInput.Close();
            if (!_process.WaitForExit(TestTime.Limit(TimeSpan.FromSeconds(30))))
            {
                // It is past its use: kill it and wait, so it holds nothing when the next case starts.
                TestTime.KillAndWait(_process);
            }
        }
        finally
        {
            _process.Dispose();
        }
    }
}

using System.Diagnostics;
using System.Text;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>The sample server (samples/DirectPmem.GarnetServer) as a child process.</summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    // Every line the child printed, appended as it comes (also after READY).
    private readonly StringBuilder _output;

    private ServerProcess(Process process, int port, StringBuilder output)
    {
        _process = process;
        Port = port;
        _output = output;
    }

    public int Port { get; }

    public string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    /// <summary>Starts the server and waits for its READY line; a start-up failure throws with the child's output.</summary>
    public static ServerProcess Start(params string[] args)
    {
        Process process = Process.Start(Info(args)) ?? throw new InvalidOperationException("dotnet did not start");
        var ready = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new StringBuilder();
        void OnLine(string? line)
        {
            if (line is null)
            {
                ready.TrySetResult(-1);
                return;
            }
            lock (output)
                output.AppendLine(line);
            if (line.StartsWith("READY ", StringComparison.Ordinal))
                ready.TrySetResult(int.Parse(line.AsSpan(6), System.Globalization.CultureInfo.InvariantCulture));
        }
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        TimeSpan limit = TestTime.Limit(TimeSpan.FromMinutes(5));
        bool timedOut = !ready.Task.Wait(limit);
        if (timedOut || ready.Task.Result < 0)
        {
            TestTime.KillAndWait(process);
            string text;
            lock (output)
                text = output.ToString();
            int exitCode = process.ExitCode;
            process.Dispose();
            string why = timedOut ? $"did not print READY {TestTime.Describe(limit)} and was killed" : "exited before printing READY";
            throw new InvalidOperationException($"The server {why} (exit {exitCode}):\n{text}");
        }
        return new ServerProcess(process, ready.Task.Result, output);
    }

    /// <summary>Runs the server to its exit (a refused start), returning its exit code, stdout and stderr.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        using Process process = Process.Start(Info(args)) ?? throw new InvalidOperationException("dotnet did not start");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        TimeSpan limit = TestTime.Limit(TimeSpan.FromMinutes(2));
        if (!process.WaitForExit(limit))
        {
            TestTime.KillAndWait(process);
            throw new TimeoutException($"The server did not exit {TestTime.Describe(limit)} with arguments '{string.Join(' ', args)}' and was killed.");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static ProcessStartInfo Info(string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "DirectPmem.GarnetServer.dll");
        var info = new ProcessStartInfo(DotnetHost.Path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        info.Environment["DOTNET_gcServer"] = "0";
        return info;
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void KillHard()
    {
        lock (_process)
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: false);
            _process.WaitForExit();
        }
    }

    public void Dispose()
    {
        KillHard();
        _process.Dispose();
    }
}

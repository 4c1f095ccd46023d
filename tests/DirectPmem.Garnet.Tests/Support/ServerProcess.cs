using System.Diagnostics;
using System.Text;
using DirectPmem.TestSupport;

namespace DirectPmem.Garnet.Tests.Support;

/// <summary>The sample server (samples/DirectPmem.GarnetServer) as a child process.</summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServerProcess(Process process, int port)
    {
        _process = process;
        Port = port;
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
        string dll = Path.Combine(AppContext.BaseDirectory, "DirectPmem.GarnetServer.dll");
        var info = new ProcessStartInfo(DotnetHost.Path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        info.Environment["DOTNET_gcServer"] = "0";
        Process process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start");
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
        var server = new ServerProcess(process, ready.Task.Result);
        lock (output)
            server._output.Append(output);
        return server;
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

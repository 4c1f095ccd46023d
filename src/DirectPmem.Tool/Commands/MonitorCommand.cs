using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DirectPmem.Tool.Cli;
using DirectPmem.Tool.Monitor;
using Microsoft.Diagnostics.NETCore.Client;
using Spectre.Console;

namespace DirectPmem.Tool.Commands;

/// <summary>What <c>dpmem monitor --duration S --json</c> prints: the last value of every counter.</summary>
internal sealed record MonitorReport(int ProcessId, string ProcessName, IReadOnlyList<MonitorCounter> Counters);

/// <summary>One counter: rates are per second.</summary>
internal sealed record MonitorCounter(string Provider, string Name, string DisplayName, string Units, bool IsRate, double Value);

/// <summary>
/// <c>dpmem monitor PID|NAME</c>: attaches to a running .NET process (EventPipe, through
/// Microsoft.Diagnostics.NETCore.Client) and shows its DirectPmem counters (the core's
/// <c>DirectPmem</c> and, when it uses a log or transactions, <c>DirectPmem.Storage</c>), refreshing in place
/// until Ctrl+C, or for <c>--duration</c> seconds.
/// </summary>
internal static class MonitorCommand
{
    /// <summary>
    /// How long to wait for the first counters: generous, because attaching EventPipe and the first report
    /// take a few seconds on a fast machine and far longer under emulation; a process without DirectPmem is
    /// only known once this has passed (--wait lowers it).
    /// </summary>
    internal const int DefaultWaitSeconds = 60;

    internal static Command Create()
    {
        var target = new Argument<string>("process") { Description = "The process id, or the name of a .NET process (its executable or main assembly)." };
        var interval = new Option<int>("--interval", "-i") { Description = "Seconds between counter updates.", DefaultValueFactory = _ => 1 };
        var duration = new Option<int>("--duration", "-d") { Description = "Stop this many seconds after the first counters arrived and print the last values (default: until Ctrl+C)." };
        var json = new Option<bool>("--json", "-j") { Description = "With --duration: print the last values as JSON instead of a live display." };
        var wait = new Option<int>("--wait") { Description = "Seconds to wait for the first counters before deciding DirectPmem is not loaded (raise it on a slow or emulated machine, where attaching takes longer).", DefaultValueFactory = _ => DefaultWaitSeconds };
        var command = new Command("monitor", "Show a running process's DirectPmem and DirectPmem.Storage counters live (like dotnet-counters monitor --counters DirectPmem,DirectPmem.Storage).")
        {
            target, interval, duration, json, wait,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(json) && result.GetValue(duration) <= 0)
            {
                result.AddError("--json needs --duration: the live display has no end.");
            }
        });
        CommandRunner.SetAction(command, (parse, cancel) => Run(parse.GetValue(target)!, parse.GetValue(interval), parse.GetValue(duration), parse.GetValue(json), parse.GetValue(wait), cancel));
        return command;
    }

    private static async Task<int> Run(string target, int interval, int duration, bool asJson, int wait, CancellationToken cancel)
    {
        if (interval <= 0)
        {
            throw new ToolException($"--interval {interval} must be at least 1 second.");
        }
        if (wait <= 0)
        {
            throw new ToolException($"--wait {wait} must be at least 1 second.");
        }
        (int pid, string name) = Resolve(target);
        CounterSession session;
        try
        {
            session = new CounterSession(pid, interval);
        }
        catch (ServerNotAvailableException e)
        {
            throw new ToolException($"process {pid} ({name}) has no .NET diagnostics port: it is not a .NET process, or it runs with DOTNET_EnableDiagnostics=0 ({e.Message}).");
        }
        using (session)
        {
            DateTime start = DateTime.UtcNow;
            // --duration counts from the first counters, so a slow attach never eats the time asked for.
            DateTime? end = null;
            bool Running()
            {
                if (duration > 0 && end is null && session.Received > 0)
                {
                    end = DateTime.UtcNow.AddSeconds(duration);
                }
                return !cancel.IsCancellationRequested && (duration <= 0 || end is null || DateTime.UtcNow < end) && !session.Ended;
            }
            TimeSpan firstWait = TimeSpan.FromSeconds(Math.Max(wait, interval + 1));
            if (!asJson)
            {
                AnsiConsole.MarkupLineInterpolated($"monitoring [bold]{name}[/] ({pid}), DirectPmem counters every {interval} s{(duration <= 0 ? "; Ctrl+C to stop" : "")}");
            }
            if (asJson || Console.IsOutputRedirected)
            {
                while (Running())
                {
                    CheckLoaded(session, start, firstWait, wait, pid, name);
                    await Delay(200, cancel).ConfigureAwait(false);
                }
            }
            else
            {
                await AnsiConsole.Live(Render(session, pid, name)).StartAsync(async context =>
                {
                    while (Running())
                    {
                        CheckLoaded(session, start, firstWait, wait, pid, name);
                        context.UpdateTarget(Render(session, pid, name));
                        await Delay(250, cancel).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
            }
            CheckLoaded(session, start, TimeSpan.Zero, wait, pid, name);
            IReadOnlyList<CounterValue> last = session.Snapshot();
            var report = new MonitorReport(pid, name, last.Select(v => new MonitorCounter(v.Provider, v.Name, v.DisplayName, v.Units, v.IsRate, v.Value)).ToArray());
            if (asJson)
            {
                JsonOutput.Write(report, ToolJsonContext.Default.MonitorReport);
            }
            else if (Console.IsOutputRedirected)
            {
                foreach (MonitorCounter c in report.Counters)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{c.Provider}\t{c.Name}\t{c.Value:0.##}{(c.IsRate ? "/s" : "")}\t{c.DisplayName}"));
                }
            }
            if (session.Ended && end is not null && DateTime.UtcNow < end && !cancel.IsCancellationRequested)
            {
                Console.Error.WriteLine($"dpmem: process {pid} exited.");
            }
            return 0;
        }
    }

    private static async Task Delay(int milliseconds, CancellationToken cancel)
    {
        try
        {
            await Task.Delay(milliseconds, cancel).ConfigureAwait(false);
        }
        catch (TaskCanceledException)
        {
            // Ctrl+C: the loop sees the token and ends with the last values.
        }
    }

    private static void CheckLoaded(CounterSession session, DateTime start, TimeSpan wait, int waitOption, int pid, string name)
    {
        if (session.Received == 0 && DateTime.UtcNow - start >= wait)
        {
            throw new ToolException($"process {pid} ({name}) published no DirectPmem counters in {(DateTime.UtcNow - start).TotalSeconds:0} s (--wait {waitOption} s; raise it on a slow machine): it has not loaded DirectPmem, or has not mapped anything yet (the \"DirectPmem\" EventSource is created with the first mapping).");
        }
    }

    private static Table Render(CounterSession session, int pid, string name)
    {
        var table = new Table().Title($"{Markup.Escape(name)} ({pid})").AddColumns("counter", "value", "");
        IReadOnlyList<CounterValue> values = session.Snapshot();
        if (values.Count == 0)
        {
            table.AddRow("[grey]waiting for the first counters...[/]", "", "");
        }
        string? group = null;
        foreach (CounterValue v in values)
        {
            if (v.Provider != group)
            {
                group = v.Provider;
                table.AddRow($"[bold]{Markup.Escape(group)}[/]", "", "");
            }
            string value = v.Units == "B" ? Sizes.Format((long)v.Value) : v.Value.ToString("0.##", CultureInfo.InvariantCulture);
            table.AddRow("  " + Markup.Escape(v.DisplayName), value, v.IsRate ? "/s" : "");
        }
        return table;
    }

    /// <summary>A process id, or the one .NET process whose executable or main assembly has that name.</summary>
    internal static (int Pid, string Name) Resolve(string target)
    {
        if (int.TryParse(target, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
        {
            try
            {
                using Process process = Process.GetProcessById(pid);
                return (pid, NameOf(pid, process.ProcessName));
            }
            catch (ArgumentException)
            {
                throw new ToolException($"there is no process with id {pid}.");
            }
        }
        var matches = new List<(int, string)>();
        foreach (int candidate in DiagnosticsClient.GetPublishedProcesses())
        {
            if (candidate == Environment.ProcessId)
            {
                continue;
            }
            try
            {
                using Process process = Process.GetProcessById(candidate);
                string main = NameOf(candidate, process.ProcessName);
                if (string.Equals(main, target, StringComparison.Ordinal) || string.Equals(process.ProcessName, target, StringComparison.Ordinal))
                {
                    matches.Add((candidate, main));
                }
            }
            catch (ArgumentException)
            {
                // It exited between the listing and the lookup.
            }
        }
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ToolException($"no running .NET process is named '{target}' (dpmem looks at the executable and the main assembly of processes with a diagnostics port)."),
            _ => throw new ToolException($"{matches.Count} .NET processes are named '{target}' ({string.Join(", ", matches.Select(m => m.Item1))}): give a process id."),
        };
    }

    // `dotnet app.dll` runs as "dotnet": name it after its main assembly, as dotnet-counters ps does.
    private static string NameOf(int pid, string processName)
    {
        try
        {
            string[] args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
            if (processName == "dotnet" && args.Length > 1 && args[1].EndsWith(".dll", StringComparison.Ordinal))
            {
                return Path.GetFileNameWithoutExtension(args[1]);
            }
        }
        catch (IOException)
        {
            // /proc/PID/cmdline is gone or unreadable: keep the kernel's name.
        }
        catch (UnauthorizedAccessException)
        {
            // Same.
        }
        return processName;
    }
}

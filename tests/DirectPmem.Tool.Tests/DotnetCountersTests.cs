using System.Diagnostics;
using System.Text.Json;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>The real dotnet-counters (installed from NuGet by the test) reads the DirectPmem counters of a child process.</summary>
[Collection(nameof(TimedChildProcesses))]
public sealed class DotnetCountersTests
{
    private const string Version = "10.0.750501";
    private static readonly Lazy<(string? Path, string Why)> s_tool = new(Install);

    [Fact]
    public void DotnetCountersCollectsThePersistRateOfAChildProcess()
    {
        (string? tool, string why) = s_tool.Value;
        Assert.SkipWhen(tool is null, why);
        using var child = new Child("persist");
        string output = Path.Combine(Path.GetTempPath(), $"dpmem-counters-{Guid.NewGuid():N}.json");
        try
        {
            var start = new ProcessStartInfo(tool!) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "collect", "-p", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--counters", "DirectPmem", "--refresh-interval", "1", "--format", "json", "-o", output, "--duration", "00:00:00:05" })
            {
                start.ArgumentList.Add(arg);
            }
            (int code, string stdout, string stderr) = Dpmem.Wait(start, null, TimeSpan.FromMinutes(5));
            Assert.True(code == 0, $"dotnet-counters exited {code}: {stdout} {stderr}");
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(output));
            JsonElement[] events = doc.RootElement.GetProperty("Events").EnumerateArray()
                .Where(e => e.GetProperty("provider").GetString() == "DirectPmem").ToArray();
            Assert.NotEmpty(events);
            Assert.Contains(events, e => e.GetProperty("name").GetString()!.StartsWith("Persists", StringComparison.Ordinal) && e.GetProperty("value").GetDouble() > 0);
            Assert.Contains(events, e => e.GetProperty("name").GetString()!.StartsWith("Open mappings", StringComparison.Ordinal) && e.GetProperty("value").GetDouble() >= 1);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public void DotnetCountersCollectsTheStorageCountersOfAChildThatAppendsAndCommits()
    {
        (string? tool, string why) = s_tool.Value;
        Assert.SkipWhen(tool is null, why);
        using var child = new Child("storage");
        string output = Path.Combine(Path.GetTempPath(), $"dpmem-counters-{Guid.NewGuid():N}.json");
        try
        {
            var start = new ProcessStartInfo(tool!) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "collect", "-p", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--counters", "DirectPmem.Storage", "--refresh-interval", "1", "--format", "json", "-o", output, "--duration", "00:00:00:05" })
            {
                start.ArgumentList.Add(arg);
            }
            (int code, string stdout, string stderr) = Dpmem.Wait(start, null, TimeSpan.FromMinutes(5));
            Assert.True(code == 0, $"dotnet-counters exited {code}: {stdout} {stderr}");
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(output));
            JsonElement[] events = doc.RootElement.GetProperty("Events").EnumerateArray()
                .Where(e => e.GetProperty("provider").GetString() == "DirectPmem.Storage").ToArray();
            Assert.NotEmpty(events);
            bool Positive(string name) => events.Any(e => e.GetProperty("name").GetString()!.StartsWith(name, StringComparison.Ordinal) && e.GetProperty("value").GetDouble() > 0);
            Assert.True(Positive("Log appends"), File.ReadAllText(output));
            Assert.True(Positive("Log tail-word persists"), File.ReadAllText(output));
            Assert.True(Positive("Log records per tail-word persist"), File.ReadAllText(output));
            Assert.True(Positive("Transactions committed"), File.ReadAllText(output));
            Assert.True(Positive("Transactions aborted"), File.ReadAllText(output));
        }
        finally
        {
            File.Delete(output);
        }
    }

    // dotnet tool install --tool-path: into the test output folder, once per run.
    private static (string? Path, string Why) Install()
    {
        string dir = Path.Combine(AppContext.BaseDirectory, "dotnet-counters-" + Version);
        string tool = Path.Combine(dir, "dotnet-counters");
        if (File.Exists(tool))
        {
            return (tool, "");
        }
        var start = new ProcessStartInfo(DotnetHost.Path) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { "tool", "install", "dotnet-counters", "--version", Version, "--tool-path", dir })
        {
            start.ArgumentList.Add(arg);
        }
        (int code, string stdout, string stderr) = Dpmem.Wait(start, null, TimeSpan.FromSeconds(300));
        return code == 0 && File.Exists(tool) ? (tool, "") : (null, $"dotnet-counters {Version} could not be installed from NuGet (exit {code}): {(stdout + stderr).Trim()}");
    }
}

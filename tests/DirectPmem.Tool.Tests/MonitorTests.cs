using System.Text.Json;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

[Collection(nameof(TimedChildProcesses))]
public sealed class MonitorTests
{
    [Fact]
    public void MonitorShowsTheCountersOfAProcessThatPersistsInALoop()
    {
        using var child = new Child("persist");
        (int code, string output, string error) = Dpmem.Run("monitor", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "4", "--json");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Equal(child.Id, doc.RootElement.GetProperty("process_id").GetInt32());
        Dictionary<string, JsonElement> counters = doc.RootElement.GetProperty("counters").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.True(counters["persists"].GetProperty("is_rate").GetBoolean());
        Assert.True(counters["persists"].GetProperty("value").GetDouble() > 0, output);
        Assert.True(counters["bytes-copied"].GetProperty("value").GetDouble() > 0, output);
        Assert.True(counters["open-mappings"].GetProperty("value").GetDouble() >= 1, output);
        Assert.True(counters["mapped-bytes-4k"].GetProperty("value").GetDouble() >= 2 << 20, output);
        Assert.Equal(0, counters["msyncs"].GetProperty("value").GetDouble());
    }

    [Fact]
    public void MonitorShowsTheStorageCountersBesideTheCoreOnes()
    {
        using var child = new Child("storage");
        (int code, string output, string error) = Dpmem.Run("monitor", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "4", "--json");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement[] counters = doc.RootElement.GetProperty("counters").EnumerateArray().ToArray();
        double Value(string provider, string name) => counters.Single(c => c.GetProperty("provider").GetString() == provider && c.GetProperty("name").GetString() == name).GetProperty("value").GetDouble();
        Assert.True(Value("DirectPmem.Storage", "log-appends") > 0, output);
        Assert.True(Value("DirectPmem.Storage", "log-publishes") > 0, output);
        Assert.True(Value("DirectPmem.Storage", "log-bytes-appended") > 0, output);
        // The tail word is persisted lazily (log format v3): each persist covers many records.
        Assert.True(Value("DirectPmem.Storage", "log-batch-size") > 1.0, output);
        Assert.True(Value("DirectPmem.Storage", "tx-commits") > 0, output);
        Assert.True(Value("DirectPmem.Storage", "tx-aborts") > 0, output);
        // The core's group is there too: the log and the transactions persist through it.
        Assert.True(Value("DirectPmem", "persists") + Value("DirectPmem", "drains") > 0, output);
        Assert.Equal("DirectPmem", counters[0].GetProperty("provider").GetString());
    }

    [Fact]
    public void WithTheCountersCompiledOutTheStorageSourceReportsNothing()
    {
        using var child = new Child("storage", new Dictionary<string, string> { ["DIRECTPMEM_COUNTERS"] = "0" });
        (int code, string output, string error) = Dpmem.Run("monitor", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "3", "--json");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement[] storage = doc.RootElement.GetProperty("counters").EnumerateArray()
            .Where(c => c.GetProperty("provider").GetString() == "DirectPmem.Storage").ToArray();
        // The source exists (the child has a log and a heap) but counts nothing: the switch removed the counting.
        Assert.Contains(storage, c => c.GetProperty("name").GetString() == "log-appends");
        Assert.All(storage, c => Assert.Equal(0, c.GetProperty("value").GetDouble()));
    }

    [Fact]
    public void MonitorFindsTheProcessByTheNameOfItsMainAssembly()
    {
        using var child = new Child("persist");
        (int code, string output, string error) = Dpmem.Run("monitor", "DirectPmem.Tool.TestChild", "--duration", "3", "--json");
        if (code != 0 && error.Contains("processes are named", StringComparison.Ordinal))
        {
            Assert.Skip("another test child runs at the same time: the name is ambiguous");
        }
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Equal(child.Id, doc.RootElement.GetProperty("process_id").GetInt32());
        Assert.Equal("DirectPmem.Tool.TestChild", doc.RootElement.GetProperty("process_name").GetString());
    }

    [Fact]
    public void MonitorSaysSoWhenTheProcessHasNotLoadedDirectPmem()
    {
        using var child = new Child("idle");
        (int code, _, string error) = Dpmem.Run("monitor", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "10", "--wait", "3", "--json");
        Assert.Equal(1, code);
        Assert.Contains("has not loaded DirectPmem", error, StringComparison.Ordinal);
        Assert.Contains("--wait 3 s", error, StringComparison.Ordinal); // the message names the option that bounds the wait
    }

    [Fact]
    public void MonitorSaysSoWhenTheProcessDoesNotExist()
    {
        (int code, _, string error) = Dpmem.Run("monitor", "2147483646", "--duration", "1", "--json");
        Assert.Equal(1, code);
        Assert.Contains("no process with id 2147483646", error, StringComparison.Ordinal);

        (code, _, error) = Dpmem.Run("monitor", "no-such-dotnet-process", "--duration", "1", "--json");
        Assert.Equal(1, code);
        Assert.Contains("no running .NET process is named 'no-such-dotnet-process'", error, StringComparison.Ordinal);
    }
}

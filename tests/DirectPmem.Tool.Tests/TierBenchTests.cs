using System.Text.Json;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary>
/// <c>dpmem bench --tiers</c> on this machine's own nodes (asked from sysfs) and on the tiers fixture
/// (CPU node 0 and memory nodes there are not this machine's: placement on them is refused). It
/// checks the table's shape and its refusals, never a speed.
/// </summary>
[Collection(nameof(TimedChildProcesses))]
public sealed class TierBenchTests
{
    private static readonly string s_tiers = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
        "..", "..", "..", "..", "tests", "DirectPmem.Tests", "Fixtures", "sysfs", "tiers"));

    [Fact]
    public void QuickTierBenchMeasuresEveryMemoryNodeFromEveryCpuNodeBesideHmat()
    {
        const string hasCpu = "/sys/devices/system/node/has_cpu";
        Assert.SkipUnless(File.Exists(hasCpu), $"{hasCpu} does not exist: the kernel has no NUMA nodes to measure.");
        (int code, string output, string error) = Dpmem.Run("bench", "--tiers", "--quick");
        Assert.True(code == 0, error);
        Assert.Contains("machine: ", output, StringComparison.Ordinal);
        Assert.Contains("quick mode: a smoke test", output, StringComparison.Ordinal);
        string[] rows = output.Split('\n').Where(l => l.StartsWith("│ node", StringComparison.Ordinal)).ToArray();
        // One row per (CPU node, memory node) pair, as sysfs lists them.
        int cpuNodes = CountNodes(File.ReadAllText(hasCpu));
        int memoryNodes = CountNodes(File.ReadAllText("/sys/devices/system/node/has_memory"));
        Assert.Equal(cpuNodes * memoryNodes, rows.Length);
        foreach (string row in rows)
        {
            string[] cells = row.Split('│', StringSplitOptions.TrimEntries).Where(c => c.Length > 0).ToArray();
            Assert.Equal(10, cells.Length);
            Assert.True(double.Parse(cells[2], System.Globalization.CultureInfo.InvariantCulture) > 0, row);
            Assert.Contains(cells[9], new[] { "no HMAT", "within 2x" }.Concat([cells[9].StartsWith("DISAGREES: ", StringComparison.Ordinal) ? cells[9] : "?"]));
        }
    }

    [Fact]
    public void TierBenchOnNodesThisMachineDoesNotHaveIsATypedPlacementError()
    {
        // The fixture's memory nodes 2 and 4 are not this machine's (unless it has them): binding to them is refused by the kernel or by the node check.
        (int code, _, string error) = Dpmem.Run("bench", "--tiers", "--quick", "--sysfs", s_tiers);
        if (code == 0)
        {
            Assert.Skip("this machine has the fixture's nodes 0 and 2 with memory, so the fixture's bench ran on real nodes.");
        }
        Assert.Equal(1, code);
        string last = error.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.StartsWith("dpmem: MemoryPlacementException: NUMA node ", last, StringComparison.Ordinal);
        Assert.Contains("the nodes are: node0", last, StringComparison.Ordinal);
    }

    [Fact]
    public void TierBenchJsonHasTheTableRowsAndTheRunParameters()
    {
        const string hasCpu = "/sys/devices/system/node/has_cpu";
        Assert.SkipUnless(File.Exists(hasCpu), $"{hasCpu} does not exist: the kernel has no NUMA nodes to measure.");
        (int code, string output, string error) = Dpmem.Run("bench", "--tiers", "--quick", "--json");
        Assert.True(code == 0, error);
        // stdout is the JSON document alone; progress went to stderr.
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.True(root.GetProperty("quick").GetBoolean());
        Assert.Equal(2, root.GetProperty("passes").GetInt32());
        Assert.Equal(200_000, root.GetProperty("dependent_loads").GetInt64());
        Assert.True(root.GetProperty("working_set_bytes").GetInt64() >= 32L << 20);
        Assert.False(string.IsNullOrEmpty(root.GetProperty("machine").GetProperty("kernel").GetString()));
        Assert.Contains("dpmem bench --tiers: ", error, StringComparison.Ordinal);
        JsonElement[] rows = root.GetProperty("rows").EnumerateArray().ToArray();
        int cpuNodes = CountNodes(File.ReadAllText(hasCpu));
        int memoryNodes = CountNodes(File.ReadAllText("/sys/devices/system/node/has_memory"));
        Assert.Equal(cpuNodes * memoryNodes, rows.Length);
        foreach (JsonElement row in rows)
        {
            Assert.StartsWith("node", row.GetProperty("from").GetString(), StringComparison.Ordinal);
            Assert.StartsWith("node", row.GetProperty("to").GetString(), StringComparison.Ordinal);
            Assert.True(row.GetProperty("latency_ns").GetDouble() > 0, row.ToString());
            Assert.True(row.GetProperty("read_m_bps").GetDouble() > 0, row.ToString());
            Assert.True(row.GetProperty("write_m_bps").GetDouble() > 0, row.ToString());
            string check = row.GetProperty("check").GetString()!;
            int disagreements = row.GetProperty("disagreements").GetArrayLength();
            // The check says what the other fields say: no HMAT class, or agreement, or the disagreements listed.
            if (!row.TryGetProperty("hmat_class", out _))
            {
                Assert.Equal("no HMAT", check);
            }
            else
            {
                Assert.Equal(disagreements == 0 ? "within 2x" : "DISAGREES: ", disagreements == 0 ? check : check[..11]);
            }
        }
    }

    private static int CountNodes(string list)
    {
        int count = 0;
        foreach (string part in list.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] ends = part.Split('-');
            count += int.Parse(ends[^1], System.Globalization.CultureInfo.InvariantCulture) - int.Parse(ends[0], System.Globalization.CultureInfo.InvariantCulture) + 1;
        }
        return count;
    }
}

using System.Text.Json;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary><c>dpmem list --tiers</c> (table and <c>--json</c>) on the tiers fixture tree.</summary>
public sealed class TierListTests
{
    private static readonly string s_fixtures = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
        "..", "..", "..", "..", "tests", "DirectPmem.Tests", "Fixtures", "sysfs"));

    private static string Tree(string name) => Path.Combine(s_fixtures, name);

    [Fact]
    public void TierTableGroupsDevicesByTierAndNodeWithKindPersistenceHmatModeAndBlocks()
    {
        (int code, string output, string error) = Dpmem.Run("list", "--tiers", "--sysfs", Tree("tiers"));
        Assert.Equal(0, code);
        Assert.Equal("", error);
        string[] rows = output.Split('\n').Where(l => l.Contains("dax", StringComparison.Ordinal)).ToArray();
        Assert.Equal(4, rows.Length);
        string[][] cells = rows.Select(r => r.Split('│', StringSplitOptions.TrimEntries).Where(c => c.Length > 0).ToArray()).ToArray();
        Assert.Equal(["4", "0", "dax0.0", "nvdimm", "persistent", "devdax", "502 MiB", "-", "-", "-"], cells[0]);
        Assert.Equal(["22", "2", "dax1.0", "hmem", "volatile", "system-ram", "256 MiB", "250/300, 8000/6000", "-", "1/2 online"], cells[1]);
        Assert.Equal(["-", "3", "dax2.0", "cxl region2 (ram)", "volatile", "devdax", "256 MiB", "170/180, 24000/20000", "190/200, 22000/18000", "-"], cells[2]);
        Assert.Equal(["-", "4", "dax3.0", "cxl region3 (pmem)", "persistent", "devdax", "510 MiB", "350/500, 12000/4000", "380/520, 11000/3500", "-"], cells[3]);
        Assert.Contains("memory_tier4: nodes 0 (abstract distance 4096-5119)", output, StringComparison.Ordinal);
        Assert.Contains("memory_tier22: nodes 2 (abstract distance 22528-23551)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void TierJsonCarriesTheSameFieldsWithNullForWhatTheNodeDoesNotReport()
    {
        (int code, string output, _) = Dpmem.Run("list", "--tiers", "--json", "--sysfs", Tree("tiers"));
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement tiers = doc.RootElement.GetProperty("tiers");
        Assert.Equal([4, 22], tiers.EnumerateArray().Select(t => t.GetProperty("id").GetInt32()));
        Assert.Equal(22528, tiers[1].GetProperty("abstract_distance_start").GetInt64());
        JsonElement[] devices = doc.RootElement.GetProperty("devices").EnumerateArray().ToArray();
        Assert.Equal(["dax0.0", "dax1.0", "dax2.0", "dax3.0"], devices.Select(d => d.GetProperty("chardev").GetString()));

        JsonElement nvdimm = devices[0];
        Assert.Equal("nvdimm", nvdimm.GetProperty("kind").GetString());
        Assert.Equal("persistent", nvdimm.GetProperty("persistence").GetString());
        Assert.Equal(4, nvdimm.GetProperty("tier").GetInt32());
        Assert.Equal(JsonValueKind.Null, nvdimm.GetProperty("access0").ValueKind);
        Assert.Equal(JsonValueKind.Null, nvdimm.GetProperty("access1").ValueKind);
        Assert.Equal("0x100a00000", nvdimm.GetProperty("mappings")[0].GetProperty("start").GetString());

        JsonElement hmem = devices[1];
        Assert.Equal("hmem", hmem.GetProperty("kind").GetString());
        Assert.Equal("system-ram", hmem.GetProperty("mode").GetString());
        Assert.Equal(2, hmem.GetProperty("target_node").GetInt32());
        Assert.Equal(250, hmem.GetProperty("access0").GetProperty("read_latency_ns").GetInt32());
        Assert.Equal(6000, hmem.GetProperty("access0").GetProperty("write_bandwidth_mbps").GetInt32());
        Assert.Equal(0, hmem.GetProperty("access0").GetProperty("initiators")[0].GetInt32());
        Assert.Equal(JsonValueKind.Null, hmem.GetProperty("access1").ValueKind);
        Assert.Equal(134217728, hmem.GetProperty("memory_block_size").GetInt64());
        JsonElement[] blocks = hmem.GetProperty("memory_blocks").EnumerateArray().ToArray();
        Assert.Equal([520L, 521L], blocks.Select(b => b.GetProperty("id").GetInt64()));
        Assert.Equal("0x1040000000", blocks[0].GetProperty("start").GetString());
        Assert.True(blocks[0].GetProperty("online").GetBoolean());
        Assert.Equal("offline", blocks[1].GetProperty("state").GetString());
        Assert.Equal(["Normal", "Movable"], blocks[1].GetProperty("valid_zones").EnumerateArray().Select(z => z.GetString()));

        JsonElement cxlRam = devices[2];
        Assert.Equal("cxl", cxlRam.GetProperty("kind").GetString());
        Assert.Equal(JsonValueKind.Null, cxlRam.GetProperty("tier").ValueKind);
        Assert.Equal("region2", cxlRam.GetProperty("cxl_region").GetProperty("name").GetString());
        Assert.Equal("decoder0.0", cxlRam.GetProperty("cxl_region").GetProperty("root_decoder").GetString());
        Assert.Equal("ram", cxlRam.GetProperty("cxl_region").GetProperty("mode").GetString());
        Assert.Equal("cxl_dax_region", cxlRam.GetProperty("provider_driver").GetString());
        Assert.Equal(200, cxlRam.GetProperty("access1").GetProperty("write_latency_ns").GetInt32());

        JsonElement cxlPmem = devices[3];
        Assert.Equal("persistent", cxlPmem.GetProperty("persistence").GetString());
        Assert.Equal("pmem", cxlPmem.GetProperty("cxl_region").GetProperty("mode").GetString());
        Assert.Equal("region3", cxlPmem.GetProperty("region").GetString());

        JsonElement[] regions = doc.RootElement.GetProperty("regions").EnumerateArray().ToArray();
        Assert.Equal(["region0", "region3"], regions.Select(r => r.GetProperty("dev").GetString()));
        Assert.Equal("nvdimm", regions[0].GetProperty("kind").GetString());
        Assert.Equal("ndbus0", regions[0].GetProperty("provider").GetString());
        Assert.Equal(4, regions[0].GetProperty("tier").GetInt32());
        Assert.Equal("cxl", regions[1].GetProperty("kind").GetString());
        Assert.Equal("persistent", regions[1].GetProperty("persistence").GetString());
        Assert.Equal("decoder0.1", regions[1].GetProperty("cxl_region").GetProperty("root_decoder").GetString());
        Assert.Equal(4, regions[1].GetProperty("target_node").GetInt32());
        Assert.Equal(JsonValueKind.Null, regions[1].GetProperty("tier").ValueKind);
    }

    [Fact]
    public void TierTableOfATreeWithoutTiersSaysSoAndShowsUnknownBlocks()
    {
        (int code, string output, _) = Dpmem.Run("list", "--tiers", "--sysfs", Tree("good"));
        Assert.Equal(0, code);
        Assert.Contains("no memory tiers", output, StringComparison.Ordinal);
        string hmem = Assert.Single(output.Split('\n'), l => l.Contains("dax1.0", StringComparison.Ordinal));
        Assert.Contains("hmem", hmem, StringComparison.Ordinal);
        Assert.Contains("unknown", hmem, StringComparison.Ordinal);
    }

    [Fact]
    public void TierJsonOfTheRunningKernelSucceedsWithOrWithoutTiersAndDevices()
    {
        (int code, string output, string error) = Dpmem.Run("list", "--tiers", "--json");
        Assert.Equal(0, code);
        Assert.DoesNotContain("memory_tier", error, StringComparison.Ordinal);
        using JsonDocument doc = JsonDocument.Parse(output);
        // What the machine has is its own business; what it reports must be the kernel's shape.
        foreach (JsonElement tier in doc.RootElement.GetProperty("tiers").EnumerateArray())
        {
            Assert.True(tier.GetProperty("id").GetInt32() >= 0);
            Assert.All(tier.GetProperty("nodes").EnumerateArray(), n => Assert.True(n.GetInt32() >= 0));
        }
        Assert.Equal(JsonValueKind.Array, doc.RootElement.GetProperty("devices").ValueKind);
    }
}

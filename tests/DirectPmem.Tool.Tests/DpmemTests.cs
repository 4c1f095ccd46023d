using System.Text.Json;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

public sealed class DpmemTests : IDisposable
{
    private static readonly string s_fixtures = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory,
        "..", "..", "..", "..", "tests", "DirectPmem.Tests", "Fixtures", "sysfs"));
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void VersionPrintsTheAssemblyVersion()
    {
        (int code, string output, _) = Dpmem.Run("--version");
        Assert.Equal(0, code);
        Assert.Matches(@"^\d+\.\d+\.\d+", output.Trim());
    }

    [Fact]
    public void ListJsonOfAFixtureTreeIsShapedLikeDaxctl()
    {
        Assert.True(Directory.Exists(s_fixtures), s_fixtures);
        (int code, string output, _) = Dpmem.Run("list", "--json", "--sysfs", Path.Combine(s_fixtures, "good"));
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement dax0 = doc.RootElement[0];
        Assert.Equal("dax0.0", dax0.GetProperty("chardev").GetString());
        Assert.Equal(526385152, dax0.GetProperty("size").GetInt64());
        Assert.Equal(0, dax0.GetProperty("target_node").GetInt32());
        Assert.Equal(2097152, dax0.GetProperty("align").GetInt64());
        Assert.Equal("devdax", dax0.GetProperty("mode").GetString());
        Assert.Equal("memory_controller", dax0.GetProperty("persistence_domain").GetString());
        Assert.False(dax0.TryGetProperty("emulated", out _), "null members are left out, as daxctl does");
        Assert.Equal("unknown", doc.RootElement[1].GetProperty("persistence_domain").GetString());
        Assert.False(doc.RootElement[1].TryGetProperty("region", out _));
    }

    [Fact]
    public void ListJsonWithRegionsNestsDevicesAndBadBlocks()
    {
        (int code, string output, _) = Dpmem.Run("list", "-R", "--json", "--sysfs", Path.Combine(s_fixtures, "good"));
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement region0 = doc.RootElement[0];
        Assert.Equal("region0", region0.GetProperty("dev").GetString());
        Assert.Equal(1048576, region0.GetProperty("badblocks")[0][0].GetInt64());
        Assert.Equal(4096, region0.GetProperty("badblocks")[0][1].GetInt64());
        Assert.Equal("dax0.0", region0.GetProperty("devices")[0].GetProperty("chardev").GetString());
        Assert.Equal("cpu_cache", doc.RootElement[1].GetProperty("persistence_domain").GetString());
        Assert.Equal("dax2.0", Assert.Single(doc.RootElement[1].GetProperty("devices").EnumerateArray()).GetProperty("chardev").GetString());
    }

    [Fact]
    public void ListOfABrokenTreeWarnsWithTheFileAndTheRule()
    {
        (int code, _, string error) = Dpmem.Run("list", "--sysfs", Path.Combine(s_fixtures, "missing-size"));
        Assert.Equal(0, code);
        Assert.Contains("dax0.0/size", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ListOfTheRunningKernelSucceedsWithOrWithoutDevices()
    {
        (int code, string output, _) = Dpmem.Run("list", "--json");
        Assert.Equal(0, code);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(output).RootElement.ValueKind);
    }

    [Fact]
    public void CreateThenInfoReportsTheGeometryGranularityAndLabelTable()
    {
        // The temporary directory may be a tmpfs or DAX: "Page" is only the answer on a directory that proved it is page cache.
        (string? pageCache, string why) = PageCacheProbe.Found;
        Assert.SkipWhen(pageCache is null, why);
        string dir = Path.Combine(pageCache!, "dpmem-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            CreateThenInfo(Path.Combine(dir, "dev.dax"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void CreateThenInfo(string path)
    {
        (int code, string output, _) = Dpmem.Run("create", path, "--size", "8M", "--align", "2M", "--labels");
        Assert.Equal(0, code);
        Assert.Contains("8 MiB", output, StringComparison.Ordinal);

        (code, output, _) = Dpmem.Run("info", path, "--json");
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.Equal(8L << 20, root.GetProperty("size").GetInt64());
        Assert.Equal(2L << 20, root.GetProperty("align").GetInt64());
        Assert.True(root.GetProperty("emulated").GetBoolean());
        // An ordinary file: the page cache, made durable with msync.
        Assert.Equal("Page", root.GetProperty("granularity").GetString());
        Assert.Equal(2L << 20, root.GetProperty("label_area_length").GetInt64());
        JsonElement[] slots = root.GetProperty("label_slots").EnumerateArray().ToArray();
        Assert.Equal(2, slots.Length);
        Assert.Single(slots, s => s.GetProperty("published").GetBoolean());
        Assert.All(slots, s => Assert.Empty(s.GetProperty("problems").EnumerateArray()));
        Assert.StartsWith("slot ", root.GetProperty("label_table").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void InfoLaysItsTextOutInTheWidthThatColumnsGives()
    {
        string path = Path.Combine(_dir, "a-device-with-a-name-long-enough-to-wrap-at-sixty-columns.dax");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M").Code);

        (int code, string narrow, _) = Dpmem.RunWithColumns("60", null, "info", path);
        Assert.Equal(0, code);
        string[] narrowLines = narrow.Split('\n');
        Assert.All(narrowLines, line => Assert.True(line.TrimEnd().Length <= 60, $"wider than COLUMNS=60: '{line}'"));
        Assert.DoesNotContain(narrowLines, line => line.Contains(path, StringComparison.Ordinal));

        (code, string wide, _) = Dpmem.RunWithColumns("300", null, "info", path);
        Assert.Equal(0, code);
        Assert.Contains(wide.Split('\n'), line => line.StartsWith("path ", StringComparison.Ordinal) && line.TrimEnd().EndsWith(path, StringComparison.Ordinal));

        // Not a number: ignored, as an unset COLUMNS is (redirected output is laid out 160 wide).
        (code, string ignored, _) = Dpmem.RunWithColumns("wide", null, "info", path);
        Assert.Equal(0, code);
        Assert.Contains(ignored.Split('\n'), line => line.StartsWith("path ", StringComparison.Ordinal) && line.TrimEnd().EndsWith(path, StringComparison.Ordinal));
    }

    [Fact]
    public void CreatingTwiceFailsWithOneLineOnStandardErrorNamingTheErrno()
    {
        string path = Path.Combine(_dir, "dev.dax");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M").Code);
        (int code, string output, string error) = Dpmem.Run("create", path, "--size", "8M");
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.StartsWith("dpmem: ", error, StringComparison.Ordinal);
        Assert.Contains("EEXIST", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void VerboseAddsTheStackTrace()
    {
        (int code, _, string error) = Dpmem.Run("info", Path.Combine(_dir, "missing.dax"), "--verbose");
        Assert.Equal(1, code);
        Assert.Contains("ENOENT", error, StringComparison.Ordinal);
        Assert.Contains("   at ", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--size", "7M", "--align", "2M")]
    [InlineData("--size", "lots", "--align", "2M")]
    [InlineData("--size", "8M", "--align", "64K")]
    public void CreateRefusesBadGeometryWithAnError(params string[] options)
    {
        string path = Path.Combine(_dir, "bad.dax");
        (int code, _, string error) = Dpmem.Run(["create", path, .. options]);
        Assert.Equal(1, code);
        Assert.StartsWith("dpmem:", error, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void ACharacterDeviceIsRecognisedByItsTypeAndSysfsSubsystemNotItsPath()
    {
        // /dev/null is a character device (1:3) whose subsystem is "mem": refused as not device-DAX,
        // not misread as an emulated device file.
        Assert.SkipUnless(File.Exists("/sys/dev/char/1:3/subsystem") || Directory.Exists("/sys/dev/char/1:3"), "/sys/dev/char/1:3 is not visible here");
        (int code, _, string error) = Dpmem.Run("info", "/dev/null");
        Assert.Equal(1, code);
        Assert.Contains("'mem'", error, StringComparison.Ordinal);
        Assert.Contains("not 'dax'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ACharacterDeviceUnknownToTheGivenSysfsTreeIsRefused()
    {
        (int code, _, string error) = Dpmem.Run("info", "/dev/null", "--sysfs", Path.Combine(s_fixtures, "good"));
        Assert.Equal(1, code);
        Assert.Contains("1:3", error, StringComparison.Ordinal);
    }

    [Fact]
    public void PlatformJsonNamesTheFlushInstructionThisCpuHas()
    {
        (int code, string output, _) = Dpmem.Run("platform", "--json");
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        string[] flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal)).Split(':')[1]
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        bool Off(string variable) => Environment.GetEnvironmentVariable(variable) == "1";
        string expected = flags.Contains("clwb") && !Off("DIRECTPMEM_NO_CLWB") ? "Clwb"
            : flags.Contains("clflushopt") && !Off("DIRECTPMEM_NO_CLFLUSHOPT") ? "ClflushOpt"
            : "Clflush";
        if (Off("DIRECTPMEM_NO_GENERATED_CODE"))
        {
            expected = "None";
        }
        Assert.Equal(expected, doc.RootElement.GetProperty("flush_instruction").GetString());
        Assert.Equal(flags.Contains("avx512f") ? 512 : flags.Contains("avx2") ? 256 : 128, doc.RootElement.GetProperty("vector_bits").GetInt32());
    }
}

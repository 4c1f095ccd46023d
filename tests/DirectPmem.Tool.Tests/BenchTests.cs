using System.Runtime.InteropServices;
using System.Text.Json;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

// The bench tests time things: they run one at a time so that they do not load each other.
[Collection(nameof(TimedChildProcesses))]
public sealed class BenchTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-bench-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void QuickJsonHasEveryOperationSizeAndContenderWithMediansSpreadRatiosAndTheLogAppendRate()
    {
        (int code, string output, string error) = Dpmem.Run("bench", "--quick", "--json", "--counters");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement root = doc.RootElement;
        Assert.Equal("quick", root.GetProperty("mode").GetString());
        Assert.Equal(3, root.GetProperty("rounds").GetInt32());
        JsonElement target = root.GetProperty("target");
        Assert.Equal("memfd", target.GetProperty("kind").GetString());
        Assert.True(target.GetProperty("forced_cache_line").GetBoolean());
        Assert.Contains("forced cache-line", target.GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.NotEqual("", root.GetProperty("machine").GetProperty("cpu_model").GetString());

        JsonElement[] results = root.GetProperty("results").EnumerateArray().ToArray();
        Assert.Equal([8L, 64L], results.Where(r => r.GetProperty("operation").GetString() == "persist").Select(r => r.GetProperty("bytes").GetInt64()));
        foreach (string destination in new[] { "fixed", "cold" })
        {
            Assert.Equal([64L, 4096L, 65536L, 1L << 20, 16L << 20], results
                .Where(r => r.GetProperty("operation").GetString() == "copy-persist" && r.GetProperty("destination").GetString() == destination)
                .Select(r => r.GetProperty("bytes").GetInt64()));
        }
        foreach (JsonElement result in results.Where(r => r.GetProperty("operation").GetString() != "log-append"))
        {
            JsonElement[] contenders = result.GetProperty("contenders").EnumerateArray().ToArray();
            Assert.Equal("DirectPmem", contenders[0].GetProperty("name").GetString());
            Assert.Contains(contenders, c => c.GetProperty("name").GetString()!.StartsWith("msync", StringComparison.Ordinal) || c.GetProperty("name").GetString() == "memcpy + msync");
            Assert.Contains(contenders, c => c.GetProperty("name").GetString() == "DirectPmem + listener");
            Assert.Contains(contenders, c => c.GetProperty("name").GetString()!.StartsWith("floor", StringComparison.Ordinal));
            if (result.GetProperty("operation").GetString() == "copy-persist")
            {
                Assert.Contains(contenders, c => c.GetProperty("name").GetString() == "Buffer.MemoryCopy");
            }
            foreach (JsonElement c in contenders)
            {
                double median = c.GetProperty("median_ns").GetDouble();
                Assert.True(median > 0, $"{result} {c}");
                Assert.True(c.GetProperty("min_ns").GetDouble() <= median && median <= c.GetProperty("max_ns").GetDouble());
                Assert.Equal(3, c.GetProperty("rounds_ns").GetArrayLength());
            }
            JsonElement[] ratios = result.GetProperty("ratios").EnumerateArray().ToArray();
            Assert.Equal(contenders.Length - 1, ratios.Length);
            Assert.All(ratios, r =>
            {
                double[] ordered = new[] { "min", "p25", "median", "p75", "max" }.Select(k => r.GetProperty(k).GetDouble()).ToArray();
                Assert.True(ordered[0] > 0, r.ToString());
                Assert.Equal(ordered.Order(), ordered);
            });
        }
        AssertLogAppendRows(doc);
    }

    // Part of the quick run above (one run of the tool for both): the log append rows.
    private static void AssertLogAppendRows(JsonDocument doc)
    {
        Assert.True(doc.RootElement.GetProperty("storage_counters_supported").GetBoolean());
        JsonElement[] logs = doc.RootElement.GetProperty("results").EnumerateArray().Where(r => r.GetProperty("operation").GetString() == "log-append").ToArray();
        Assert.Equal([64L, 1024L], logs.Select(r => r.GetProperty("bytes").GetInt64()));
        foreach (JsonElement result in logs)
        {
            long bytes = result.GetProperty("bytes").GetInt64();
            JsonElement[] contenders = result.GetProperty("contenders").EnumerateArray().ToArray();
            Assert.Equal(["DirectPmem", "DirectPmem + listener"], contenders.Select(c => c.GetProperty("name").GetString()));
            foreach (JsonElement c in contenders)
            {
                double ns = c.GetProperty("median_ns").GetDouble();
                double ops = c.GetProperty("median_ops_per_second").GetDouble();
                double mbps = c.GetProperty("median_m_bps").GetDouble();
                Assert.True(ns > 0 && ops > 0 && mbps > 0, c.ToString());
                Assert.Equal(1e9 / ns, ops, 1e9 / ns * 0.01);
                Assert.Equal(bytes / ns * 1e3, mbps, bytes / ns * 1e3 * 0.02 + 0.01);
            }
            JsonElement[] latency = result.GetProperty("latency").EnumerateArray().ToArray();
            Assert.Equal(2, latency.Length);
            Assert.All(latency, l =>
            {
                Assert.True(l.GetProperty("p50_ns").GetDouble() > 0, l.ToString());
                Assert.True(l.GetProperty("p99_ns").GetDouble() >= l.GetProperty("p50_ns").GetDouble(), l.ToString());
                Assert.True(l.GetProperty("samples").GetInt64() > 0);
            });
            Assert.Equal("DirectPmem + listener", Assert.Single(result.GetProperty("ratios").EnumerateArray()).GetProperty("versus").GetString());
        }
    }

    [Fact]
    public void CompareLibPmemLogPutsPmemlogAppendBesideTheLogAppend()
    {
        Assert.SkipUnless(NativeLibrary.TryLoad("libpmemlog.so.1", out nint handle) && Free(handle), "libpmemlog.so.1 is not installed (bench/setup-pmdk.sh installs it)");
        (int code, string output, string error) = Dpmem.Run("bench", "--quick", "--json", "--compare", "libpmemlog");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Contains("PMEM_IS_PMEM_FORCE=1", doc.RootElement.GetProperty("lib_pmem_log").GetString(), StringComparison.Ordinal);
        JsonElement[] logs = doc.RootElement.GetProperty("results").EnumerateArray().Where(r => r.GetProperty("operation").GetString() == "log-append").ToArray();
        Assert.Equal(2, logs.Length);
        Assert.All(logs, r =>
        {
            JsonElement pmemlog = Assert.Single(r.GetProperty("contenders").EnumerateArray(), c => c.GetProperty("name").GetString() == "pmemlog_append");
            Assert.True(pmemlog.GetProperty("median_ops_per_second").GetDouble() > 0);
            Assert.Contains(r.GetProperty("latency").EnumerateArray(), l => l.GetProperty("name").GetString() == "pmemlog_append");
            Assert.True(Assert.Single(r.GetProperty("ratios").EnumerateArray()).GetProperty("median").GetDouble() > 0);
        });
    }

    [Fact]
    public void CompareLibPmemAddsItAndSaysWhichInstructionSetItUses()
    {
        Assert.SkipUnless(NativeLibrary.TryLoad("libpmem.so.1", out nint handle) && Free(handle), "libpmem.so.1 is not installed (bench/setup-pmdk.sh installs it)");
        (int code, string output, string error) = Dpmem.Run("bench", "--quick", "--json", "--compare", "libpmem");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        // Ask the machine what libpmem will choose (it reads CPUID, as the kernel's flags do), never assume AVX-512.
        string description = doc.RootElement.GetProperty("lib_pmem").GetString()!;
        string expected = Environment.GetEnvironmentVariable("PMEM_AVX512F") == "0" ? "(PMEM_AVX512F=0)"
            : CpuInfoHasAvx512F() ? "AVX-512F non-temporal stores"
            : "the CPU has no AVX-512F";
        Assert.Contains(expected, description, StringComparison.Ordinal);
        Assert.All(doc.RootElement.GetProperty("results").EnumerateArray().Where(r => r.GetProperty("operation").GetString() != "log-append"),
            r => Assert.Contains(r.GetProperty("ratios").EnumerateArray(), x => x.GetProperty("versus").GetString() == "libpmem"));
    }

    [Fact]
    public void AnEmulatedDeviceIsBenchmarkedInForcedCacheLineModeOnlyWithOverwrite()
    {
        string path = Path.Combine(_dir, "dev.emu");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "96M").Code);
        (int code, _, string error) = Dpmem.Run("bench", path, "--quick", "--json");
        Assert.Equal(1, code);
        Assert.Contains("--overwrite", error, StringComparison.Ordinal);

        (code, string output, error) = Dpmem.Run("bench", path, "--quick", "--json", "--overwrite");
        Assert.True(code == 0, error);
        using JsonDocument doc = JsonDocument.Parse(output);
        JsonElement target = doc.RootElement.GetProperty("target");
        Assert.Equal("emulated", target.GetProperty("kind").GetString());
        Assert.True(target.GetProperty("forced_cache_line").GetBoolean());
        long mapped = target.GetProperty("mapped_bytes").GetInt64();
        Assert.InRange(mapped, 32L << 20, 96L << 20);
        // The descriptor after the data was not written over.
        Assert.Equal(0, Dpmem.Run("info", path).Code);
    }

    private static bool CpuInfoHasAvx512F()
        => File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags", StringComparison.Ordinal))
            .Split([' ', '\t', ':'], StringSplitOptions.RemoveEmptyEntries).Contains("avx512f");

    private static bool Free(nint handle)
    {
        NativeLibrary.Free(handle);
        return true;
    }
}

[CollectionDefinition(nameof(TimedChildProcesses), DisableParallelization = true)]
public sealed class TimedChildProcesses;

using System.Diagnostics;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Tests.Persistence;

/// <summary>
/// The DIRECTPMEM_* overrides are read once per process, so each case runs this test assembly
/// again in a child process with the variables set, running only <see cref="Probe"/>, which
/// writes what the persistence layer decided to a file the parent reads.
/// </summary>
public sealed class EnvironmentOverrideTests
{
    private const string ProbeOutputVariable = "DIRECTPMEM_TEST_PROBE_OUTPUT";

    private static readonly string[] s_variables =
    [
        PersistenceSettings.NoClwbVariable, PersistenceSettings.NoClflushOptVariable, PersistenceSettings.NoFlushVariable,
        PersistenceSettings.ForceGranularityVariable, PersistenceSettings.NoMovntVariable, PersistenceSettings.MovntThresholdVariable,
        PersistenceSettings.NoGeneratedCodeVariable,
    ];

    /// <summary>Runs only in the child process (explicit: never part of a normal run).</summary>
    [Fact(Explicit = true)]
    public void Probe()
    {
        string? output = Environment.GetEnvironmentVariable(ProbeOutputVariable);
        Assert.NotNull(output);
        using DaxMapping anonymous = DaxMapping.CreateAnonymous(4096);
        anonymous.Persist(0, 64);
        anonymous.Write(new byte[512], 0);
        var lines = new List<string>
        {
            $"instruction={Pmem.FlushInstruction}",
            $"flushNeeded={Pmem.IsFlushNeeded}",
            $"pmem={Pmem.PersistentMemoryGranularity}",
            $"anonymous={anonymous.Granularity}",
            $"movnt={Pmem.UsesNonTemporalStores}",
            $"threshold={Pmem.NonTemporalThreshold}",
            $"codePage={FlushCode.Page?.IsAvailable == true}",
            $"warnings={string.Join(" | ", PersistenceSettings.Current.Warnings)}",
        };
        File.WriteAllLines(output, lines);
    }

    private static Dictionary<string, string> RunChild(params (string Name, string Value)[] variables)
    {
        string dll = typeof(EnvironmentOverrideTests).Assembly.Location;
        string output = Path.Combine(Path.GetTempPath(), "directpmem-probe-" + Guid.NewGuid().ToString("N"));
        var start = new ProcessStartInfo(DotnetHost.Path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { dll, "-method", typeof(EnvironmentOverrideTests).FullName + "." + nameof(Probe), "-explicit", "only", "-noLogo", "-noColor" })
        {
            start.ArgumentList.Add(arg);
        }
        foreach (string name in s_variables)
        {
            start.Environment.Remove(name);
        }
        foreach ((string name, string value) in variables)
        {
            start.Environment[name] = value;
        }
        start.Environment[ProbeOutputVariable] = output;
        using Process child = Process.Start(start)!;
        Task<string> stdout = child.StandardOutput.ReadToEndAsync();
        Task<string> stderr = child.StandardError.ReadToEndAsync();
        TestTime.WaitForExit(child, "the child test process (Probe)");
        try
        {
            Assert.True(child.ExitCode == 0 && File.Exists(output),
                $"the child failed (exit {child.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
            return File.ReadAllLines(output).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static void SkipWithoutFlushCode()
    {
        if (FlushCode.Page is not { IsAvailable: true })
        {
            Assert.Skip("the system refused executable memory: " + FlushCode.Page?.Failure);
        }
    }

    [Fact]
    public void WithoutOverridesTheBestInstructionAndDefaultsAreUsed()
    {
        SkipWithoutFlushCode();
        Dictionary<string, string> seen = RunChild();
        string expected = Pmem.Features.Clwb ? "Clwb" : Pmem.Features.ClflushOpt ? "ClflushOpt" : "Clflush";
        Assert.Equal(expected, seen["instruction"]);
        Assert.Equal("None", seen["anonymous"]);
        Assert.Equal(PersistenceSettings.DefaultMovntThreshold.ToString(System.Globalization.CultureInfo.InvariantCulture), seen["threshold"]);
        Assert.Equal("True", seen["movnt"]);
        Assert.Equal("", seen["warnings"]);
    }

    [Fact]
    public void NoClwbFallsBackToClflushOpt()
    {
        SkipWithoutFlushCode();
        if (!Pmem.Features.ClflushOpt)
        {
            Assert.Skip("this processor has no CLFLUSHOPT");
        }
        Assert.Equal("ClflushOpt", RunChild((PersistenceSettings.NoClwbVariable, "1"))["instruction"]);
    }

    [Fact]
    public void NoClwbAndNoClflushOptFallBackToClflush()
    {
        SkipWithoutFlushCode();
        Assert.Equal("Clflush", RunChild((PersistenceSettings.NoClwbVariable, "1"), (PersistenceSettings.NoClflushOptVariable, "1"))["instruction"]);
    }

    [Fact]
    public void NoFlushGivesPersistentMemoryByteGranularity()
    {
        Dictionary<string, string> seen = RunChild((PersistenceSettings.NoFlushVariable, "1"));
        Assert.Equal("False", seen["flushNeeded"]);
        Assert.Equal("Byte", seen["pmem"]);
    }

    [Theory]
    [InlineData("cacheline", "CacheLine")]
    [InlineData("page", "Page")]
    [InlineData("byte", "Byte")]
    public void ForceGranularityAppliesToEveryMapping(string value, string expected)
    {
        if (expected == "CacheLine")
        {
            SkipWithoutFlushCode();
        }
        Assert.Equal(expected, RunChild((PersistenceSettings.ForceGranularityVariable, value))["anonymous"]);
    }

    [Fact]
    public void AnUnparsableValueIsIgnoredWithAWarning()
    {
        Dictionary<string, string> seen = RunChild((PersistenceSettings.ForceGranularityVariable, "words"), (PersistenceSettings.MovntThresholdVariable, "-5"));
        Assert.Equal("None", seen["anonymous"]);
        Assert.Contains(PersistenceSettings.ForceGranularityVariable, seen["warnings"], StringComparison.Ordinal);
        Assert.Contains(PersistenceSettings.MovntThresholdVariable, seen["warnings"], StringComparison.Ordinal);
    }

    [Fact]
    public void NoMovntAndTheThresholdAreHonoured()
    {
        Assert.Equal("False", RunChild((PersistenceSettings.NoMovntVariable, "1"))["movnt"]);
        Assert.Equal("1024", RunChild((PersistenceSettings.MovntThresholdVariable, "1024"))["threshold"]);
    }

    [Fact]
    public void WithoutExecutableCodeForcedCacheLineFallsBackToPageGranularity()
    {
        Dictionary<string, string> seen = RunChild((PersistenceSettings.NoGeneratedCodeVariable, "1"), (PersistenceSettings.ForceGranularityVariable, "cacheline"));
        Assert.Equal("None", seen["instruction"]);
        Assert.Equal("False", seen["codePage"]);
        Assert.Equal("Page", seen["anonymous"]);
    }
}

using System.Runtime.CompilerServices;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Issue 11, item 2: a mapping nobody disposed is never unmapped by the garbage collector, and a
/// stale span after Dispose never silently reaches memory another mapping got (the address range
/// stays reserved PROT_NONE in a bounded quarantine). Crash/no-crash cases run in child processes.
/// </summary>
public sealed class MappingLifetimeTests
{
    private const string DirectoryVariable = "DIRECTPMEM_TEST_LIFETIME_DIR";

    [Fact]
    public void AnUndisposedMappingSurvivesGarbageCollectionAndItsSpanStaysUsable()
    {
        using TempDirectory dir = PageCacheDirectory.Create();
        string[] report = ChildProcess.RunPassing(typeof(MappingLifetimeTests), nameof(UndisposedChild), (DirectoryVariable, dir.Path));
        Assert.Contains("live 1", report);
        // At exit the leak is reported (a traced warning, with the count).
        string trace = File.ReadAllText(Path.Combine(dir.Path, "trace.log"));
        Assert.Matches(@"DirectPmem: [1-9]\d* DaxMapping\(s\) were never disposed", trace);
        // The stores through the span reached the file: the mapping was never unmapped under it.
        byte[] bytes = File.ReadAllBytes(Path.Combine(dir.Path, "undisposed"));
        Assert.All(bytes.AsSpan(0, 4096).ToArray(), b => Assert.Equal(0x5A, b));
    }

    [Fact(Explicit = true)]
    public void UndisposedChild()
    {
        ChildProcess.RequireChild();
        string directory = Environment.GetEnvironmentVariable(DirectoryVariable)!;
        string path = Path.Combine(directory, "undisposed");
        System.Diagnostics.Trace.Listeners.Add(new System.Diagnostics.TextWriterTraceListener(Path.Combine(directory, "trace.log")));
        System.Diagnostics.Trace.AutoFlush = true;
        long before = DaxMapping.LiveCount;
        Span<byte> span = MapAndForget(path);
        for (int i = 0; i < 5; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        span.Fill(0x5A); // would SIGSEGV if a finalizer had unmapped it
        ChildProcess.Report($"live {DaxMapping.LiveCount - before}");
        ChildProcess.Report("done");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Span<byte> MapAndForget(string path)
    {
        using PmemFile file = PmemFile.Create(path, 1 << 20);
        return file.Map().GetSpan(0, 4096);
    }

    [Fact]
    public void AStaleSpanAfterDisposeFaultsInsteadOfReachingANewMapping()
    {
        ChildProcess.Result result = ChildProcess.Run(typeof(MappingLifetimeTests), nameof(StaleSpanChild));
        Assert.Contains("new mapping elsewhere", result.Report);
        // The stale store faulted: the child died, and never reached the line after the store.
        Assert.NotEqual(0, result.ExitCode);
        Assert.DoesNotContain("stale store did not fault", result.Report);
    }

    [Fact(Explicit = true)]
    public unsafe void StaleSpanChild()
    {
        ChildProcess.RequireChild();
        DaxMapping old = DaxMapping.CreateAnonymous(1 << 20);
        nint oldAddress = (nint)old.DangerousGetPointer();
        Span<byte> stale = old.GetSpan(0, 4096);
        old.Dispose();
        using DaxMapping fresh = DaxMapping.CreateAnonymous(1 << 20);
        Assert.NotEqual(oldAddress, (nint)fresh.DangerousGetPointer());
        ChildProcess.Report("new mapping elsewhere");
        stale[0] = 1;
        ChildProcess.Report("stale store did not fault");
    }

    [Fact]
    public unsafe void ADisposedRangeStaysReservedWithoutAccess()
    {
        DaxMapping map = DaxMapping.CreateAnonymous(1 << 20);
        nint address = (nint)map.DangerousGetPointer();
        Assert.Contains("rw-s", MapsLineContaining(address));
        map.Dispose();
        string line = MapsLineContaining(address);
        Assert.Contains("---p", line);
        Assert.Throws<ObjectDisposedException>(() => map.GetSpan(0, 1));
        Assert.Throws<ObjectDisposedException>(() => map.DangerousGetPointer());
    }

    [Fact]
    public void LiveCountCountsMappingsUntilTheyAreDisposed()
    {
        string[] report = ChildProcess.RunPassing(typeof(MappingLifetimeTests), nameof(LiveCountChild));
        Assert.Contains("counts 0 2 1 0", report);
    }

    [Fact(Explicit = true)]
    public void LiveCountChild()
    {
        ChildProcess.RequireChild();
        long start = DaxMapping.LiveCount;
        DaxMapping a = DaxMapping.CreateAnonymous(4096);
        DaxMapping b = DaxMapping.CreateAnonymous(4096);
        long two = DaxMapping.LiveCount - start;
        a.Dispose();
        a.Dispose(); // idempotent: counted once
        long one = DaxMapping.LiveCount - start;
        b.Dispose();
        ChildProcess.Report($"counts {start} {two} {one} {DaxMapping.LiveCount - start}");
        ChildProcess.Report("done");
    }

    private static string MapsLineContaining(nint address)
    {
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            string[] range = line[..line.IndexOf(' ', StringComparison.Ordinal)].Split('-');
            ulong start = ulong.Parse(range[0], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
            ulong end = ulong.Parse(range[1], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
            if ((ulong)address >= start && (ulong)address < end)
            {
                return line;
            }
        }
        return "(not mapped)";
    }
}

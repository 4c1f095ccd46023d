using System.Collections.Concurrent;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Issue 11, item 1: every operation racing <see cref="DaxMapping.Dispose"/> either completes on the
/// live mapping or throws <see cref="ObjectDisposedException"/>: no signal, no other exception.
/// Each case runs many rounds in a child process (a signal fails the test instead of killing the
/// runner); DIRECTPMEM_RACE_ROUNDS sets the number of rounds (default 300).
/// </summary>
public sealed class DisposeRaceTests
{
    private const string KindVariable = "DIRECTPMEM_TEST_RACE_KIND";
    private const string DirectoryVariable = "DIRECTPMEM_TEST_RACE_DIR";
    private const string RoundsVariable = "DIRECTPMEM_RACE_ROUNDS";
    private const int Length = 64 << 10;

    [Theory]
    [InlineData("persist")]
    [InlineData("flush")]
    [InlineData("write")]
    [InlineData("write-64")]
    [InlineData("write-unaligned")]
    [InlineData("move")]
    [InlineData("fill")]
    [InlineData("publish")]
    public void CacheLineOperationsRacingDisposeCompleteOrThrowObjectDisposed(string kind)
    {
        string[] report = ChildProcess.RunPassing(typeof(DisposeRaceTests), nameof(RaceChild), (KindVariable, kind));
        Assert.Contains(report, l => l.StartsWith("rounds ", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("page-persist")]
    [InlineData("page-write")]
    public void PageCacheOperationsRacingDisposeCompleteOrThrowObjectDisposed(string kind)
    {
        using TempDirectory dir = PageCacheDirectory.Create();
        ChildProcess.RunPassing(typeof(DisposeRaceTests), nameof(RaceChild), (KindVariable, kind), (DirectoryVariable, dir.Path),
            (RoundsVariable, ChildProcess.Rounds(RoundsVariable, 60).ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact(Explicit = true)]
    public void RaceChild()
    {
        ChildProcess.RequireChild();
        string kind = Environment.GetEnvironmentVariable(KindVariable)!;
        int rounds = ChildProcess.Rounds(RoundsVariable, 300);
        var random = new Random(12345);
        byte[] data = new byte[4096];
        int refused = 0, completedBeforeDispose = 0;
        for (int round = 0; round < rounds; round++)
        {
            (DaxMapping map, IDisposable? owner) = Create(kind, round);
            Action<DaxMapping> op = Operation(kind, data);
            var errors = new ConcurrentQueue<Exception>();
            using var started = new ManualResetEventSlim();
            long done = 0;
            var thread = new Thread(() =>
            {
                started.Set();
                try
                {
                    while (true)
                    {
                        op(map);
                        done++;
                    }
                }
                catch (ObjectDisposedException)
                {
                    Interlocked.Increment(ref refused);
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            });
            thread.Start();
            started.Wait(TestContext.Current.CancellationToken);
            Thread.SpinWait(random.Next(0, 20_000));
            map.Dispose();
            thread.Join();
            owner?.Dispose();
            Assert.True(errors.IsEmpty, $"round {round}: {string.Join("\n", errors)}");
            if (done > 0)
            {
                completedBeforeDispose++;
            }
        }
        // Every round ends with the racing thread refused; most rounds also ran operations before.
        Assert.Equal(rounds, refused);
        ChildProcess.Report($"rounds {rounds} refused {refused} ran-before-dispose {completedBeforeDispose}");
        ChildProcess.Report("done");
    }

    [Fact]
    public void WriteWhoseSourceFaultsIntoAnExceptionLeavesNoOperationInFlight()
        => ChildProcess.RunPassing(typeof(DisposeRaceTests), nameof(FaultingSourceChild));

    [Fact(Explicit = true)]
    public async Task FaultingSourceChild()
    {
        ChildProcess.RequireChild();
        using PmemFile memfd = PmemFile.CreateMemory("fault", Length);
        DaxMapping map = memfd.Map(new DaxMappingOptions { ForceCacheLineGranularity = true });
        // A span at address 0: reading it raises NullReferenceException, the one fault .NET lets a
        // caller catch (a child process, in case a runtime made it fatal). 256 B and 4 KiB to an
        // aligned offset are the shape Write streams without a try block; for this source it must
        // go through the path that clears the slot on an exception, or the slot would keep naming
        // the mapping and Dispose would wait for it forever.
        foreach (int length in new[] { 64, 256, 4096 })
        {
            Assert.Throws<NullReferenceException>(() => WriteFromAddressZero(map, length));
        }
        // Dispose on another thread (this thread's next operation would clear a stale slot) returns.
        await Task.Run(map.Dispose, TestContext.Current.CancellationToken)
            .WaitAsync(TestTime.Limit(TimeSpan.FromSeconds(30)), TestContext.Current.CancellationToken);
        ChildProcess.Report("done");
    }

    private static unsafe void WriteFromAddressZero(DaxMapping map, int length)
        => map.Write(new ReadOnlySpan<byte>((void*)0, length), 8192);

    private static (DaxMapping, IDisposable?) Create(string kind, int round)
    {
        if (kind.StartsWith("page-", StringComparison.Ordinal))
        {
            string path = Path.Combine(Environment.GetEnvironmentVariable(DirectoryVariable)!, "race-" + round);
            PmemFile file = PmemFile.Create(path, Length);
            DaxMapping pageMap = file.Map();
            Assert.Equal(DirectPmem.Persistence.PersistGranularity.Page, pageMap.Granularity);
            return (pageMap, new Cleanup(file, path));
        }
        using PmemFile memfd = PmemFile.CreateMemory("race", Length);
        // Forced cache-line granularity: CLWB + SFENCE through the flush routine, as on real device-DAX.
        return (memfd.Map(new DaxMappingOptions { ForceCacheLineGranularity = true }), null);
    }

    private static Action<DaxMapping> Operation(string kind, byte[] data) => kind switch
    {
        "persist" or "page-persist" => m => m.Persist(0, Length),
        "flush" => m => m.Flush(0, Length),
        // Whole aligned lines: Write streams them itself, without a try block.
        "write" or "page-write" => m => m.Write(data, 8192),
        // Below the non-temporal threshold: temporal stores and a flush, by Write itself too.
        "write-64" => m => m.Write(data.AsSpan(0, 64), 8192),
        // Non-temporal with a temporal tail: through the operations object, in a try block.
        "write-unaligned" => m => m.Write(data.AsSpan(0, 1000), 8192 + 3),
        "move" => m => m.Move(0, 8192, 4096),
        "fill" => m => m.Fill(0, 4096, 7),
        "publish" => m => m.Publish(64, 42),
        _ => throw new ArgumentException(kind),
    };

    private sealed class Cleanup(PmemFile file, string path) : IDisposable
    {
        public void Dispose()
        {
            file.Dispose();
            File.Delete(path);
        }
    }
}

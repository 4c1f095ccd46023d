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
        "write" or "page-write" => m => m.Write(data, 8192),
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

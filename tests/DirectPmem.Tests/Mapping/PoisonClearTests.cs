using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// The clear path's method selection and failures, driven through its system-call seam (a kernel
/// that answers EIO to the recovery write, a file system that cannot punch holes, no space to
/// reallocate), and its argument checks and real write on ordinary files. Real poison clearing needs
/// a pmem device with a listed bad block; see tests/devdax-vm.
/// </summary>
public sealed class PoisonClearTests : IDisposable
{
    private readonly TempDirectory _data = PageCacheDirectory.Create();

    public void Dispose() => _data.Dispose();

    /// <summary>Records every call and answers with the errno queued for it (0 when none is).</summary>
    private sealed class ScriptedCalls : IPoisonClearCalls
    {
        public readonly List<string> Log = [];
        public readonly Queue<int> WriteAnswers = new();
        public int PunchAnswer;
        public int AllocateAnswer;
        public int SyncAnswer;
        public readonly List<byte> Written = [];

        public int Write(ReadOnlySpan<byte> data, long offset)
        {
            Log.Add($"write {offset:x}+{data.Length:x}");
            int answer = WriteAnswers.Count > 0 ? WriteAnswers.Dequeue() : 0;
            if (answer == 0)
            {
                Written.AddRange(data.ToArray());
            }
            return answer;
        }

        public int PunchHole(long offset, long length)
        {
            Log.Add($"punch {offset:x}+{length:x}");
            return PunchAnswer;
        }

        public int Allocate(long offset, long length)
        {
            Log.Add($"allocate {offset:x}+{length:x}");
            return AllocateAnswer;
        }

        public int Sync()
        {
            Log.Add("sync");
            return SyncAnswer;
        }
    }

    [Fact]
    public void AWriteThatSucceedsIsTheRecoveryWrite()
    {
        var calls = new ScriptedCalls();
        byte[] data = [.. Enumerable.Repeat((byte)7, 4096)];
        Assert.Equal(PoisonClearMethod.RecoveryWrite, PoisonClearer.Clear(calls, "f", 0x2000, 4096, data));
        Assert.Equal(["write 2000+1000", "sync"], calls.Log);
        Assert.Equal(data, calls.Written);
    }

    [Fact]
    public void WithoutDataZerosAreWrittenInChunksOverTheWholeRange()
    {
        var calls = new ScriptedCalls();
        Assert.Equal(PoisonClearMethod.RecoveryWrite, PoisonClearer.Clear(calls, "f", 0, 0x30000, default));
        Assert.Equal(["write 0+10000", "write 10000+10000", "write 20000+10000", "sync"], calls.Log);
        Assert.Equal(0x30000, calls.Written.Count);
        Assert.All(calls.Written, b => Assert.Equal(0, b));
    }

    [Fact]
    public void EioFromTheWriteFallsBackToPunchingAHoleAndReallocating()
    {
        var calls = new ScriptedCalls();
        calls.WriteAnswers.Enqueue(Errno.EIO);
        Assert.Equal(PoisonClearMethod.PunchHoleAndReallocate, PoisonClearer.Clear(calls, "f", 0x1000, 0x2000, default));
        Assert.Equal(["write 1000+2000", "punch 1000+2000", "allocate 1000+2000", "write 1000+2000", "sync"], calls.Log);
    }

    [Fact]
    public void AnotherWriteErrorIsThrownWithoutAFallback()
    {
        var calls = new ScriptedCalls();
        calls.WriteAnswers.Enqueue(Errno.EBADF);
        var error = Assert.Throws<PmemException>(() => PoisonClearer.Clear(calls, "/pool", 0x1000, 0x1000, default));
        Assert.Equal("pwrite", error.Call);
        Assert.Equal(Errno.EBADF, error.Errno);
        Assert.Contains("'/pool'", error.Message, StringComparison.Ordinal);
        Assert.Contains("not cleared", error.Message, StringComparison.Ordinal);
        Assert.Equal(["write 1000+1000"], calls.Log);
    }

    [Fact]
    public void AFileSystemThatCannotPunchHolesLeavesThePoisonAndSaysSo()
    {
        var calls = new ScriptedCalls { PunchAnswer = Errno.EOPNOTSUPP };
        calls.WriteAnswers.Enqueue(Errno.EIO);
        var error = Assert.Throws<PmemException>(() => PoisonClearer.Clear(calls, "/pool", 0, 0x1000, default));
        Assert.Equal(Errno.EOPNOTSUPP, error.Errno);
        Assert.Contains("FALLOC_FL_PUNCH_HOLE", error.Message, StringComparison.Ordinal);
        Assert.Contains("the poison is not cleared", error.Message, StringComparison.Ordinal);
        Assert.Equal(["write 0+1000", "punch 0+1000"], calls.Log);
    }

    [Fact]
    public void NoSpaceToReallocateIsAnOutOfSpaceErrorThatSaysTheRangeIsAHole()
    {
        var calls = new ScriptedCalls { AllocateAnswer = Errno.ENOSPC };
        calls.WriteAnswers.Enqueue(Errno.EIO);
        var error = Assert.Throws<PmemOutOfSpaceException>(() => PoisonClearer.Clear(calls, "/pool", 0, 0x1000, default));
        Assert.Contains("reads as zeros", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(calls.Log, l => l == "sync");
    }

    [Fact]
    public void AWriteThatFailsAgainAfterReallocatingIsThrown()
    {
        var calls = new ScriptedCalls();
        calls.WriteAnswers.Enqueue(Errno.EIO);
        calls.WriteAnswers.Enqueue(Errno.EIO);
        var error = Assert.Throws<PmemException>(() => PoisonClearer.Clear(calls, "/pool", 0, 0x1000, default));
        Assert.Equal(Errno.EIO, error.Errno);
        Assert.Contains("still failed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ASyncFailureIsThrownAfterTheWrite()
    {
        var calls = new ScriptedCalls { SyncAnswer = Errno.EIO };
        var error = Assert.Throws<PmemException>(() => PoisonClearer.Clear(calls, "/pool", 0, 0x1000, default));
        Assert.Equal("fdatasync", error.Call);
    }

    [Fact]
    public void ClearingAnOrdinaryFileRangeWritesTheDataAndUsesTheRecoveryWrite()
    {
        using PmemFile file = PmemFile.Create(_data.File("f"), 16384);
        byte[] data = [.. Enumerable.Range(0, 4096).Select(i => (byte)i)];
        PoisonClearResult result = file.ClearBadRange(8192, data);
        Assert.Equal(PoisonClearMethod.RecoveryWrite, result.Method);
        Assert.Empty(result.StillListed);
        Assert.NotEqual(BadRangeCoverage.Unknown, result.CoverageAfter);
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        Assert.Equal(data, map.GetReadOnlySpan(8192, 4096).ToArray());
        Assert.Contains("RecoveryWrite", result.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(100, 4096, "offset")]
    [InlineData(4096, 100, "length")]
    [InlineData(-4096, 4096, "offset")]
    [InlineData(0, 0, "length")]
    [InlineData(12288, 8192, "offset")]
    public void AClearThatIsNotWholePagesInsideTheFileIsRefusedNamingTheArgument(long offset, long length, string parameter)
    {
        using PmemFile file = PmemFile.Create(_data.File("f"), 16384);
        var error = Assert.ThrowsAny<ArgumentException>(() => file.ClearBadRange(offset, length));
        Assert.Equal(parameter, error.ParamName);
    }

    [Fact]
    public void ClearingAReadOnlyFileOrMemoryIsRefused()
    {
        string path = _data.File("f");
        PmemFile.Create(path, 4096).Dispose();
        using PmemFile readOnly = PmemFile.Open(path, writable: false);
        Assert.Contains("read-only", Assert.Throws<InvalidOperationException>(() => readOnly.ClearBadRange(0, 4096)).Message, StringComparison.Ordinal);
        using PmemFile memory = PmemFile.CreateMemory("clear", 4096);
        Assert.Contains("no media errors", Assert.Throws<InvalidOperationException>(() => memory.ClearBadRange(0, 4096)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => memory.ClearBadRange(0, ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void PageRangesWidenSectorsToWholePagesAndMergeNeighbours()
    {
        List<DirectPmem.Geometry.PmemRange> pages = PmemFile.PageRanges(
            [new(512, 512), new(4096 + 1024, 512), new(16384 - 512, 512)], 4096, 16384);
        Assert.Equal([new DirectPmem.Geometry.PmemRange(0, 8192), new DirectPmem.Geometry.PmemRange(12288, 4096)], pages);
    }
}

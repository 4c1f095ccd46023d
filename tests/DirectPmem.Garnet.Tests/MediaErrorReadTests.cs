using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Mapping;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// A device read of memory that cannot be read (here a real SIGBUS, <c>BUS_ADRERR</c>, from a
/// backing file truncated under the volume's mapping; poison takes the same path through
/// <see cref="DaxMapping.ReadSafe"/>) completes through Tsavorite's callback with EIO and a typed
/// exception, on the calling thread, and the process goes on.
/// </summary>
/// <remarks>
/// In the Garnet collection, so no test of this project forks a child server while a test here
/// closes and at once reopens its device file. A fork between those two calls holds the file's
/// flock in the child until exec, and the reopen then fails with EAGAIN. Seen once under load;
/// the cause is inferred, not proven.
/// </remarks>
[Collection("Garnet")]
public sealed class MediaErrorReadTests : IDisposable
{
    private const long Chunk = 64 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    // Skips where the safe copy is missing; otherwise a volume on an emulated device in a file.
    private (string Path, EmulatedVolume Volume, long FileLength) NewVolume()
    {
        if (!DaxMapping.IsReadSafeSupported)
            Assert.Skip("DaxMapping.ReadSafe is unavailable here (it needs x86-64 and generated code): without it a read of a truncated range raises SIGBUS and ends the process");
        string path = _dir.File("dev.dax");
        EmulatedVolume volume = EmulatedVolume.Create(path, 8L << 20, new PmemVolumeOptions { ChunkSize = Chunk });
        return (path, volume, new FileInfo(path).Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(Chunk / 2)]
    [InlineData(Chunk - 4096)]
    public void AReadOfATruncatedRangeCompletesWithEioThroughTheCallbackAndTheProcessLives(long readOffset)
    {
        (string path, EmulatedVolume v, long fileLength) = NewVolume();
        using EmulatedVolume owned = v;
        using IDevice device = PmemVolumeTests.Device(v.Volume);
        byte[] data = DeviceIo.Pattern((int)(2 * Chunk), 7);
        Assert.Equal(0u, DeviceIo.Write(device, 0, 0, data).ErrorCode);
        (DeviceIo.Completion before, byte[] back) = DeviceIo.Read(device, 0, (ulong)readOffset, 4096);
        Assert.Equal(0u, before.ErrorCode);
        Assert.Equal(data.AsSpan((int)readOffset, 4096).ToArray(), back);

        Truncation.Truncate(path, 0);
        try
        {
            // Twice: the second read of the same bad range fails the same way (no crash loop).
            for (int attempt = 0; attempt < 2; attempt++)
            {
                (DeviceIo.Completion read, _) = DeviceIo.Read(device, 0, (ulong)readOffset, 4096);
                Assert.Equal(1, read.Calls);
                Assert.Equal(5u, read.ErrorCode); // EIO
                Assert.Equal(0u, read.Bytes);
                Assert.Equal(Environment.CurrentManagedThreadId, read.ThreadId);
                PmemVolumeException e = Assert.IsType<PmemVolumeException>(read.Exception);
                Assert.Equal(PmemVolumeError.MediaError, e.Error);
                Assert.Equal(5, e.Errno);
                Assert.Contains("'base/Store/hlog' segment 0", e.Message, StringComparison.Ordinal);
                Assert.Contains($"segment offset {readOffset}", e.Message, StringComparison.Ordinal);
                Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
                PmemMediaErrorException media = Assert.IsType<PmemMediaErrorException>(e.InnerException);
                Assert.Equal(MediaErrorKind.BeyondEndOfFile, media.Kind);
            }
        }
        finally
        {
            // Give the pages back (as zeros) so the volume's dispose and the directory's removal
            // touch nothing past the end of the file.
            Truncation.Truncate(path, fileLength);
        }
        // The same device reads again once the range is readable: zeros now, as the file says.
        (DeviceIo.Completion after, byte[] zeros) = DeviceIo.Read(device, 0, (ulong)readOffset, 4096);
        Assert.Equal(0u, after.ErrorCode);
        Assert.Equal(new byte[4096], zeros);
    }

    [Fact]
    public void AReadThatStartsInAGoodChunkAndEndsInATruncatedOneFailsWholeWithEio()
    {
        (string path, EmulatedVolume v, long fileLength) = NewVolume();
        using EmulatedVolume owned = v;
        using IDevice device = PmemVolumeTests.Device(v.Volume);
        Assert.Equal(0u, DeviceIo.Write(device, 0, 0, DeviceIo.Pattern((int)(2 * Chunk), 8)).ErrorCode);
        // Cut the file 4 KiB into the segment's first chunk, found in the mapping (which starts at
        // file offset 0) by the pattern's first page.
        byte[] head = DeviceIo.Pattern((int)(2 * Chunk), 8).AsSpan(0, 4096).ToArray();
        long at = Find(v.Volume.Mapping, head);
        Assert.True(at >= 0, "the segment's first chunk was not found in the mapping");
        Truncation.Truncate(path, at + 4096);
        try
        {
            (DeviceIo.Completion read, _) = DeviceIo.Read(device, 0, 0, (int)Chunk);
            Assert.Equal(5u, read.ErrorCode);
            PmemVolumeException e = Assert.IsType<PmemVolumeException>(read.Exception);
            PmemMediaErrorException media = Assert.IsType<PmemMediaErrorException>(e.InnerException);
            Assert.Equal(4096, media.BytesRead);
            Assert.Equal(at + 4096, media.BadOffset);
        }
        finally
        {
            Truncation.Truncate(path, fileLength);
        }
    }

    private static long Find(DaxMapping mapping, byte[] needle)
    {
        for (long offset = 0; offset + needle.Length <= mapping.Length; offset += 4096)
        {
            if (mapping.GetReadOnlySpan(offset, needle.Length).SequenceEqual(needle))
                return offset;
        }
        return -1;
    }
}

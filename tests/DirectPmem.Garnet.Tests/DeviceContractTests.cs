using DirectPmem.Garnet.Tests.Support;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// What a Tsavorite device gives back at the edges of a segment's life, on DirectPmem's volume and
/// on Garnet's own <c>RandomAccessLocalStorageDevice</c> side by side: a read past the written end,
/// a segment removed (as truncation does) and read again, its id written again, and reads racing a
/// truncation. The rule both must keep: a read returns the bytes last written at that place, or
/// zeros, or fewer bytes than asked; never bytes of a removed segment's earlier life or of another
/// segment. Where the two differ (DirectPmem fills the rest with zeros and reports the full length,
/// the file device reports a short count), the test logs it: Tsavorite's callers that check the
/// count (<c>TryReadDevice</c>) then fail on the file device and go on with zeros on DirectPmem.
/// </summary>
/// <remarks>Issue 22's soak crash (docs/garnet-known-defects.md): these are the device behaviours a
/// page read back at recovery or replica sync depends on.</remarks>
public sealed class DeviceContractTests : IDisposable
{
    private const int Segment = 1 << 20;
    private readonly TempDirectory _dir = new();
    private EmulatedVolume? _volume;

    public void Dispose()
    {
        _volume?.Dispose();
        _dir.Dispose();
    }

    public static TheoryData<string> Devices => ["pmem", "file"];

    private static void Log(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    private IDevice Open(string kind, LightEpoch epoch)
    {
        IDevice device;
        if (kind == "pmem")
        {
            _volume = EmulatedVolume.Create(_dir.File("dev.dax"), 16L << 20);
            device = _volume.Volume.CreateDeviceFactoryCreator().Create("base").Get(new FileDescriptor("Store", "hlog"));
        }
        else
        {
            // Buffered: O_DIRECT is refused on tmpfs, which /tmp may be.
            device = new RandomAccessLocalStorageDevice(_dir.File("hlog"), disableFileBuffering: false);
        }
        device.Initialize(Segment, epoch);
        return device;
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void AReadPastTheWrittenEndGetsTheWrittenBytesThenZerosOrAShortCount(string kind)
    {
        var epoch = new LightEpoch();
        using IDevice device = Open(kind, epoch);
        byte[] data = DeviceIo.Pattern(1024, 7);
        Assert.Equal(0u, Write(device, 0, 0, data));

        (uint error, uint count, byte[] back) = Read(device, 0, 0, 8192);
        Assert.Equal(0u, error);
        AssertOnly(back, count, (0, data), what: "a read of 8 KiB over 1 KiB written");
        if (kind == "pmem")
            Assert.Equal(8192u, count); // the volume reports the full length, the rest read as zeros
        Log($"{kind}: 8 KiB read over 1 KiB written reported {count} bytes");
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void ARemovedSegmentReadsNothingOfItsOldLifeAndItsIdWrittenAgainStartsEmpty(string kind)
    {
        var epoch = new LightEpoch();
        using IDevice device = Open(kind, epoch);
        byte[] old0 = DeviceIo.Pattern(64 * 1024, 1), old1 = DeviceIo.Pattern(64 * 1024, 2);
        Assert.Equal(0u, Write(device, 0, 0, old0));
        Assert.Equal(0u, Write(device, 1, 0, old1));

        device.TruncateUntilSegment(1); // removes segment 0, as Tsavorite's log truncation does
        (uint error, uint count, byte[] back) = Read(device, 0, 0, old0.Length);
        Assert.Equal(0u, error);
        AssertOnly(back, count, default, what: "a read of the removed segment 0");
        Log($"{kind}: read of a removed segment reported {count} of {old0.Length} bytes");

        // The same id written again (a replica's log restarting, a checkpoint file rewritten):
        // only the new bytes, zeros around them.
        byte[] again = DeviceIo.Pattern(4096, 3);
        Assert.Equal(0u, Write(device, 0, 8192, again));
        (error, count, back) = Read(device, 0, 0, old0.Length);
        Assert.Equal(0u, error);
        AssertOnly(back, count, (8192, again), what: "segment 0 written again after its removal");
        Log($"{kind}: segment 0 written again, 64 KiB read reported {count} bytes");

        (error, count, back) = Read(device, 1, 0, old1.Length);
        Assert.Equal(0u, error);
        Assert.Equal((uint)old1.Length, count);
        Assert.Equal(old1, back);
    }

    [Theory]
    [MemberData(nameof(Devices))]
    public void ReadsRacingATruncationSeeTheirSegmentsBytesOrNothingNeverAnotherSegments(string kind)
    {
        var epoch = new LightEpoch();
        using IDevice device = Open(kind, epoch);
        const int Length = 32 * 1024, Segments = 24;
        // Segment s holds bytes of value s + 1 in its first life and s + 101 in its second.
        for (int s = 0; s < Segments; s++)
            Assert.Equal(0u, Write(device, s, 0, Filled(Length, s + 1)));

        using var stop = new CancellationTokenSource();
        long reads = 0, errors = 0;
        Exception? wrong = null;
        void ReadUntilStopped(int seed)
        {
            var random = new Random(seed);
            while (!stop.IsCancellationRequested && Volatile.Read(ref wrong) is null)
            {
                int s = random.Next(Segments);
                (uint error, uint count, byte[] back) = Read(device, s, 0, Length);
                Interlocked.Increment(ref reads);
                if (error != 0)
                {
                    Interlocked.Increment(ref errors); // a handle closed under the read (file device)
                    continue;
                }
                int at = back.AsSpan(0, (int)count).IndexOfAnyExcept([(byte)0, (byte)(s + 1), (byte)(s + 101)]);
                if (at >= 0)
                    Interlocked.CompareExchange(ref wrong, new InvalidOperationException($"{kind}: a read of segment {s} got byte {back[at]} at {at}: not its own"), null);
            }
        }
        Thread[] readers = [.. Enumerable.Range(0, 2).Select(r => new Thread(() =>
        {
            try
            {
                ReadUntilStopped(r);
            }
            catch (Exception e)
            {
                // Reported by the test thread below, not lost with this one.
                Interlocked.CompareExchange(ref wrong, e, null);
            }
        }))];
        foreach (Thread reader in readers)
            reader.Start();
        // Truncate one segment at a time while the readers run; every removed id is then written
        // again (its second life), so freed space is handed out again under the readers.
        for (int s = 0; s < Segments && Volatile.Read(ref wrong) is null; s++)
        {
            device.TruncateUntilSegment(s + 1);
            Assert.Equal(0u, Write(device, s, 0, Filled(Length / 2, s + 101)));
        }
        stop.Cancel();
        foreach (Thread reader in readers)
            reader.Join();
        Assert.Null(wrong);
        Assert.True(reads > 0, "no read ran");
        Log($"{kind}: {reads} reads racing the truncation of {Segments} segments, {errors} completed with an error, none saw another segment's bytes");
    }

    private static byte[] Filled(int length, int value)
    {
        var bytes = new byte[length];
        bytes.AsSpan().Fill((byte)value);
        return bytes;
    }

    /// <summary>
    /// Within the <paramref name="count"/> bytes the device said it read, <paramref name="back"/> holds
    /// <paramref name="expected"/>'s bytes at its offset and zeros everywhere else.
    /// </summary>
    private static void AssertOnly(byte[] back, uint count, (int Offset, byte[]? Data) expected, string what)
    {
        Assert.True(count <= back.Length, $"{what}: the device reported {count} bytes for a {back.Length}-byte read");
        for (int i = 0; i < count; i++)
        {
            bool inside = expected.Data is not null && i >= expected.Offset && i < expected.Offset + expected.Data.Length;
            byte want = inside ? expected.Data![i - expected.Offset] : (byte)0;
            Assert.True(back[i] == want, $"{what}: byte {i} of the {count} read is {back[i]}, not {want}");
        }
        if (expected.Data is not null)
            Assert.True(count >= expected.Offset + expected.Data.Length, $"{what}: the device reported {count} bytes, short of the {expected.Data.Length} written at {expected.Offset}");
    }

    private static uint Write(IDevice device, int segment, ulong offset, byte[] data) => DeviceIo.Write(device, segment, offset, data).ErrorCode;

    private static (uint Error, uint Count, byte[] Data) Read(IDevice device, int segment, ulong offset, int length)
    {
        (DeviceIo.Completion completion, byte[] data) = DeviceIo.Read(device, segment, offset, length);
        return (completion.ErrorCode, completion.Bytes, data);
    }
}

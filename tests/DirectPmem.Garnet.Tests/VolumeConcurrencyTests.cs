using System.Collections.Concurrent;
using System.Globalization;
using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Mapping;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// The volume's concurrency promises, driven through the devices Tsavorite uses: I/O racing a
/// segment delete (whose chunks another segment is given at once), I/O racing the volume's
/// Dispose, and every public method of the volume and its factories called from many threads.
/// </summary>
/// <remarks>
/// The volume lives on anonymous memory so that a round costs microseconds (no msync) and the
/// race windows are hit often. DIRECTPMEM_GARNET_RACE_ROUNDS sets the rounds (default 3000).
/// </remarks>
public sealed class VolumeConcurrencyTests
{
    private const int Chunk = 64 * 1024;
    private const int Span = 4 * Chunk;
    private const byte ByteA = 0xAA;
    private const byte ByteB = 0xBB;

    private static int Rounds =>
        int.TryParse(Environment.GetEnvironmentVariable("DIRECTPMEM_GARNET_RACE_ROUNDS"), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 3000;

    private static PmemVolume NewVolume() =>
        PmemVolume.Create(DaxMapping.CreateAnonymous(4L << 20), new PmemVolumeOptions { ChunkSize = Chunk, SlotCount = 16, AllowVolatile = true });

    private static IDevice Device(INamedDeviceFactory factory, string file)
    {
        IDevice device = factory.Get(new FileDescriptor("store", file));
        device.Initialize(-1);
        return device;
    }

    [Fact]
    public void WritesAndReadsRacingASegmentDeleteNeverLandInTheSegmentThatReusesItsChunks()
    {
        using PmemVolume volume = NewVolume();
        INamedDeviceFactory factory = volume.CreateDeviceFactoryCreator().Create("base");
        using IDevice a = Device(factory, "a");
        using IDevice b = Device(factory, "b");
        byte[] patternA = Filled(Span, ByteA);
        byte[] patternB = Filled(Span, ByteB);
        int rounds = Rounds;
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();

        // Device a: keeps writing its segment 0 and reading it back. Whatever the delete does,
        // a's reads see its own bytes or zeros (the segment deleted and begun again), never b's.
        var writer = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                DeviceIo.Completion write = DeviceIo.Write(a, 0, 0, patternA);
                if (write.ErrorCode != 0)
                    failures.Enqueue($"a's write failed with {write.ErrorCode}: {write.Exception}");
                (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(a, 0, 0, Span);
                if (read.ErrorCode != 0)
                    failures.Enqueue($"a's read failed with {read.ErrorCode}: {read.Exception}");
                else if (Array.IndexOf(back, ByteB) is int at and >= 0)
                    failures.Enqueue($"a read b's byte at offset {at} of its segment 0");
            }
        });
        writer.Start();
        try
        {
            // Deletes a's segment, gives its chunks to b at once (the free list hands back the
            // chunks just freed), and checks that b holds only its own bytes.
            for (int round = 0; round < rounds && failures.IsEmpty; round++)
            {
                a.RemoveSegment(0);
                DeviceIo.Completion write = DeviceIo.Write(b, 0, 0, patternB);
                Assert.Equal(0u, write.ErrorCode);
                (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(b, 0, 0, Span);
                Assert.Equal(0u, read.ErrorCode);
                if (Array.IndexOf(back, ByteA) is int at and >= 0)
                    failures.Enqueue($"round {round}: a's write landed in b's segment 0 at offset {at}");
                b.RemoveSegment(0);
            }
        }
        finally
        {
            stop.Cancel();
            writer.Join();
        }
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(5)));
        // Nothing leaked: what is allocated is exactly what a's surviving segment holds (b's is gone).
        Assert.Equal(a.GetFileSize(0), volume.DataCapacity - volume.FreeBytes);
    }

    [Fact]
    public void IoRacingTheVolumesDisposeCompletesOrFailsThroughTheCallbackWithObjectDisposed()
    {
        int rounds = Math.Max(1, Rounds / 30);
        for (int round = 0; round < rounds; round++)
        {
            PmemVolume volume = NewVolume();
            INamedDeviceFactory factory = volume.CreateDeviceFactoryCreator().Create("base");
            IDevice[] devices = [Device(factory, "a"), Device(factory, "b")];
            byte[][] patterns = [Filled(Span, ByteA), Filled(Span, ByteB)];
            var failures = new ConcurrentQueue<string>();
            using var started = new CountdownEvent(devices.Length);
            Thread[] threads = [.. devices.Select((device, i) => new Thread(() =>
            {
                started.Signal();
                for (int n = 0; ; n++)
                {
                    DeviceIo.Completion done = n % 2 == 0
                        ? DeviceIo.Write(device, n % 3, 0, patterns[i])
                        : DeviceIo.Read(device, n % 3, 0, Span).Completion;
                    if (done.ErrorCode == 0)
                        continue;
                    if (done.ErrorCode != 5 || done.Exception is not ObjectDisposedException)
                        failures.Enqueue($"I/O {n} of device {i} failed with {done.ErrorCode}: {done.Exception}");
                    return;
                }
            }))];
            foreach (Thread thread in threads)
                thread.Start();
            started.Wait(TestContext.Current.CancellationToken);
            Thread.Sleep(round % 3);
            volume.Dispose();
            Assert.True(volume.Mapping.IsDisposed);
            foreach (Thread thread in threads)
                thread.Join();
            Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(5)));
        }
    }

    [Fact]
    public void TheFactoriesRefuseUseAfterTheVolumeIsDisposedNamingIt()
    {
        PmemVolume volume = NewVolume();
        PmemNamedDeviceFactoryCreator creator = volume.CreateDeviceFactoryCreator();
        INamedDeviceFactory factory = creator.Create("base");
        volume.Dispose();

        Assert.Contains(nameof(PmemVolume), Assert.Throws<ObjectDisposedException>(() => factory.Get(new FileDescriptor("d", "f"))).ObjectName, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => factory.Delete(new FileDescriptor("d", "f")));
        Assert.Throws<ObjectDisposedException>(() => factory.Delete(new FileDescriptor("d", null)));
        Assert.Throws<ObjectDisposedException>(() => factory.ListContents("d").ToList());
        Assert.Throws<ObjectDisposedException>(() => creator.Create("other").Get(new FileDescriptor("d", "f")));
        Assert.Throws<ObjectDisposedException>(volume.GetDeviceNames);
        Assert.Equal(PmemVolume.SectorSize, (int)factory.GetSectorSize(new FileDescriptor("d", "f")));
        volume.Dispose(); // twice is fine
    }

    [Fact]
    public void EveryPublicMethodIsSafeToCallConcurrently()
    {
        using PmemVolume volume = NewVolume();
        PmemNamedDeviceFactoryCreator creator = volume.CreateDeviceFactoryCreator();
        int rounds = Math.Max(1, Rounds / 10);
        var failures = new ConcurrentQueue<string>();
        Parallel.For(0, 4, worker =>
        {
            INamedDeviceFactory factory = creator.Create($"w{worker % 2}");
            for (int round = 0; round < rounds; round++)
            {
                try
                {
                    string file = $"f{round % 3}";
                    using IDevice device = Device(factory, file);
                    byte[] data = Filled(Chunk, (byte)(worker + 1));
                    DeviceIo.Completion write = DeviceIo.Write(device, round % 2, 0, data);
                    // Another worker with the same base name may delete the file at any moment: a
                    // write racing the delete lands in the old segment or begins the file again.
                    if (write.ErrorCode is not 0)
                        failures.Enqueue($"worker {worker} round {round}: write failed with {write.ErrorCode}: {write.Exception}");
                    (DeviceIo.Completion read, byte[] back) = DeviceIo.Read(device, round % 2, 0, Chunk);
                    if (read.ErrorCode != 0)
                        failures.Enqueue($"worker {worker} round {round}: read failed with {read.ErrorCode}: {read.Exception}");
                    else if (back.Any(x => x != 0 && x != 1 && x != 2 && x != 3 && x != 4))
                        failures.Enqueue($"worker {worker} round {round}: read a byte no worker wrote");
                    _ = device.GetFileSize(round % 2);
                    _ = factory.ListContents("store").Count();
                    _ = volume.GetDeviceNames();
                    _ = volume.FreeBytes + volume.FreeSlots;
                    _ = factory.GetSectorSize(new FileDescriptor("store", file));
                    switch (round % 4)
                    {
                        case 0: device.RemoveSegment(round % 2); break;
                        case 1: factory.Delete(new FileDescriptor("store", file)); break;
                        case 2: factory.Delete(new FileDescriptor("store", null)); break;
                        default: device.RemoveSegmentAsync(round % 2, _ => { }, null!); break;
                    }
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    failures.Enqueue($"worker {worker} round {round}: {e}");
                }
            }
        });
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures.Take(5)));

        // Everything was deleted or is still listed: nothing leaked from the free lists.
        foreach (string name in volume.GetDeviceNames())
        {
            string dir = name[..name.IndexOf('/', StringComparison.Ordinal)];
            creator.Create(dir).Delete(new FileDescriptor("store", null));
        }
        Assert.Empty(volume.GetDeviceNames());
        Assert.Equal(volume.DataCapacity, volume.FreeBytes);
        Assert.Equal(volume.SlotCount, volume.FreeSlots);
    }

    private static byte[] Filled(int length, byte value)
    {
        var bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        return bytes;
    }
}

using System.Globalization;
using DirectPmem.Garnet.Tests.Support;
using DirectPmem.Mapping;
using Tsavorite.core;
using Xunit;

namespace DirectPmem.Garnet.Tests;

/// <summary>
/// The volume's entry points that take a size or an offset, given the values that break
/// arithmetic. Options and start-up calls throw an <see cref="ArgumentException"/> naming the
/// parameter or a <see cref="PmemVolumeException"/>; device I/O reports through its callback
/// (EINVAL or ERANGE-like codes with the exception), writes nothing and never crashes. Every
/// message names the value.
/// </summary>
public sealed class SizeSweepTests
{
    public static readonly long[] Values =
    [
        long.MaxValue,
        long.MaxValue - 4096 + 1,
        long.MaxValue & ~4095L,
        (long.MaxValue & ~4095L) + 1,
        long.MinValue,
        int.MaxValue,
        (long)int.MaxValue + 1,
        -1,
        -512,
        0,
    ];

    public static readonly ulong[] Addresses =
    [
        ulong.MaxValue,
        ulong.MaxValue - 511, // sector-aligned; + a sector wraps past 2^64
        (ulong)long.MaxValue + 1,
        (ulong)long.MaxValue & ~511UL,
        1UL << 40,
    ];

    public static TheoryData<string, long> OptionCases()
    {
        var data = new TheoryData<string, long>();
        foreach (string entry in new[] { "PmemVolumeOptions.ChunkSize", "PmemVolumeOptions.SlotCount", "IDevice.Initialize(segmentSize)" })
        {
            foreach (long value in Values)
            {
                // Tsavorite passes -1 for "no fixed segment size"; 0 is refused by neither Tsavorite nor the volume.
                if (entry.StartsWith("IDevice", StringComparison.Ordinal) && value is -1 or 0)
                    continue;
                if (entry.EndsWith("SlotCount", StringComparison.Ordinal) && value is > int.MaxValue or < int.MinValue)
                    continue;
                data.Add(entry, value);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(OptionCases))]
    public void OptionsAndSegmentSizesThatBreakArithmeticAreRefusedNamingThem(string entry, long value)
    {
        using DaxMapping mapping = DaxMapping.CreateAnonymous(4L << 20);
        Exception e = Assert.ThrowsAny<Exception>(() =>
        {
            switch (entry)
            {
                case "PmemVolumeOptions.ChunkSize":
                    PmemVolume.Create(mapping, new PmemVolumeOptions { ChunkSize = value, AllowVolatile = true }, ownsMapping: false).Dispose();
                    break;
                case "PmemVolumeOptions.SlotCount":
                    PmemVolume.Create(mapping, new PmemVolumeOptions { SlotCount = (int)value, AllowVolatile = true }, ownsMapping: false).Dispose();
                    break;
                default:
                    using (PmemVolume volume = PmemVolume.Create(mapping, new PmemVolumeOptions { AllowVolatile = true }, ownsMapping: false))
                    {
                        IDevice device = volume.CreateDeviceFactoryCreator().Create("b").Get(new FileDescriptor("d", "f"));
                        device.Initialize(value);
                    }
                    break;
            }
        });
        SizeRefusal.AssertNamesValue(e, entry, value.ToString(CultureInfo.InvariantCulture));
        Assert.True(e is ArgumentException or PmemVolumeException, $"{entry} with {value} threw {e.GetType()}: {e}");
    }

    [Theory]
    [MemberData(nameof(IoCases))]
    public void IoAtAnAddressOrLengthThatBreaksArithmeticFailsThroughTheCallbackAndWritesNothing(bool write, ulong address, uint length)
    {
        using PmemVolume volume = PmemVolume.Create(DaxMapping.CreateAnonymous(4L << 20), new PmemVolumeOptions { ChunkSize = 64 * 1024, SlotCount = 16, AllowVolatile = true });
        IDevice device = volume.CreateDeviceFactoryCreator().Create("b").Get(new FileDescriptor("d", "f"));
        device.Initialize(-1);
        long free = volume.FreeBytes;
        uint error = 0;
        Exception? failure = null;
        int calls = 0;
        DeviceIOCompletionCallback callback = (code, _, _, ex) => { calls++; error = code; failure = ex; };
        unsafe
        {
            byte* buffer = stackalloc byte[512];
            if (write)
                device.WriteAsync((IntPtr)buffer, 0, address, length, callback, null!);
            else
                device.ReadAsync(0, address, (IntPtr)buffer, length, callback, null!);
        }
        Assert.Equal(1, calls);
        Assert.NotEqual(0u, error);
        Assert.IsType<PmemVolumeException>(failure);
        SizeRefusal.AssertNamesValue(failure, $"{(write ? "write" : "read")} at {address}", address.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(free, volume.FreeBytes);
        Assert.Equal(0, device.GetFileSize(0));
    }

    public static TheoryData<bool, ulong, uint> IoCases()
    {
        var data = new TheoryData<bool, ulong, uint>();
        foreach (bool write in new[] { true, false })
        {
            foreach (ulong address in Addresses)
            {
                data.Add(write, address, 512);
            }
            data.Add(write, 0, uint.MaxValue - 511);
        }
        return data;
    }
}

using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Every public entry point of the core that takes a size, length or offset, given the values that
/// break arithmetic: near long.MaxValue, values that overflow only once aligned up to a page,
/// negative, zero. Each is refused with an <see cref="ArgumentException"/> naming the parameter, or
/// a <see cref="PmemException"/>, and the message names the value; never an
/// <see cref="OverflowException"/>, never a crash.
/// </summary>
public sealed class SizeSweepTests : IDisposable
{
    private const long Mib2 = 2L << 20;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The values every entry point meets.</summary>
    public static readonly long[] Values =
    [
        long.MaxValue,
        long.MaxValue - 4096 + 1, // overflows when aligned up to 4 KiB
        long.MaxValue - Mib2 + 1, // overflows when aligned up to 2 MiB
        long.MaxValue & ~(Mib2 - 1), // aligned to everything, far too large
        (long.MaxValue & ~(Mib2 - 1)) + 1, // overflows only after alignment to 2 MiB
        long.MinValue,
        -1,
        -4096,
        0,
    ];

    /// <summary>Entry point names; the actions are built per test (they need a directory).</summary>
    public static readonly string[] EntryPoints =
    [
        "PmemFile.Create(size)",
        "PmemFile.CreateMemory(size)",
        "DaxMapping.CreateAnonymous(length)",
        "DaxMapping.CreateAnonymous(options.Offset)",
        "PmemFile.Map(options.Length)",
        "PmemFile.Map(options.Offset)",
        "DaxDevice.CreateEmulated(size, 4 KiB)",
        "DaxDevice.CreateEmulated(size, 2 MiB)",
        "DaxDevice.CreateEmulatedMemory(size)",
        "DaxDevice.OpenEmulated(size)",
        "DaxDevice.Map(options.Offset)",
        "DaxDevice.Map(options.Length)",
        "DaxRangeAllocator.Allocate(length)",
        "DaxRangeAllocator.AllocateAt(offset)",
        "DaxRangeAllocator.AllocateAt(length)",
        "DaxRangeAllocator.Map(options.Length)",
    ];

    public static TheoryData<string, long> Cases()
    {
        var data = new TheoryData<string, long>();
        foreach (string entry in EntryPoints)
        {
            foreach (long value in Values)
            {
                // Offset 0 is valid: the sweep's zero is for sizes and lengths.
                if (value != 0 || !entry.Contains("offset", StringComparison.OrdinalIgnoreCase))
                    data.Add(entry, value);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ASizeOrOffsetThatBreaksArithmeticIsRefusedNamingIt(string entry, long value)
    {
        Action call = Build(entry, value);
        Exception e = Assert.ThrowsAny<Exception>(call);
        Assert.True(e is ArgumentException or PmemException, $"{entry} with {value} threw {e.GetType()}: {e}");
        SizeRefusal.AssertNamesValue(e, $"{entry} with {value}", value);
    }

    private Action Build(string entry, long value)
    {
        string file = _dir.File("f" + Guid.NewGuid().ToString("N"));
        return entry switch
        {
            "PmemFile.Create(size)" => () => PmemFile.Create(file, value).Dispose(),
            "PmemFile.CreateMemory(size)" => () => PmemFile.CreateMemory("sweep", value).Dispose(),
            "DaxMapping.CreateAnonymous(length)" => () => DaxMapping.CreateAnonymous(value).Dispose(),
            "DaxMapping.CreateAnonymous(options.Offset)" => () => DaxMapping.CreateAnonymous(Mib2, new() { Offset = value }).Dispose(),
            "PmemFile.Map(options.Length)" => () => WithFile(file, f => f.Map(new() { Length = value }).Dispose()),
            "PmemFile.Map(options.Offset)" => () => WithFile(file, f => f.Map(new() { Offset = value, Length = 4096 }).Dispose()),
            "DaxDevice.CreateEmulated(size, 4 KiB)" => () => DaxDevice.CreateEmulated(file, value, PageSize.Pte).Dispose(),
            "DaxDevice.CreateEmulated(size, 2 MiB)" => () => DaxDevice.CreateEmulated(file, value, PageSize.Pmd).Dispose(),
            "DaxDevice.CreateEmulatedMemory(size)" => () => DaxDevice.CreateEmulatedMemory("sweep", value, PageSize.Pte).Dispose(),
            "DaxDevice.OpenEmulated(size)" => () =>
            {
                DaxDevice.CreateEmulated(file, 4 * Mib2, PageSize.Pmd).Dispose();
                DaxDevice.OpenEmulated(file, size: value).Dispose();
            },
            "DaxDevice.Map(options.Offset)" => () => WithDevice(file, d => d.Map(new() { Offset = value, Length = Mib2 }).Dispose()),
            "DaxDevice.Map(options.Length)" => () => WithDevice(file, d => d.Map(new() { Length = value }).Dispose()),
            "DaxRangeAllocator.Allocate(length)" => () => WithAllocator(file, a => a.Allocate("sweep", value)),
            "DaxRangeAllocator.AllocateAt(offset)" => () => WithAllocator(file, a => a.AllocateAt("sweep", value, Mib2)),
            "DaxRangeAllocator.AllocateAt(length)" => () => WithAllocator(file, a => a.AllocateAt("sweep", 2 * Mib2, value)),
            "DaxRangeAllocator.Map(options.Length)" => () => WithAllocator(file, a =>
            {
                a.Allocate("r", Mib2);
                a.Map("r", new() { Length = value }).Dispose();
            }),
            _ => throw new ArgumentOutOfRangeException(nameof(entry), entry, "no such entry point in the sweep"),
        };
    }

    private static void WithFile(string path, Action<PmemFile> use)
    {
        using PmemFile file = PmemFile.Create(path, 4 * Mib2);
        use(file);
    }

    private static void WithDevice(string path, Action<DaxDevice> use)
    {
        using DaxDevice device = DaxDevice.CreateEmulated(path, 4 * Mib2, PageSize.Pmd);
        use(device);
    }

    private static void WithAllocator(string path, Action<DaxRangeAllocator> use)
    {
        using DaxDevice device = DaxDevice.CreateEmulated(path, 8 * Mib2, PageSize.Pmd);
        using DaxRangeAllocator allocator = DaxRangeAllocator.Format(device);
        use(allocator);
    }
}

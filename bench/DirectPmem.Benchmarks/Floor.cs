using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using DirectPmem.Benchmarks.Persistence;
using DirectPmem.Mapping;

namespace DirectPmem.Benchmarks;

/// <summary>
/// The floor check (issue 23): is each DirectPmem primitive at the cost of what it replaces, in ONE
/// process, with interleaved rounds (A B C, C B A, ...)? Random 8-byte read+write through a raw
/// pointer, <c>GetRef</c> and <c>GetSpan</c> + BinaryPrimitives over a 256 MiB shared-memory
/// mapping; <c>DaxMapping.Write</c> of 64 B and 256 B to a hot line against libpmem's
/// <c>pmem_memcpy_persist</c> (called without the GC transition, as C calls it; the ordinary
/// P/Invoke is shown beside it); and the "nothing else slower" set: persist 8 B against
/// <c>pmem_persist</c>, copies of 4 KiB and 1 MiB, and map + prefault of 64 MiB against libc's
/// mmap(MAP_POPULATE).
/// </summary>
/// <remarks>
/// <para><c>dotnet DirectPmem.Benchmarks.dll --floor [--baseline DIR] [--rounds N] [--wall] [--cases a,b]</c>.
/// With <c>--baseline</c>, this assembly is loaded a second time in its own
/// <see cref="AssemblyLoadContext"/> bound to <c>DIR/DirectPmem.dll</c> (say, a build of main), and
/// its DirectPmem contenders run in the same rounds as the current ones, named "(baseline)", on the
/// same tmpfs pages (both sides map one file in /dev/shm).</para>
/// <para>Rounds are timed with the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that on a
/// shared machine the time another process had the CPU is not counted; <c>--wall</c> uses
/// wall-clock time instead.</para>
/// <para>Each contender's loop is warmed up until the JIT has compiled it at tier 1 (128 short
/// calls with pauses for the background compiler; check with <c>DOTNET_JitStdOutFile</c> and
/// <c>DOTNET_JitDisasmSummary=1</c>), so the rounds time the code a user's
/// long-running loop gets, not tier 0 or on-stack replacement.</para>
/// <para>Ratios are per round (contender / reference of the same round); the table gives their
/// median and quartiles, and each contender's median ns/op.</para>
/// </remarks>
internal static class Floor
{
    private static readonly string[] s_allCases = ["random-rw", "copy-persist-64", "copy-persist-256", "persist-8", "copy-4k", "copy-1m", "prefault-64m"];

    internal static int Run(string[] args)
    {
        string? baselineDir = null;
        int rounds = 21;
        bool wall = false;
        string[] cases = s_allCases;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--baseline":
                    baselineDir = args[++i];
                    break;
                case "--rounds":
                    rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--cases":
                    cases = args[++i].Split(',');
                    break;
                case "--wall":
                    wall = true;
                    break;
                default:
                    Console.Error.WriteLine($"unknown argument '{args[i]}'; usage: --floor [--baseline DIR] [--rounds N] [--wall] [--cases {string.Join(',', s_allCases)}]");
                    return 2;
            }
        }
        if (rounds < 15)
        {
            Console.Error.WriteLine($"--rounds {rounds}: the floor check needs at least 15 rounds for its quartiles to mean something.");
            return 2;
        }
        if (!LibPmem.IsAvailable)
        {
            Console.WriteLine("libpmem.so.1 is not installed: the libpmem contenders are skipped (run bench/setup-pmdk.sh).");
        }
        Assembly? baseline = null;
        if (baselineDir is not null)
        {
            var context = new BaselineContext(Path.Combine(Path.GetFullPath(baselineDir), "DirectPmem.dll"));
            baseline = context.LoadFromAssemblyPath(typeof(Floor).Assembly.Location);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"floor check: {rounds} rounds per case, order A B C / C B A ...; clock: {(wall ? "wall" : "thread CPU time")}; {Environment.ProcessorCount} CPUs; load average {File.ReadAllText("/proc/loadavg").Trim()}; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC"));
        Console.WriteLine("| case | contender | median ns/op | IQR % | / reference: median (q1..q3) | / baseline: median (q1..q3) |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (string name in cases)
        {
            string shared = Path.Combine(FloorKernels.SharedDirectory, $"directpmem-floor-{Environment.ProcessId}-{name}.pmem");
            FloorCase current = FloorKernels.Create(name, shared, create: true);
            var contenders = new List<FloorContender>(current.Contenders);
            var baselineOf = new Dictionary<int, int>();
            IDisposable? baselineCase = null;
            if (baseline is not null)
            {
                var (owner, loops) = ((IDisposable, Dictionary<string, Action<long>>))baseline.GetType(typeof(FloorKernels).FullName!)!
                    .GetMethod(nameof(FloorKernels.CreateForBaseline), BindingFlags.Static | BindingFlags.NonPublic)!
                    .Invoke(null, [name, shared])!;
                baselineCase = owner;
                for (int i = 0; i < current.Contenders.Count; i++)
                {
                    FloorContender mine = current.Contenders[i];
                    if (!mine.UsesDirectPmem)
                    {
                        continue;
                    }
                    baselineOf[i] = contenders.Count;
                    contenders.Add(new FloorContender(mine.Name + " (baseline)", loops[mine.Name], true));
                }
            }
            double[][] ns = Measure(contenders, current.OpsPerRound, rounds, wall);
            int reference = current.Contenders.FindIndex(c => c.Name == current.Reference);
            for (int i = 0; i < contenders.Count; i++)
            {
                string vsReference = reference >= 0 && i != reference ? Ratios(ns[i], ns[reference]) : "-";
                string vsBaseline = baselineOf.TryGetValue(i, out int b) ? Ratios(ns[i], ns[b]) : "-";
                double median = Quantile(ns[i], 0.5);
                double iqr = (Quantile(ns[i], 0.75) - Quantile(ns[i], 0.25)) / median * 100;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {contenders[i].Name} | {median:F2} | {iqr:F0} | {vsReference} | {vsBaseline} |"));
            }
            baselineCase?.Dispose();
            current.Dispose();
            File.Delete(shared);
        }
        return 0;
    }

    private static double[][] Measure(List<FloorContender> contenders, long ops, int rounds, bool wall)
    {
        // Warm up to tier 1: short calls (each a tier-0 or OSR call at first), pauses for the
        // background compiler, then one full-size call each.
        long small = Math.Max(1, ops / 256);
        for (int pass = 0; pass < 8; pass++)
        {
            foreach (FloorContender c in contenders)
            {
                for (int k = 0; k < 16; k++)
                {
                    c.Loop(small);
                }
            }
            Thread.Sleep(250);
        }
        foreach (FloorContender c in contenders)
        {
            c.Loop(ops);
        }
        var ns = new double[contenders.Count][];
        for (int i = 0; i < contenders.Count; i++)
        {
            ns[i] = new double[rounds];
        }
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < contenders.Count; k++)
            {
                int i = round % 2 == 0 ? k : contenders.Count - 1 - k;
                long start = wall ? Stopwatch.GetTimestamp() : ThreadCpuNanoseconds();
                contenders[i].Loop(ops);
                ns[i][round] = (wall ? Stopwatch.GetElapsedTime(start).TotalNanoseconds : ThreadCpuNanoseconds() - start) / ops;
            }
        }
        return ns;
    }

    // CLOCK_THREAD_CPUTIME_ID: the time this thread ran, so that on a shared machine the rounds
    // in which another process had the CPU do not count the wait (cache pollution still does).
    internal static unsafe long ThreadCpuNanoseconds()
    {
        ClockNative.TimeSpec t;
        if (ClockNative.ClockGetTime(ClockNative.CLOCK_THREAD_CPUTIME_ID, &t) != 0)
        {
            throw new InvalidOperationException($"clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: errno {Marshal.GetLastPInvokeError()}; run with --wall");
        }
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    private static string Ratios(double[] a, double[] b)
    {
        double[] ratios = a.Zip(b, (x, y) => x / y).ToArray();
        return string.Create(CultureInfo.InvariantCulture,
            $"**{Quantile(ratios, 0.5):F3}** ({Quantile(ratios, 0.25):F2}..{Quantile(ratios, 0.75):F2})");
    }

    private static double Quantile(double[] values, double fraction)
    {
        double[] sorted = values.Order().ToArray();
        double position = fraction * (sorted.Length - 1);
        int low = (int)Math.Floor(position);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
    }

    private sealed class BaselineContext(string directPmem) : AssemblyLoadContext(isCollectible: false)
    {
        protected override Assembly? Load(AssemblyName name)
            => name.Name == "DirectPmem" ? LoadFromAssemblyPath(directPmem) : null;
    }
}

/// <summary>One measured loop: runs N operations.</summary>
/// <param name="Name">The contender's name.</param>
/// <param name="Loop">Runs the given number of operations.</param>
/// <param name="UsesDirectPmem">Whether it calls DirectPmem (and so has a baseline twin).</param>
internal sealed record FloorContender(string Name, Action<long> Loop, bool UsesDirectPmem);

/// <summary>The contenders of one case, what they are compared with, and what they hold.</summary>
internal sealed class FloorCase(long opsPerRound, string reference, List<FloorContender> contenders, params IDisposable[] owned) : IDisposable
{
    internal long OpsPerRound { get; } = opsPerRound;

    internal string Reference { get; } = reference;

    internal List<FloorContender> Contenders { get; } = contenders;

    public void Dispose()
    {
        foreach (IDisposable d in owned)
        {
            d.Dispose();
        }
    }
}

/// <summary>The kernels. Each loop is its own method so that the JIT compiles (and shows) it alone.</summary>
internal static unsafe partial class FloorKernels
{
    internal const long RandomSize = 256L << 20;
    internal const int RandomOffsets = 1 << 20;
    private const long HotLine = 8192;

    // Called through reflection in the baseline's load context, whose FloorCase is another type:
    // hands back only types of the shared framework.
    internal static (IDisposable Owner, Dictionary<string, Action<long>> Loops) CreateForBaseline(string name, string shared)
    {
        FloorCase c = Create(name, shared, create: false);
        return (c, c.Contenders.ToDictionary(x => x.Name, x => x.Loop));
    }

    /// <summary>
    /// Where the cases' memory lives: a tmpfs file that the current side creates and the baseline
    /// side maps too, so that both write the same physical pages (the cost of a CLWB'd hot line
    /// differs by tens of percent from one page to another in a VM).
    /// </summary>
    internal const string SharedDirectory = "/dev/shm";

    internal static FloorCase Create(string name, string shared, bool create) => name switch
    {
        "random-rw" => RandomReadWrite(shared, create),
        "copy-persist-64" => Copy(shared, create, 64, 20_000),
        "copy-persist-256" => Copy(shared, create, 256, 20_000),
        "persist-8" => Persist8(shared, create),
        "copy-4k" => Copy(shared, create, 4096, 5_000),
        "copy-1m" => Copy(shared, create, 1 << 20, 40),
        "prefault-64m" => Prefault(),
        _ => throw new ArgumentException($"unknown case '{name}'", nameof(name)),
    };

    // The shared tmpfs file, mapped with the given options; every page is written before use.
    private static (PmemFile File, DaxMapping Map) MapShared(string shared, bool create, long size, bool forceCacheLine)
    {
        PmemFile file = create ? PmemFile.Create(shared, size, shared: true) : PmemFile.Open(shared, shared: true);
        DaxMapping map = file.Map(new DaxMappingOptions { Populate = true, ForceCacheLineGranularity = forceCacheLine });
        if (forceCacheLine && map.Granularity != DirectPmem.Persistence.PersistGranularity.CacheLine)
        {
            throw new InvalidOperationException($"the benchmark mapping has {map.Granularity} granularity, not CacheLine: {DirectPmem.Persistence.Pmem.FlushInstructionReason}");
        }
        return (file, map);
    }

    private static FloorCase RandomReadWrite(string shared, bool create)
    {
        // A 256 MiB tmpfs file (MAP_SHARED), every page populated up front, and 1M random
        // 8-byte-aligned offsets over all of it: 16 times the L3 of the machine it was written for.
        (PmemFile file, DaxMapping map) = MapShared(shared, create, RandomSize, forceCacheLine: false);
        var offsets = new long[RandomOffsets];
        var random = new Random(23);
        for (int i = 0; i < offsets.Length; i++)
        {
            offsets[i] = random.NextInt64(RandomSize / 8) * 8;
        }
        byte* pointer = map.DangerousGetPointer();
        return new FloorCase(RandomOffsets, "raw pointer",
        [
            new("raw pointer", n => RawReadWrite(pointer, offsets, n), false),
            new("GetRef<long>", n => RefReadWrite(map, offsets, n), true),
            new("GetSpan + BinaryPrimitives", n => SpanReadWrite(map, offsets, n), true),
            // What the gap is made of: the same loop with the base pointer read from an object each
            // time (as a safe accessor must: the store may alias it), and with GetRef's checks on
            // values held in registers.
            new("raw pointer, base read from an object", n => RawBaseFromObject(new Holder(pointer, RandomSize + 1), offsets, n), false),
            new("raw pointer + GetRef's checks, hoisted", n => RawHoistedCheck(new Holder(pointer, RandomSize + 1), offsets, n), false),
        ], map, file);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void RawReadWrite(byte* pointer, long[] offsets, long n)
    {
        for (long i = 0; i < n; i++)
        {
            long* p = (long*)(pointer + offsets[i & (RandomOffsets - 1)]);
            *p += 1;
        }
    }

    internal sealed class Holder(byte* pointer, long limit)
    {
        internal readonly byte* Pointer = pointer;
        internal readonly long Limit = limit;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void RawBaseFromObject(Holder m, long[] offsets, long n)
    {
        for (long i = 0; i < n; i++)
        {
            *(long*)(m.Pointer + offsets[i & (RandomOffsets - 1)]) += 1;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void RawHoistedCheck(Holder m, long[] offsets, long n)
    {
        byte* p = m.Pointer;
        long limit = m.Limit;
        for (long i = 0; i < n; i++)
        {
            long o = offsets[i & (RandomOffsets - 1)];
            if ((o & (long.MinValue | 7L)) != 0 || (ulong)o + 8 >= (ulong)limit)
            {
                throw new InvalidOperationException();
            }
            *(long*)(p + o) += 1;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void RefReadWrite(DaxMapping map, long[] offsets, long n)
    {
        for (long i = 0; i < n; i++)
        {
            map.GetRef<long>(offsets[i & (RandomOffsets - 1)]) += 1;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void SpanReadWrite(DaxMapping map, long[] offsets, long n)
    {
        for (long i = 0; i < n; i++)
        {
            Span<byte> span = map.GetSpan(offsets[i & (RandomOffsets - 1)], sizeof(long));
            BinaryPrimitives.WriteInt64LittleEndian(span, BinaryPrimitives.ReadInt64LittleEndian(span) + 1);
        }
    }

    private static FloorCase Copy(string shared, bool create, int size, long ops)
    {
        // Cache-line granularity forced on shared memory (PMDK's PMEM_IS_PMEM_FORCE=1): CLWB + SFENCE on DRAM.
        (PmemFile file, DaxMapping map) = MapShared(shared, create, 16L << 20, forceCacheLine: true);
        var owner = new PinnedSource(size);
        byte* source = owner.Pointer;
        byte* destination = map.DangerousGetPointer() + HotLine;
        var contenders = new List<FloorContender>();
        if (LibPmem.IsAvailable)
        {
            contenders.Add(new("pmem_memcpy_persist", n => LibPmemCopy(destination, source, (nuint)size, n), false));
            contenders.Add(new("pmem_memcpy_persist, P/Invoke with GC transition", n => LibPmemCopyWithTransition(destination, source, (nuint)size, n), false));
        }
        contenders.Add(new("DaxMapping.Write", n => DirectPmemWrite(map, source, size, n), true));
        // The same copy engine without the mapping's range check and dispose guard.
        contenders.Add(new("Pmem.DangerousCopy", n => DirectPmemDangerousCopy(destination, source, (nuint)size, n), true));
        return new FloorCase(ops, "pmem_memcpy_persist", contenders, map, file, owner);
    }

    // The reference: libpmem called as C calls it, without the runtime's GC transition.
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void LibPmemCopy(byte* destination, byte* source, nuint size, long n)
    {
        for (long i = 0; i < n; i++)
        {
            LibPmem.MemcpyPersistNoTransition(destination, source, size);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void LibPmemCopyWithTransition(byte* destination, byte* source, nuint size, long n)
    {
        for (long i = 0; i < n; i++)
        {
            LibPmem.MemcpyPersist(destination, source, size);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void DirectPmemDangerousCopy(byte* destination, byte* source, nuint size, long n)
    {
        for (long i = 0; i < n; i++)
        {
            DirectPmem.Persistence.Pmem.DangerousCopy(destination, source, size);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void DirectPmemWrite(DaxMapping map, byte* source, int size, long n)
    {
        var span = new ReadOnlySpan<byte>(source, size);
        for (long i = 0; i < n; i++)
        {
            map.Write(span, HotLine);
        }
    }

    private static FloorCase Persist8(string shared, bool create)
    {
        (PmemFile file, DaxMapping map) = MapShared(shared, create, 16L << 20, forceCacheLine: true);
        byte* destination = map.DangerousGetPointer() + HotLine;
        var contenders = new List<FloorContender>();
        if (LibPmem.IsAvailable)
        {
            contenders.Add(new("store + pmem_persist", n => LibPmemPersist8(destination, n), false));
        }
        contenders.Add(new("GetRef store + Persist", n => DirectPmemPersist8(map, n), true));
        return new FloorCase(20_000, "store + pmem_persist", contenders, map, file);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void LibPmemPersist8(byte* destination, long n)
    {
        for (long i = 0; i < n; i++)
        {
            *(long*)destination = i;
            LibPmem.PersistNoTransition(destination, 8);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void DirectPmemPersist8(DaxMapping map, long n)
    {
        for (long i = 0; i < n; i++)
        {
            map.GetRef<long>(HotLine) = i;
            map.Persist(HotLine, 8);
        }
    }

    private static FloorCase Prefault()
    {
        const long size = 64L << 20;
        return new FloorCase(2, "mmap(MAP_POPULATE) + munmap",
        [
            new("mmap(MAP_POPULATE) + munmap", n => LibcPrefault(size, n), false),
            new("CreateAnonymous(Populate) + Dispose", n => DirectPmemPrefault(size, n), true),
        ]);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void LibcPrefault(long size, long n)
    {
        for (long i = 0; i < n; i++)
        {
            nint address = Libc.MMap(0, (nuint)size, Libc.ProtRead | Libc.ProtWrite, Libc.MapShared | Libc.MapAnonymous | Libc.MapPopulate, -1, 0);
            if (address == -1)
            {
                throw new InvalidOperationException($"mmap(MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, {size}) failed: errno {Marshal.GetLastPInvokeError()}");
            }
            if (Libc.MUnmap(address, (nuint)size) != 0)
            {
                throw new InvalidOperationException($"munmap failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void DirectPmemPrefault(long size, long n)
    {
        var options = new DaxMappingOptions { Populate = true };
        for (long i = 0; i < n; i++)
        {
            DaxMapping.CreateAnonymous(size, options).Dispose();
        }
    }

    /// <summary>A pinned, 64-byte-aligned source buffer of random bytes.</summary>
    private sealed class PinnedSource : IDisposable
    {
        private readonly byte[] _buffer;

        internal PinnedSource(int size)
        {
            _buffer = GC.AllocateArray<byte>(size + 64, pinned: true);
            new Random(42).NextBytes(_buffer);
            byte* start = (byte*)Unsafe.AsPointer(ref _buffer[0]);
            Pointer = (byte*)(((nuint)start + 63) & ~(nuint)63);
        }

        internal byte* Pointer { get; }

        public void Dispose() => GC.KeepAlive(_buffer);
    }

    private static partial class Libc
    {
        internal const int ProtRead = 1;
        internal const int ProtWrite = 2;
        internal const int MapShared = 0x01;
        internal const int MapAnonymous = 0x20;
        internal const int MapPopulate = 0x8000;

        [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
        internal static partial nint MMap(nint address, nuint length, int protection, int flags, int fd, long offset);

        [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
        internal static partial int MUnmap(nint address, nuint length);
    }
}

/// <summary>clock_gettime(2), for per-thread CPU time.</summary>
internal static unsafe partial class ClockNative
{
    internal const int CLOCK_THREAD_CPUTIME_ID = 3;

    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime", SetLastError = true)]
    internal static partial int ClockGetTime(int clock, TimeSpec* time);
}

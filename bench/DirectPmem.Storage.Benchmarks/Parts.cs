using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage.Benchmarks;

/// <summary>
/// Where the time of one durable append goes, 1 thread: each step alone (checksum, copy of the frame
/// and its drain, the tail publish) and the whole append, beside libpmem's copy and pmemlog_append,
/// on the same kind of memory (files in one directory, forced cache-line mode). Each variant runs
/// blocks of appends walking forward through its own 256 MiB window (as a log does), the variants
/// interleaved round by round; the cell is the median over rounds of ns per operation.
/// </summary>
internal static unsafe class Parts
{
    private const long Window = 256L << 20;

    // Each copy variant walks its own 48 MiB of the first window (5 of them, below the tail word
    // at raw + Window), so that it does not write lines another variant has just written and may
    // have left in the cache (a non-temporal store to a cached line must evict it first), as
    // libpmem's copy variant walks its own mapping.
    private const long WalkWindow = 48L << 20;

    public static int Run(string dir, int rounds, int block)
    {
        LibC.SetEnv("PMEM_IS_PMEM_FORCE", "1", 1);
        bool havePmdk = LibPmemLog.TryLoad(out string why);
        if (!havePmdk)
        {
            Console.WriteLine($"PMDK variants skipped: {why}");
        }
        string ourPath = Path.Combine(dir, $"dpm-parts-{Environment.ProcessId}.pool");
        string pmemPath = Path.Combine(dir, $"pmem-parts-{Environment.ProcessId}.raw");
        string pmdkPath = Path.Combine(dir, $"pmemlog-parts-{Environment.ProcessId}.pool");
        try
        {
            using PmemPool pool = PmemPool.CreateFile(ourPath, 2 * Window + (64L << 20), "parts", new PoolCreateOptions { AllowVolatile = true }, // a benchmark runs on /dev/shm too
                mappingOptions: new DaxMappingOptions { ForceCacheLineGranularity = true, Populate = true });
            DaxMapping map = pool.Mapping;
            long raw = (pool.DataOffset + 4095) / 4096 * 4096;
            long logOffset = raw + Window + 4096;
            PmemLog log = PmemLog.Create(pool, logOffset, Window);
            nint pmemBase = 0;
            nuint pmemLength = 0;
            nint plp = 0;
            if (havePmdk)
            {
                pmemBase = LibPmem.MapFile(pmemPath, (nuint)Window, 1 /* PMEM_FILE_CREATE */, 0x180, out pmemLength, out int isPmem);
                plp = LibPmemLog.Create(pmdkPath, (nuint)(Window + (16L << 20)), 0x180);
                if (pmemBase == 0 || plp == 0 || isPmem == 0)
                {
                    Console.WriteLine($"PMDK variants skipped: pmem_map_file/pmemlog_create failed or not forced to pmem ({LibPmemLog.LastError()})");
                    havePmdk = false;
                }
                else
                {
                    new Span<byte>((void*)pmemBase, (int)Math.Min(int.MaxValue, (long)pmemLength)).Clear(); // fault it in, as Populate does for ours
                }
            }
            Console.WriteLine($"machine: {Environment.ProcessorCount} CPUs; backing {dir}; {rounds} interleaved rounds of {block} operations; ns per operation, median [min-max] over rounds");
            Console.WriteLine();
            Console.WriteLine("| record | variant | ns/op |");
            Console.WriteLine("|---|---|---|");
            foreach (int size in new[] { 64, 1024 })
            {
                byte[] payload = GC.AllocateArray<byte>(size, pinned: true);
                Random.Shared.NextBytes(payload);
                nint source = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(payload));
                long pmemAt = 0;
                int frame = (16 + size + 15) & ~15; // the v1 layout: a 16-byte frame header, every frame padded to 16 bytes
                byte[] staged = new byte[frame];
                int frame64 = (frame + 63) & ~63;
                byte[] staged64 = new byte[frame64];
                var variants = new List<(string Name, Func<int, double> Body)>
                {
                    ("XxHash3 of the payload", n => Time(n, () => s_sink += XxHash3.HashToUInt64(payload, 12345))),
                    ("Crc32 of the payload", n => Time(n, () => s_sink += Crc32.HashToUInt32(payload))),
                    ("XxHash64 of the payload", n => Time(n, () => s_sink += XxHash64.HashToUInt64(payload, 12345))),
                    ("copy payload, 64 B aligned (as pmemlog), NoDrain + Drain", Walk(map, raw + 0 * WalkWindow, (size + 63) & ~63, (at, _) =>
                    {
                        map.Write(payload, at, PmemCopyOptions.NoDrain);
                        map.Drain();
                    })),
                    ("copy staged frame, 16 B aligned (v1 layout), NoDrain + Drain", Walk(map, raw + 1 * WalkWindow, frame, (at, _) =>
                    {
                        map.Write(staged, at, PmemCopyOptions.NoDrain);
                        map.Drain();
                    })),
                    ("copy frame 16 B aligned: head line staged + payload from source, Drain", Walk(map, raw + 2 * WalkWindow, frame, (at, _) =>
                    {
                        int lead = (int)((64 - ((at + 16) & 63)) & 63);
                        lead = Math.Min(lead, size);
                        map.Write(staged.AsSpan(0, 16 + lead), at, PmemCopyOptions.NoDrain);
                        map.Write(payload.AsSpan(lead), at + 16 + lead, PmemCopyOptions.NoDrain);
                        map.Drain();
                    })),
                    ("copy frame 64 B aligned, all non-temporal, Drain", Walk(map, raw + 3 * WalkWindow, frame64, (at, _) =>
                    {
                        map.Write(staged64, at, PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal);
                        map.Drain();
                    })),
                    ("copy frame 64 B aligned as v2 writes it: middle lines from source, last + first line staged, all non-temporal, Drain", Walk(map, raw + 4 * WalkWindow, frame64, (at, _) =>
                    {
                        const PmemCopyOptions streamed = PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal;
                        if (size < 48)
                        {
                            map.Write(staged64, at, streamed);
                        }
                        else
                        {
                            int last = (size - 48) & 63;
                            int middle = size - 48 - last;
                            if (middle != 0)
                            {
                                map.Write(payload.AsSpan(48, middle), at + 64, streamed);
                            }
                            if (last != 0)
                            {
                                map.Write(staged64.AsSpan(frame64 - 64, 64), at + 64 + middle, streamed);
                            }
                            map.Write(staged64.AsSpan(0, 64), at, streamed);
                        }
                        map.Drain();
                    })),
                    ("tail publish (8 B store + flush + drain)", n =>
                    {
                        long word = raw + Window;
                        return Time(n, () => map.Publish(word, 42));
                    }),
                    ("tail publish, then an interlocked exchange on another line", n =>
                    {
                        long word = raw + Window;
                        return Time(n, () =>
                        {
                            map.Publish(word, 42);
                            Interlocked.Exchange(ref s_cursor, 7);
                        });
                    }),
                    ("tail publish, then a plain store on another line", n =>
                    {
                        long word = raw + Window;
                        return Time(n, () =>
                        {
                            map.Publish(word, 42);
                            Volatile.Write(ref s_cursor, 7);
                        });
                    }),
                    ("PmemLog.Append", n =>
                    {
                        log.Truncate(log.Tail); // the ring keeps moving, as a user's does
                        PmemLog l = log;
                        return Time(n, () => s_sink += (ulong)l.Append(payload));
                    }),
                };
                if (havePmdk)
                {
                    variants.Add(("libpmem pmem_memcpy_nodrain 64 B aligned + pmem_drain", n =>
                    {
                        int step = (size + 63) & ~63;
                        return Time(n, () =>
                        {
                            if (pmemAt + step > Window)
                            {
                                pmemAt = 0;
                            }
                            LibPmem.MemcpyNoDrain((byte*)pmemBase + pmemAt, (byte*)source, (nuint)size);
                            LibPmem.Drain();
                            pmemAt += step;
                        });
                    }));
                    variants.Add(("pmemlog_append", n =>
                    {
                        LibPmemLog.Rewind(plp);
                        return Time(n, () => LibPmemLog.Append(plp, (byte*)source, (nuint)size));
                    }));
                }
                var results = variants.Select(_ => new List<double>()).ToList();
                for (int i = 0; i < variants.Count; i++)
                {
                    variants[i].Body(block / 4); // warm-up
                }
                for (int r = 0; r < rounds; r++)
                {
                    for (int k = 0; k < variants.Count; k++)
                    {
                        int i = r % 2 == 0 ? k : variants.Count - 1 - k;
                        results[i].Add(variants[i].Body(block));
                    }
                }
                for (int i = 0; i < variants.Count; i++)
                {
                    var sorted = results[i].Order().ToList();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {size} B | {variants[i].Name} | {sorted[sorted.Count / 2]:F0} [{sorted[0]:F0}-{sorted[^1]:F0}] |"));
                }
            }
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"(sum of the checksums computed: {Sink})"));
            if (plp != 0)
            {
                LibPmemLog.Close(plp);
            }
            if (pmemBase != 0)
            {
                _ = LibPmem.Unmap(pmemBase, pmemLength);
            }
        }
        finally
        {
            File.Delete(ourPath);
            File.Delete(pmemPath);
            File.Delete(pmdkPath);
        }
        return 0;
    }

    // Writes at consecutive positions through its own window, wrapping at its end.
    private static Func<int, double> Walk(DaxMapping map, long start, int step, Action<long, int> write)
    {
        long at = 0;
        return n => Time(n, () =>
        {
            if (at + step > WalkWindow)
            {
                at = 0;
            }
            write(start + at, step);
            at += step;
        });
    }

    private static double Time(int n, Action body)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < n; i++)
        {
            body();
        }
        return Stopwatch.GetElapsedTime(t0).TotalNanoseconds / n;
    }

    private static long s_cursor;

    // Keeps the checksums from being optimised away.
    private static ulong s_sink;

    /// <summary>The sum of the values the variants computed (printed so that nothing is dead code).</summary>
    public static ulong Sink => s_sink;
}

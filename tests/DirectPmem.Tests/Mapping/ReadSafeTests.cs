using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// Issue 19, section 2: the poison-safe copy. A real SIGBUS comes from truncating the mapped file
/// under the copy (<c>BUS_ADRERR</c>, any kernel, no root); the read ends with
/// <see cref="PmemMediaErrorException"/> and the thread and process go on. Where a process must die
/// (a plain span read) it is a child process (<see cref="ChildProcess"/>).
/// </summary>
public sealed unsafe partial class ReadSafeTests
{
    private const int MapLength = 64 * 1024;
    private const int KeptLength = 16 * 1024;

    [Theory]
    [InlineData(0, 0)]
    [InlineData(0, 1)]
    [InlineData(3, 7)]
    [InlineData(0, 8)]
    [InlineData(5, 9)]
    [InlineData(1, 31)]
    [InlineData(0, 32)]
    [InlineData(7, 33)]
    [InlineData(0, 64)]
    [InlineData(13, 65)]
    [InlineData(0, 2047)]
    [InlineData(1, 2048)]
    [InlineData(0, 2049)]
    [InlineData(100, 4095)]
    [InlineData(0, 4096)]
    [InlineData(4095, 4097)]
    [InlineData(4096, 65_536 - 4096)]
    public void ReadSafeCopiesWhatTheSpanHolds(int offset, int length)
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(MapLength);
        Fill(map.GetSpan(0, MapLength));
        byte[] read = new byte[length];
        map.ReadSafe(offset, read);
        Assert.True(map.GetReadOnlySpan(offset, length).SequenceEqual(read));

        // The same through DangerousReadSafe, into a buffer with a guard byte on each side.
        byte[] guarded = new byte[length + 2];
        guarded[0] = 0xEE;
        guarded[^1] = 0xEE;
        fixed (byte* to = guarded)
        {
            map.DangerousReadSafe(offset, to + 1, length);
        }
        Assert.True(map.GetReadOnlySpan(offset, length).SequenceEqual(guarded.AsSpan(1, length)));
        Assert.Equal(0xEE, guarded[0]);
        Assert.Equal(0xEE, guarded[^1]);
    }

    [Fact]
    public void ReadSafeIntoAnEmptySpanOfEveryKindReadsNothingAndWritesNothing()
    {
        // ReadSafe pins its span through its reference, with no test for empty: the reference of an
        // empty span is null (default), or may point just past an array (an empty slice at its end).
        using DaxMapping map = DaxMapping.CreateAnonymous(MapLength);
        Fill(map.GetSpan(0, MapLength));
        byte[] array = new byte[16];
        Array.Fill(array, (byte)0xEE);
        foreach (long offset in new long[] { 0, 100, MapLength })
        {
            map.ReadSafe(offset, default);
            map.ReadSafe(offset, Span<byte>.Empty);
            map.ReadSafe(offset, array.AsSpan(array.Length));
            map.ReadSafe(offset, array.AsSpan(3, 0));
        }
        Assert.All(array, b => Assert.Equal(0xEE, b));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.ReadSafe(MapLength + 1, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.ReadSafe(-1, default));
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 1)]
    [InlineData(false, 200)]
    [InlineData(false, -1)]
    [InlineData(true, 0)]
    [InlineData(true, 200)]
    [InlineData(true, -1)]
    public void EveryCopyPathCopiesEveryLengthExactly(bool avx2, long threshold)
    {
        nint routine = Routine(avx2);
        nuint repThreshold = threshold < 0 ? nuint.MaxValue : (nuint)threshold;
        using DaxMapping map = DaxMapping.CreateAnonymous(MapLength);
        Fill(map.GetSpan(0, MapLength));
        byte* source = map.DangerousGetPointer();
        byte[] guarded = new byte[600 + 2];
        for (int length = 0; length <= 600; length++)
        {
            Array.Fill(guarded, (byte)0xEE);
            fixed (byte* to = &guarded[1])
            {
                Assert.Equal(0u, SafeCopy.CopyWith(routine, to, source + 3 + length, (nuint)length, out _, repThreshold));
            }
            Assert.True(map.GetReadOnlySpan(3 + length, length).SequenceEqual(guarded.AsSpan(1, length)), $"length {length}");
            Assert.Equal(0xEE, guarded[0]);
            Assert.Equal(0xEE, guarded[length + 1]);
        }
    }

    /// <summary>The routine to test, or a skip when this CPU cannot run it.</summary>
    private static nint Routine(bool avx2)
    {
        Assert.True(DaxMapping.IsReadSafeSupported, SafeCopy.Failure);
        if (avx2 && !System.Runtime.Intrinsics.X86.Avx2.IsSupported)
        {
            Assert.Skip("this CPU has no AVX2: the AVX2 copy cannot run here");
        }
        return SafeCopy.RoutineAddress(avx2);
    }

    [Fact]
    public void TheCodePageLayoutMatchesTheOffsetsTheHandlerUses()
    {
        byte[] page = new byte[4096];
        SafeCopy.Assemble(page, 4096);
        Span<byte> code = page;
        // Each copy starts with mov r9, rcx; the fixup with mov [r9], rdx; the handler with mov eax, [rsi+8].
        Assert.Equal(new byte[] { 0x49, 0x89, 0xC9 }, code.Slice(SafeCopy.SseOffset, 3).ToArray());
        Assert.Equal(new byte[] { 0x49, 0x89, 0xC9 }, code.Slice(SafeCopy.Avx2Offset, 3).ToArray());
        Assert.Equal(new byte[] { 0x49, 0x89, 0x11 }, code.Slice(SafeCopy.FixupOffset, 3).ToArray());
        Assert.Equal(new byte[] { 0x8B, 0x46, 0x08 }, code.Slice(SafeCopy.HandlerOffset, 3).ToArray());
        // The handler's range check compares with FixupOffset (cmp rax, imm32), and its RIP-relative
        // operands reach the first copy, the fixup and the data page.
        byte[] cmp = [0x48, 0x3D, .. BitConverter.GetBytes(SafeCopy.FixupOffset)];
        Assert.True(code[SafeCopy.HandlerOffset..].IndexOf(cmp) > 0, "the handler's range check");
        int Target(byte[] opcode)
        {
            int at = SafeCopy.HandlerOffset + page.AsSpan(SafeCopy.HandlerOffset).IndexOf(opcode);
            Assert.True(at > SafeCopy.HandlerOffset, $"no {Convert.ToHexString(opcode)} in the handler");
            return at + opcode.Length + 4 + BitConverter.ToInt32(page, at + opcode.Length);
        }
        Assert.Equal(SafeCopy.SseOffset, Target([0x48, 0x8D, 0x0D]));  // lea rcx, [rip+copy]
        Assert.Equal(SafeCopy.FixupOffset, Target([0x48, 0x8D, 0x05])); // lea rax, [rip+fixup], then lea rax, [rip+data] after it
        Assert.Equal(4096 + 64, Target([0x48, 0x8D, 0x35]));           // lea rsi, [rip+data+64]
        // Nothing but int3 between the pieces.
        Assert.All(page[0xB6..SafeCopy.Avx2Offset].Concat(page[0x34C..SafeCopy.FixupOffset]).Concat(page[0x36B..SafeCopy.HandlerOffset]).Concat(page[0x45B..]), b => Assert.Equal(0xCC, b));
    }

    [Fact]
    public void APageInsideTheFileThatTheKernelCannotProvideIsAnIoErrorNotATruncation()
    {
        // SIGBUS BUS_ADRERR below the file's end: the kernel could not provide the page. A DAX file
        // system does that for a known bad block (shown on nfit_test in the qemu tier, NfitTestTests);
        // here a full tmpfs cannot allocate the page a read of a hole faults in.
        Assert.True(DaxMapping.IsReadSafeSupported, SafeCopy.Failure);
        using SmallTmpfs fs = SmallTmpfs.Mount("256k");
        string path = fs.File("holes");
        const int Mib = 1 << 20;
        using (FileStream stream = File.Create(path))
        {
            stream.SetLength(Mib); // sparse
        }
        // Fill the file system with another file so that no page is left for the hole.
        using (FileStream filler = File.Create(fs.File("filler")))
        {
            byte[] chunk = new byte[4096];
            try
            {
                while (true)
                {
                    filler.Write(chunk);
                    filler.Flush();
                }
            }
            catch (IOException full) when (full.HResult == 28)
            {
                // ENOSPC: the tmpfs is full, which is what the test needs.
            }
        }
        using PmemFile file = PmemFile.Open(path, writable: false);
        using DaxMapping map = file.Map(new DaxMappingOptions { ReadOnly = true });
        byte[] read = new byte[100];
        PmemMediaErrorException? e = null;
        try
        {
            map.ReadSafe(512 * 1024 + 8, read);
        }
        catch (PmemMediaErrorException fault)
        {
            e = fault;
        }
        if (e is null)
        {
            // Asked of the kernel, not assumed: Linux allocates the page a fault on a tmpfs hole needs
            // and answers SIGBUS when none is left; a kernel that mapped a shared zero page instead
            // gives no fault to classify.
            Assert.All(read, b => Assert.Equal(0, b));
            Assert.Skip("this kernel read a hole of a full tmpfs without a fault (no SIGBUS BUS_ADRERR below the file's end to classify)");
        }
        Assert.Equal(MediaErrorKind.IoError, e.Kind);
        Assert.Equal(0, e.BytesRead);
        Assert.Equal(512 * 1024, e.BadOffset);
        Assert.Equal(4096, e.BadLength);
        Assert.Contains("could not provide", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("truncated", e.Message, StringComparison.Ordinal);
        Assert.Equal("a page the kernel could not provide (a known bad block, an I/O error or no free huge page)", e.Cause);
    }

    [Theory]
    [InlineData(0, MapLength)]                    // from the start, over the end of the file
    [InlineData(KeptLength - 100, 300)]          // a short read crossing the end
    [InlineData(KeptLength - 8, 64)]
    [InlineData(KeptLength, 1)]                  // entirely past the end
    [InlineData(KeptLength + 4096 + 5, 3000)]
    public void ReadSafeOfATruncatedFileThrowsNamingTheOffset(int offset, int length)
    {
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("truncated"));
        byte[] read = new byte[length];
        Array.Fill(read, (byte)0xEE);
        PmemMediaErrorException e = Assert.Throws<PmemMediaErrorException>(() => t.Map.ReadSafe(offset, read));

        long expectedRead = Math.Max(0, KeptLength - offset);
        Assert.Equal(MediaErrorKind.BeyondEndOfFile, e.Kind);
        Assert.Equal(offset, e.Offset);
        Assert.Equal(length, e.Length);
        Assert.Equal(expectedRead, e.BytesRead);
        Assert.Equal(offset + expectedRead, e.BadOffset);
        Assert.Equal(offset + length - e.BadOffset, e.BadLength);
        Assert.Equal(e.BadOffset, e.BadSourceOffset); // mapped from offset 0 of the file
        Assert.Equal(t.Path, e.Path);
        Assert.Equal(0, e.Errno);
        Assert.Contains($"mapping offset 0x{e.BadOffset:x}", e.Message, StringComparison.Ordinal);
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
        Assert.Contains(t.Path, e.Message, StringComparison.Ordinal);
        // What was read before the fault is the file's data.
        Assert.True(Expected(offset, (int)expectedRead).SequenceEqual(read.AsSpan(0, (int)expectedRead)));
        // The mapping is still usable below the new end, safely or not.
        Assert.Equal(Expected(KeptLength - 1, 1)[0], t.Map.GetReadOnlySpan(KeptLength - 1, 1)[0]);

        // DangerousReadSafe ends the same way, with the same bytes copied.
        byte[] again = new byte[length];
        PmemMediaErrorException d = Assert.Throws<PmemMediaErrorException>(() =>
        {
            fixed (byte* to = again)
            {
                t.Map.DangerousReadSafe(offset, to, length);
            }
        });
        Assert.Equal((e.Kind, e.Offset, e.Length, e.BytesRead, e.BadOffset, e.BadLength), (d.Kind, d.Offset, d.Length, d.BytesRead, d.BadOffset, d.BadLength));
        Assert.True(read.AsSpan(0, (int)expectedRead).SequenceEqual(again.AsSpan(0, (int)expectedRead)));
    }

    [Theory]
    [InlineData(0, 1 << 20)]                      // pieces of 64 KiB: the fault is in the fourth
    [InlineData(100, (1 << 20) - 100)]
    [InlineData(200 * 1024, 300 * 1024)]          // past the end from the first byte
    public void ALongReadSafeStopsAtTheFaultInALaterPiece(int offset, int length)
    {
        const int Kept = 200 * 1024;
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("long"), 1 << 20, Kept);
        byte[] read = new byte[length];
        PmemMediaErrorException e = Assert.Throws<PmemMediaErrorException>(() => t.Map.ReadSafe(offset, read));
        long expectedRead = Math.Max(0, Kept - offset);
        Assert.Equal(expectedRead, e.BytesRead);
        Assert.Equal(offset + expectedRead, e.BadOffset);
        Assert.True(Expected(offset, (int)expectedRead).AsSpan().SequenceEqual(read.AsSpan(0, (int)expectedRead)));
    }

    [Fact]
    public void ReadSafeOverATruncatedFileSurvivesManyRoundsFromSeveralThreadsAtOnce()
    {
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("truncated"));
        int rounds = ChildProcess.Rounds("DIRECTPMEM_TEST_READSAFE_ROUNDS", 2000);
        int threads = Math.Max(4, Environment.ProcessorCount);
        long faults = 0;
        long good = 0;
        var barrier = new Barrier(threads);
        Thread[] workers = Enumerable.Range(0, threads).Select(w => new Thread(() =>
        {
            byte[] read = new byte[8192];
            barrier.SignalAndWait();
            for (int i = 0; i < rounds; i++)
            {
                // Alternate a read that crosses the end (fault) and one below it (no fault).
                int offset = (i & 1) == 0 ? KeptLength - 4096 + (i % 512) : i % 4096;
                try
                {
                    t.Map.ReadSafe(offset, read);
                    Interlocked.Increment(ref good);
                }
                catch (PmemMediaErrorException e) when (e.BadOffset == KeptLength && e.BytesRead == KeptLength - offset)
                {
                    Interlocked.Increment(ref faults);
                }
            }
        })).ToArray();
        foreach (Thread worker in workers)
        {
            worker.Start();
        }
        foreach (Thread worker in workers)
        {
            worker.Join();
        }
        Assert.Equal((long)threads * rounds / 2, Interlocked.Read(ref faults));
        Assert.Equal((long)threads * rounds / 2, Interlocked.Read(ref good));
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, -1)]
    [InlineData(true, 0)]
    [InlineData(true, -1)]
    public void EveryCopyPathStopsAtTheFaultAndReportsTheBytesNotCopied(bool avx2, long threshold)
    {
        nint routine = Routine(avx2);
        nuint repThreshold = threshold < 0 ? nuint.MaxValue : (nuint)threshold;
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("truncated"));
        byte* source = t.Map.DangerousGetPointer();
        byte[] read = new byte[8192];
        foreach (int before in new[] { 0, 1, 7, 8, 15, 16, 31, 32, 33, 127, 128, 129, 4095, 4096 })
        {
            nuint notCopied;
            SafeCopy.Fault fault;
            fixed (byte* to = read)
            {
                notCopied = SafeCopy.CopyWith(routine, to, source + KeptLength - before, 5000, out fault, repThreshold);
            }
            Assert.Equal((nuint)(5000 - before), notCopied);
            Assert.Equal(Libc.BUS_ADRERR, fault.Code);
            Assert.Equal((nuint)(source + KeptLength), fault.Address);
            Assert.True(Expected(KeptLength - before, before).SequenceEqual(read.AsSpan(0, before)), $"{before} bytes before the end");
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void EveryLengthCopiesExactlyAndStopsAtTheFaultWhateverTheDestinationsDistanceFromTheSource(bool avx2, bool aliased)
    {
        // The AVX2 copy takes 16..256 bytes without a loop, and copies backward when the destination is
        // 0..255 bytes ahead of the source modulo 4 KiB: a destination 0x40 ahead (aliased) takes that
        // path from 257 bytes on, one 0x840 ahead the forward loop.
        nint routine = Routine(avx2);
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("truncated"));
        byte* mapped = t.Map.DangerousGetPointer();
        byte[] buffer = new byte[3 * 8192];
        fixed (byte* pinned = buffer)
        {
            foreach (int length in new[] { 1, 15, 16, 20, 31, 32, 40, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256, 257, 1000, 4096, 5000, 8192 })
            {
                foreach (int before in new[] { 0, 1, 15, 16, 31, 32, 33, 63, 64, 100, 127, 128, 129, 200, 4095, 4096, 5000, -1 })
                {
                    if (before >= length)
                    {
                        continue;
                    }
                    // before = -1: a read that ends a page below the end of the file, without a fault.
                    byte* source = before < 0 ? mapped + KeptLength - 4096 - length : mapped + KeptLength - before;
                    nint distance = aliased ? 0x40 : 0x840;
                    byte* to = pinned + (((nint)source + distance - (nint)pinned) & 0xFFF);
                    new Span<byte>(pinned, buffer.Length).Fill(0xEE);
                    nuint notCopied = SafeCopy.CopyWith(routine, to, source, (nuint)length, out SafeCopy.Fault fault, nuint.MaxValue);
                    int read = before < 0 ? length : before;
                    long at = source - mapped;
                    Assert.True(Expected((int)at, read).SequenceEqual(new ReadOnlySpan<byte>(to, read)), $"{length} bytes, {before} before the end: the bytes read");
                    Assert.Equal((nuint)(length - read), notCopied);
                    if (before >= 0)
                    {
                        Assert.Equal(Libc.BUS_ADRERR, fault.Code);
                        Assert.Equal((nuint)(mapped + KeptLength), fault.Address);
                    }
                }
            }
        }
    }

    [Fact]
    public void ReadSafeOfPagesProtectedBehindTheMappingsBackThrowsInsteadOfDying()
    {
        using DaxMapping map = DaxMapping.CreateAnonymous(MapLength);
        Fill(map.GetSpan(0, MapLength));
        byte* base_ = map.DangerousGetPointer();
        Assert.Equal(0, Libc.MProtect((nint)(base_ + KeptLength), 4096, Libc.PROT_NONE));
        try
        {
            byte[] read = new byte[200];
            PmemException e = Assert.Throws<PmemException>(() => map.ReadSafe(KeptLength - 50, read));
            Assert.IsNotType<PmemMediaErrorException>(e);
            Assert.Contains("SIGSEGV", e.Message, StringComparison.Ordinal);
            Assert.Contains($"mapping offset 0x{KeptLength:x}", e.Message, StringComparison.Ordinal);
            Assert.True(Expected(KeptLength - 50, 50).AsSpan().SequenceEqual(read.AsSpan(0, 50)));
        }
        finally
        {
            Assert.Equal(0, Libc.MProtect((nint)(base_ + KeptLength), 4096, Libc.PROT_READ | Libc.PROT_WRITE));
        }
    }

    [Fact]
    public void ReadSafeRacingDisposeCompletesOrThrowsObjectDisposedNeverKillsTheProcess()
    {
        string[] report = ChildProcess.RunPassing(typeof(ReadSafeTests), nameof(DisposeRaceChild));
        Assert.Contains(report, line => line.StartsWith("rounds ", StringComparison.Ordinal));
    }

    [Fact]
    public void SmallDangerousReadSafesRacingDisposeCompleteOrThrowObjectDisposedNeverKillTheProcess()
    {
        string[] report = ChildProcess.RunPassing(typeof(ReadSafeTests), nameof(SmallDangerousDisposeRaceChild));
        Assert.Contains(report, line => line.StartsWith("rounds ", StringComparison.Ordinal));
    }

    // The inlined path of DangerousReadSafe (64 B reads into a buffer pinned once) racing Dispose:
    // each read completes on the live mapping or throws; a read that met the PROT_NONE reservation
    // left by Dispose ends as ObjectDisposedException, never as a fault of the process.
    [Fact(Explicit = true)]
    public void SmallDangerousDisposeRaceChild()
    {
        int completed = 0;
        int disposed = 0;
        RaceWithDispose(1 << 20, map =>
        {
            byte* buffer = stackalloc byte[64];
            for (int i = 0; i < 20_000; i++)
            {
                try
                {
                    map.DangerousReadSafe((i & 4095) * 256L, buffer, 64);
                    if (buffer[0] != 1 || buffer[63] != 1)
                    {
                        throw new InvalidOperationException($"read {buffer[0]}/{buffer[63]} from a live mapping");
                    }
                    completed++;
                }
                catch (ObjectDisposedException)
                {
                    // Dispose sets its flag before it zeroes the limits: a refused range is
                    // reported as disposed, never as out of range.
                    disposed++;
                    return;
                }
            }
        }, () => $"completed {completed} disposed {disposed}");
    }

    [Fact(Explicit = true)]
    public void DisposeRaceChild()
    {
        byte[] read = new byte[4 << 20];
        int completed = 0;
        int disposed = 0;
        RaceWithDispose(4 << 20, map =>
        {
            for (int i = 0; i < 4; i++)
            {
                try
                {
                    map.ReadSafe(0, read);
                    completed++;
                }
                catch (ObjectDisposedException)
                {
                    disposed++;
                }
                catch (ArgumentOutOfRangeException)
                {
                    // Disposed before the range check read the length (0 after Dispose).
                    disposed++;
                }
            }
        }, () => $"completed {completed} disposed {disposed}");
    }

    // In a child process: for each round, a mapping of ones that `reads` uses on a second thread
    // while this thread disposes it after a delay that varies by round; then reports the counts.
    private static void RaceWithDispose(int mapLength, Action<DaxMapping> reads, Func<string> counts)
    {
        ChildProcess.RequireChild();
        int rounds = ChildProcess.Rounds("DIRECTPMEM_TEST_READSAFE_ROUNDS", 200);
        for (int r = 0; r < rounds; r++)
        {
            DaxMapping map = DaxMapping.CreateAnonymous(mapLength);
            map.GetSpan(0, mapLength).Fill(1);
            using var started = new ManualResetEventSlim();
            var reader = new Thread(() =>
            {
                started.Set();
                reads(map);
            });
            reader.Start();
            started.Wait(TestContext.Current.CancellationToken);
            Thread.SpinWait(r * 97 % 20_000);
            map.Dispose();
            reader.Join();
        }
        ChildProcess.Report($"rounds {rounds} {counts()}");
        ChildProcess.Report("done");
    }

    [Fact]
    public void ReadSafeRefusesARangeOutsideTheMappingAndUseAfterDispose()
    {
        DaxMapping map = DaxMapping.CreateAnonymous(4096);
        Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => map.ReadSafe(1, new byte[4096])).ParamName);
        Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => map.ReadSafe(-1, new byte[1])).ParamName);
        map.Dispose();
        Assert.Throws<ObjectDisposedException>(() => map.ReadSafe(0, new byte[1]));
    }

    [Fact]
    public void DangerousReadSafeCopiesARangeLongerThanOnePiece()
    {
        const int Length = (int)SafeCopy.MaxPiece * 2 + 100;
        using DaxMapping map = DaxMapping.CreateAnonymous(4L << 20);
        Fill(map.GetSpan(0, 4 << 20));
        byte[] read = new byte[Length];
        fixed (byte* to = read)
        {
            map.DangerousReadSafe(7, to, Length);
        }
        Assert.True(map.GetReadOnlySpan(7, Length).SequenceEqual(read));
    }

    [Fact]
    public void DangerousReadSafeRefusesARangeOutsideTheMappingANegativeLengthAndUseAfterDispose()
    {
        DaxMapping map = DaxMapping.CreateAnonymous(4096);
        byte[] read = new byte[4096];
        fixed (byte* to = read)
        {
            byte* destination = to;
            Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => map.DangerousReadSafe(1, destination, 4096)).ParamName);
            Assert.Equal("offset", Assert.Throws<ArgumentOutOfRangeException>(() => map.DangerousReadSafe(-1, destination, 1)).ParamName);
            Assert.Equal("length", Assert.Throws<ArgumentOutOfRangeException>(() => map.DangerousReadSafe(0, destination, -1)).ParamName);
            map.Dispose();
            Assert.Throws<ObjectDisposedException>(() => map.DangerousReadSafe(0, destination, 1));
            Assert.Throws<ObjectDisposedException>(() => map.DangerousReadSafe(0, destination, 0));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AFaultAtTheDestinationIsReportedAsTheDestinationsNotAsAMediaErrorOfTheMapping(bool dangerous)
    {
        // The destination is a page past the end of a truncated file: the copy's first store raises
        // SIGBUS (BUS_ADRERR) at an address outside the range being read.
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("truncated-destination"));
        using DaxMapping source = DaxMapping.CreateAnonymous(4096);
        Fill(source.GetSpan(0, 4096));
        Span<byte> destination = t.Map.GetSpan(KeptLength + 4096, 64);
        byte* to = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(destination));
        PmemException e = dangerous
            ? Assert.Throws<PmemException>(() => source.DangerousReadSafe(128, to, 64))
            : Assert.Throws<PmemException>(() => source.ReadSafe(128, new Span<byte>(to, 64)));
        Assert.Contains("could not write its destination", e.Message, StringComparison.Ordinal);
        Assert.Contains($"0x{(nuint)to:x}", e.Message, StringComparison.Ordinal);
        Assert.Contains("SIGBUS", e.Message, StringComparison.Ordinal);
        // The source is intact and still readable.
        Assert.Equal(Expected(128, 64), source.GetReadOnlySpan(128, 64).ToArray());
    }

    [Fact]
    public void NullReferenceExceptionStillWorksWithTheHandlerInstalled()
    {
        Assert.True(DaxMapping.IsReadSafeSupported, SafeCopy.Failure);
        Assert.Equal(SafeCopy.CodeAddress + SafeCopy.HandlerOffset, CurrentHandler(Libc.SIGBUS));
        Assert.Equal(SafeCopy.CodeAddress + SafeCopy.HandlerOffset, CurrentHandler(Libc.SIGSEGV));
        string? nothing = NullString();
        Assert.Throws<NullReferenceException>(() => nothing!.Length);
    }

    [Fact]
    public void APlainSpanReadOfATruncatedMappingKillsTheProcessWithSigbus()
    {
        ChildProcess.Result result = ChildProcess.Run(typeof(ReadSafeTests), nameof(PlainSpanReadChild));
        AssertDiedOfSigbus(result, "truncated");
    }

    [Fact]
    public void ASigbusTheSafeCopyDidNotCauseStillReachesTheRuntime()
    {
        // The handler is installed first (a safe read survives), then a plain span read of the same bad page.
        ChildProcess.Result result = ChildProcess.Run(typeof(ReadSafeTests), nameof(PlainSpanReadChild), (InstallFirstVariable, "1"));
        Assert.Contains("safe read survived", result.Report);
        AssertDiedOfSigbus(result, "truncated");
    }

    [Fact]
    public void WithoutAPreviousHandlerAForeignSigbusGetsTheDefaultAction()
    {
        // SIGBUS is reset to SIG_DFL before the handler is installed: the handler's own fallback
        // (restore SIG_DFL, return, fault again) must end the process with the signal itself.
        ChildProcess.Result result = ChildProcess.Run(typeof(ReadSafeTests), nameof(PlainSpanReadChild),
            (InstallFirstVariable, "1"), (DefaultFirstVariable, "1"));
        Assert.Contains("safe read survived", result.Report);
        Assert.Contains("truncated", result.Report);
        Assert.DoesNotContain("plain read did not fault", result.Report);
        Assert.Equal(128 + Libc.SIGBUS, result.ExitCode);
    }

    [Theory]
    [InlineData(Libc.BUS_MCEERR_AO, false)]
    [InlineData(Libc.BUS_MCEERR_AR, false)]
    [InlineData(Libc.BUS_ADRERR, false)]
    [InlineData(Libc.BUS_MCEERR_AO, true)]
    [InlineData(Libc.BUS_MCEERR_AR, true)]
    [InlineData(-1, true)]  // SI_QUEUE: sent by a process
    public void ASigbusThatTheCopyDidNotRaiseEndsAsItDoesWithoutTheHandler(int code, bool defaultFirst)
    {
        // The child sends itself a SIGBUS carrying the code (rt_tgsigqueueinfo allows any si_code to
        // oneself); it arrives outside the copy, so the handler must pass it on: the child ends the
        // same way with the handler installed as without it. Before the handler the child has the
        // runtime's handler, or SIG_DFL (defaultFirst), where the handler must do what the kernel does.
        string text = code.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string dfl = defaultFirst ? "1" : "0";
        ChildProcess.Result without = ChildProcess.Run(typeof(ReadSafeTests), nameof(ForeignSigbusChild), (CodeVariable, text), (InstallFirstVariable, "0"), (DefaultFirstVariable, dfl));
        ChildProcess.Result with = ChildProcess.Run(typeof(ReadSafeTests), nameof(ForeignSigbusChild), (CodeVariable, text), (DefaultFirstVariable, dfl));
        Assert.Contains("handler installed", with.Report);
        Assert.DoesNotContain("handler installed", without.Report);
        Assert.Equal(without.ExitCode, with.ExitCode);
        Assert.Equal(without.Report.Contains("survived"), with.Report.Contains("survived"));
        if (defaultFirst)
        {
            Assert.Equal(128 + Libc.SIGBUS, with.ExitCode); // the default action: death by SIGBUS
        }
    }

    private const string CodeVariable = "DIRECTPMEM_TEST_READSAFE_CODE";
    private const long SYS_gettid = 186;
    private const long SYS_rt_tgsigqueueinfo = 297;

    [LibraryImport("libc.so.6", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a, long b, long c, void* d);

    [Fact(Explicit = true)]
    public void ForeignSigbusChild()
    {
        ChildProcess.RequireChild();
        if (Environment.GetEnvironmentVariable(DefaultFirstVariable) == "1")
        {
            Libc.SigActionData dfl = default;
            Assert.Equal(0, Libc.SigAction(Libc.SIGBUS, &dfl, null));
        }
        if (Environment.GetEnvironmentVariable(InstallFirstVariable) != "0")
        {
            Assert.True(DaxMapping.IsReadSafeSupported, SafeCopy.Failure);
            ChildProcess.Report("handler installed");
        }
        byte* info = stackalloc byte[128];
        new Span<byte>(info, 128).Clear();
        *(int*)info = Libc.SIGBUS;                                                       // si_signo
        *(int*)(info + 8) = int.Parse(Environment.GetEnvironmentVariable(CodeVariable)!, System.Globalization.CultureInfo.InvariantCulture); // si_code
        *(nint*)(info + 16) = 0x1000;                                                    // si_addr
        long tid = Syscall(SYS_gettid, 0, 0, 0, null);
        Assert.Equal(0, Syscall(SYS_rt_tgsigqueueinfo, Environment.ProcessId, tid, Libc.SIGBUS, info));
        Thread.Sleep(2000);
        ChildProcess.Report("survived");
    }

    [Fact]
    public void TheHandlerKeepsThePreviousFlagsAndMask()
    {
        string[] report = ChildProcess.RunPassing(typeof(ReadSafeTests), nameof(HandlerInstallChild));
        Assert.Contains($"installed {Libc.SIGBUS}", report);
        Assert.Contains($"installed {Libc.SIGSEGV}", report);
    }

    [Fact]
    public void AStackOverflowStillEndsInTheRuntimesReportWithTheHandlerInstalled()
    {
        ChildProcess.Result result = ChildProcess.Run(typeof(ReadSafeTests), nameof(StackOverflowChild));
        Assert.Contains("handler installed", result.Report);
        Assert.DoesNotContain("recursion returned", result.Report);
        Assert.Contains("Stack overflow", result.Output, StringComparison.Ordinal);
        Assert.NotEqual(0, result.ExitCode);
    }

    [Fact]
    public void WithGeneratedCodeDisabledReadSafeRefusesWithTheReason()
    {
        string[] report = ChildProcess.RunPassing(typeof(ReadSafeTests), nameof(DisabledChild), ("DIRECTPMEM_NO_GENERATED_CODE", "1"));
        Assert.Contains("refused", report);
    }

    [Fact]
    public void ReadSafeOfAHardwarePoisonedPageThrowsPoisonNamingThePage()
    {
        // MADV_HWPOISON (root, CONFIG_MEMORY_FAILURE) runs the kernel's memory-failure handling on a
        // page of a memfd this child owns: the page is taken out of service and the next load of it
        // is a real BUS_MCEERR_AR, as for an uncorrectable memory error. In a child, because the
        // page stays poisoned (the memfd and the child go away; the frame stays retired). A retired
        // frame is lost to the machine for good: only inside the qemu guest of tests/devdax-vm, never
        // on a host a plain `dotnet test` runs on (IntegrationTests.MediaErrorTests runs it there).
        Assert.SkipWhen(Environment.GetEnvironmentVariable("DIRECTPMEM_VM_PHASE") is null,
            "poisons a physical page with MADV_HWPOISON, which retires it for good: only in the qemu guest of tests/devdax-vm/run.sh (DIRECTPMEM_VM_PHASE is not set)");
        ChildProcess.Result result = ChildProcess.Run(typeof(ReadSafeTests), nameof(HwPoisonChild));
        string? skip = result.Report.FirstOrDefault(line => line.StartsWith("skip: ", StringComparison.Ordinal));
        if (skip is not null)
        {
            Assert.Skip(skip["skip: ".Length..]);
        }
        Assert.True(result.ExitCode == 0 && result.Report.Contains("done"),
            $"the child failed (exit code {result.ExitCode}, report [{string.Join("; ", result.Report)}]):\n{result.Output}");
        Assert.Contains($"poison bad 0x{KeptLength:x} length 0x1000 read 100", result.Report);
        Assert.Contains("again poison", result.Report);
    }

    private const int MADV_HWPOISON = 100;

    [Fact(Explicit = true)]
    public void HwPoisonChild()
    {
        ChildProcess.RequireChild();
        using PmemFile file = PmemFile.CreateMemory("directpmem-hwpoison", MapLength);
        using DaxMapping map = file.Map();
        Fill(map.GetSpan(0, MapLength));
        if (Environment.SystemPageSize != 4096)
        {
            ChildProcess.Report($"skip: the test poisons one 4 KiB page; the page size is {Environment.SystemPageSize}");
            return;
        }
        if (Libc.MAdvise((nint)(map.DangerousGetPointer() + KeptLength), 4096, MADV_HWPOISON) != 0)
        {
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            ChildProcess.Report($"skip: madvise(MADV_HWPOISON) failed with {Errno.Name(errno)} (it needs CAP_SYS_ADMIN and a kernel with CONFIG_MEMORY_FAILURE; "
                + $"/proc/sys/vm/memory_failure_recovery {(File.Exists("/proc/sys/vm/memory_failure_recovery") ? "exists" : "is absent")})");
            return;
        }
        byte[] read = new byte[300];
        PmemMediaErrorException e = Assert.Throws<PmemMediaErrorException>(() => map.ReadSafe(KeptLength - 100, read));
        Assert.Equal(MediaErrorKind.Poison, e.Kind);
        Assert.True(Expected(KeptLength - 100, 100).AsSpan().SequenceEqual(read.AsSpan(0, 100)));
        ChildProcess.Report($"poison bad 0x{e.BadOffset:x} length 0x{e.BadLength:x} read {e.BytesRead}");
        // No crash loop: the same read fails the same way, and the pages around it read fine.
        e = Assert.Throws<PmemMediaErrorException>(() => map.ReadSafe(KeptLength + 64, read));
        ChildProcess.Report(e.Kind == MediaErrorKind.Poison && e.BadOffset == KeptLength ? "again poison" : $"again {e.Kind} 0x{e.BadOffset:x}");
        map.ReadSafe(KeptLength + 4096, read);
        Assert.True(Expected(KeptLength + 4096, read.Length).AsSpan().SequenceEqual(read));
        ChildProcess.Report("done");
    }

    private const string InstallFirstVariable = "DIRECTPMEM_TEST_READSAFE_INSTALL_FIRST";
    private const string DefaultFirstVariable = "DIRECTPMEM_TEST_READSAFE_DEFAULT_FIRST";

    [Fact(Explicit = true)]
    public void PlainSpanReadChild()
    {
        ChildProcess.RequireChild();
        if (Environment.GetEnvironmentVariable(DefaultFirstVariable) == "1")
        {
            Libc.SigActionData dfl = default;
            Assert.Equal(0, Libc.SigAction(Libc.SIGBUS, &dfl, null));
        }
        using TempDirectory dir = new();
        using TruncatedMapping t = TruncatedMapping.Create(dir.File("truncated"));
        if (Environment.GetEnvironmentVariable(InstallFirstVariable) == "1")
        {
            Assert.Throws<PmemMediaErrorException>(() => t.Map.ReadSafe(KeptLength, new byte[1]));
            ChildProcess.Report("safe read survived");
        }
        ChildProcess.Report("truncated");
        byte b = t.Map.GetReadOnlySpan(KeptLength, 1)[0];
        ChildProcess.Report($"plain read did not fault ({b})");
    }

    [Fact(Explicit = true)]
    public void HandlerInstallChild()
    {
        ChildProcess.RequireChild();
        int[] signals = [Libc.SIGBUS, Libc.SIGSEGV];
        var before = new Libc.SigActionData[signals.Length];
        for (int i = 0; i < signals.Length; i++)
        {
            fixed (Libc.SigActionData* b = &before[i])
            {
                Assert.Equal(0, Libc.SigAction(signals[i], null, b));
            }
        }
        Assert.True(DaxMapping.IsReadSafeSupported, SafeCopy.Failure);
        for (int i = 0; i < signals.Length; i++)
        {
            Libc.SigActionData after = default;
            Assert.Equal(0, Libc.SigAction(signals[i], null, &after));
            Assert.Equal(SafeCopy.CodeAddress + SafeCopy.HandlerOffset, after.Handler);
            Assert.NotEqual(before[i].Handler, after.Handler);
            int kept = Libc.SA_ONSTACK | Libc.SA_RESTART | Libc.SA_NODEFER;
            Assert.Equal(before[i].Flags & kept, after.Flags & kept);
            Assert.Equal(Libc.SA_SIGINFO, after.Flags & Libc.SA_SIGINFO);
            Assert.Equal(0, after.Flags & Libc.SA_RESETHAND);
            // glibc passes and returns only the kernel's 64 signals: the first word of its 1024-bit sigset_t.
            Assert.Equal(before[i].Mask[0], after.Mask[0]);
            ChildProcess.Report($"installed {signals[i]}");
        }
        ChildProcess.Report("done");
    }

    [Fact(Explicit = true)]
    public void StackOverflowChild()
    {
        ChildProcess.RequireChild();
        Assert.True(DaxMapping.IsReadSafeSupported, SafeCopy.Failure);
        ChildProcess.Report("handler installed");
        Recurse(0);
        ChildProcess.Report("recursion returned");
    }

    [Fact(Explicit = true)]
    public void DisabledChild()
    {
        ChildProcess.RequireChild();
        Assert.False(DaxMapping.IsReadSafeSupported);
        using DaxMapping map = DaxMapping.CreateAnonymous(4096);
        PmemCapabilityException e = Assert.Throws<PmemCapabilityException>(() => map.ReadSafe(0, new byte[1]));
        Assert.Contains("DIRECTPMEM_NO_GENERATED_CODE", e.Message, StringComparison.Ordinal);
        ChildProcess.Report("refused");
        ChildProcess.Report("done");
    }

    /// <summary>
    /// The child died of the SIGBUS: the .NET runtime turns a SIGBUS in managed code into a fatal
    /// AccessViolationException ("Fatal error." and the stack on stderr) and aborts (SIGABRT, exit status 134).
    /// </summary>
    internal static void AssertDiedOfSigbus(ChildProcess.Result result, string reached)
    {
        Assert.Contains(reached, result.Report);
        Assert.DoesNotContain(result.Report, line => line.StartsWith("plain read did not fault", StringComparison.Ordinal));
        Assert.True(result.ExitCode == 128 + SIGABRT && result.Output.Contains("Fatal error.", StringComparison.Ordinal)
            && result.Output.Contains("System.AccessViolationException", StringComparison.Ordinal),
            $"expected the runtime's fatal AccessViolationException and SIGABRT (exit status {128 + SIGABRT}), got {result.ExitCode}:\n{result.Output}");
    }

    private const int SIGABRT = 6;

    internal static nint CurrentHandler(int signal)
    {
        Libc.SigActionData current = default;
        Assert.Equal(0, Libc.SigAction(signal, null, &current));
        return current.Handler;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static string? NullString() => null;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int Recurse(int depth)
    {
        Span<byte> frame = stackalloc byte[256];
        frame[depth & 255] = (byte)depth;
        return Recurse(depth + 1) + frame[(depth + 1) & 255];
    }

    private static void Fill(Span<byte> span)
    {
        for (int i = 0; i < span.Length; i++)
        {
            span[i] = Pattern(i);
        }
    }

    private static byte Pattern(long offset) => (byte)((offset * 131) ^ (offset >> 8));

    private static byte[] Expected(long offset, int length)
    {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++)
        {
            bytes[i] = Pattern(offset + i);
        }
        return bytes;
    }

    /// <summary>A 64 KiB file mapped whole, filled with a pattern, then truncated to 16 KiB under the mapping.</summary>
    internal sealed class TruncatedMapping : IDisposable
    {
        private readonly PmemFile _file;

        private TruncatedMapping(string path, PmemFile file, DaxMapping map)
        {
            Path = path;
            _file = file;
            Map = map;
        }

        internal string Path { get; }

        internal DaxMapping Map { get; }

        internal static TruncatedMapping Create(string path, int mapLength = MapLength, int keptLength = KeptLength)
        {
            PmemFile file = PmemFile.Create(path, mapLength);
            DaxMapping map = file.Map();
            Fill(map.GetSpan(0, mapLength));
            Truncation.Truncate(path, keptLength);
            return new TruncatedMapping(path, file, map);
        }

        public void Dispose()
        {
            Map.Dispose();
            _file.Dispose();
        }
    }
}

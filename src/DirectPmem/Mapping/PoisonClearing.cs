using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Interop;

namespace DirectPmem.Mapping;

/// <summary>How <see cref="PmemFile.ClearBadRange(long, long)"/> cleared a range.</summary>
public enum PoisonClearMethod
{
    /// <summary>
    /// A page-aligned write over the range: on a DAX file (Linux 5.19+) the kernel's recovery write
    /// (<c>dax_recovery_write</c>) clears the poison and stores the data; on a page-cache file the
    /// pmem driver clears it when the written pages reach the device (the write is synced).
    /// </summary>
    RecoveryWrite,

    /// <summary>
    /// The write failed with EIO (a kernel without recovery writes): the range was deallocated
    /// (<c>fallocate(PUNCH_HOLE|KEEP_SIZE)</c>), allocated again (the file system zeroes new blocks
    /// through the driver, which clears poison) and then written, as PMDK's <c>badblocks_clear_file</c> does.
    /// </summary>
    PunchHoleAndReallocate,
}

/// <summary>What clearing one range of a file did.</summary>
public sealed class PoisonClearResult
{
    internal PoisonClearResult(string path, PmemRange range, PoisonClearMethod method, BadRangeReport after)
    {
        Path = path;
        Range = range;
        Method = method;
        StillListed = BadBlockMath.Window(after.Ranges, range.Offset, range.Length)
            .Select(r => new PmemRange(r.Offset + range.Offset, r.Length)).ToList().AsReadOnly();
        CoverageAfter = after.Coverage;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The file range that was rewritten (page-aligned).</summary>
    public PmemRange Range { get; }

    /// <summary>How it was cleared.</summary>
    public PoisonClearMethod Method { get; }

    /// <summary>
    /// The parts of <see cref="Range"/> the kernel still lists as bad after the clear (file offsets,
    /// re-read through the file's extents): empty when the range is clean now. Non-empty means the
    /// platform did not clear the media (the data was written, but a load there may still raise
    /// SIGBUS). After <see cref="PoisonClearMethod.PunchHoleAndReallocate"/> the range may have moved
    /// to new blocks while the old sector stays listed on the device, in the file system's free space.
    /// </summary>
    public IReadOnlyList<PmemRange> StillListed { get; }

    /// <summary>How complete the list re-read after the clear was.</summary>
    public BadRangeCoverage CoverageAfter { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"'{Path}' {Range}: {Method}{(StillListed.Count == 0 ? "" : ", still listed: " + string.Join(", ", StillListed))}");
}

/// <summary>The system calls a clear makes; the one seam tests use to drive the fallback and its failures.</summary>
internal interface IPoisonClearCalls
{
    /// <summary>pwrite of all of <paramref name="data"/> at <paramref name="offset"/>: 0, or the errno.</summary>
    int Write(ReadOnlySpan<byte> data, long offset);

    /// <summary>fallocate(PUNCH_HOLE|KEEP_SIZE): 0, or the errno.</summary>
    int PunchHole(long offset, long length);

    /// <summary>fallocate(KEEP_SIZE): 0, or the errno.</summary>
    int Allocate(long offset, long length);

    /// <summary>fdatasync: 0, or the errno.</summary>
    int Sync();
}

/// <summary>The real calls on a descriptor.</summary>
internal sealed unsafe class DescriptorClearCalls(int fd) : IPoisonClearCalls
{
    public int Write(ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* start = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint written = Libc.PWrite(fd, start + done, (nuint)(data.Length - done), offset + done);
                if (written < 0)
                {
                    int errno = SyscallError.LastErrno;
                    if (errno == Errno.EINTR)
                    {
                        continue;
                    }
                    return errno;
                }
                if (written == 0)
                {
                    return Errno.EIO;
                }
                done += (int)written;
            }
        }
        return 0;
    }

    public int PunchHole(long offset, long length)
        => Libc.FAllocate(fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : SyscallError.LastErrno;

    public int Allocate(long offset, long length)
        => Libc.FAllocate(fd, Libc.FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : SyscallError.LastErrno;

    public int Sync() => Libc.FDataSync(fd) == 0 ? 0 : SyscallError.LastErrno;
}

/// <summary>
/// Clears poison in a file range: a page-aligned write (the kernel's recovery write on DAX), and on
/// EIO the PMDK fallback of punching a hole and reallocating before writing again.
/// </summary>
internal static class PoisonClearer
{
    // Zeros to write when the caller gives no data: 64 KiB per pwrite.
    private static readonly byte[] s_zeros = new byte[64 * 1024];

    internal static PoisonClearMethod Clear(IPoisonClearCalls calls, string path, long offset, long length, ReadOnlySpan<byte> data)
    {
        int errno = WriteRange(calls, offset, length, data);
        PoisonClearMethod method = PoisonClearMethod.RecoveryWrite;
        if (errno == Errno.EIO)
        {
            // No recovery write in this kernel (before 5.19 a DAX write over a bad block fails with EIO).
            const string After = "a write over the range failed with EIO (the kernel has no recovery write for it)";
            int punch = calls.PunchHole(offset, length);
            if (punch != 0)
            {
                throw SyscallError.Create(punch, "fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE)", path, offset, length,
                    hint: $"{After}, and the range could not be deallocated either: the poison is not cleared; the file system may not support hole punching.");
            }
            int allocate = calls.Allocate(offset, length);
            if (allocate != 0)
            {
                throw SyscallError.Create(allocate, "fallocate(FALLOC_FL_KEEP_SIZE)", path, offset, length,
                    hint: $"{After}; the range was deallocated (it now reads as zeros) but could not be allocated again, so the data was not written. Free space and clear again.");
            }
            errno = WriteRange(calls, offset, length, data);
            if (errno != 0)
            {
                throw SyscallError.Create(errno, "pwrite", path, offset, length,
                    hint: $"{After}; the range was deallocated and allocated again, and the write still failed: the data was not written.");
            }
            method = PoisonClearMethod.PunchHoleAndReallocate;
        }
        else if (errno != 0)
        {
            throw SyscallError.Create(errno, "pwrite", path, offset, length, hint: "The recovery write over the bad range failed; the poison is not cleared.");
        }
        int sync = calls.Sync();
        if (sync != 0)
        {
            throw SyscallError.Create(sync, "fdatasync", path, offset, length,
                hint: "The range was rewritten but could not be synced: on a page-cache file the poison is cleared only when the pages reach the device.");
        }
        return method;
    }

    private static int WriteRange(IPoisonClearCalls calls, long offset, long length, ReadOnlySpan<byte> data)
    {
        if (!data.IsEmpty)
        {
            return calls.Write(data, offset);
        }
        for (long done = 0; done < length;)
        {
            int chunk = (int)Math.Min(s_zeros.Length, length - done);
            int errno = calls.Write(s_zeros.AsSpan(0, chunk), offset + done);
            if (errno != 0)
            {
                return errno;
            }
            done += chunk;
        }
        return 0;
    }
}

using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;

namespace DirectPmem.Mapping;

public sealed partial class PmemFile
{
    /// <summary>
    /// The file's known bad ranges, in file offsets: the pmem block device's <c>badblocks</c> placed
    /// in the file through its extents (FIEMAP). Read fresh from sysfs at every call.
    /// </summary>
    /// <returns>
    /// The ranges and how complete they are: <see cref="BadRangeCoverage.NoBadBlockList"/> for memory,
    /// tmpfs and files on disks; <see cref="BadRangeCoverage.Unknown"/> when the file is on persistent
    /// memory but its blocks cannot be placed (the report says why).
    /// </returns>
    /// <param name="sysfsRoot">The directory that plays <c>/sys</c> (a fixture tree in tests, as for <see cref="Driver.DaxBus"/>); <c>/sys</c> when null.</param>
    /// <exception cref="ObjectDisposedException">The file is closed.</exception>
    /// <exception cref="ArgumentException"><paramref name="sysfsRoot"/> is empty or holds a NUL.</exception>
    /// <exception cref="PmemException">fstat failed.</exception>
    public BadRangeReport GetBadRanges(string? sysfsRoot = null)
    {
        ObjectDisposedException.ThrowIf(_fd.IsClosed, this);
        if (sysfsRoot is not null)
        {
            PathValidation.Validate(sysfsRoot, nameof(sysfsRoot));
        }
        return FileBadRanges.Read(_fd.Fd, Path, Backing, Size, sysfsRoot ?? SysfsRoot);
    }

    // GetBadRanges for a mapping of this file, which references the descriptor for its whole life
    // (MapSource.ListDescriptor): it still reads after this PmemFile was disposed.
    internal BadRangeReport ReadBadRangesForMapping() => FileBadRanges.Read(_fd.Fd, Path, Backing, Size, SysfsRoot);

    /// <summary>
    /// Clears the poison in <c>[offset, offset + length)</c> by writing zeros over it: the kernel's
    /// recovery write on a DAX file (Linux 5.19+), or, where the write fails with EIO, by punching a
    /// hole and allocating the blocks again. The bytes there were lost with the media error; the
    /// caller restores them (from a replica, a backup, or a structure's own copy) afterwards, or
    /// uses <see cref="ClearBadRange(long, ReadOnlySpan{byte})"/> to write them in the same step.
    /// </summary>
    /// <param name="offset">The first byte; a multiple of the system page size (4 KiB).</param>
    /// <param name="length">The number of bytes; a positive multiple of the page size, within <see cref="Size"/>.</param>
    /// <returns>Which method cleared it, and what the kernel still lists afterwards.</returns>
    /// <exception cref="ArgumentException">The offset or length is not page-aligned.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or ends past <see cref="Size"/>.</exception>
    /// <exception cref="InvalidOperationException">The file was opened read-only, or is memory (memfd, tmpfs, hugetlbfs), which has no media to clear.</exception>
    /// <exception cref="PmemException">The write, the hole punch, the allocation or the sync failed; the message says what state the range was left in.</exception>
    public PoisonClearResult ClearBadRange(long offset, long length) => ClearCore(offset, length, default);

    /// <summary>
    /// Clears the poison in <c>[offset, offset + data.Length)</c> as <see cref="ClearBadRange(long, long)"/>
    /// does, writing <paramref name="data"/> there instead of zeros.
    /// </summary>
    /// <param name="offset">The first byte; a multiple of the system page size (4 KiB).</param>
    /// <param name="data">The bytes to store; its length is a positive multiple of the page size.</param>
    /// <returns>Which method cleared it, and what the kernel still lists afterwards.</returns>
    /// <exception cref="ArgumentException">The offset or length is not page-aligned.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range is empty or ends past <see cref="Size"/>.</exception>
    /// <exception cref="InvalidOperationException">The file was opened read-only, or is memory, which has no media to clear.</exception>
    /// <exception cref="PmemException">The write, the hole punch, the allocation or the sync failed.</exception>
    public PoisonClearResult ClearBadRange(long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            throw new ArgumentOutOfRangeException(nameof(data), 0, "data is empty; pass the bytes to write over the bad range (a multiple of the page size).");
        }
        return ClearCore(offset, data.Length, data);
    }

    /// <summary>
    /// Clears every range <see cref="GetBadRanges"/> lists, each widened to whole pages, by writing
    /// zeros (see <see cref="ClearBadRange(long, long)"/>).
    /// </summary>
    /// <returns>One result per cleared page range; empty when nothing is listed.</returns>
    /// <exception cref="InvalidOperationException">The list is <see cref="BadRangeCoverage.Unknown"/> (nothing is written then), the file is read-only, or it is memory.</exception>
    /// <param name="sysfsRoot">The directory that plays <c>/sys</c>; <c>/sys</c> when null.</param>
    /// <exception cref="PmemException">A clear failed; the ranges before it were cleared.</exception>
    public IReadOnlyList<PoisonClearResult> ClearBadRanges(string? sysfsRoot = null)
    {
        BadRangeReport report = GetBadRanges(sysfsRoot);
        if (report.Coverage == BadRangeCoverage.Unknown)
        {
            throw new InvalidOperationException($"the bad ranges of '{Path}' are not known ({report.Detail}); nothing was cleared. Clear named ranges with ClearBadRange.");
        }
        var results = new List<PoisonClearResult>();
        foreach (PmemRange page in PageRanges(report.Ranges, Environment.SystemPageSize, Size))
        {
            results.Add(ClearCore(page.Offset, page.Length, default, sysfsRoot));
        }
        return results.AsReadOnly();
    }

    /// <summary>Bad ranges widened to whole pages and merged, clipped to <paramref name="size"/>.</summary>
    internal static List<PmemRange> PageRanges(IEnumerable<PmemRange> ranges, int pageSize, long size)
    {
        var pages = new List<PmemRange>();
        foreach (PmemRange r in ranges)
        {
            long start = RangeValidator.AlignDown(r.Offset, pageSize);
            long end = Math.Min(RangeValidator.AlignUp(r.End, pageSize), RangeValidator.AlignUp(size, pageSize));
            if (end > start)
            {
                pages.Add(new PmemRange(start, end - start));
            }
        }
        return BadBlockMath.Merge(pages);
    }

    private PoisonClearResult ClearCore(long offset, long length, ReadOnlySpan<byte> data, string? sysfsRoot = null)
    {
        ObjectDisposedException.ThrowIf(_fd.IsClosed, this);
        CheckClearable(offset, length);
        PoisonClearMethod method = PoisonClearer.Clear(new DescriptorClearCalls(_fd.Fd), Path, offset, length, data);
        return new PoisonClearResult(Path, new PmemRange(offset, length), method, GetBadRanges(sysfsRoot));
    }

    /// <summary>The argument and state checks of a clear, before anything is written.</summary>
    internal void CheckClearable(long offset, long length)
    {
        if (!IsWritable)
        {
            throw new InvalidOperationException($"'{Path}' was opened read-only; clearing a bad range writes over it. Open it writable.");
        }
        if (Backing is not (MappingBacking.PageCacheFile or MappingBacking.FsDaxFile))
        {
            throw new InvalidOperationException($"'{Path}' is {MapSources.Describe(Backing)}: memory has no media errors to clear.");
        }
        RangeValidator.ValidateNonEmpty(offset, length);
        int page = Environment.SystemPageSize;
        if (!RangeValidator.IsAligned(offset, page))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"offset 0x{offset:x} is not a multiple of the {page}-byte page: the kernel clears poison only by whole pages (dax_recovery_write)."), nameof(offset));
        }
        if (!RangeValidator.IsAligned(length, page))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"length 0x{length:x} is not a multiple of the {page}-byte page: the kernel clears poison only by whole pages (dax_recovery_write)."), nameof(length));
        }
        if (length > Size - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, string.Create(CultureInfo.InvariantCulture,
                $"range [0x{offset:x}, +0x{length:x}) ends past the end of '{Path}' ({Size} bytes)."));
        }
    }
}

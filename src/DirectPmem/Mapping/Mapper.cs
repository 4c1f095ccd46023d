using System.Diagnostics;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Persistence;
using System.Globalization;

namespace DirectPmem.Mapping;

/// <summary>
/// One map request (PMDK's <c>pmem2_config</c> applied to a source; the kernel's <c>check_vma</c>):
/// built once from (options, source, window) by <see cref="Create"/>, which validates every
/// option against the source and honours it or refuses it with a typed error. Nothing repacks it:
/// <see cref="Mapper"/> maps it and <see cref="MappingFactory"/> wraps the result.
/// </summary>
internal readonly struct MapRequest
{
    private MapRequest(MapSource source, long sourceOffset, long length, PageSize pageSize, DaxMappingOptions options,
        HugePages hugePages, bool verifyHugePages, PersistGranularity granularity, string what)
    {
        Source = source;
        SourceOffset = sourceOffset;
        Length = length;
        PageSize = pageSize;
        ReadOnly = options.ReadOnly;
        Populate = options.Populate || verifyHugePages;
        LockInMemory = options.LockInMemory;
        HugePages = hugePages;
        VerifyHugePages = verifyHugePages;
        Granularity = granularity;
        What = what;
    }

    internal MapSource Source { get; }

    /// <summary>The offset in the source (file or device) of the first mapped byte.</summary>
    internal long SourceOffset { get; }

    internal long Length { get; }

    internal PageSize PageSize { get; }

    internal bool ReadOnly { get; }

    internal bool Populate { get; }

    internal bool LockInMemory { get; }

    /// <summary>The huge-page mode after the source resolved it: Transparent means MADV_HUGEPAGE.</summary>
    internal HugePages HugePages { get; }

    /// <summary>Transparent huge pages were required: the mapping is prefaulted and its page size checked in smaps.</summary>
    internal bool VerifyHugePages { get; }

    /// <summary>Decided before mapping, so that a refused granularity maps nothing.</summary>
    internal PersistGranularity Granularity { get; }

    /// <summary>The source or window named in messages.</summary>
    internal string What { get; }

    internal string? Path => Source.Path;

    /// <summary>
    /// Validates <paramref name="options"/> for <paramref name="source"/> within the window
    /// <c>[windowOffset, windowOffset + windowLength)</c> of the source (the whole source, a device
    /// range of an allocator, ...); offsets in the options are relative to the window.
    /// </summary>
    /// <param name="source">What is mapped.</param>
    /// <param name="options">The caller's options.</param>
    /// <param name="windowOffset">The source offset of the window's first byte.</param>
    /// <param name="windowLength">The window's length; null for the whole source as it is now.</param>
    /// <param name="windowAlign">The window's own alignment (a device's align), or null for the source's.</param>
    /// <param name="what">The window named in messages; null for the source's name.</param>
    internal static MapRequest Create(MapSource source, DaxMappingOptions options, long windowOffset = 0, long? windowLength = null,
        PageSize? windowAlign = null, string? what = null)
    {
        what ??= source.What;
        if (!Enum.IsDefined(options.HugePages))
        {
            throw OptionOutOfRange(nameof(options.HugePages), (long)options.HugePages,
                $"HugePages {(int)options.HugePages} is not defined (None, Transparent or Hugetlb).");
        }
        if (options.RequiredGranularity is PersistGranularity required && !Enum.IsDefined(required))
        {
            throw OptionOutOfRange(nameof(options.RequiredGranularity), (long)required,
                $"RequiredGranularity {(int)required} is not defined (None, Page, CacheLine or Byte).");
        }
        PageSize minimum = (PageSize)Math.Max((long)source.MinimumPageSize, (long)(windowAlign ?? source.MinimumPageSize));
        PageSize pageSize = options.PageSize ?? (PageSize)Math.Max((long)source.DefaultPageSize(options), (long)minimum);
        PageSizes.Validate(pageSize, nameof(options.PageSize));
        if (pageSize < minimum)
        {
            throw new ArgumentException(
                $"page size {pageSize.ToDisplayString()} is smaller than the {minimum.ToDisplayString()} alignment of {what}; device-DAX faults whole aligned pages.",
                nameof(options));
        }
        if (!source.IsWritable && !options.ReadOnly)
        {
            throw new InvalidOperationException($"{what} was opened read-only; map it with ReadOnly = true (new DaxMappingOptions {{ ReadOnly = true }}).");
        }

        long length;
        if (!source.HasOffsets)
        {
            if (options.Offset != 0)
            {
                throw OptionOutOfRange(nameof(options.Offset), options.Offset, $"{what} has no offset; Offset must be 0, not {options.Offset}.");
            }
            length = options.Length ?? throw OptionOutOfRange(nameof(options.Length), -1, $"{what} has no size: give a length.");
            RangeValidator.ValidateMapRange(0, length, pageSize, long.MaxValue, what, nameof(options.Offset), nameof(options.Length));
        }
        else
        {
            long limit = windowLength ?? source.CurrentSize() - windowOffset;
            if (options.Offset < 0)
            {
                throw OptionOutOfRange(nameof(options.Offset), options.Offset,
                    string.Create(CultureInfo.InvariantCulture, $"Offset {options.Offset} is negative."));
            }
            if (limit <= 0)
            {
                throw OptionOutOfRange(nameof(options.Offset), options.Offset,
                    string.Create(CultureInfo.InvariantCulture, $"{what} is empty (size {Math.Max(limit, 0)}): there is nothing to map."));
            }
            if (options.Length is null && options.Offset >= limit)
            {
                throw OptionOutOfRange(nameof(options.Offset), options.Offset, string.Create(CultureInfo.InvariantCulture,
                    $"Offset {options.Offset} (0x{options.Offset:x}) is {(options.Offset == limit ? "at" : "past")} the end of {what}, whose size is {limit} (0x{limit:x}): there is nothing to map."));
            }
            length = options.Length ?? limit - options.Offset;
            RangeValidator.ValidateMapRange(options.Offset, length, pageSize, limit, what, nameof(options.Offset), nameof(options.Length));
        }

        if (source.HasOffsets && windowLength is not null)
        {
            // A window (a device, an allocator range) has its own size; the file under it must still hold it.
            long end = checked(windowOffset + options.Offset + length);
            long now = source.CurrentSize();
            if (end > now)
            {
                throw OptionOutOfRange(nameof(options.Length), length, string.Create(CultureInfo.InvariantCulture,
                    $"the range of {what} ends at offset {end} of {source.What}, which holds only {now} bytes now (truncated by another program?): touching the missing pages would raise SIGBUS."));
            }
        }
        HugePages hugePages = source.ResolveHugePages(options.HugePages);
        bool verifyHugePages = false;
        if (options.RequirePageSize && pageSize > source.FaultGranularity)
        {
            if (hugePages == HugePages.Transparent && pageSize == PageSize.Pmd)
            {
                // Transparent huge pages are verified after prefaulting instead of assumed.
                verifyHugePages = true;
            }
            else
            {
                throw new PmemCapabilityException(
                    $"{what} was required to fault in {pageSize.ToDisplayString()} pages but {MapSources.Describe(source.Backing)} faults in {source.FaultGranularity.ToDisplayString()} pages. " +
                    "Use hugetlb memory (a hugetlb memfd, a hugetlbfs file, HugePages.Hugetlb, or an emulated device on them), transparent huge pages (verified), or a device-DAX device; or do not set RequirePageSize.");
            }
        }

        PersistGranularity granularity = source.ChooseGranularity(options.ForceCacheLineGranularity, options.RequiredGranularity);
        return new MapRequest(source, checked(windowOffset + options.Offset), length, pageSize, options, hugePages, verifyHugePages, granularity, what);
    }

    /// <summary>An option out of range; the parameter is the option's name (Offset, Length), as the caller wrote it.</summary>
    internal static ArgumentOutOfRangeException OptionOutOfRange(string option, long value, string message)
        => new(option, value, message);

    /// <summary>An option the source cannot honour.</summary>
    internal static ArgumentException OptionRefused(string message, string options = "options") => new(message, options);
}

/// <summary>
/// The one place that calls mmap for data. It places the mapping at a virtual address aligned
/// to the page size (reserve length + page size as PROT_NONE, MAP_FIXED the real mapping at the
/// aligned address inside it, release the rest), always MAP_SHARED, then MADV_DONTFORK.
/// </summary>
internal static class Mapper
{
    internal static SafeMappingHandle Map(in MapRequest request)
    {
        long align = (long)request.PageSize;
        nuint length = (nuint)request.Length;
        int prot = request.ReadOnly ? Libc.PROT_READ : Libc.PROT_READ | Libc.PROT_WRITE;
        int flags = Libc.MAP_SHARED | request.Source.MapFlags;
        int fd = -1;

        SafeFileDescriptor? descriptor = request.Source.AcquireDescriptor(request.ReadOnly, out bool owned);
        bool addRef = false;
        try
        {
            if (descriptor is not null)
            {
                descriptor.DangerousAddRef(ref addRef);
                fd = descriptor.Fd;
                if (!request.ReadOnly)
                {
                    request.Source.EnsureBlocks(descriptor, request.SourceOffset, request.Length);
                }
            }

            nint address = align > Environment.SystemPageSize
                ? MapAligned(length, align, prot, flags, fd, in request)
                : MapUnaligned(length, prot, flags, fd, in request);

            var handle = new SafeMappingHandle(address, length);
            try
            {
                Advise(address, length, in request);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
            return handle;
        }
        finally
        {
            if (addRef)
            {
                descriptor!.DangerousRelease();
            }
            if (owned)
            {
                descriptor!.Dispose();
            }
        }
    }

    private static nint MapUnaligned(nuint length, int prot, int flags, int fd, in MapRequest request)
    {
        // The kernel returns a 4 KiB-aligned address: no reservation needed.
        nint mapped = Libc.MMap(0, length, prot, flags, fd, request.SourceOffset);
        if (mapped == Libc.MAP_FAILED)
        {
            throw MapFailure(SyscallError.LastErrno, fd, in request);
        }
        return mapped;
    }

    private static nint MapAligned(nuint length, long align, int prot, int flags, int fd, in MapRequest request)
    {
        // Reserve length + align of address space that nothing can touch, then place the real
        // mapping at the first aligned address inside it. The reservation is private and
        // PROT_NONE: it never holds data, and MAP_FIXED replaces it atomically.
        nuint reserveLength = checked(length + (nuint)align);
        nint reservation = SyscallError.CheckMap(
            Libc.MMap(0, reserveLength, Libc.PROT_NONE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0),
            "mmap (address reservation)", request.Path, 0, (long)reserveLength);

        nint aligned = (nint)RangeValidator.AlignUp(reservation, align);
        nint mapped = Libc.MMap(aligned, length, prot, flags | Libc.MAP_FIXED, fd, request.SourceOffset);
        if (mapped == Libc.MAP_FAILED)
        {
            int errno = SyscallError.LastErrno;
            Libc.MUnmap(reservation, reserveLength);
            throw MapFailure(errno, fd, in request);
        }
        Debug.Assert(mapped == aligned);

        // Give back the unused head and tail of the reservation.
        nuint head = (nuint)(aligned - reservation);
        if (head != 0)
        {
            SyscallError.Check(Libc.MUnmap(reservation, head), "munmap (reservation head)");
        }
        nuint tail = reserveLength - head - length;
        if (tail != 0)
        {
            SyscallError.Check(Libc.MUnmap(aligned + (nint)length, tail), "munmap (reservation tail)");
        }
        return aligned;
    }

    private static PmemException MapFailure(int errno, int fd, in MapRequest request)
    {
        string? hint = null;
        if ((errno == Errno.EINVAL || errno == Errno.ENODEV) && fd >= 0 && !request.ReadOnly)
        {
            string path = request.Path ?? request.What;
            if (FileSystemTypes.SharedWritableRefusalHint(fd, path) is { } refused)
            {
                return new PmemCapabilityException(
                    SyscallError.Describe(errno, "mmap(MAP_SHARED, PROT_WRITE)", path, request.SourceOffset, request.Length, refused),
                    "mmap", errno, path);
            }
        }
        if (request.Source.Backing == MappingBacking.Hugetlb)
        {
            if (errno == Errno.ENOMEM)
            {
                hint = HugetlbHint(request.PageSize, request.Length);
                return new PmemCapabilityException(
                    SyscallError.Describe(errno, "mmap", request.Path, request.SourceOffset, request.Length, hint), "mmap", errno, request.Path);
            }
        }
        if ((request.Source.MapFlags & Libc.MAP_SYNC) != 0 && errno == Errno.EOPNOTSUPP)
        {
            hint = "MAP_SYNC is only supported on device-DAX and on files of a file system mounted with -o dax.";
        }
        return SyscallError.Create(errno, "mmap", request.Path, request.SourceOffset, request.Length, hint);
    }

    internal static string HugetlbHint(PageSize pageSize, long length)
    {
        long pages = (length + (long)pageSize - 1) / (long)pageSize;
        return pageSize == PageSize.Pud
            ? $"No free 1 GiB hugetlb pages: reserve at least {pages} (as root: echo {pages} > /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages, or hugepagesz=1G hugepages={pages} on the kernel command line)."
            : $"Not enough free 2 MiB hugetlb pages: reserve at least {pages} more (as root: echo N > /proc/sys/vm/nr_hugepages; see HugePages_Free in /proc/meminfo).";
    }

    private static void Advise(nint address, nuint length, in MapRequest request)
    {
        // MADV_DONTFORK is part of the device-DAX contract: a forked child never inherits a mapping.
        SyscallError.Check(Libc.MAdvise(address, length, Libc.MADV_DONTFORK), "madvise(MADV_DONTFORK)", request.Path, request.SourceOffset, request.Length);

        if (request.HugePages == HugePages.Transparent)
        {
            // Best effort: EINVAL when THP is compiled out; the observed page size reports the outcome.
            _ = Libc.MAdvise(address, length, Libc.MADV_HUGEPAGE);
        }

        if (request.Populate)
        {
            int advice = request.ReadOnly ? Libc.MADV_POPULATE_READ : Libc.MADV_POPULATE_WRITE;
            if (Libc.MAdvise(address, length, advice) != 0)
            {
                int errno = SyscallError.LastErrno;
                if (errno != Errno.EINVAL)
                {
                    // ENOMEM/EFAULT here means a page could not be faulted in: the mapping would SIGBUS later.
                    throw PopulateFailure(errno, in request);
                }
                // Kernels before 5.14 lack MADV_POPULATE_*: touch one byte per page instead.
                TouchPages(address, length, request.ReadOnly);
            }
        }

        if (request.LockInMemory && Libc.MLock(address, length) != 0)
        {
            int errno = SyscallError.LastErrno;
            throw SyscallError.Create(errno, "mlock", request.Path, request.SourceOffset, request.Length,
                "Locked memory is limited by RLIMIT_MEMLOCK (ulimit -l) unless the process has CAP_IPC_LOCK.");
        }
    }

    private static PmemException PopulateFailure(int errno, in MapRequest request)
    {
        string call = request.ReadOnly ? "madvise(MADV_POPULATE_READ)" : "madvise(MADV_POPULATE_WRITE)";
        if (errno is Errno.EFAULT or Errno.ENOMEM or Errno.ENOSPC)
        {
            string hint = request.Source.Backing == MappingBacking.Hugetlb
                ? HugetlbHint(request.PageSize, request.Length)
                : request.Path is null
                    ? "No memory left to back the pages."
                    : "A page could not be faulted in: no space left for the file's blocks, or the file was truncated under the mapping (a store there would raise SIGBUS).";
            return new PmemOutOfSpaceException(SyscallError.Describe(errno, call, request.Path, request.SourceOffset, request.Length, hint), call, errno, request.Path);
        }
        return SyscallError.Create(errno, call, request.Path, request.SourceOffset, request.Length);
    }

    private static unsafe void TouchPages(nint address, nuint length, bool readOnly)
    {
        byte* p = (byte*)address;
        nuint step = (nuint)Environment.SystemPageSize;
        for (nuint i = 0; i < length; i += step)
        {
            if (readOnly)
            {
                _ = Volatile.Read(ref *(p + i));
            }
            else
            {
                // An atomic add of zero dirties the page without changing data another mapping may write.
                System.Threading.Interlocked.Add(ref *(int*)(p + i), 0);
            }
        }
    }
}

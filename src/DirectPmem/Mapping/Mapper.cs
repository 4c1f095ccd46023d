using System.Diagnostics;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;

namespace DirectPmem.Mapping;

/// <summary>What <see cref="Mapper.Map"/> is asked to map, after the public layer validated it.</summary>
internal readonly record struct MapRequest(
    SafeFileDescriptor? Fd,
    string? Path,
    MappingBacking Backing,
    long Offset,
    long Length,
    PageSize PageSize,
    bool ReadOnly,
    int ExtraFlags,
    HugePages HugePages,
    bool Populate,
    bool LockInMemory)
{
    /// <summary>Give the mapping cache-line granularity whatever its backing (PMEM_IS_PMEM_FORCE; for benchmarks and tests).</summary>
    public bool ForceCacheLineGranularity { get; init; }

    /// <summary>Refuse the mapping unless it has at least this granularity (finer is accepted).</summary>
    public Persistence.PersistGranularity? RequiredGranularity { get; init; }
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
        int flags = Libc.MAP_SHARED | request.ExtraFlags;
        int fd = -1;
        if (request.Fd is null)
        {
            flags |= Libc.MAP_ANONYMOUS;
        }

        bool addRef = false;
        try
        {
            if (request.Fd is not null)
            {
                request.Fd.DangerousAddRef(ref addRef);
                fd = request.Fd.Fd;
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
                request.Fd!.DangerousRelease();
            }
        }
    }

    private static nint MapUnaligned(nuint length, int prot, int flags, int fd, in MapRequest request)
    {
        // The kernel returns a 4 KiB-aligned address: no reservation needed.
        nint mapped = Libc.MMap(0, length, prot, flags, fd, request.Offset);
        if (mapped == Libc.MAP_FAILED)
        {
            throw MapFailure(SyscallError.LastErrno, in request);
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
        nint mapped = Libc.MMap(aligned, length, prot, flags | Libc.MAP_FIXED, fd, request.Offset);
        if (mapped == Libc.MAP_FAILED)
        {
            int errno = SyscallError.LastErrno;
            Libc.MUnmap(reservation, reserveLength);
            throw MapFailure(errno, in request);
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

    private static PmemException MapFailure(int errno, in MapRequest request)
    {
        string? hint = null;
        if ((request.ExtraFlags & Libc.MAP_HUGETLB) != 0 || request.Backing == MappingBacking.Hugetlb)
        {
            if (errno == Errno.ENOMEM)
            {
                hint = HugetlbHint(request.PageSize, request.Length);
                return new PmemCapabilityException(
                    SyscallError.Describe(errno, "mmap", request.Path, request.Offset, request.Length, hint), "mmap", errno, request.Path);
            }
        }
        if ((request.ExtraFlags & Libc.MAP_SYNC) != 0 && errno == Errno.EOPNOTSUPP)
        {
            hint = "MAP_SYNC is only supported on device-DAX and on files of a file system mounted with -o dax.";
        }
        return SyscallError.Create(errno, "mmap", request.Path, request.Offset, request.Length, hint);
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
        SyscallError.Check(Libc.MAdvise(address, length, Libc.MADV_DONTFORK), "madvise(MADV_DONTFORK)", request.Path, request.Offset, request.Length);

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
                    // ENOMEM/EFAULT here means a page could not be allocated: the mapping would SIGBUS later.
                    SyscallError.Throw(errno, request.ReadOnly ? "madvise(MADV_POPULATE_READ)" : "madvise(MADV_POPULATE_WRITE)",
                        request.Path, request.Offset, request.Length);
                }
                // Kernels before 5.14 lack MADV_POPULATE_*: touch one byte per page instead.
                TouchPages(address, length, request.ReadOnly);
            }
        }

        if (request.LockInMemory && Libc.MLock(address, length) != 0)
        {
            int errno = SyscallError.LastErrno;
            throw SyscallError.Create(errno, "mlock", request.Path, request.Offset, request.Length,
                "Locked memory is limited by RLIMIT_MEMLOCK (ulimit -l) unless the process has CAP_IPC_LOCK.");
        }
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

using System.Globalization;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Persistence;

namespace DirectPmem.Mapping;

/// <summary>
/// An opened file or memfd that mappings are made from. Any number of mappings can be made from
/// one <see cref="PmemFile"/>. A file opened for writing holds an exclusive advisory lock
/// (flock), so a second writable open of the same file, in this process or another, is refused
/// with <see cref="PmemInUseException"/> unless both opens ask for shared access.
/// </summary>
/// <remarks>
/// The lock belongs to the open file, which every mapping also references: it is held until
/// this object and every mapping made from it are disposed. DirectPmem never changes the size of
/// a file it has opened; a file truncated by another program under a live mapping makes access
/// past its new end raise SIGBUS.
/// </remarks>
public sealed partial class PmemFile : IDisposable
{
    /// <summary>The mode of files DirectPmem creates unless the caller gives one: read and write for the owner only (0600).</summary>
    public const UnixFileMode DefaultCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    // memfd_create(2): the name is at most 249 bytes (NAME_MAX minus the "memfd:" prefix).
    private const int MaxMemoryNameBytes = 249;

    private readonly SafeFileDescriptor _fd;
    private readonly Lazy<DeepFlushControl?> _deepFlush;

    private PmemFile(SafeFileDescriptor fd, string path, long size, MappingBacking backing, PageSize minimumPageSize, bool writable, bool shared)
    {
        _fd = fd;
        Source = new FileSource(this);
        Path = path;
        Size = size;
        Backing = backing;
        MinimumPageSize = minimumPageSize;
        IsWritable = writable;
        IsShared = shared;
        _deepFlush = new Lazy<DeepFlushControl?>(ResolveDeepFlush);
    }

    /// <summary>The path the file was opened by, or <c>memfd:NAME</c> for a memfd.</summary>
    public string Path { get; }

    /// <summary>The size of the file in bytes, fixed while it is open through DirectPmem.</summary>
    public long Size { get; }

    /// <summary>What the file lives on: page cache, DAX file system, tmpfs or hugetlbfs.</summary>
    public MappingBacking Backing { get; }

    /// <summary>The smallest page size a mapping of this file can have (2 MiB or 1 GiB on hugetlbfs and hugetlb memfds).</summary>
    public PageSize MinimumPageSize { get; }

    /// <summary>Whether the file was opened for writing.</summary>
    public bool IsWritable { get; }

    /// <summary>Whether the open allows other shared opens for writing at the same time.</summary>
    public bool IsShared { get; }

    internal SafeFileDescriptor Handle => _fd;

    /// <summary>The sysfs root the region behind the file is looked up in; <c>/sys</c> unless a test set a fixture tree before the first map.</summary>
    internal string SysfsRoot { get; set; } = "/sys";

    /// <summary>The deep-flush control of the NVDIMM region behind the file's block device, resolved at the first map; null when there is none.</summary>
    internal DeepFlushControl? RegionDeepFlush => _deepFlush.Value;

    /// <summary>
    /// Creates a new file of exactly <paramref name="size"/> bytes with its space allocated up front
    /// (posix_fallocate), so that running out of space fails here and never as SIGBUS on a page fault.
    /// </summary>
    /// <param name="path">The file to create; it must not exist.</param>
    /// <param name="size">
    /// The size in bytes: positive and a multiple of the file system's page for mappings, 4 KiB on
    /// ordinary file systems and tmpfs, the huge page size (2 MiB or 1 GiB) on hugetlbfs. Mappings
    /// cover whole pages, so a partial last page could never be mapped.
    /// </param>
    /// <param name="mode">The permission bits; <see cref="DefaultCreateMode"/> (0600) when <see langword="null"/>.</param>
    /// <param name="shared">Take a shared lock instead of an exclusive one (see <see cref="Open"/>).</param>
    /// <returns>The file, opened for reading and writing.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, holds a NUL or is not valid Unicode; or <paramref name="size"/> is not a multiple of the page size.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is not positive.</exception>
    /// <exception cref="PmemOutOfSpaceException">The file system has no room for <paramref name="size"/> bytes; the file is removed.</exception>
    /// <exception cref="PmemException">The file exists (EEXIST), or creation or allocation failed; a partly created file is removed.</exception>
    public static PmemFile Create(string path, long size, UnixFileMode? mode = null, bool shared = false)
    {
        PathValidation.Validate(path, nameof(path));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        if (mode is UnixFileMode m && ((int)m & ~0xFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, string.Create(CultureInfo.InvariantCulture,
                $"mode 0x{(int)m:x} has bits outside the 12 permission bits (07777)."));
        }
        uint bits = (uint)(mode ?? DefaultCreateMode);

        int fd = SyscallError.Check(Libc.Open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_CLOEXEC, bits), "open(O_CREAT|O_EXCL)", path);
        var handle = new SafeFileDescriptor(fd);
        try
        {
            Lock(handle, writable: true, shared, path);
            (MappingBacking backing, PageSize minimum) = Classify(handle, path);
            if (!RangeValidator.IsAligned(size, minimum))
            {
                string pages = backing == MappingBacking.Hugetlb
                    ? $"the {minimum.ToDisplayString()} pages of the hugetlbfs file '{path}'"
                    : $"the {minimum.ToDisplayString()} page size: '{path}' is {MapSources.Describe(backing)}, and mappings cover whole pages";
                // The multiple above may not exist: a size near long.MaxValue has none.
                string nearest = RangeValidator.TryAlignUp(size, (long)minimum, out long above)
                    ? string.Create(CultureInfo.InvariantCulture, $"the nearest multiples are {RangeValidator.AlignDown(size, (long)minimum)} and {above}")
                    : string.Create(CultureInfo.InvariantCulture, $"the nearest multiple is {RangeValidator.AlignDown(size, (long)minimum)}; the next would pass {long.MaxValue}");
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"size {size} is not a multiple of {pages} ({nearest})."), nameof(size));
            }
            if (Libc.FAllocate(fd, 0, 0, size) != 0)
            {
                int errno = SyscallError.LastErrno;
                if (errno is not (Errno.EOPNOTSUPP or Errno.ENOSYS))
                {
                    throw errno is Errno.ENOSPC or Errno.EDQUOT
                        ? new PmemOutOfSpaceException(SyscallError.Describe(errno, "fallocate", path, 0, size,
                            "No space left for the file's blocks; the file was removed."), "fallocate", errno, path)
                        : SyscallError.Create(errno, "fallocate", path, 0, size);
                }
                // No fallocate on this file system: set the size; EnsureBlocks cannot check holes here either.
                SyscallError.Check(Libc.FTruncate(fd, size), "ftruncate", path, 0, size);
            }
            return new PmemFile(handle, path, size, backing, minimum, writable: true, shared);
        }
        catch
        {
            handle.Dispose();
            // We created it and nothing was written to it yet: removing it loses nothing.
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Opens an existing file to map it.</summary>
    /// <param name="path">The file; a regular file on any file system.</param>
    /// <param name="writable">Open for reading and writing (the default) or for reading only.</param>
    /// <param name="shared">
    /// Allow other opens that also ask for shared access to write at the same time (a shared flock).
    /// Without it, a writable open takes an exclusive lock and a read-only open a shared one.
    /// </param>
    /// <returns>The opened file.</returns>
    /// <remarks>
    /// The open never blocks: it uses O_NONBLOCK, so a FIFO or a device that would wait is opened
    /// at once and then refused because it is not a regular file.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty, holds a NUL or is not valid Unicode.</exception>
    /// <exception cref="PmemNotFoundException">The file does not exist.</exception>
    /// <exception cref="PmemInUseException">The file is opened elsewhere in a way that excludes this open.</exception>
    /// <exception cref="PmemException">The path is not a regular file (a directory, FIFO, socket or device), or another system call failed.</exception>
    public static PmemFile Open(string path, bool writable = true, bool shared = false)
    {
        PathValidation.Validate(path, nameof(path));
        int flags = (writable ? Libc.O_RDWR : Libc.O_RDONLY) | Libc.O_CLOEXEC | Libc.O_NONBLOCK | Libc.O_NOCTTY;
        int fd = SyscallError.Check(Libc.Open(path, flags, 0), writable ? "open(O_RDWR)" : "open(O_RDONLY)", path);
        var handle = new SafeFileDescriptor(fd);
        try
        {
            long size = RegularFileSize(handle, path);
            Lock(handle, writable, shared, path);
            (MappingBacking backing, PageSize minimum) = Classify(handle, path);
            return new PmemFile(handle, path, size, backing, minimum, writable, shared);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates an anonymous memory file (memfd) of <paramref name="size"/> bytes: volatile shared memory
    /// that can be mapped several times, optionally backed by reserved hugetlb pages.
    /// </summary>
    /// <param name="name">A name for diagnostics (shown in /proc/PID/maps as <c>/memfd:NAME</c>).</param>
    /// <param name="size">The size in bytes; a multiple of <paramref name="hugePageSize"/> when <paramref name="hugePages"/> is <see cref="HugePages.Hugetlb"/>.</param>
    /// <param name="hugePages">None, transparent (MADV_HUGEPAGE at map time), or hugetlb (MFD_HUGETLB).</param>
    /// <param name="hugePageSize">The hugetlb page size (2 MiB or 1 GiB) when <paramref name="hugePages"/> is <see cref="HugePages.Hugetlb"/>.</param>
    /// <returns>The memfd, opened for reading and writing.</returns>
    /// <exception cref="PmemCapabilityException">Hugetlb pages were asked for and not enough are reserved.</exception>
    /// <exception cref="PmemOutOfSpaceException"><paramref name="size"/> is more than the machine's memory and swap.</exception>
    /// <exception cref="PmemException">memfd_create, ftruncate or fallocate failed.</exception>
    public static PmemFile CreateMemory(string name, long size, HugePages hugePages = HugePages.None, PageSize hugePageSize = PageSize.Pmd)
    {
        PathValidation.Validate(name, nameof(name), "memfd name");
        if (PathValidation.Utf8Length(name) > MaxMemoryNameBytes)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"memfd name '{name}' is {PathValidation.Utf8Length(name)} UTF-8 bytes; memfd_create takes at most {MaxMemoryNameBytes}."), nameof(name));
        }
        if (!Enum.IsDefined(hugePages))
        {
            throw new ArgumentOutOfRangeException(nameof(hugePages), hugePages, $"HugePages {(int)hugePages} is not defined (None, Transparent or Hugetlb).");
        }
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        PageSizes.Validate(hugePageSize, nameof(hugePageSize));
        string path = "memfd:" + name;
        bool hugetlb = hugePages == HugePages.Hugetlb;
        PageSize minimum = hugetlb ? hugePageSize : PageSize.Pte;
        if (hugetlb && hugePageSize == PageSize.Pte)
        {
            throw new ArgumentException("hugetlb memfds take 2 MiB or 1 GiB pages.", nameof(hugePageSize));
        }
        if (!RangeValidator.IsAligned(size, minimum))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"size {size} is not a multiple of the {(hugetlb ? "hugetlb " : "")}page size {minimum.ToDisplayString()}."), nameof(size));
        }

        if (!hugetlb && MemoryLimit() is long limit && size > limit)
        {
            // A memfd is memory: fallocate of more than the machine has would run it out of memory
            // page by page (the kernel does not refuse it up front) instead of failing.
            throw new PmemOutOfSpaceException(string.Create(CultureInfo.InvariantCulture,
                $"memfd '{name}': size {size} is more than this machine's memory and swap ({limit} bytes, MemTotal + SwapTotal in /proc/meminfo)."),
                "memfd_create", Errno.ENOMEM, path);
        }

        uint flags = Libc.MFD_CLOEXEC;
        if (hugetlb)
        {
            flags |= Libc.MFD_HUGETLB | ((uint)minimum.Shift() << Libc.MAP_HUGE_SHIFT);
        }
        // MFD_NOEXEC_SEAL (Linux 6.3+) makes the memory impossible to map executable; older kernels say EINVAL.
        int fd = Libc.MemfdCreate(name, flags | Libc.MFD_NOEXEC_SEAL);
        if (fd < 0 && SyscallError.LastErrno == Errno.EINVAL)
        {
            fd = Libc.MemfdCreate(name, flags);
        }
        SyscallError.Check(fd, "memfd_create", path);
        var handle = new SafeFileDescriptor(fd);
        try
        {
            SyscallError.Check(Libc.FTruncate(fd, size), "ftruncate", path, 0, size);
            int errno = Libc.PosixFAllocate(fd, 0, size);
            if (errno != 0)
            {
                if (hugetlb && errno is Errno.ENOSPC or Errno.ENOMEM)
                {
                    throw new PmemCapabilityException(
                        SyscallError.Describe(errno, "fallocate", path, 0, size, Mapper.HugetlbHint(minimum, size)), "fallocate", errno, path);
                }
                SyscallError.Throw(errno, "fallocate", path, 0, size);
            }
            MappingBacking backing = hugetlb ? MappingBacking.Hugetlb : MappingBacking.SharedMemory;
            return new PmemFile(handle, path, size, backing, minimum, writable: true, shared: false);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    // MemTotal + SwapTotal from /proc/meminfo, in bytes; null when it cannot be read (the check is then skipped).
    private static long? MemoryLimit()
    {
        try
        {
            long total = 0;
            int found = 0;
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal) || line.StartsWith("SwapTotal:", StringComparison.Ordinal))
                {
                    string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long kib) && kib < long.MaxValue / 2048)
                    {
                        total += kib * 1024;
                        found++;
                    }
                }
            }
            return found == 2 ? total : null;
        }
        catch (IOException)
        {
            // Best effort: without /proc the kernel's own answer (ENOMEM or ENOSPC) is what the caller gets.
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Maps a range of the file. The mapping stays valid after this file is disposed.</summary>
    /// <param name="options">Offset, length, page size and the rest; <see cref="DaxMappingOptions.Default"/> when <see langword="null"/>.</param>
    /// <returns>The mapping.</returns>
    /// <remarks>
    /// A writable mapping allocates the blocks of its range first (fallocate), so a sparse file on
    /// a full file system is refused here with <see cref="PmemOutOfSpaceException"/> instead of
    /// raising SIGBUS at the first store.
    /// </remarks>
    /// <exception cref="ArgumentException">The offset or length is not a multiple of the page size, the page size is smaller than <see cref="MinimumPageSize"/>, or an option cannot be honoured for this file (the message names it).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The file is empty, or the range lies past its end (the message names the file and its size).</exception>
    /// <exception cref="InvalidOperationException">The file was opened read-only and <see cref="DaxMappingOptions.ReadOnly"/> is not set.</exception>
    /// <exception cref="PmemCapabilityException"><see cref="DaxMappingOptions.RequirePageSize"/> or <see cref="DaxMappingOptions.RequiredGranularity"/> cannot be had.</exception>
    /// <exception cref="PmemOutOfSpaceException">No space is left for the blocks of the range.</exception>
    /// <exception cref="PmemException">A system call failed.</exception>
    public DaxMapping Map(DaxMappingOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_fd.IsClosed, this);
        return MappingFactory.Map(Source, options);
    }

    /// <summary>This file as a map source.</summary>
    internal FileSource Source { get; }

    /// <summary>The size now: re-read for a regular file (it may have been truncated behind our back), fixed for memory.</summary>
    internal long CurrentSize() => Backing == MappingBacking.Hugetlb || Path.StartsWith("memfd:", StringComparison.Ordinal) ? Size : RegularFileSize(_fd, Path);

    /// <summary>
    /// Allocates every block of <c>[offset, offset + length)</c> that is a hole (fallocate mode 0
    /// keeps the data and the size), so that a store through a mapping never needs a block the
    /// file system cannot give (SIGBUS). A file system without fallocate cannot be checked.
    /// </summary>
    internal static void EnsureBlocks(SafeFileDescriptor fd, string path, long offset, long length)
    {
        if (Libc.FAllocate(fd.Fd, 0, offset, length) == 0)
        {
            return;
        }
        int errno = SyscallError.LastErrno;
        if (errno is Errno.EOPNOTSUPP or Errno.ENOSYS)
        {
            // Best effort: the file system cannot preallocate; stores into holes may still fail.
            return;
        }
        if (errno is Errno.ENOSPC or Errno.EDQUOT)
        {
            throw new PmemOutOfSpaceException(SyscallError.Describe(errno, "fallocate", path, offset, length,
                "No space left for the file's blocks: the file is sparse and the file system cannot hold the mapped range, so a store into it would raise SIGBUS. Free space, or map a smaller range."),
                "fallocate", errno, path);
        }
        SyscallError.Throw(errno, "fallocate", path, offset, length);
    }

    /// <summary>Closes the file. Mappings made from it stay valid; the lock is released when the last of them is disposed too.</summary>
    public void Dispose() => _fd.Dispose();

    private static unsafe long RegularFileSize(SafeFileDescriptor fd, string path)
    {
        Libc.Stat st;
        SyscallError.Check(Libc.FStat(fd.Fd, &st), "fstat", path);
        uint type = st.st_mode & Libc.S_IFMT;
        if (type != Libc.S_IFREG)
        {
            string kind = type switch
            {
                Libc.S_IFCHR => "a character device (open device-DAX through DaxDevice)",
                Libc.S_IFDIR => "a directory",
                Libc.S_IFIFO => "a FIFO (named pipe), whose reads and writes can block and which cannot be mapped",
                Libc.S_IFSOCK => "a socket",
                Libc.S_IFBLK => "a block device (map a file on its file system, or a device-DAX device)",
                _ => "not a regular file",
            };
            throw new PmemException($"'{path}' is {kind}; PmemFile maps regular files.");
        }
        return st.st_size;
    }

    // Files on block-device file systems only: memfds, tmpfs and hugetlbfs have no region behind them.
    private unsafe DeepFlushControl? ResolveDeepFlush()
    {
        if (Backing is not (MappingBacking.PageCacheFile or MappingBacking.FsDaxFile))
        {
            return null;
        }
        Libc.Stat st;
        SyscallError.Check(Libc.FStat(_fd.Fd, &st), "fstat", Path);
        return NdRegionLocator.ForDevice(SysfsRoot, block: true, Libc.Major(st.st_dev), Libc.Minor(st.st_dev));
    }

    private static void Lock(SafeFileDescriptor fd, bool writable, bool shared, string path)
    {
        int operation = (writable && !shared ? Libc.LOCK_EX : Libc.LOCK_SH) | Libc.LOCK_NB;
        if (Libc.TryFlock(fd.Fd, operation) is int errno and not 0)
        {
            string hint = errno == Errno.EWOULDBLOCK
                ? (writable && !shared
                    ? "The file is already open through DirectPmem (in this or another process; asked again for 250 ms); a second writable open needs shared = true on both opens."
                    : "The file is open for exclusive writing elsewhere (asked again for 250 ms).")
                : "";
            throw SyscallError.Create(errno, writable && !shared ? "flock(LOCK_EX|LOCK_NB)" : "flock(LOCK_SH|LOCK_NB)", path, hint: hint);
        }
    }

    private static unsafe (MappingBacking Backing, PageSize Minimum) Classify(SafeFileDescriptor fd, string path)
    {
        Libc.StatFs fs;
        SyscallError.Check(Libc.FStatFs(fd.Fd, &fs), "fstatfs", path);
        if (fs.f_type == Libc.HUGETLBFS_MAGIC)
        {
            return (MappingBacking.Hugetlb, PageSizes.FromBytes(fs.f_bsize, "hugetlbfs block size"));
        }
        if (fs.f_type == Libc.TMPFS_MAGIC)
        {
            return (MappingBacking.SharedMemory, PageSize.Pte);
        }
        Libc.StatxBuf stx;
        if (Libc.Statx(fd.Fd, "", Libc.AT_EMPTY_PATH, 0, &stx) == 0
            && (stx.stx_attributes_mask & Libc.STATX_ATTR_DAX) != 0
            && (stx.stx_attributes & Libc.STATX_ATTR_DAX) != 0)
        {
            return (MappingBacking.FsDaxFile, PageSize.Pte);
        }
        return (MappingBacking.PageCacheFile, PageSize.Pte);
    }
}

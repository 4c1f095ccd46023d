using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Driver;

// Emulated device-DAX.
//
// An emulated device is a file (ordinary, tmpfs or hugetlbfs) or a memfd laid out as
//
//   [0, Size)                      the device's data: device offset N is file offset N,
//                                  so data stays aligned to the device alignment
//   [Size, Size + TrailerLength)   the descriptor block; TrailerLength is the smallest page
//                                  the backing maps (4 KiB, or the hugetlbfs page size)
//
// The descriptor is the first 64 bytes of that block, little-endian:
//
//   0  magic      "DPMEMEMU" (8 ASCII bytes)
//   8  version    u32 = 1
//   12 length     u32 = 64 (the descriptor's own length)
//   16 size       u64  device size, a positive multiple of align
//   24 align      u64  4096, 2097152 or 1073741824
//   32 trailer    u64  TrailerLength when created
//   40 reserved   u64 = 0
//   48 reserved   u64 = 0
//   56 checksum   u64  XxHash3 (64-bit, seed 0) of bytes [0, 56)
//
// Reopening validates the checksum, the version, that the reserved words are zero, that the file
// is exactly Size + TrailerLength bytes, and that a caller's expected align and size match; the
// descriptor is written once, at creation. Only regular files are opened (a FIFO would block).
public sealed partial class DaxDevice
{
    internal const int DescriptorLength = 64;
    internal const ulong DescriptorMagic = 0x554D454D454D5044; // "DPMEMEMU" little-endian
    internal const uint DescriptorVersion = 1;

    /// <summary>
    /// Creates an emulated device-DAX device on a new file of <paramref name="size"/> bytes of data
    /// plus one descriptor page, allocated up front. On hugetlbfs it really faults in huge pages;
    /// on an ordinary file it enforces the alignment rules and is durable through the page cache (msync).
    /// </summary>
    /// <param name="path">The file to create; it must not exist. Mode 0600.</param>
    /// <param name="size">The device size; a positive multiple of <paramref name="align"/>.</param>
    /// <param name="align">The device alignment: every mapping offset and length is a multiple of it.</param>
    /// <returns>The device, holding the file open (and exclusively locked) until disposed.</returns>
    /// <exception cref="ArgumentException">The size is not a multiple of the alignment, or the alignment is smaller than the hugetlbfs page size.</exception>
    /// <exception cref="PmemException">The file exists, or creating it failed.</exception>
    public static unsafe DaxDevice CreateEmulated(string path, long size, PageSize align)
    {
        PathValidation.Validate(path, nameof(path));
        ValidateGeometry(size, align);
        string directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        Libc.StatFs fs;
        SyscallError.Check(Libc.StatFsPath(directory, &fs), "statfs", directory);
        long trailer = fs.f_type == Libc.HUGETLBFS_MAGIC ? fs.f_bsize : Environment.SystemPageSize;
        if (trailer > (long)align)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"alignment {align.ToDisplayString()} is smaller than the {trailer}-byte pages of the hugetlbfs directory '{directory}'."), nameof(align));
        }
        CheckRoomForDescriptor(size, trailer);
        PmemFile file = WithDeviceSize(() => PmemFile.Create(path, size + trailer), size, trailer);
        try
        {
            return Initialize(file, size, align, trailer);
        }
        catch
        {
            file.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>
    /// Creates an emulated device-DAX device in a memfd: volatile memory with the device-DAX rules.
    /// With <see cref="HugePages.Hugetlb"/> it is backed by reserved hugetlb pages of
    /// <paramref name="align"/> and really faults in them.
    /// </summary>
    /// <param name="name">A name for diagnostics (<c>/memfd:NAME</c>).</param>
    /// <param name="size">The device size; a positive multiple of <paramref name="align"/>.</param>
    /// <param name="align">The device alignment.</param>
    /// <param name="hugePages"><see cref="HugePages.Hugetlb"/> for hugetlb pages of <paramref name="align"/> (2 MiB or 1 GiB); otherwise ordinary shared memory.</param>
    /// <returns>The device; the memory lives until it and every mapping made from it are disposed.</returns>
    /// <exception cref="PmemCapabilityException">Hugetlb pages were asked for and not enough are reserved.</exception>
    public static DaxDevice CreateEmulatedMemory(string name, long size, PageSize align, HugePages hugePages = HugePages.None)
    {
        PathValidation.Validate(name, nameof(name), "memfd name");
        ValidateGeometry(size, align);
        bool hugetlb = hugePages == HugePages.Hugetlb;
        if (hugetlb && align == PageSize.Pte)
        {
            throw new ArgumentException("hugetlb pages are 2 MiB or 1 GiB; a 4 KiB-aligned device cannot use them.", nameof(hugePages));
        }
        long trailer = hugetlb ? (long)align : Environment.SystemPageSize;
        CheckRoomForDescriptor(size, trailer);
        PmemFile file = WithDeviceSize(() => PmemFile.CreateMemory(name, size + trailer, hugetlb ? HugePages.Hugetlb : HugePages.None, hugetlb ? align : PageSize.Pmd), size, trailer);
        try
        {
            return Initialize(file, size, align, trailer);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reopens an emulated device created by <see cref="CreateEmulated"/>. Its geometry comes
    /// from the descriptor; an expected alignment or size that differs is refused.
    /// </summary>
    /// <param name="path">The emulated device's file.</param>
    /// <param name="align">The alignment the caller expects, or null to accept the stored one.</param>
    /// <param name="size">The size the caller expects, or null to accept the stored one.</param>
    /// <param name="writable">Open for writing (exclusive lock) or read-only (shared lock).</param>
    /// <returns>The device.</returns>
    /// <exception cref="DaxConfigurationException">The descriptor is missing or corrupt (<see cref="DaxConfigurationRule.BadDescriptor"/>), or the geometry differs (<see cref="DaxConfigurationRule.GeometryMismatch"/>).</exception>
    /// <exception cref="PmemInUseException">The device is open for writing elsewhere.</exception>
    public static DaxDevice OpenEmulated(string path, PageSize? align = null, long? size = null, bool writable = true)
    {
        PathValidation.Validate(path, nameof(path));
        RefuseSpecialFile(path);
        PmemFile file = PmemFile.Open(path, writable);
        try
        {
            long trailer = Math.Max(Environment.SystemPageSize, (long)file.MinimumPageSize);
            long dataSize = file.Size - trailer;
            if (dataSize <= 0 || !RangeValidator.IsAligned(dataSize, trailer))
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.BadDescriptor, string.Create(CultureInfo.InvariantCulture,
                    $"a {file.Size}-byte file cannot hold an emulated device (data plus a {trailer}-byte descriptor page)."));
            }
            (long storedSize, PageSize storedAlign) = ReadDescriptor(file, dataSize, trailer);
            if (storedSize != dataSize)
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.GeometryMismatch, string.Create(CultureInfo.InvariantCulture,
                    $"the descriptor says {storedSize} bytes but the file holds {dataSize} bytes of data: the file was resized."));
            }
            if (align is PageSize expectedAlign && expectedAlign != storedAlign)
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.GeometryMismatch,
                    $"the device was created with align {storedAlign.ToDisplayString()}; reopening with {expectedAlign.ToDisplayString()} is refused.");
            }
            if (size is long expectedSize && expectedSize != storedSize)
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.GeometryMismatch, string.Create(CultureInfo.InvariantCulture,
                    $"the device was created with size {storedSize}; reopening with {expectedSize} is refused."));
            }
            if ((long)file.MinimumPageSize > (long)storedAlign)
            {
                throw new DaxConfigurationException(path, DaxConfigurationRule.GeometryMismatch,
                    $"align {storedAlign.ToDisplayString()} is smaller than the {file.MinimumPageSize.ToDisplayString()} pages the file now lives on.");
            }
            return FromFile(file, storedSize, storedAlign);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    // Opening a FIFO blocks until a writer comes, a device node is not an emulated device: only a
    // regular file (ordinary, tmpfs or hugetlbfs) is opened. A missing file is left to open's ENOENT.
    private static unsafe void RefuseSpecialFile(string path)
    {
        Libc.Stat st;
        if (Libc.StatPath(path, &st) != 0)
        {
            return;
        }
        uint type = st.st_mode & Libc.S_IFMT;
        if (type != Libc.S_IFREG)
        {
            string kind = type switch
            {
                Libc.S_IFCHR => "a character device (a real device-DAX device opens with DaxDevice.Open)",
                Libc.S_IFDIR => "a directory",
                _ => string.Create(CultureInfo.InvariantCulture, $"a special file (st_mode 0{Convert.ToString(st.st_mode, 8)}; opening a FIFO would block)"),
            };
            throw new DaxConfigurationException(path, DaxConfigurationRule.BadDescriptor, $"is {kind}, not a regular file holding an emulated device.");
        }
    }

    private static void ValidateGeometry(long size, PageSize align)
    {
        PageSizes.Validate(align, nameof(align));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        RangeValidator.ValidateAligned(size, align, nameof(size));
    }

    // The descriptor page follows the data: size + trailer must still be a file size.
    private static void CheckRoomForDescriptor(long size, long trailer)
    {
        if (size > long.MaxValue - trailer)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, string.Create(CultureInfo.InvariantCulture,
                $"size {size} plus the {trailer}-byte descriptor page passes {long.MaxValue}, the largest file size."));
        }
    }

    // The file is the device plus its descriptor page: a refusal for room names the size the caller gave.
    private static PmemFile WithDeviceSize(Func<PmemFile> create, long size, long trailer)
    {
        try
        {
            return create();
        }
        catch (PmemOutOfSpaceException e)
        {
            throw new PmemOutOfSpaceException(string.Create(CultureInfo.InvariantCulture,
                $"an emulated device of size {size} (a file of {size} + {trailer} bytes for its descriptor page) does not fit: {e.Message}"), e.Call, e.Errno, e.Path);
        }
    }

    private static DaxDevice Initialize(PmemFile file, long size, PageSize align, long trailer)
    {
        using (DaxMapping block = file.Map(new DaxMappingOptions { Offset = size, Length = trailer, PageSize = PageSizes.FromBytes(trailer) }))
        {
            WriteDescriptor(block.GetSpan(0, DescriptorLength), size, align, trailer);
            block.Persist(0, DescriptorLength);
        }
        return FromFile(file, size, align);
    }

    private static DaxDevice FromFile(PmemFile file, long size, PageSize align)
    {
        // One answer for the device and its mappings: the persistence is what a mapping of the
        // file gets (an emulated device on a DAX file system is cache-line, not page cache).
        var source = new EmulatedDeviceSource(file.Source, align, size);
        DaxPersistence persistence = PersistencePlatform.Natural(source.Durability) switch
        {
            PersistGranularity.Byte => DaxPersistence.CpuCache,
            PersistGranularity.CacheLine => DaxPersistence.MemoryController,
            PersistGranularity.Page => DaxPersistence.PageCache,
            _ => DaxPersistence.Volatile,
        };
        return new DaxDevice(Path.GetFileName(file.Path), file.Path, size, align, file.Backing, persistence, source.FaultGranularity, file);
    }

    internal static void WriteDescriptor(Span<byte> d, long size, PageSize align, long trailer)
    {
        d[..DescriptorLength].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(d, DescriptorMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], DescriptorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(d[12..], DescriptorLength);
        BinaryPrimitives.WriteInt64LittleEndian(d[16..], size);
        BinaryPrimitives.WriteInt64LittleEndian(d[24..], (long)align);
        BinaryPrimitives.WriteInt64LittleEndian(d[32..], trailer);
        BinaryPrimitives.WriteUInt64LittleEndian(d[56..], XxHash3.HashToUInt64(d[..56]));
    }

    private static (long Size, PageSize Align) ReadDescriptor(PmemFile file, long dataSize, long trailer)
    {
        using DaxMapping block = file.Map(new DaxMappingOptions
        {
            Offset = dataSize,
            Length = trailer,
            PageSize = PageSizes.FromBytes(trailer),
            ReadOnly = true,
        });
        return ParseDescriptor(block.GetReadOnlySpan(0, DescriptorLength), file.Path, trailer);
    }

    internal static (long Size, PageSize Align) ParseDescriptor(ReadOnlySpan<byte> d, string path, long trailer)
    {
        if (BinaryPrimitives.ReadUInt64LittleEndian(d) != DescriptorMagic)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.BadDescriptor,
                "no emulated-device descriptor (wrong magic) in the last page: not an emulated device, or it was resized.");
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(d[56..]) != XxHash3.HashToUInt64(d[..56]))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.BadDescriptor, "the descriptor checksum does not match.");
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
        if (version != DescriptorVersion || BinaryPrimitives.ReadUInt32LittleEndian(d[12..]) != DescriptorLength)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.BadDescriptor,
                string.Create(CultureInfo.InvariantCulture, $"descriptor version {version} is not {DescriptorVersion}."));
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(d[40..]) != 0 || BinaryPrimitives.ReadUInt64LittleEndian(d[48..]) != 0)
        {
            // Reserved for a later version: a descriptor that uses them is not one this version understands.
            throw new DaxConfigurationException(path, DaxConfigurationRule.BadDescriptor,
                "the descriptor's reserved bytes [40, 56) are not zero: written by a newer version, or damaged.");
        }
        long size = BinaryPrimitives.ReadInt64LittleEndian(d[16..]);
        long alignBytes = BinaryPrimitives.ReadInt64LittleEndian(d[24..]);
        long storedTrailer = BinaryPrimitives.ReadInt64LittleEndian(d[32..]);
        if (!PageSizes.TryFromBytes(alignBytes, out PageSize align))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotAPageSize,
                string.Create(CultureInfo.InvariantCulture, $"descriptor align {alignBytes} is not a page size."));
        }
        if (size <= 0 || !RangeValidator.IsAligned(size, align))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.Unaligned,
                string.Create(CultureInfo.InvariantCulture, $"descriptor size {size} is not a positive multiple of {alignBytes}."));
        }
        if (storedTrailer != trailer)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.GeometryMismatch, string.Create(CultureInfo.InvariantCulture,
                $"the descriptor page was {storedTrailer} bytes at creation but the file's pages are now {trailer} bytes (moved to another file system?)."));
        }
        return (size, align);
    }
}

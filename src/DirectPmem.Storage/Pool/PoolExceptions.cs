using DirectPmem.Mapping;
using DirectPmem.Geometry;
using DirectPmem.Persistence;

namespace DirectPmem.Storage;

/// <summary>The header field a pool validation failure is about.</summary>
public enum PoolHeaderField
{
    /// <summary>The 8-byte signature at offset 0: the mapping does not hold a DirectPmem pool.</summary>
    Signature,
    /// <summary>The XxHash3 checksum of the header (the last 8 bytes of the 4 KiB header).</summary>
    Checksum,
    /// <summary>The format major version: the pool was written by a newer, incompatible format.</summary>
    MajorVersion,
    /// <summary>The header size field.</summary>
    HeaderSize,
    /// <summary>Incompatible feature flags this version does not know: the pool is refused.</summary>
    IncompatFeatures,
    /// <summary>Read-only-compatible feature flags this version does not know: the pool opens read-only.</summary>
    RoCompatFeatures,
    /// <summary>The architecture flags (endianness, pointer size, machine).</summary>
    Architecture,
    /// <summary>The application's layout name.</summary>
    Layout,
    /// <summary>The pool size recorded at creation.</summary>
    Size,
    /// <summary>The page size recorded at creation.</summary>
    PageSize,
    /// <summary>The reserved area (offset and length) for future lanes and allocators.</summary>
    ReservedArea,
    /// <summary>The start of the application's data area.</summary>
    DataOffset,
    /// <summary>The application's root offset.</summary>
    RootOffset,
    /// <summary>The in-use/clean state word.</summary>
    State,
    /// <summary>Compatible feature flags this version does not know (ignored; reported by inspections only).</summary>
    CompatFeatures,
    /// <summary>The directory of named structures in the reserved area (format 1.1).</summary>
    Directory,
    /// <summary>The durability the pool was created with (format 1.1), or an open with weaker durability.</summary>
    Durability,
    /// <summary>The header of a named structure the pool does not format itself (a Garnet volume): its copies, version, pool, kind or name.</summary>
    StructureHeader,
}

/// <summary>
/// A pool header failed validation on open (or a pool cannot be created with the given values):
/// <see cref="Field"/> names the field, the message says what was expected and what was found.
/// Nothing on the media is changed by a failed open.
/// </summary>
public sealed class PoolFormatException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="field">The field that failed.</param>
    /// <param name="message">What was expected and what was found.</param>
    /// <param name="path">The file or device of the pool, if known.</param>
    public PoolFormatException(PoolHeaderField field, string message, string? path)
        : base(path is null ? message : message + " (" + path + ")", call: null, errno: 0, path)
    {
        Field = field;
    }

    /// <summary>The header field that failed validation.</summary>
    public PoolHeaderField Field { get; }
}

/// <summary>
/// A pool cannot be opened because of media errors in its range: known bad ranges refused by
/// <see cref="PoolBadBlockPolicy.Refuse"/>, or header copies that could not be read. <see cref="BadRanges"/>
/// names them in pool offsets and the message says which structure each hits (primary header,
/// backup header, reserved area, data area). Nothing on the media is changed, and the process lives:
/// an open that meets poison never loads it outside the poison-safe read.
/// </summary>
public sealed class PoolMediaErrorException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was found and what the operator can do.</param>
    /// <param name="path">The file or device of the pool, if known.</param>
    /// <param name="badRanges">The bad or unreadable ranges, in pool offsets.</param>
    /// <param name="mediaError">The media error a header read met, if one did.</param>
    public PoolMediaErrorException(string message, string? path, IReadOnlyList<PmemRange> badRanges, PmemMediaErrorException? mediaError = null)
        : base(path is null ? message : message + " (" + path + ")", call: null, errno: 0, path)
    {
        ArgumentNullException.ThrowIfNull(badRanges);
        BadRanges = badRanges;
        MediaError = mediaError;
    }

    /// <summary>The media error a header read met (poison, a page past the end of a truncated file, or a page the kernel could not provide), or <see langword="null"/> when the open refused listed ranges.</summary>
    public PmemMediaErrorException? MediaError { get; }

    /// <summary>The bad or unreadable ranges, in pool offsets, sorted.</summary>
    public IReadOnlyList<PmemRange> BadRanges { get; }
}

/// <summary>Why a directory operation of <see cref="PmemPool"/> was refused.</summary>
public enum PoolDirectoryError
{
    /// <summary>A structure of that name exists (<see cref="PoolDirectoryException.Existing"/>) and overwrite was not asked for.</summary>
    NameExists,
    /// <summary>No structure of that name is in the directory.</summary>
    NotFound,
    /// <summary>The name is there, but it is another kind of structure (<see cref="PoolDirectoryException.Existing"/>).</summary>
    WrongKind,
    /// <summary>The directory holds as many entries as it can.</summary>
    DirectoryFull,
    /// <summary>No free range of the data area is long enough.</summary>
    NoSpace,
    /// <summary>The pool was written by format 1.0, which has no directory; the message says how to migrate.</summary>
    NoDirectory,
}

/// <summary>
/// A named-structure operation on a pool was refused: <see cref="Error"/> says why, <see cref="Name"/>
/// is the name asked for, and <see cref="Existing"/> what the directory holds under it (if anything).
/// Nothing on the media is changed by a refused operation.
/// </summary>
public sealed class PoolDirectoryException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="error">Why the operation was refused.</param>
    /// <param name="name">The name asked for.</param>
    /// <param name="existing">What the directory holds under the name, or <see langword="null"/>.</param>
    /// <param name="message">What was found and what the caller can do.</param>
    /// <param name="path">The file or device of the pool, if known.</param>
    public PoolDirectoryException(PoolDirectoryError error, string name, PoolDirectoryEntry? existing, string message, string? path)
        : base(path is null ? message : message + " (" + path + ")", call: null, errno: 0, path)
    {
        Error = error;
        Name = name;
        Existing = existing;
    }

    /// <summary>Why the operation was refused.</summary>
    public PoolDirectoryError Error { get; }

    /// <summary>The name asked for.</summary>
    public string Name { get; }

    /// <summary>What the directory holds under <see cref="Name"/>, or <see langword="null"/>.</summary>
    public PoolDirectoryEntry? Existing { get; }
}

/// <summary>
/// A writable open was refused because the mapping makes data durable more weakly than the pool was created
/// with (for example a pool created with forced cache-line flushing, reopened with page-cache msync, or a pool
/// created on persistent memory reopened on a copy in volatile memory). Open with
/// <see cref="PoolOpenOptions.AllowWeakerDurability"/> to accept it, or map the pool as it was created.
/// </summary>
public sealed class PoolDurabilityException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="recorded">The durability the pool was created with.</param>
    /// <param name="actual">The durability of the mapping it was opened with.</param>
    /// <param name="message">What was found and what the caller can do.</param>
    /// <param name="path">The file or device of the pool, if known.</param>
    public PoolDurabilityException(PersistGranularity recorded, PersistGranularity actual, string message, string? path)
        : base(path is null ? message : message + " (" + path + ")", call: null, errno: 0, path)
    {
        Recorded = recorded;
        Actual = actual;
    }

    /// <summary>The durability the pool was created with.</summary>
    public PersistGranularity Recorded { get; }

    /// <summary>The durability of the mapping the open was given.</summary>
    public PersistGranularity Actual { get; }
}

/// <summary>
/// <see cref="PmemPool.Create"/> or <see cref="PmemPool.CreateFile"/> was refused because the mapping is volatile memory
/// (anonymous memory, a memfd or a file on tmpfs, hugetlb pages): a pool there loses everything at a reboot or power
/// loss, flushed or not. Create it on persistent memory (device-DAX, a DAX file system) or an ordinary file, or set
/// <see cref="PoolCreateOptions.AllowVolatile"/> to create it anyway. Nothing was written; a file
/// <see cref="PmemPool.CreateFile"/> made for it was removed.
/// </summary>
public sealed class PoolVolatileBackingException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="backing">The mapping's backing.</param>
    /// <param name="message">What was found and what the caller can do.</param>
    /// <param name="path">The file or device of the mapping, if any.</param>
    public PoolVolatileBackingException(MappingBacking backing, string message, string? path)
        : base(path is null ? message : message + " (" + path + ")", call: null, errno: 0, path)
    {
        Backing = backing;
    }

    /// <summary>The volatile backing the create was refused on.</summary>
    public MappingBacking Backing { get; }
}

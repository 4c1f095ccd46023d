namespace DirectPmem;

/// <summary>What made a range of a mapping unreadable.</summary>
public enum MediaErrorKind
{
    /// <summary>
    /// An uncorrectable memory error ("poison"): the hardware could not return the data of a cache
    /// line, and the kernel raised SIGBUS with <c>BUS_MCEERR_AR</c>. The range stays bad until it
    /// is cleared (rewritten with the kernel's recovery write, or by the operator).
    /// </summary>
    Poison = 1,

    /// <summary>
    /// The range lies past the end of the file: the file was truncated under the mapping (by this
    /// or another program), and the kernel raised SIGBUS with <c>BUS_ADRERR</c>.
    /// </summary>
    BeyondEndOfFile = 2,

    /// <summary>
    /// The kernel could not provide a page that lies inside the file: it raised SIGBUS with
    /// <c>BUS_ADRERR</c> below the file's end. On a DAX file system this is a known bad block (the
    /// driver refuses to map a page its <c>badblocks</c> list names; <see cref="Mapping.DaxMapping.GetBadRanges"/>
    /// lists it, and <see cref="Mapping.PmemFile.ClearBadRange(long, long)"/> clears it); on a page-cache file,
    /// an I/O error reading the page; on hugetlb memory, no free huge page. Unlike poison, no load met bad
    /// data: the page was never mapped.
    /// </summary>
    IoError = 3,
}

/// <summary>
/// A poison-safe read (<see cref="Mapping.DaxMapping.ReadSafe"/>) met memory it could not read:
/// a media error, a page past the end of a truncated file, or a page the kernel could not provide
/// (a known bad block of a DAX file system, an I/O error). The process and the thread go on;
/// the bytes before <see cref="BytesRead"/> in the destination were read, nothing after them.
/// </summary>
public sealed class PmemMediaErrorException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was read and what was bad.</param>
    /// <param name="kind">Poison or past the end of the file.</param>
    /// <param name="path">The mapping's file or device, if any.</param>
    /// <param name="offset">The mapping offset of the read.</param>
    /// <param name="length">The length of the read.</param>
    /// <param name="bytesRead">How many bytes at the start of the destination were read before the fault.</param>
    /// <param name="badOffset">The mapping offset of the first bad byte.</param>
    /// <param name="badLength">How many bytes from <paramref name="badOffset"/> are known to be bad.</param>
    /// <param name="badSourceOffset">The offset of the first bad byte in the mapped file or device.</param>
    public PmemMediaErrorException(string message, MediaErrorKind kind, string? path, long offset, long length, long bytesRead,
        long badOffset, long badLength, long badSourceOffset)
        : base(message, call: null, errno: 0, path)
    {
        // COR_E_IO, as an IOException without an errno; Errno stays 0 (no system call failed).
        HResult = unchecked((int)0x80131620);
        Kind = kind;
        Offset = offset;
        Length = length;
        BytesRead = bytesRead;
        BadOffset = badOffset;
        BadLength = badLength;
        BadSourceOffset = badSourceOffset;
    }

    /// <summary>Poison, a page past the end of the file, or a page the kernel could not provide.</summary>
    public MediaErrorKind Kind { get; }

    /// <summary>
    /// <see cref="Kind"/> in a few words for a message: "poison", "a page past the end of the file (the file was truncated)" or
    /// "a page the kernel could not provide (a known bad block, an I/O error or no free huge page)".
    /// </summary>
    public string Cause => Kind switch
    {
        MediaErrorKind.Poison => "poison",
        MediaErrorKind.BeyondEndOfFile => "a page past the end of the file (the file was truncated)",
        _ => "a page the kernel could not provide (a known bad block, an I/O error or no free huge page)",
    };

    /// <summary>The mapping offset the read started at.</summary>
    public long Offset { get; }

    /// <summary>The number of bytes the read asked for.</summary>
    public long Length { get; }

    /// <summary>The number of bytes read before the fault: the destination's first <see cref="BytesRead"/> bytes hold the mapping's data, the rest is unspecified.</summary>
    public long BytesRead { get; }

    /// <summary>
    /// The mapping offset of the first bad byte. For <see cref="MediaErrorKind.Poison"/> it is the
    /// start of the unit the kernel reported bad (a page for memory-failure handling), which may lie
    /// before <see cref="Offset"/>; for <see cref="MediaErrorKind.BeyondEndOfFile"/> it is the first
    /// byte of the read that lies past the end of the file; for <see cref="MediaErrorKind.IoError"/>
    /// the start of the page.
    /// </summary>
    public long BadOffset { get; }

    /// <summary>
    /// The number of bytes from <see cref="BadOffset"/> known to be bad: for poison the size of the
    /// unit the kernel reported (<c>1 &lt;&lt; si_addr_lsb</c>), for a truncated file the rest of the read,
    /// for a page the kernel could not provide that page.
    /// </summary>
    public long BadLength { get; }

    /// <summary><see cref="BadOffset"/> as an offset in the mapped file or device (the mapping's source offset added).</summary>
    public long BadSourceOffset { get; }
}

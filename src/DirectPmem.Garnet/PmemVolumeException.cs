namespace DirectPmem.Garnet;

/// <summary>What was wrong when a <see cref="PmemVolume"/> refused a request or its media.</summary>
public enum PmemVolumeError
{
    /// <summary>The mapping holds no volume (no magic word): format it first.</summary>
    NotFormatted = 0,

    /// <summary>The superblock's checksum, version or geometry does not hold, or does not fit the mapping.</summary>
    Corrupt = 1,

    /// <summary>The volume is too small for the geometry asked for, or for a segment Tsavorite asked for.</summary>
    TooSmall = 2,

    /// <summary>No free chunk or no free name slot is left.</summary>
    Full = 3,

    /// <summary>An address or a length is not a multiple of the sector size.</summary>
    Unaligned = 4,

    /// <summary>An address, segment or length lies outside what the device can hold.</summary>
    OutOfRange = 5,

    /// <summary>A device name is empty or longer than a slot can hold.</summary>
    BadName = 6,

    /// <summary>The mapping already holds a volume and formatting it was not asked for.</summary>
    AlreadyFormatted = 7,

    /// <summary>
    /// A read met memory it could not read: poison (a media error) or a page past the end of a
    /// truncated backing file. The inner exception is the <see cref="PmemMediaErrorException"/>
    /// that names the bad range. The device reports it to Tsavorite as EIO. An open that cannot
    /// read the volume's slot or chunk table refuses it with this error too; its message names the bad range.
    /// </summary>
    MediaError = 8,

    /// <summary>
    /// The mapping holds a volume of the old format (its own "DPGRNT01" superblock, from before volumes lived in a
    /// DirectPmem.Storage pool). This preview refuses it rather than migrating it: the message says how to recreate it.
    /// </summary>
    OldFormat = 9,
}

/// <summary>
/// A <see cref="PmemVolume"/> refused bad input or found bad media. The message names the
/// device, the offset and the rule; <see cref="Errno"/> is the errno-style code the device hands
/// to Tsavorite's completion callback when the error happens during I/O.
/// </summary>
public sealed class PmemVolumeException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="error">Which rule was broken.</param>
    /// <param name="message">What was wrong, naming the device, offset and required alignment where they apply.</param>
    public PmemVolumeException(PmemVolumeError error, string message) : base(message)
    {
        Error = error;
    }

    /// <summary>Creates the exception with the error that caused it.</summary>
    /// <param name="error">Which rule was broken.</param>
    /// <param name="message">What was wrong, naming the device, offset and required alignment where they apply.</param>
    /// <param name="innerException">The error underneath, such as the <see cref="PmemMediaErrorException"/> of a read.</param>
    public PmemVolumeException(PmemVolumeError error, string message, Exception? innerException) : base(message, innerException)
    {
        Error = error;
    }

    /// <summary>Which rule was broken.</summary>
    public PmemVolumeError Error { get; }

    /// <summary>The errno-style code for the error (ENOSPC 28, EINVAL 22, EIO 5, ENAMETOOLONG 36).</summary>
    public int Errno => Error switch
    {
        PmemVolumeError.Full or PmemVolumeError.TooSmall => 28,
        PmemVolumeError.Unaligned or PmemVolumeError.OutOfRange => 22,
        PmemVolumeError.BadName => 36,
        _ => 5,
    };
}

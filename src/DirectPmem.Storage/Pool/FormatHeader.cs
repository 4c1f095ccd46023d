using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;

namespace DirectPmem.Storage;

/// <summary>
/// What one on-media format of DirectPmem.Storage declares about itself: its signature, the version
/// this library writes and the feature bits it knows. The pool header and the pool directory use it
/// today; the log, the heap and the Garnet volume are meant to adopt it.
/// </summary>
/// <param name="Name">What the format is called in messages ("pool header").</param>
/// <param name="Signature">The 8 signature bytes, read as a little-endian word.</param>
/// <param name="BlockSize">The size of one copy of the header; the checksum is its last 8 bytes.</param>
/// <param name="CurrentMajor">The major version this library writes and reads (an older major is refused too: there is none).</param>
/// <param name="CurrentMinor">The minor version this library writes; a newer minor of the same major is read.</param>
/// <param name="KnownCompat">Compatible features this library knows (unknown ones are ignored).</param>
/// <param name="KnownIncompat">Incompatible features this library knows (an unknown one refuses the format).</param>
/// <param name="KnownRoCompat">Read-only-compatible features this library knows (an unknown one allows reading only).</param>
internal sealed record FormatRules(string Name, ulong Signature, int BlockSize, ushort CurrentMajor, ushort CurrentMinor,
    ulong KnownCompat, ulong KnownIncompat, ulong KnownRoCompat);

/// <summary>Where a format validation reports what it finds: Open throws at the first error, a checker collects all.</summary>
/// <typeparam name="TField">The format's field enumeration.</typeparam>
internal interface IFormatProblemSink<TField>
    where TField : struct, Enum
{
    /// <summary>Reports one problem. A throwing sink throws for <see cref="PoolProblemSeverity.Error"/>.</summary>
    void Report(TField field, PoolProblemSeverity severity, string message);
}

/// <summary>How a copy of a header looked when it was read.</summary>
internal enum FormatCopyState
{
    /// <summary>Signature present and checksum matching.</summary>
    Intact,

    /// <summary>All zero: never written, or wiped.</summary>
    Zero,

    /// <summary>Not zero and no signature: overwritten, or not this format.</summary>
    NoSignature,

    /// <summary>The signature is there and the checksum does not match: torn or damaged.</summary>
    ChecksumMismatch,
}

/// <summary>
/// The header primitive every Storage format shares: the first 40 bytes of a block are the same in
/// every format and version (signature, major, minor, header size, compat, incompat and ro-compat
/// feature words), and its last 8 bytes are the XxHash3-64 of everything before them. A torn or
/// damaged copy is therefore recognised before its version is trusted, and a format that keeps a
/// backup copy picks the intact one with <see cref="Choose"/>.
/// </summary>
/// <remarks>
/// <code>
///   0  8  signature   8  2  major   10  2  minor   12  4  header size
///  16  8  compat     24  8  incompat               32  8  ro-compat
///  ...    the format's own fields
///  N-8 8  checksum (XxHash3-64 of bytes [0, N-8))
/// </code>
/// </remarks>
internal static class FormatHeader
{
    public const int MajorOffset = 8;
    public const int MinorOffset = 10;
    public const int HeaderSizeOffset = 12;
    public const int CompatOffset = 16;
    public const int IncompatOffset = 24;
    public const int RoCompatOffset = 32;

    /// <summary>The length of the shared prefix; a format's own fields start here.</summary>
    public const int PrefixLength = 40;

    public static bool HasSignature(ReadOnlySpan<byte> block, FormatRules rules)
        => block.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(block) == rules.Signature;

    public static ulong ComputeChecksum(ReadOnlySpan<byte> block) => XxHash3.HashToUInt64(block[..^8]);

    public static ulong StoredChecksum(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt64LittleEndian(block[^8..]);

    public static bool ChecksumMatches(ReadOnlySpan<byte> block) => StoredChecksum(block) == ComputeChecksum(block);

    public static bool IsIntact(ReadOnlySpan<byte> block, FormatRules rules) => HasSignature(block, rules) && ChecksumMatches(block);

    public static FormatCopyState Classify(ReadOnlySpan<byte> block, FormatRules rules)
    {
        if (!HasSignature(block, rules))
        {
            return block.ContainsAnyExcept((byte)0) ? FormatCopyState.NoSignature : FormatCopyState.Zero;
        }
        return ChecksumMatches(block) ? FormatCopyState.Intact : FormatCopyState.ChecksumMismatch;
    }

    /// <summary>One phrase for a copy's state, as the checker prints it ("intact", "checksum ... torn or damaged").</summary>
    public static string Describe(ReadOnlySpan<byte> block, FormatRules rules) => Classify(block, rules) switch
    {
        FormatCopyState.Intact => "intact",
        FormatCopyState.Zero => "no signature (all zero: never written, or wiped)",
        FormatCopyState.NoSignature => "no signature \"" + SignatureText(rules) + "\" (overwritten, or not a " + rules.Name + ")",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"checksum 0x{StoredChecksum(block):x16} does not match the contents (0x{ComputeChecksum(block):x16}): torn or damaged"),
    };

    /// <summary>The signature as text, NULs written as <c>\0</c>.</summary>
    public static string SignatureText(FormatRules rules)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, rules.Signature);
        var text = new System.Text.StringBuilder(12);
        foreach (byte b in bytes)
        {
            text.Append(b == 0 ? "\\0" : ((char)b).ToString());
        }
        return text.ToString();
    }

    /// <summary>Writes the shared prefix (signature, the current version, the block size and the feature words) at the start of <paramref name="block"/>.</summary>
    public static void WritePrefix(Span<byte> block, FormatRules rules, ulong compat, ulong incompat, ulong roCompat)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(block, rules.Signature);
        BinaryPrimitives.WriteUInt16LittleEndian(block[MajorOffset..], rules.CurrentMajor);
        BinaryPrimitives.WriteUInt16LittleEndian(block[MinorOffset..], rules.CurrentMinor);
        BinaryPrimitives.WriteUInt32LittleEndian(block[HeaderSizeOffset..], (uint)rules.BlockSize);
        BinaryPrimitives.WriteUInt64LittleEndian(block[CompatOffset..], compat);
        BinaryPrimitives.WriteUInt64LittleEndian(block[IncompatOffset..], incompat);
        BinaryPrimitives.WriteUInt64LittleEndian(block[RoCompatOffset..], roCompat);
    }

    /// <summary>Stores the checksum of everything before the last 8 bytes in them.</summary>
    public static void Seal(Span<byte> block) => BinaryPrimitives.WriteUInt64LittleEndian(block[^8..], ComputeChecksum(block));

    public static ushort Major(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt16LittleEndian(block[MajorOffset..]);

    public static ushort Minor(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt16LittleEndian(block[MinorOffset..]);

    public static uint HeaderSize(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt32LittleEndian(block[HeaderSizeOffset..]);

    public static ulong Compat(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt64LittleEndian(block[CompatOffset..]);

    public static ulong Incompat(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt64LittleEndian(block[IncompatOffset..]);

    public static ulong RoCompat(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt64LittleEndian(block[RoCompatOffset..]);

    /// <summary>
    /// The one version and feature check of a format (major against <see cref="FormatRules.CurrentMajor"/>,
    /// header size, feature words against the known masks), reported into <paramref name="sink"/>:
    /// a major newer or older than this library's, a wrong header size or an unknown incompat feature is an
    /// error; an unknown ro-compat feature allows reading only; an unknown compat feature is a note.
    /// </summary>
    public static void Validate<TField>(ReadOnlySpan<byte> block, FormatRules rules, IFormatProblemSink<TField> sink,
        TField majorField, TField headerSizeField, TField incompatField, TField roCompatField, TField compatField)
        where TField : struct, Enum
    {
        ushort major = Major(block);
        ushort minor = Minor(block);
        if (major != rules.CurrentMajor)
        {
            string message = major > rules.CurrentMajor
                ? string.Create(CultureInfo.InvariantCulture, $"the {rules.Name}'s format version is {major}.{minor}, newer than this library: it reads major version {rules.CurrentMajor} (any minor)")
                : string.Create(CultureInfo.InvariantCulture, $"the {rules.Name}'s format version is {major}.{minor}; this library reads major version {rules.CurrentMajor} only");
            sink.Report(majorField, PoolProblemSeverity.Error, message);
        }
        uint size = HeaderSize(block);
        if (size != rules.BlockSize)
        {
            sink.Report(headerSizeField, PoolProblemSeverity.Error, string.Create(CultureInfo.InvariantCulture,
                $"the {rules.Name} says it is {size} bytes; expected {rules.BlockSize}"));
        }
        ulong unknownIncompat = Incompat(block) & ~rules.KnownIncompat;
        if (unknownIncompat != 0)
        {
            sink.Report(incompatField, PoolProblemSeverity.Error,
                $"the {rules.Name} uses incompatible features this library does not know ({Hex(unknownIncompat)}): refused");
        }
        ulong unknownRoCompat = RoCompat(block) & ~rules.KnownRoCompat;
        if (unknownRoCompat != 0)
        {
            sink.Report(roCompatField, PoolProblemSeverity.ReadOnly,
                $"the {rules.Name} uses read-only-compatible features this library does not know ({Hex(unknownRoCompat)}): it can be read, not written");
        }
        ulong unknownCompat = Compat(block) & ~rules.KnownCompat;
        if (unknownCompat != 0)
        {
            sink.Report(compatField, PoolProblemSeverity.Note,
                $"the {rules.Name} has compatible features this library does not know ({Hex(unknownCompat)}): ignored");
        }
    }

    /// <summary>
    /// Picks the copy to trust from a primary and a backup (each null when it could not be read): the
    /// primary when intact, else the intact backup; and which copy must be rewritten from the other.
    /// Returns false when neither is intact.
    /// </summary>
    public static bool Choose(byte[]? primary, byte[]? backup, FormatRules rules, out bool primaryChosen, out PoolHeaderRepair repair)
    {
        bool primaryIntact = primary is not null && IsIntact(primary, rules);
        bool backupIntact = backup is not null && IsIntact(backup, rules);
        primaryChosen = primaryIntact;
        if (primaryIntact)
        {
            repair = backupIntact && primary.AsSpan().SequenceEqual(backup.AsSpan()) ? PoolHeaderRepair.None : PoolHeaderRepair.BackupRestoredFromPrimary;
            return true;
        }
        repair = backupIntact ? PoolHeaderRepair.PrimaryRestoredFromBackup : PoolHeaderRepair.None;
        return backupIntact;
    }

    public static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}

/// <summary>A sink that throws the format's typed error at the first error, and keeps the first read-only reason.</summary>
internal sealed class ThrowingPoolSink(string? path) : IFormatProblemSink<PoolHeaderField>
{
    /// <summary>Why the pool must be opened read-only, or null.</summary>
    public string? ReadOnlyReason { get; private set; }

    public void Report(PoolHeaderField field, PoolProblemSeverity severity, string message)
    {
        if (severity == PoolProblemSeverity.Error)
        {
            throw new PoolFormatException(field, char.ToUpperInvariant(message[0]) + message[1..] + ".", path);
        }
        if (severity == PoolProblemSeverity.ReadOnly)
        {
            ReadOnlyReason ??= message;
        }
    }
}

/// <summary>A sink that collects every problem, for <see cref="PoolInspector.InspectPool"/>.</summary>
internal sealed class CollectingPoolSink : IFormatProblemSink<PoolHeaderField>
{
    public List<PoolProblem> Problems { get; } = [];

    public void Report(PoolHeaderField field, PoolProblemSeverity severity, string message) => Problems.Add(new PoolProblem(field, severity, message));
}

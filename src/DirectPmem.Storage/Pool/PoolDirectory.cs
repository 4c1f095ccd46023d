using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace DirectPmem.Storage;

/// <summary>
/// The directory of named structures at the start of a 1.1 pool's reserved area: two 4 KiB copies
/// (primary at 8192, backup at 12288), each a <see cref="FormatHeader"/> block, updated as the pool
/// header is (backup durably first, then primary, each one copy-and-persist; an open takes the intact
/// primary, else the intact backup, and restores the other). A crash at any instant therefore leaves
/// the directory as it was before the update or as it is after it.
/// </summary>
/// <remarks>
/// <code>
///   0 40 format prefix, signature "DPMPDIR\0", version 1.0
///  40 16 the pool's UUID (a directory copied from another pool is refused)
///  56  8 generation (+1 on every update)    64 4 entry count    68 60 zero
/// 128 64 entry 0 ... entry 60               4088 8 checksum
/// entry:  0 2 kind   2 2 zero   4 4 zero   8 8 offset   16 8 length   24 40 name (UTF-8, NUL padded, 1-39 bytes)
/// </code>
/// Entries are 4 KiB aligned, inside the data area, and do not overlap each other.
/// </remarks>
internal static class PoolDirectory
{
    public const int BlockSize = 4096;
    public const long Length = 2 * BlockSize;
    public const long PrimaryOffset = PoolHeader.ReservedAreaOffset;
    public const long BackupOffset = PoolHeader.ReservedAreaOffset + BlockSize;
    public const int EntriesOffset = 128;
    public const int EntrySize = 64;
    public const int NameOffset = 24;
    public const int MaxNameBytes = 39;
    public const int Capacity = (BlockSize - 8 - EntriesOffset) / EntrySize;
    public const long Alignment = 4096;

    public static FormatRules Rules { get; } = new("pool directory", BinaryPrimitives.ReadUInt64LittleEndian("DPMPDIR\0"u8), BlockSize,
        CurrentMajor: 1, CurrentMinor: 0, KnownCompat: 0, KnownIncompat: 0, KnownRoCompat: 0);

    /// <summary>Serialises a directory, checksum included.</summary>
    public static void Write(Span<byte> block, Guid poolUuid, ulong generation, IReadOnlyList<PoolDirectoryEntry> entries)
    {
        block = block[..BlockSize];
        block.Clear();
        FormatHeader.WritePrefix(block, Rules, 0, 0, 0);
        poolUuid.TryWriteBytes(block.Slice(40, 16));
        BinaryPrimitives.WriteUInt64LittleEndian(block[56..], generation);
        BinaryPrimitives.WriteInt32LittleEndian(block[64..], entries.Count);
        for (int i = 0; i < entries.Count; i++)
        {
            Span<byte> e = block.Slice(EntriesOffset + i * EntrySize, EntrySize);
            PoolDirectoryEntry entry = entries[i];
            BinaryPrimitives.WriteUInt16LittleEndian(e, (ushort)entry.Kind);
            BinaryPrimitives.WriteInt64LittleEndian(e[8..], entry.Offset);
            BinaryPrimitives.WriteInt64LittleEndian(e[16..], entry.Length);
            Encoding.UTF8.GetBytes(entry.Name, e.Slice(NameOffset, MaxNameBytes));
        }
        FormatHeader.Seal(block);
    }

    public static ulong GenerationOf(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt64LittleEndian(block[56..]);

    /// <summary>
    /// The one parser and validation of an intact directory copy: version and features by the shared
    /// primitive, the pool UUID, the count, and every entry (kind, name, alignment, bounds in the data
    /// area, no overlap, no duplicate name), reported into <paramref name="sink"/> as <see cref="PoolHeaderField.Directory"/>.
    /// Entries that fail are left out of the result.
    /// </summary>
    public static List<PoolDirectoryEntry> Read(ReadOnlySpan<byte> block, Guid poolUuid, long dataOffset, long poolSize, IFormatProblemSink<PoolHeaderField> sink)
    {
        var entries = new List<PoolDirectoryEntry>();
        FormatHeader.Validate(block, Rules, sink, PoolHeaderField.Directory, PoolHeaderField.Directory, PoolHeaderField.Directory,
            PoolHeaderField.Directory, PoolHeaderField.Directory);
        var uuid = new Guid(block.Slice(40, 16));
        if (uuid != poolUuid)
        {
            sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, $"the directory belongs to pool {uuid}, not to this pool ({poolUuid})");
            return entries;
        }
        int count = BinaryPrimitives.ReadInt32LittleEndian(block[64..]);
        if (count < 0 || count > Capacity)
        {
            sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, Invariant($"the directory claims {count} entries; it holds 0 to {Capacity}"));
            return entries;
        }
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> e = block.Slice(EntriesOffset + i * EntrySize, EntrySize);
            var kind = (PoolStructureKind)BinaryPrimitives.ReadUInt16LittleEndian(e);
            long offset = BinaryPrimitives.ReadInt64LittleEndian(e[8..]);
            long length = BinaryPrimitives.ReadInt64LittleEndian(e[16..]);
            ReadOnlySpan<byte> nameField = e.Slice(NameOffset, EntrySize - NameOffset);
            int end = nameField.IndexOf((byte)0);
            string? name = null;
            if (end > 0 && !nameField[end..].ContainsAnyExcept((byte)0))
            {
                try
                {
                    name = utf8.GetString(nameField[..end]);
                }
                catch (DecoderFallbackException)
                {
                    name = null;
                }
            }
            string where = Invariant($"directory entry {i}");
            if (name is null)
            {
                sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, where + ": the name is not a NUL-padded UTF-8 string of 1 to 39 bytes");
                continue;
            }
            where += " (\"" + name + "\")";
            if (!Enum.IsDefined(kind))
            {
                sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, Invariant($"{where}: kind {(int)kind} is not one this library knows"));
                continue;
            }
            if (BinaryPrimitives.ReadUInt16LittleEndian(e[2..]) != 0 || BinaryPrimitives.ReadUInt32LittleEndian(e[4..]) != 0)
            {
                sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, where + ": its reserved bytes 2-7 are not zero");
                continue;
            }
            if (offset < dataOffset || offset % Alignment != 0 || length <= 0 || length % Alignment != 0 || length > poolSize - offset)
            {
                sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, Invariant(
                    $"{where}: [{offset}, +{length}) is not a {Alignment}-aligned, non-empty range in the data area [{dataOffset}, {poolSize})"));
                continue;
            }
            PoolDirectoryEntry entry = new(name, kind, offset, length);
            PoolDirectoryEntry? clash = entries.Find(x => string.Equals(x.Name, name, StringComparison.Ordinal) || x.Overlaps(entry));
            if (clash is not null)
            {
                sink.Report(PoolHeaderField.Directory, PoolProblemSeverity.Error, string.Equals(clash.Name, name, StringComparison.Ordinal)
                    ? where + ": the name is listed twice"
                    : Invariant($"{where}: [{offset}, +{length}) overlaps \"{clash.Name}\" [{clash.Offset}, +{clash.Length})"));
                continue;
            }
            entries.Add(entry);
        }
        return entries;
    }

    /// <summary>Checks a name given by the application: 1 to 39 UTF-8 bytes, no NUL.</summary>
    public static void CheckName(string name, string parameter)
    {
        ArgumentNullException.ThrowIfNull(name, parameter);
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes == 0 || bytes > MaxNameBytes || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException(Invariant($"A structure name must be 1 to {MaxNameBytes} UTF-8 bytes without NUL; \"{name}\" is {bytes}."), parameter);
        }
    }

    /// <summary>
    /// The lowest <see cref="Alignment"/>-aligned offset in [<paramref name="dataOffset"/>, <paramref name="poolSize"/>)
    /// where <paramref name="length"/> bytes overlap none of <paramref name="taken"/>, or -1.
    /// </summary>
    public static long FindFree(IReadOnlyList<PoolDirectoryEntry> taken, long dataOffset, long poolSize, long length)
    {
        long candidate = AlignUp(dataOffset);
        foreach (PoolDirectoryEntry entry in taken.OrderBy(e => e.Offset))
        {
            if (entry.Offset - candidate >= length)
            {
                return candidate;
            }
            candidate = Math.Max(candidate, AlignUp(entry.Offset + entry.Length));
        }
        return poolSize - candidate >= length ? candidate : -1;
    }

    public static long AlignUp(long value) => checked(value + Alignment - 1) & ~(Alignment - 1);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What a named structure in a pool's directory is.</summary>
public enum PoolStructureKind
{
    /// <summary>A <see cref="PmemLog"/>, made by <see cref="PmemPool.CreateLog"/>.</summary>
    Log = 1,

    /// <summary>A <see cref="Transactions.TransactionalHeap"/>, made by <see cref="PmemPool.CreateHeap"/>.</summary>
    TransactionalHeap = 2,

    /// <summary>A zeroed region the application (or a later library part, such as a Garnet volume) formats itself, made by <see cref="PmemPool.Reserve"/>.</summary>
    Reserved = 3,

    /// <summary>
    /// A DirectPmem.Garnet volume (Tsavorite's named devices for Garnet's log, append-only file and checkpoints),
    /// made by <see cref="PmemPool.CreateStructure"/>: it starts with a structure header the pool writes and judges.
    /// </summary>
    GarnetVolume = 4,
}

/// <summary>One named structure in a pool's directory: what it is and the range of the pool it occupies.</summary>
public sealed class PoolDirectoryEntry
{
    internal PoolDirectoryEntry(string name, PoolStructureKind kind, long offset, long length)
    {
        Name = name;
        Kind = kind;
        Offset = offset;
        Length = length;
    }

    /// <summary>The structure's name, unique in the pool.</summary>
    public string Name { get; }

    /// <summary>What the structure is.</summary>
    public PoolStructureKind Kind { get; }

    /// <summary>Its first byte, as an offset in the pool's mapping (in the data area, 4 KiB aligned).</summary>
    public long Offset { get; }

    /// <summary>Its length in bytes (a multiple of 4 KiB).</summary>
    public long Length { get; }

    internal bool Overlaps(PoolDirectoryEntry other) => Offset < other.Offset + other.Length && other.Offset < Offset + Length;

    /// <summary>"log "wal" at [0x5000, +0x10000)".</summary>
    /// <returns>The kind, name and range.</returns>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Kind} \"{Name}\" at [0x{Offset:x}, +0x{Length:x})");
}

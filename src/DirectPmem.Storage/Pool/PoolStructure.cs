using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using DirectPmem.Geometry;
using DirectPmem.Mapping;

namespace DirectPmem.Storage;

/// <summary>
/// The header every structure the pool does not format itself (a Garnet volume) starts with: two
/// <see cref="FormatHeader"/> blocks (primary at the structure's offset, backup 4 KiB further), written
/// backup first when the structure is created, before the directory names it. It ties the structure to
/// its pool (UUID), its kind and its name, and carries up to <see cref="MaxParameters"/> bytes of the
/// owner's parameters (its geometry and its own layout version), checksummed with the header.
/// </summary>
/// <remarks>
/// <code>
///   0 40 format prefix, signature "DPMSTRC\0", version 1.0
///  40 16 the pool's UUID     56 2 kind     58 2 zero     60 4 parameter length
///  64 40 name (UTF-8, NUL padded)          104 24 zero
/// 128 .. parameters (up to 256 bytes), zero after them          4088 8 checksum
/// </code>
/// </remarks>
internal static class StructureHeader
{
    public const int BlockSize = 4096;
    public const long Length = 2 * BlockSize;
    public const int MaxParameters = 256;
    private const int UuidOffset = 40;
    private const int KindOffset = 56;
    private const int ParameterLengthOffset = 60;
    private const int NameOffset = 64;
    private const int ParametersOffset = 128;

    public static FormatRules Rules { get; } = new("structure header", BinaryPrimitives.ReadUInt64LittleEndian("DPMSTRC\0"u8), BlockSize,
        CurrentMajor: 1, CurrentMinor: 0, KnownCompat: 0, KnownIncompat: 0, KnownRoCompat: 0);

    public static bool HasHeader(PoolStructureKind kind) => kind == PoolStructureKind.GarnetVolume;

    public static void Write(Span<byte> block, Guid poolUuid, PoolDirectoryEntry entry, ReadOnlySpan<byte> parameters)
    {
        block = block[..BlockSize];
        block.Clear();
        FormatHeader.WritePrefix(block, Rules, 0, 0, 0);
        poolUuid.TryWriteBytes(block.Slice(UuidOffset, 16));
        BinaryPrimitives.WriteUInt16LittleEndian(block[KindOffset..], (ushort)entry.Kind);
        BinaryPrimitives.WriteInt32LittleEndian(block[ParameterLengthOffset..], parameters.Length);
        Encoding.UTF8.GetBytes(entry.Name, block.Slice(NameOffset, PoolDirectory.MaxNameBytes));
        parameters.CopyTo(block[ParametersOffset..]);
        FormatHeader.Seal(block);
    }

    /// <summary>
    /// The one judge of a structure's header, for <see cref="PmemPool.OpenStructure"/> (a throwing sink) and
    /// <see cref="PoolInspector.InspectStructure"/> (a collecting one): both copies read poison-safe, the intact
    /// one chosen, its version and features, pool, kind and name checked. Returns the parameters, or null when
    /// the header cannot be trusted; <paramref name="repairFrom"/> is the copy to write over the other one.
    /// </summary>
    public static byte[]? Read(DaxMapping mapping, Guid poolUuid, PoolDirectoryEntry entry, List<PmemRange> bad, IFormatProblemSink<PoolHeaderField> sink,
        out string primaryState, out string backupState, out byte[]? repairFrom, out bool primaryChosen)
    {
        repairFrom = null;
        primaryChosen = false;
        string where = "the structure header of " + entry;
        byte[] primary = new byte[BlockSize];
        byte[] backup = new byte[BlockSize];
        string? primaryLost = PmemPool.ReadCopy(mapping, new PmemRange(entry.Offset, BlockSize), primary, bad, "the primary structure header", out _);
        string? backupLost = PmemPool.ReadCopy(mapping, new PmemRange(entry.Offset + BlockSize, BlockSize), backup, bad, "the backup structure header", out _);
        primaryState = primaryLost ?? FormatHeader.Describe(primary, Rules);
        backupState = backupLost ?? FormatHeader.Describe(backup, Rules);
        if (!FormatHeader.Choose(primaryLost is null ? primary : null, backupLost is null ? backup : null, Rules, out primaryChosen, out PoolHeaderRepair repair))
        {
            sink.Report(PoolHeaderField.StructureHeader, PoolProblemSeverity.Error, $"neither copy of {where} is intact: primary {primaryState}; backup {backupState}");
            return null;
        }
        byte[] chosen = primaryChosen ? primary : backup;
        if (repair != PoolHeaderRepair.None)
        {
            repairFrom = chosen;
            sink.Report(PoolHeaderField.StructureHeader, PoolProblemSeverity.Repairable, repair == PoolHeaderRepair.PrimaryRestoredFromBackup
                ? $"the primary copy of {where} is {primaryState}; the backup is intact"
                : $"the backup copy of {where} is {backupState}; the primary is intact");
        }
        var field = PoolHeaderField.StructureHeader;
        FormatHeader.Validate(chosen, Rules, sink, field, field, field, field, field);
        var uuid = new Guid(chosen.AsSpan(UuidOffset, 16));
        var kind = (PoolStructureKind)BinaryPrimitives.ReadUInt16LittleEndian(chosen.AsSpan(KindOffset));
        int length = BinaryPrimitives.ReadInt32LittleEndian(chosen.AsSpan(ParameterLengthOffset));
        ReadOnlySpan<byte> nameField = chosen.AsSpan(NameOffset, PoolDirectory.MaxNameBytes + 1);
        int end = nameField.IndexOf((byte)0);
        string name = Encoding.UTF8.GetString(nameField[..(end < 0 ? nameField.Length : end)]);
        if (uuid != poolUuid)
        {
            sink.Report(field, PoolProblemSeverity.Error, $"{where} belongs to pool {uuid}, not to this pool ({poolUuid})");
            return null;
        }
        if (kind != entry.Kind || !string.Equals(name, entry.Name, StringComparison.Ordinal))
        {
            sink.Report(field, PoolProblemSeverity.Error, $"{where} names {kind} \"{name}\": the range holds another structure");
            return null;
        }
        if (length is < 0 or > MaxParameters)
        {
            sink.Report(field, PoolProblemSeverity.Error, string.Create(CultureInfo.InvariantCulture, $"{where} claims {length} parameter bytes; it holds 0 to {MaxParameters}"));
            return null;
        }
        return chosen.AsSpan(ParametersOffset, length).ToArray();
    }
}

/// <summary>
/// A named structure of a kind the pool does not format itself (<see cref="PoolStructureKind.GarnetVolume"/>),
/// as <see cref="PmemPool.CreateStructure"/> and <see cref="PmemPool.OpenStructure"/> hand it to its owner: the
/// range after the structure's header, and the parameters the owner stored in that header.
/// </summary>
public sealed class PoolStructure
{
    internal PoolStructure(PmemPool pool, PoolDirectoryEntry entry, byte[] parameters, PoolHeaderRepair headerRepair)
    {
        Pool = pool;
        Entry = entry;
        _parameters = parameters;
        HeaderRepair = headerRepair;
    }

    private readonly byte[] _parameters;

    /// <summary>The pool the structure lives in.</summary>
    public PmemPool Pool { get; }

    /// <summary>The structure's directory entry: its kind, name and whole range (header included).</summary>
    public PoolDirectoryEntry Entry { get; }

    /// <summary>The first byte after the structure's header (two 4 KiB copies), as an offset in <see cref="PmemPool.Mapping"/>.</summary>
    public long BodyOffset => Entry.Offset + StructureHeader.Length;

    /// <summary>The bytes from <see cref="BodyOffset"/> to the end of the structure's range.</summary>
    public long BodyLength => Entry.Length - StructureHeader.Length;

    /// <summary>The parameters the owner stored in the structure's header when it created it (checksummed with the header).</summary>
    public ReadOnlySpan<byte> Parameters => _parameters;

    /// <summary>Which header copy the open restored from the other (a read-only pool reports it and writes nothing).</summary>
    public PoolHeaderRepair HeaderRepair { get; }
}

/// <summary>What <see cref="PoolInspector.InspectStructure"/> found in a structure's header.</summary>
public sealed class PoolStructureInspection
{
    internal PoolStructureInspection(PoolDirectoryEntry entry, string primaryState, string backupState, IReadOnlyList<PoolProblem> problems, byte[]? parameters)
    {
        Entry = entry;
        PrimaryState = primaryState;
        BackupState = backupState;
        Problems = problems;
        _parameters = parameters;
    }

    private readonly byte[]? _parameters;

    /// <summary>The directory entry inspected.</summary>
    public PoolDirectoryEntry Entry { get; }

    /// <summary>The primary header copy's state ("intact", "checksum ... torn or damaged", ...).</summary>
    public string PrimaryState { get; }

    /// <summary>The backup header copy's state.</summary>
    public string BackupState { get; }

    /// <summary>Every problem found (none when <see cref="PmemPool.OpenStructure"/> accepts the header).</summary>
    public IReadOnlyList<PoolProblem> Problems { get; }

    /// <summary>Whether <see cref="PmemPool.OpenStructure"/> would accept the header.</summary>
    public bool Opens => !Problems.Any(p => p.Severity == PoolProblemSeverity.Error);

    /// <summary>The owner's parameters from the header an open would use; empty when the header cannot be trusted.</summary>
    public ReadOnlySpan<byte> Parameters => _parameters;
}

public static partial class PoolInspector
{
    /// <summary>
    /// Inspects the header of a structure the pool does not format itself (<see cref="PoolStructureKind.GarnetVolume"/>)
    /// with the routine <see cref="PmemPool.OpenStructure"/> runs, collecting every problem. Writes nothing.
    /// </summary>
    /// <param name="mapping">The mapping holding the pool (read-only is enough).</param>
    /// <param name="pool">The pool's inspection (<see cref="InspectPool"/>): its UUID ties the structure to it.</param>
    /// <param name="entry">One of <see cref="PoolInspection.Structures"/>.</param>
    /// <returns>What was found.</returns>
    /// <exception cref="ArgumentException">The entry's kind has no structure header (a log or a heap: use <see cref="PmemLog.Inspect"/> or <see cref="InspectHeap"/>).</exception>
    public static PoolStructureInspection InspectStructure(DaxMapping mapping, PoolInspection pool, PoolDirectoryEntry entry)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(entry);
        if (!StructureHeader.HasHeader(entry.Kind))
        {
            throw new ArgumentException($"{entry} has no structure header; only kinds created by PmemPool.CreateStructure do.", nameof(entry));
        }
        var sink = new CollectingPoolSink();
        byte[]? parameters = StructureHeader.Read(mapping, pool.Uuid, entry, [], sink, out string primary, out string backup, out _, out _);
        return new PoolStructureInspection(entry, primary, backup, sink.Problems, parameters);
    }
}

public sealed partial class PmemPool
{
    /// <summary>
    /// Creates a named structure of a kind the pool does not format itself (<see cref="PoolStructureKind.GarnetVolume"/>)
    /// in a free range of <paramref name="length"/> bytes (rounded up to 4 KiB): the pool writes the structure's
    /// header (backup, then primary: signature, version, this pool's UUID, kind, name and <paramref name="parameters"/>,
    /// checksummed), then <paramref name="format"/> formats the body, then the directory names it in one crash-atomic
    /// step. After a crash the name is absent (and the range free) or names the formatted structure.
    /// </summary>
    /// <param name="name">The structure's name: 1 to 39 UTF-8 bytes, no NUL, unique in the pool.</param>
    /// <param name="kind">Its kind: <see cref="PoolStructureKind.GarnetVolume"/>.</param>
    /// <param name="length">Its length including its 8 KiB header.</param>
    /// <param name="parameters">Up to 256 bytes the owner keeps in the header (its geometry and its own layout version).</param>
    /// <param name="format">Formats the body (<see cref="PoolStructure.BodyOffset"/>, <see cref="PoolStructure.BodyLength"/>) and makes it durable; if it throws, nothing is named.</param>
    /// <param name="overwrite">Replace a structure of that name (any kind), as <see cref="CreateLog"/> does.</param>
    /// <returns>The new structure.</returns>
    /// <exception cref="PoolDirectoryException">The name exists and <paramref name="overwrite"/> is off; the directory is full; no free range is long enough; or the pool has no directory.</exception>
    /// <exception cref="ArgumentException">The kind is one the pool formats itself (a log or a heap) or <see cref="PoolStructureKind.Reserved"/>; the name, length or parameters are unusable.</exception>
    /// <exception cref="InvalidOperationException">The pool is read-only.</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PoolStructure CreateStructure(string name, PoolStructureKind kind, long length, ReadOnlySpan<byte> parameters, Action<PoolStructure> format, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (!StructureHeader.HasHeader(kind))
        {
            throw new ArgumentException($"A {kind} is not created by CreateStructure: use CreateLog, CreateHeap or Reserve.", nameof(kind));
        }
        if (parameters.Length > StructureHeader.MaxParameters)
        {
            throw new ArgumentOutOfRangeException(nameof(parameters), parameters.Length, $"A structure header holds at most {StructureHeader.MaxParameters} parameter bytes.");
        }
        byte[] kept = parameters.ToArray();
        PoolStructure? structure = null;
        AddStructure(name, nameof(name), kind, length, StructureHeader.Length + 4096, overwrite, entry =>
        {
            byte[] block = new byte[StructureHeader.BlockSize];
            StructureHeader.Write(block, Uuid, entry, kept);
            Mapping.Write(block, entry.Offset + StructureHeader.BlockSize);
            Mapping.Write(block, entry.Offset);
            structure = new PoolStructure(this, entry, kept, PoolHeaderRepair.None);
            format(structure);
        });
        return structure!;
    }

    /// <summary>
    /// Opens the structure named <paramref name="name"/>, which must be of <paramref name="kind"/>: its header is
    /// judged (both copies read poison-safe, the intact one chosen; version, features, pool, kind and name) and a
    /// damaged copy restored from the other in a writable pool.
    /// </summary>
    /// <param name="name">The structure's name.</param>
    /// <param name="kind">The kind the caller expects.</param>
    /// <returns>The structure.</returns>
    /// <exception cref="PoolDirectoryException">No structure has that name, or it is another kind.</exception>
    /// <exception cref="PoolFormatException">The structure's header cannot be trusted (<see cref="PoolHeaderField.StructureHeader"/>).</exception>
    /// <exception cref="ObjectDisposedException">The pool has been disposed.</exception>
    public PoolStructure OpenStructure(string name, PoolStructureKind kind)
    {
        PoolDirectoryEntry entry = Lookup(name, kind);
        if (!StructureHeader.HasHeader(kind))
        {
            throw new ArgumentException($"A {kind} is not opened by OpenStructure: use OpenLog or OpenHeap, or Find for a reserved region.", nameof(kind));
        }
        var sink = new ThrowingPoolSink(Mapping.Path);
        byte[] parameters = StructureHeader.Read(Mapping, Uuid, entry, [.. KnownBadRanges], sink, out _, out _, out byte[]? repairFrom, out bool primaryChosen)!;
        PoolHeaderRepair repair = PoolHeaderRepair.None;
        if (repairFrom is not null)
        {
            repair = primaryChosen ? PoolHeaderRepair.BackupRestoredFromPrimary : PoolHeaderRepair.PrimaryRestoredFromBackup;
            if (!IsReadOnly)
            {
                Mapping.Write(repairFrom, primaryChosen ? entry.Offset + StructureHeader.BlockSize : entry.Offset);
            }
        }
        return new PoolStructure(this, entry, parameters, repair);
    }
}

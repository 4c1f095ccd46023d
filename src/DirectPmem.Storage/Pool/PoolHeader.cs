using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Storage;

/// <summary>
/// The 4 KiB pool header, little-endian at fixed offsets. Its first 40 bytes and its checksum (XxHash3-64
/// of bytes [0, 4088) stored at 4088) are the <see cref="FormatHeader"/> primitive shared by every Storage
/// format, fixed for every version, so a torn or damaged copy is recognised as such before its version
/// is trusted. <see cref="Read"/> is the one parser and <see cref="Validate"/> the one validation: Open
/// and <see cref="PoolInspector.InspectPool"/> (hence <c>dpmem check</c>) both call them.
/// </summary>
/// <remarks>
/// <code>
///   0  8  signature "DPMPOOL\0"          120 8 creation time (Unix ms)
///   8  2  major       10 2 minor          128 8 pool size     136 8 page size
///  12  4  header size (4096)              144 1 endianness (1 = little) 145 1 pointer size
///  16  8  compat      24 8 incompat       146 2 machine (ELF e_machine) 148 4 zero
///  32  8  ro-compat   40 16 UUID          152 8 root offset   160 8 reserved-area offset
///  56 64  layout (UTF-8, NUL padded)      168 8 reserved-area length 176 8 data offset
/// 184  4  state (0 clean, 1 in use)       188 4 flags (bit 0: dirty-shutdown count known)
/// 192  8  dirty-shutdown count            200 8 generation (+1 on every header update)
/// 208  1  durability: PersistGranularity + 1 at creation (compat feature 1; 0 = not recorded)
/// 209  1  backing: MappingBacking + 1 at creation (compat feature 1)
/// 4088 8  checksum
/// </code>
/// Format 1.1 added the directory (ro-compat feature 1: a 1.0 library opens such a pool read-only, as it
/// would overwrite the structures it cannot see) and the durability record (compat feature 1).
/// </remarks>
internal sealed class PoolHeader
{
    public const int Size = 4096;
    public const int ChecksumOffset = Size - 8;
    public const ushort CurrentMajor = 1;
    public const ushort CurrentMinor = 1;
    public const int MaxLayoutBytes = 63;
    public const int LayoutOffset = 56;
    public const int LayoutFieldLength = 64;

    /// <summary>Compat feature: bytes 208-209 record the durability the pool was created with.</summary>
    public const ulong CompatDurability = 1;

    /// <summary>Ro-compat feature: the reserved area starts with the pool directory (two 4 KiB copies).</summary>
    public const ulong RoCompatDirectory = 1;

    public const ulong KnownCompat = CompatDurability;
    public const ulong KnownIncompat = 0;
    public const ulong KnownRoCompat = RoCompatDirectory;
    public const uint StateClean = 0;
    public const uint StateInUse = 1;
    public const uint FlagDirtyShutdownKnown = 1;

    public const long PrimaryOffset = 0;
    public const long BackupOffset = Size;
    public const long ReservedAreaOffset = 2 * Size;

    public static ReadOnlySpan<byte> Signature => "DPMPOOL\0"u8;

    public static FormatRules Rules { get; } = new("pool header", BinaryPrimitives.ReadUInt64LittleEndian("DPMPOOL\0"u8), Size,
        CurrentMajor, CurrentMinor, KnownCompat, KnownIncompat, KnownRoCompat);

    public ushort Major = CurrentMajor;
    public ushort Minor = CurrentMinor;
    public uint HeaderSize = Size;
    public ulong Compat;
    public ulong Incompat;
    public ulong RoCompat;
    public Guid Uuid;
    public string Layout = "";
    public long CreationTimeMs;
    public long PoolSize;
    public long PageSize;
    public byte Endianness;
    public byte PointerSize;
    public ushort Machine;
    public long RootOffset;
    public long ReservedOffset;
    public long ReservedLength;
    public long DataOffset;
    public uint State;
    public uint Flags;
    public ulong DirtyShutdownCount;
    public ulong Generation;
    public byte Durability;
    public byte Backing;

    public static byte HostEndianness => BitConverter.IsLittleEndian ? (byte)1 : (byte)2;

    public static ushort HostMachine => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 62,
        Architecture.Arm64 => 183,
        Architecture.X86 => 3,
        Architecture.Arm => 40,
        Architecture.RiscV64 => 243,
        Architecture.LoongArch64 => 258,
        _ => 0,
    };

    public bool HasDirectory => (RoCompat & RoCompatDirectory) != 0;

    public PoolHeader Clone() => (PoolHeader)MemberwiseClone();

    public static ulong ComputeChecksum(ReadOnlySpan<byte> block) => FormatHeader.ComputeChecksum(block[..Size]);

    public static bool HasSignature(ReadOnlySpan<byte> block) => FormatHeader.HasSignature(block, Rules);

    public static bool ChecksumMatches(ReadOnlySpan<byte> block) => FormatHeader.ChecksumMatches(block[..Size]);

    public static bool Intact(ReadOnlySpan<byte> block) => FormatHeader.IsIntact(block[..Size], Rules);

    /// <summary>Serialises the header into a 4 KiB block, checksum included. The version written is the one in <see cref="Major"/>/<see cref="Minor"/>.</summary>
    public void WriteTo(Span<byte> block)
    {
        block = block[..Size];
        block.Clear();
        FormatHeader.WritePrefix(block, Rules, Compat, Incompat, RoCompat);
        BinaryPrimitives.WriteUInt16LittleEndian(block[FormatHeader.MajorOffset..], Major);
        BinaryPrimitives.WriteUInt16LittleEndian(block[FormatHeader.MinorOffset..], Minor);
        BinaryPrimitives.WriteUInt32LittleEndian(block[FormatHeader.HeaderSizeOffset..], HeaderSize);
        Uuid.TryWriteBytes(block.Slice(40, 16));
        Encoding.UTF8.GetBytes(Layout, block.Slice(LayoutOffset, MaxLayoutBytes));
        BinaryPrimitives.WriteInt64LittleEndian(block[120..], CreationTimeMs);
        BinaryPrimitives.WriteInt64LittleEndian(block[128..], PoolSize);
        BinaryPrimitives.WriteInt64LittleEndian(block[136..], PageSize);
        block[144] = Endianness;
        block[145] = PointerSize;
        BinaryPrimitives.WriteUInt16LittleEndian(block[146..], Machine);
        BinaryPrimitives.WriteInt64LittleEndian(block[152..], RootOffset);
        BinaryPrimitives.WriteInt64LittleEndian(block[160..], ReservedOffset);
        BinaryPrimitives.WriteInt64LittleEndian(block[168..], ReservedLength);
        BinaryPrimitives.WriteInt64LittleEndian(block[176..], DataOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(block[184..], State);
        BinaryPrimitives.WriteUInt32LittleEndian(block[188..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(block[192..], DirtyShutdownCount);
        BinaryPrimitives.WriteUInt64LittleEndian(block[200..], Generation);
        block[208] = Durability;
        block[209] = Backing;
        FormatHeader.Seal(block);
    }

    /// <summary>
    /// The one parser: every field of a block whose signature and checksum were verified, the layout
    /// name included (a layout field that is not a NUL-padded UTF-8 string of 1 to 63 bytes is reported
    /// into <paramref name="sink"/> and read as empty). Nothing else is validated here.
    /// </summary>
    public static PoolHeader Read(ReadOnlySpan<byte> block, IFormatProblemSink<PoolHeaderField> sink)
    {
        PoolHeader h = ReadFields(block);
        ReadOnlySpan<byte> layout = block.Slice(LayoutOffset, LayoutFieldLength);
        int end = layout.IndexOf((byte)0);
        if (end < 0 || layout[end..].ContainsAnyExcept((byte)0))
        {
            sink.Report(PoolHeaderField.Layout, PoolProblemSeverity.Error, "the layout name is not a NUL-padded UTF-8 string of at most 63 bytes");
            return h;
        }
        if (end == 0)
        {
            sink.Report(PoolHeaderField.Layout, PoolProblemSeverity.Error, "the layout name is empty");
            return h;
        }
        try
        {
            h.Layout = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(layout[..end]);
        }
        catch (DecoderFallbackException e)
        {
            sink.Report(PoolHeaderField.Layout, PoolProblemSeverity.Error, "the layout name is not valid UTF-8: " + e.Message);
        }
        return h;
    }

    /// <summary>Reads every fixed-size field of a block (not the layout name), without verifying or validating anything.</summary>
    private static PoolHeader ReadFields(ReadOnlySpan<byte> block) => new()
    {
        Major = FormatHeader.Major(block),
        Minor = FormatHeader.Minor(block),
        HeaderSize = FormatHeader.HeaderSize(block),
        Compat = FormatHeader.Compat(block),
        Incompat = FormatHeader.Incompat(block),
        RoCompat = FormatHeader.RoCompat(block),
        Uuid = new Guid(block.Slice(40, 16)),
        CreationTimeMs = BinaryPrimitives.ReadInt64LittleEndian(block[120..]),
        PoolSize = BinaryPrimitives.ReadInt64LittleEndian(block[128..]),
        PageSize = BinaryPrimitives.ReadInt64LittleEndian(block[136..]),
        Endianness = block[144],
        PointerSize = block[145],
        Machine = BinaryPrimitives.ReadUInt16LittleEndian(block[146..]),
        RootOffset = BinaryPrimitives.ReadInt64LittleEndian(block[152..]),
        ReservedOffset = BinaryPrimitives.ReadInt64LittleEndian(block[160..]),
        ReservedLength = BinaryPrimitives.ReadInt64LittleEndian(block[168..]),
        DataOffset = BinaryPrimitives.ReadInt64LittleEndian(block[176..]),
        State = BinaryPrimitives.ReadUInt32LittleEndian(block[184..]),
        Flags = BinaryPrimitives.ReadUInt32LittleEndian(block[188..]),
        DirtyShutdownCount = BinaryPrimitives.ReadUInt64LittleEndian(block[192..]),
        Generation = BinaryPrimitives.ReadUInt64LittleEndian(block[200..]),
        Durability = block[208],
        Backing = block[209],
    };

    /// <summary>The generation word of a block, for messages about copies that differ.</summary>
    public static ulong GenerationOf(ReadOnlySpan<byte> block) => BinaryPrimitives.ReadUInt64LittleEndian(block[200..]);

    /// <summary>
    /// The one validation of a parsed header (steps 4-10 of <see cref="PmemPool"/>'s documented order),
    /// reported into <paramref name="sink"/>. <paramref name="expectedLayout"/> null skips the layout
    /// comparison (an inspection does not know what the application expects).
    /// </summary>
    public static void Validate(ReadOnlySpan<byte> block, PoolHeader h, string? expectedLayout, long mappingLength, long mappingPageSize, IFormatProblemSink<PoolHeaderField> sink)
    {
        // 4-6: version, header size and the feature words, by the shared primitive.
        FormatHeader.Validate(block, Rules, sink, PoolHeaderField.MajorVersion, PoolHeaderField.HeaderSize, PoolHeaderField.IncompatFeatures,
            PoolHeaderField.RoCompatFeatures, PoolHeaderField.CompatFeatures);
        // 7: architecture.
        if (h.Endianness != HostEndianness)
        {
            sink.Report(PoolHeaderField.Architecture, PoolProblemSeverity.Error, Invariant($"the pool was written with endianness {h.Endianness}; this machine is {HostEndianness}"));
        }
        if (h.PointerSize != IntPtr.Size)
        {
            sink.Report(PoolHeaderField.Architecture, PoolProblemSeverity.Error, Invariant($"the pool was written with pointer size {h.PointerSize}; this machine's is {IntPtr.Size}"));
        }
        if (h.Machine != HostMachine)
        {
            sink.Report(PoolHeaderField.Architecture, PoolProblemSeverity.Error, Invariant($"the pool was written on ELF machine {h.Machine}; this machine is {HostMachine}"));
        }
        // 8: layout name (its form was checked by Read).
        if (expectedLayout is not null && h.Layout.Length > 0 && !string.Equals(h.Layout, expectedLayout, StringComparison.Ordinal))
        {
            sink.Report(PoolHeaderField.Layout, PoolProblemSeverity.Error, $"the pool's layout is \"{h.Layout}\", the application expects \"{expectedLayout}\"");
        }
        // 9: size and page size against the mapping.
        if (h.PoolSize != mappingLength)
        {
            sink.Report(PoolHeaderField.Size, PoolProblemSeverity.Error, Invariant($"the pool was created with {h.PoolSize} bytes; the mapping has {mappingLength}"));
        }
        if (h.PageSize != mappingPageSize)
        {
            sink.Report(PoolHeaderField.PageSize, PoolProblemSeverity.Error, Invariant($"the pool was created with page size {h.PageSize}; the mapping's page size is {mappingPageSize}"));
        }
        // 10: reserved area (with the directory when the pool has one), data offset, root offset, state.
        long minimumReserved = h.HasDirectory ? PoolDirectory.Length : 0;
        bool areaValid = h.ReservedOffset == ReservedAreaOffset && h.ReservedLength >= minimumReserved && h.ReservedLength % Size == 0
            && h.ReservedLength <= mappingLength - 3 * Size;
        if (!areaValid)
        {
            sink.Report(PoolHeaderField.ReservedArea, PoolProblemSeverity.Error, Invariant(
                $"the reserved area [{h.ReservedOffset}, +{h.ReservedLength}) must start at {ReservedAreaOffset}, be a multiple of {Size}{(minimumReserved > 0 ? $" of at least {minimumReserved} (the directory)" : "")} and leave a data page in {mappingLength} bytes"));
        }
        bool dataValid = areaValid && h.DataOffset == h.ReservedOffset + h.ReservedLength;
        if (areaValid && !dataValid)
        {
            sink.Report(PoolHeaderField.DataOffset, PoolProblemSeverity.Error, Invariant($"the data offset {h.DataOffset} must follow the reserved area at {h.ReservedOffset + h.ReservedLength}"));
        }
        if (dataValid && h.RootOffset != 0 && (h.RootOffset < h.DataOffset || h.RootOffset >= mappingLength))
        {
            sink.Report(PoolHeaderField.RootOffset, PoolProblemSeverity.Error, Invariant($"the root offset {h.RootOffset} is neither 0 nor in the data area [{h.DataOffset}, {mappingLength})"));
        }
        if (h.State > StateInUse)
        {
            sink.Report(PoolHeaderField.State, PoolProblemSeverity.Error, Invariant($"the state word is {h.State}; expected 0 (clean) or 1 (in use)"));
        }
        if ((h.Compat & CompatDurability) != 0 && (h.Durability is 0 or > (byte)PersistGranularity.Byte + 1 || h.Backing is 0 or > (byte)MappingBacking.DeviceDax + 1))
        {
            sink.Report(PoolHeaderField.Durability, PoolProblemSeverity.Error, Invariant($"the recorded durability ({h.Durability}) or backing ({h.Backing}) is not one this library writes"));
        }
    }

    public static string Hex(ulong value) => FormatHeader.Hex(value);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

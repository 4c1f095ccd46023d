using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;

namespace DirectPmem.Storage;

/// <summary>
/// The 4 KiB pool header, little-endian at fixed offsets. The checksum frame (XxHash3-64 of bytes
/// [0, 4088) stored at 4088) and the signature/version words are fixed for every format version,
/// so a torn or damaged copy is recognised as such before its version is trusted.
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
/// 4088 8  checksum
/// </code>
/// </remarks>
internal sealed class PoolHeader
{
    public const int Size = 4096;
    public const int ChecksumOffset = Size - 8;
    public const ushort CurrentMajor = 1;
    public const ushort CurrentMinor = 0;
    public const int MaxLayoutBytes = 63;
    public const ulong KnownIncompat = 0;
    public const ulong KnownRoCompat = 0;
    public const uint StateClean = 0;
    public const uint StateInUse = 1;
    public const uint FlagDirtyShutdownKnown = 1;

    public static ReadOnlySpan<byte> Signature => "DPMPOOL\0"u8;

    public ushort Major;
    public ushort Minor;
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

    public PoolHeader Clone() => (PoolHeader)MemberwiseClone();

    public static ulong ComputeChecksum(ReadOnlySpan<byte> block) => XxHash3.HashToUInt64(block[..ChecksumOffset]);

    public static bool HasSignature(ReadOnlySpan<byte> block) => block[..8].SequenceEqual(Signature);

    public static bool ChecksumMatches(ReadOnlySpan<byte> block)
        => BinaryPrimitives.ReadUInt64LittleEndian(block[ChecksumOffset..]) == ComputeChecksum(block);

    /// <summary>Serialises the header into a 4 KiB block, checksum included.</summary>
    public void WriteTo(Span<byte> block)
    {
        block[..Size].Clear();
        Signature.CopyTo(block);
        BinaryPrimitives.WriteUInt16LittleEndian(block[8..], Major);
        BinaryPrimitives.WriteUInt16LittleEndian(block[10..], Minor);
        BinaryPrimitives.WriteUInt32LittleEndian(block[12..], HeaderSize);
        BinaryPrimitives.WriteUInt64LittleEndian(block[16..], Compat);
        BinaryPrimitives.WriteUInt64LittleEndian(block[24..], Incompat);
        BinaryPrimitives.WriteUInt64LittleEndian(block[32..], RoCompat);
        Uuid.TryWriteBytes(block.Slice(40, 16));
        Encoding.UTF8.GetBytes(Layout, block.Slice(56, MaxLayoutBytes));
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
        BinaryPrimitives.WriteUInt64LittleEndian(block[ChecksumOffset..], ComputeChecksum(block));
    }

    /// <summary>Parses a block whose signature and checksum were verified; the values are not yet validated.</summary>
    public static PoolHeader Parse(ReadOnlySpan<byte> block, string? path)
    {
        PoolHeader h = ReadFields(block);
        ReadOnlySpan<byte> layout = block.Slice(56, 64);
        int end = layout.IndexOf((byte)0);
        if (end < 0 || layout[end..].ContainsAnyExcept((byte)0))
        {
            throw new PoolFormatException(PoolHeaderField.Layout, "The layout name is not a NUL-padded UTF-8 string of at most 63 bytes.", path);
        }
        try
        {
            h.Layout = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(layout[..end]);
        }
        catch (DecoderFallbackException e)
        {
            throw new PoolFormatException(PoolHeaderField.Layout, "The layout name is not valid UTF-8: " + e.Message, path);
        }
        return h;
    }

    /// <summary>Reads every fixed-size field of a block (not the layout name), without verifying or validating anything.</summary>
    public static PoolHeader ReadFields(ReadOnlySpan<byte> block) => new()
    {
        Major = BinaryPrimitives.ReadUInt16LittleEndian(block[8..]),
        Minor = BinaryPrimitives.ReadUInt16LittleEndian(block[10..]),
        HeaderSize = BinaryPrimitives.ReadUInt32LittleEndian(block[12..]),
        Compat = BinaryPrimitives.ReadUInt64LittleEndian(block[16..]),
        Incompat = BinaryPrimitives.ReadUInt64LittleEndian(block[24..]),
        RoCompat = BinaryPrimitives.ReadUInt64LittleEndian(block[32..]),
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
    };

    public static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}

using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// The on-media layout of a transactional heap, relative to the start of its region:
/// <code>
///   0                 header block (4 KiB; the fields below, XxHash3 of bytes [0, 120) at 120)
///   4096              lanes: LaneCount x (64-byte lane line + two undo logs of LaneLogSize bytes, for even and odd generations)
///   RootOffset        root area (RootSize rounded up to 64), zeroed at creation
///   MapOffset         allocation map: one byte per object, 0 free / 1 allocated (rounded up to 64)
///   ObjectsOffset     ObjectCount objects of ObjectSize bytes
/// </code>
/// Header fields (little-endian): signature u64 "DPTXHEAP" @0, major u16 @8, minor u16 @10,
/// header length u32 @12 (= 128), region length u64 @16, lane count u32 @24, lane log size u32
/// @28, root size u32 @32, object size u32 @36, object count u64 @40, lanes offset u64 @48,
/// root offset u64 @56, map offset u64 @64, objects offset u64 @72, zero up to 120, checksum @120.
/// </summary>
internal readonly record struct HeapLayout(
    long RegionLength, int LaneCount, int LaneLogSize, int RootSize, int ObjectSize, int ObjectCount,
    long LanesOffset, long RootOffset, long MapOffset, long ObjectsOffset)
{
    public const ulong Signature = 0x5041454858545044; // "DPTXHEAP" little-endian
    public const ushort Major = 2;
    public const ushort Minor = 0;
    public const int HeaderLength = 128;
    public const int HeaderBlock = 4096;
    public const int ChecksumOffset = 120;
    public const int LaneLine = 64;
    public const int MaxLanes = 1024;
    public const int MinLaneLog = 256;
    public const int MaxLaneLog = 64 << 20;
    public const int MaxRoot = 64 << 20;
    public const int MaxObjectSize = 1 << 20;

    public long LaneStride => LaneLine + 2L * LaneLogSize;

    public long ObjectsEnd => ObjectsOffset + (long)ObjectCount * ObjectSize;

    /// <summary>Computes the layout for new options, or says which value is wrong.</summary>
    public static HeapLayout Compute(long regionLength, TransactionalHeapOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.LaneCount is < 1 or > MaxLanes)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.LaneCount, $"LaneCount must be 1 to {MaxLanes}.");
        }
        if (options.LaneLogSize is < MinLaneLog or > MaxLaneLog || options.LaneLogSize % 64 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.LaneLogSize, $"LaneLogSize must be a multiple of 64 from {MinLaneLog} to {MaxLaneLog}.");
        }
        if (options.RootSize is < 0 or > MaxRoot)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.RootSize, $"RootSize must be 0 to {MaxRoot}.");
        }
        if (options.ObjectSize is < 8 or > MaxObjectSize || options.ObjectSize % 8 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ObjectSize, $"ObjectSize must be a multiple of 8 from 8 to {MaxObjectSize}.");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(options.ObjectCount, nameof(options));
        int rootSize = (int)Align64(options.RootSize);
        long lanes = HeaderBlock;
        long root = checked(lanes + options.LaneCount * (LaneLine + 2L * options.LaneLogSize));
        long map = root + rootSize;
        long count = options.ObjectCount;
        if (count == 0)
        {
            // As many as fit: count bytes of map (rounded to 64) + count objects <= what is left.
            long left = regionLength - map - 64;
            count = left <= 0 ? 0 : left / (options.ObjectSize + 1);
            while (count > 0 && map + Align64(count) + count * options.ObjectSize > regionLength)
            {
                count--;
            }
            count = Math.Min(count, int.MaxValue);
        }
        long objects = map + Align64(count);
        long end = objects + count * options.ObjectSize;
        if (count == 0 || end > regionLength)
        {
            throw new ArgumentOutOfRangeException(nameof(regionLength), regionLength, string.Create(CultureInfo.InvariantCulture,
                $"The region of {regionLength} bytes is too small for {options.LaneCount} lanes of {options.LaneLogSize} bytes, a {rootSize}-byte root and {(options.ObjectCount == 0 ? "at least one" : options.ObjectCount.ToString(CultureInfo.InvariantCulture))} objects of {options.ObjectSize} bytes ({end} bytes needed)."));
        }
        return new HeapLayout(regionLength, options.LaneCount, options.LaneLogSize, rootSize, options.ObjectSize, (int)count, lanes, root, map, objects);
    }

    public static long Align64(long value) => (value + 63) & ~63L;

    public void WriteHeader(Span<byte> header)
    {
        header[..HeaderLength].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(header, Signature);
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], Major);
        BinaryPrimitives.WriteUInt16LittleEndian(header[10..], Minor);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], HeaderLength);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], RegionLength);
        BinaryPrimitives.WriteInt32LittleEndian(header[24..], LaneCount);
        BinaryPrimitives.WriteInt32LittleEndian(header[28..], LaneLogSize);
        BinaryPrimitives.WriteInt32LittleEndian(header[32..], RootSize);
        BinaryPrimitives.WriteInt32LittleEndian(header[36..], ObjectSize);
        BinaryPrimitives.WriteInt64LittleEndian(header[40..], ObjectCount);
        BinaryPrimitives.WriteInt64LittleEndian(header[48..], LanesOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[56..], RootOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[64..], MapOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[72..], ObjectsOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(header[ChecksumOffset..], XxHash3.HashToUInt64(header[..ChecksumOffset]));
    }

    /// <summary>
    /// Validates a header read from the media, in this order: signature, major version and header
    /// length, checksum, region length, geometry (every value in range and every offset equal to
    /// the one the values imply, so nothing read is trusted before it is checked).
    /// </summary>
    public static HeapLayout ReadHeader(ReadOnlySpan<byte> header, long regionLength, long regionOffset)
    {
        ulong signature = BinaryPrimitives.ReadUInt64LittleEndian(header);
        if (signature != Signature)
        {
            throw Bad(HeapField.Signature, regionOffset, $"No transactional heap here: signature 0x{signature:x16}, expected 0x{Signature:x16} (\"DPTXHEAP\").");
        }
        ushort major = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(header[12..]);
        if (major == 1 && headerLength == HeaderLength)
        {
            throw Bad(HeapField.Version, regionOffset + 8, $"Heap format 1 (an undo log with a commit word published after a fence of its own): this library reads format {Major} only, whose lanes confirm commits lazily and which format 1's readers would misread. Open the heap with the DirectPmem release that made it and copy its data into a new heap.");
        }
        if (major != Major || headerLength != HeaderLength)
        {
            throw Bad(HeapField.Version, regionOffset + 8, $"Heap format {major} with a {headerLength}-byte header; this library reads format {Major} with a {HeaderLength}-byte header.");
        }
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(header[ChecksumOffset..]);
        ulong computed = XxHash3.HashToUInt64(header[..ChecksumOffset]);
        if (stored != computed)
        {
            throw Bad(HeapField.Checksum, regionOffset + ChecksumOffset, $"Heap header checksum 0x{stored:x16} does not match its contents (0x{computed:x16}): the header is damaged.");
        }
        long length = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        if (length != regionLength)
        {
            throw Bad(HeapField.Length, regionOffset + 16, $"The heap was created on a region of {length} bytes; the region given has {regionLength}.");
        }
        var recorded = new HeapLayout(length,
            BinaryPrimitives.ReadInt32LittleEndian(header[24..]), BinaryPrimitives.ReadInt32LittleEndian(header[28..]),
            BinaryPrimitives.ReadInt32LittleEndian(header[32..]), BinaryPrimitives.ReadInt32LittleEndian(header[36..]),
            (int)Math.Clamp(BinaryPrimitives.ReadInt64LittleEndian(header[40..]), -1, int.MaxValue),
            BinaryPrimitives.ReadInt64LittleEndian(header[48..]), BinaryPrimitives.ReadInt64LittleEndian(header[56..]),
            BinaryPrimitives.ReadInt64LittleEndian(header[64..]), BinaryPrimitives.ReadInt64LittleEndian(header[72..]));
        HeapLayout expected;
        try
        {
            expected = recorded.ObjectCount < 1
                ? throw new ArgumentOutOfRangeException(nameof(header))
                : Compute(length, new TransactionalHeapOptions
                {
                    LaneCount = recorded.LaneCount,
                    LaneLogSize = recorded.LaneLogSize,
                    RootSize = recorded.RootSize,
                    ObjectSize = recorded.ObjectSize,
                    ObjectCount = recorded.ObjectCount,
                });
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw Bad(HeapField.Geometry, regionOffset + 24, "The heap geometry in the header is invalid: " + e.Message);
        }
        if (expected != recorded)
        {
            throw Bad(HeapField.Geometry, regionOffset + 48, $"The heap header's offsets do not follow from its geometry: recorded {recorded}, expected {expected}.");
        }
        return recorded;
    }

    private static TransactionalHeapFormatException Bad(HeapField field, long offset, string message) =>
        new(field, offset, message);
}

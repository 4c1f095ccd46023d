using System.Buffers.Binary;
using System.Globalization;

namespace DirectPmem.Storage.Transactions;

/// <summary>
/// The on-media layout of a transactional heap, relative to the start of its region:
/// <code>
///   0                 header (HeaderLength bytes, the shared FormatHeader block), the rest of the page zero
///   4096              backup copy of the header, the rest of the page zero
///   8192              lanes: LaneCount x (128-byte lane header + two logs of LaneLogSize bytes, for even and odd generations)
///   RootOffset        root area (RootSize rounded up to 64), zeroed at creation
///   MapOffset         allocation map: one byte per object, 0 free / 1 allocated (rounded up to 64)
///   ObjectsOffset     ObjectCount objects of ObjectSize bytes
/// </code>
/// Header fields (little-endian), after the <see cref="FormatHeader"/> prefix (signature "DPTXHEAP",
/// major 4, minor 0, header size 128, compat, incompat, ro-compat feature words, none defined yet):
/// region length u64 @40, lane count u32 @48, lane log size u32 @52, root size u32 @56, object size
/// u32 @60, object count u64 @64, lanes offset u64 @72, root offset u64 @80, map offset u64 @88,
/// objects offset u64 @96, zero up to 120, checksum (XxHash3-64 of [0, 120)) @120. The header is
/// written once, at creation; the backup lives in its own page so that one lost page (poison, a
/// truncated file) leaves the other copy readable.
/// A lane header is two lines: the generation word @0 and the even generations' commit record @8
/// in the first, the odd generations' commit record @72 in the second (<see cref="CommitRecord"/>),
/// so that a commit never overwrites the record of the lane's previous commit.
/// </summary>
internal readonly record struct HeapLayout(
    long RegionLength, int LaneCount, int LaneLogSize, int RootSize, int ObjectSize, int ObjectCount,
    long LanesOffset, long RootOffset, long MapOffset, long ObjectsOffset)
{
    public const ulong Signature = 0x5041454858545044; // "DPTXHEAP" little-endian
    public const ushort Major = 4;
    public const ushort Minor = 0;
    public const int HeaderLength = 128;
    public const int BackupOffset = 4096;
    public const int HeaderBlock = 8192;
    public const int ChecksumOffset = HeaderLength - 8;
    public const int RegionLengthOffset = FormatHeader.PrefixLength;
    public const int GeometryOffset = RegionLengthOffset + 8;
    public const int LanesOffsetOffset = 72;
    public const int LaneLine = 64;
    public const int LaneHeader = 2 * LaneLine;
    public const int MaxLanes = 1024;
    public const int MinLaneLog = 256;
    public const int MaxLaneLog = 64 << 20;
    public const int MaxRoot = 64 << 20;
    public const int MaxObjectSize = 1 << 20;

    /// <summary>The heap header's format: signature, version and the feature bits this library knows (none yet).</summary>
    public static readonly FormatRules Rules = new("heap header", Signature, HeaderLength, Major, Minor, KnownCompat: 0, KnownIncompat: 0, KnownRoCompat: 0);

    public long LaneStride => LaneHeader + 2L * LaneLogSize;

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
        long root = checked(lanes + options.LaneCount * (LaneHeader + 2L * options.LaneLogSize));
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
        FormatHeader.WritePrefix(header, Rules, compat: 0, incompat: 0, roCompat: 0);
        BinaryPrimitives.WriteInt64LittleEndian(header[RegionLengthOffset..], RegionLength);
        BinaryPrimitives.WriteInt32LittleEndian(header[48..], LaneCount);
        BinaryPrimitives.WriteInt32LittleEndian(header[52..], LaneLogSize);
        BinaryPrimitives.WriteInt32LittleEndian(header[56..], RootSize);
        BinaryPrimitives.WriteInt32LittleEndian(header[60..], ObjectSize);
        BinaryPrimitives.WriteInt64LittleEndian(header[64..], ObjectCount);
        BinaryPrimitives.WriteInt64LittleEndian(header[72..], LanesOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[80..], RootOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[88..], MapOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[96..], ObjectsOffset);
        FormatHeader.Seal(header[..HeaderLength]);
    }

    /// <summary>The region length an intact header of this format records (no other check).</summary>
    public static long RecordedRegionLength(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadInt64LittleEndian(header[RegionLengthOffset..]);

    /// <summary>
    /// The one validation of a heap header copy chosen by <see cref="HeapValidation"/> (an intact
    /// copy: signature and checksum verified), reported into <paramref name="sink"/> in this order:
    /// format version (formats 1 to 3 are refused saying what to do), header size and feature words
    /// (<see cref="FormatHeader.Validate"/>), region length, geometry (every value in range and every
    /// offset equal to the one the values imply, so nothing read is trusted before it is checked).
    /// Returns the layout, or null after an error.
    /// </summary>
    public static HeapLayout? Validate(ReadOnlySpan<byte> header, long regionLength, long regionOffset, IHeapProblemSink sink)
    {
        ushort major = FormatHeader.Major(header);
        if (major is 1 or 2 or 3)
        {
            sink.Report(HeapField.Version, PoolProblemSeverity.Error, regionOffset + FormatHeader.MajorOffset, major switch
            {
                1 => "heap format 1 (an undo log with a commit word published after a fence of its own): this library reads heap format 4 only, and format 1's commit protocol is not format 4's; open the heap with the DirectPmem release that made it and copy its data into a new heap",
                2 => "heap format 2 (its header has no feature words and no backup copy): this preview library reads heap format 4 only and does not convert older heaps; open the heap with the DirectPmem release that made it and copy its data into a new heap",
                _ => "heap format 3 (undo logs only, one commit record per lane): this preview library reads heap format 4 only (redo and undo entries, a commit record per log half) and does not convert older heaps; open the heap with the DirectPmem release that made it and copy its data into a new heap",
            });
            return null;
        }
        var counting = new ErrorCounter(sink, regionOffset);
        FormatHeader.Validate(header, Rules, counting, HeapField.Version, HeapField.Version, HeapField.Features, HeapField.Features, HeapField.Features);
        if (counting.Errors > 0)
        {
            return null;
        }
        long length = RecordedRegionLength(header);
        if (length != regionLength)
        {
            sink.Report(HeapField.Length, PoolProblemSeverity.Error, regionOffset + RegionLengthOffset, Invariant($"the heap was created on a region of {length} bytes; the region given has {regionLength}"));
            return null;
        }
        var recorded = new HeapLayout(length,
            BinaryPrimitives.ReadInt32LittleEndian(header[48..]), BinaryPrimitives.ReadInt32LittleEndian(header[52..]),
            BinaryPrimitives.ReadInt32LittleEndian(header[56..]), BinaryPrimitives.ReadInt32LittleEndian(header[60..]),
            (int)Math.Clamp(BinaryPrimitives.ReadInt64LittleEndian(header[64..]), -1, int.MaxValue),
            BinaryPrimitives.ReadInt64LittleEndian(header[72..]), BinaryPrimitives.ReadInt64LittleEndian(header[80..]),
            BinaryPrimitives.ReadInt64LittleEndian(header[88..]), BinaryPrimitives.ReadInt64LittleEndian(header[96..]));
        HeapLayout expected;
        try
        {
            expected = recorded.ObjectCount < 1
                ? throw new ArgumentOutOfRangeException(nameof(header), "The object count must be at least 1.")
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
            sink.Report(HeapField.Geometry, PoolProblemSeverity.Error, regionOffset + GeometryOffset, "the heap geometry in the header is invalid: " + e.Message.TrimEnd('.'));
            return null;
        }
        if (expected != recorded)
        {
            sink.Report(HeapField.Geometry, PoolProblemSeverity.Error, regionOffset + LanesOffsetOffset, Invariant($"the heap header's offsets do not follow from its geometry: recorded {recorded}, expected {expected}"));
            return null;
        }
        return recorded;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    // FormatHeader.Validate reports by field; the heap's sink wants the mapping offset too, and the caller the error count.
    private sealed class ErrorCounter(IHeapProblemSink inner, long regionOffset) : IFormatProblemSink<HeapField>
    {
        public int Errors { get; private set; }

        public void Report(HeapField field, PoolProblemSeverity severity, string message)
        {
            Errors += severity == PoolProblemSeverity.Error ? 1 : 0;
            long at = regionOffset + (field == HeapField.Features ? FormatHeader.CompatOffset : FormatHeader.MajorOffset);
            inner.Report(field, severity, at, message);
        }
    }
}

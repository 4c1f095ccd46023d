using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using DirectPmem.Geometry;

namespace DirectPmem.Tool.Cli;

/// <summary>The descriptor of an emulated device file, read without trusting it.</summary>
internal sealed record DescriptorReport(long FileSize, long DescriptorOffset, long? Size, long? Align, long? DescriptorPageLength, IReadOnlyList<string> Problems);

/// <summary>
/// Reads the descriptor page of an emulated device (format in README.md: after the data, one
/// descriptor page whose first 64 bytes are magic <c>DPMEMEMU</c>, version, length, size, align,
/// descriptor page length, two reserved words and an XxHash3-64 checksum) with ordinary reads, no
/// mapping, and lists every problem it finds.
/// </summary>
internal static class DescriptorInspector
{
    private const ulong Magic = 0x554D454D454D5044; // "DPMEMEMU"
    private const int Length = 64;

    internal static DescriptorReport Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        long fileSize = stream.Length;
        var problems = new List<string>();
        Span<byte> d = stackalloc byte[Length];
        // The descriptor page is 4 KiB, or one huge page on hugetlbfs: try each page size the file could use.
        foreach (long trailer in new[] { (long)PageSize.Pte, (long)PageSize.Pmd, (long)PageSize.Pud })
        {
            if (fileSize < 2 * trailer || fileSize % trailer != 0)
            {
                continue;
            }
            stream.Position = fileSize - trailer;
            stream.ReadExactly(d);
            if (BinaryPrimitives.ReadUInt64LittleEndian(d) == Magic)
            {
                return Inspect(d, fileSize, trailer);
            }
        }
        if (fileSize % 4096 != 0)
        {
            problems.Add(Invariant($"the file's {fileSize} bytes are not a whole number of 4 KiB pages: it was resized, or is not an emulated device"));
        }
        problems.Add("no descriptor (magic \"DPMEMEMU\") in the last page: not an emulated device, or the file was resized or overwritten");
        return new DescriptorReport(fileSize, -1, null, null, null, problems);
    }

    private static DescriptorReport Inspect(ReadOnlySpan<byte> d, long fileSize, long trailer)
    {
        var problems = new List<string>();
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
        if (version != 1)
        {
            problems.Add(Invariant($"descriptor version {version} is not 1"));
        }
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(d[12..]);
        if (length != Length)
        {
            problems.Add(Invariant($"descriptor length {length} is not {Length}"));
        }
        long size = BinaryPrimitives.ReadInt64LittleEndian(d[16..]);
        long align = BinaryPrimitives.ReadInt64LittleEndian(d[24..]);
        long page = BinaryPrimitives.ReadInt64LittleEndian(d[32..]);
        if (!PageSizes.TryFromBytes(align, out _))
        {
            problems.Add(Invariant($"align {align} is not 4 KiB, 2 MiB or 1 GiB"));
        }
        else if (size <= 0 || size % align != 0)
        {
            problems.Add(Invariant($"size {size} is not a positive multiple of align {align}"));
        }
        if (page != trailer)
        {
            problems.Add(Invariant($"the descriptor page length {page} is not {trailer}, where the descriptor was found"));
        }
        if (size != fileSize - trailer)
        {
            problems.Add(Invariant($"the descriptor says {size} bytes of data but the file holds {fileSize - trailer}: the file was resized"));
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(d[40..]) != 0 || BinaryPrimitives.ReadUInt64LittleEndian(d[48..]) != 0)
        {
            problems.Add("the reserved words are not zero");
        }
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(d[56..]);
        ulong computed = XxHash3.HashToUInt64(d[..56]);
        if (stored != computed)
        {
            problems.Add(Invariant($"the checksum 0x{stored:x16} does not match the descriptor (0x{computed:x16})"));
        }
        return new DescriptorReport(fileSize, fileSize - trailer, size, align, page, problems);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

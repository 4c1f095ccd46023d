using System.Globalization;
using System.IO;

namespace DirectPmem.Mapping;

/// <summary>Reads the smaps entries that overlap an address range.</summary>
internal static class SmapsReader
{
    internal static PageSizeObservation Observe(nint address, long length, string smapsPath = "/proc/self/smaps")
    {
        ulong start = (ulong)address;
        ulong end = start + (ulong)length;
        bool inRange = false;
        bool any = false;
        bool dontFork = true;
        long kernelPageSize = 0, mmuPageSize = 0, size = 0, rss = 0, anonHuge = 0, shmemPmd = 0, filePmd = 0, hugetlb = 0;
        string? vmFlags = null;

        foreach (string line in File.ReadLines(smapsPath))
        {
            if (IsVmaHeader(line, out ulong vmaStart, out ulong vmaEnd))
            {
                inRange = vmaStart < end && start < vmaEnd;
                any |= inRange;
                continue;
            }
            if (!inRange)
            {
                continue;
            }
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }
            ReadOnlySpan<char> key = line.AsSpan(0, colon);
            ReadOnlySpan<char> value = line.AsSpan(colon + 1).Trim();
            switch (key)
            {
                case "VmFlags":
                    string flags = value.ToString();
                    vmFlags ??= flags;
                    dontFork &= Array.IndexOf(flags.Split(' ', StringSplitOptions.RemoveEmptyEntries), "dc") >= 0;
                    break;
                case "KernelPageSize":
                    kernelPageSize = Math.Max(kernelPageSize, Kilobytes(value));
                    break;
                case "MMUPageSize":
                    mmuPageSize = Math.Max(mmuPageSize, Kilobytes(value));
                    break;
                case "Size":
                    size += Kilobytes(value);
                    break;
                case "Rss":
                    rss += Kilobytes(value);
                    break;
                case "AnonHugePages":
                    anonHuge += Kilobytes(value);
                    break;
                case "ShmemPmdMapped":
                    shmemPmd += Kilobytes(value);
                    break;
                case "FilePmdMapped":
                    filePmd += Kilobytes(value);
                    break;
                case "Shared_Hugetlb":
                case "Private_Hugetlb":
                    hugetlb += Kilobytes(value);
                    break;
            }
        }

        if (!any)
        {
            throw new PmemException(string.Create(CultureInfo.InvariantCulture,
                $"No VMA in {smapsPath} overlaps [0x{start:x}, 0x{end:x}): the mapping is not in this process's address space."));
        }
        // Hugetlb memory is counted in the *_Hugetlb fields, not in Rss.
        if (hugetlb > 0 && rss == 0)
        {
            rss = hugetlb;
        }
        return new PageSizeObservation(kernelPageSize, mmuPageSize, size, rss, anonHuge, shmemPmd, filePmd, hugetlb, dontFork, vmFlags ?? "");
    }

    // A VMA header looks like "7f2c4a000000-7f2c4a200000 rw-s 00000000 00:01 1234   /path".
    private static bool IsVmaHeader(string line, out ulong start, out ulong end)
    {
        start = end = 0;
        int dash = line.IndexOf('-', StringComparison.Ordinal);
        int space = line.IndexOf(' ', StringComparison.Ordinal);
        if (dash <= 0 || space <= dash)
        {
            return false;
        }
        return ulong.TryParse(line.AsSpan(0, dash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out start)
            && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out end);
    }

    private static long Kilobytes(ReadOnlySpan<char> value)
    {
        // "2048 kB"
        int space = value.IndexOf(' ');
        ReadOnlySpan<char> number = space < 0 ? value : value[..space];
        return long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out long kb) ? kb * 1024 : 0;
    }
}

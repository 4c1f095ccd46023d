using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

/// <summary>One extent of a file as FIEMAP reports it: file bytes <c>[Logical, Logical + Length)</c> live at <c>Physical</c> on the file system's block device.</summary>
internal readonly record struct FileExtent(long Logical, long Physical, long Length, uint Flags)
{
    /// <summary>Whether <see cref="Physical"/> can be trusted (not delayed allocation, inline, encoded or unknown).</summary>
    internal bool HasPhysicalAddress => (Flags & (Libc.FIEMAP_EXTENT_UNKNOWN | Libc.FIEMAP_EXTENT_DELALLOC | Libc.FIEMAP_EXTENT_ENCODED
        | Libc.FIEMAP_EXTENT_DATA_INLINE | Libc.FIEMAP_EXTENT_DATA_TAIL)) == 0;
}

/// <summary>
/// The extents of a file through <c>ioctl(FS_IOC_FIEMAP)</c> (linux/fiemap.h), what PMDK's
/// <c>pmem2_extents_create_get</c> reads to place bad blocks in a file.
/// </summary>
internal static unsafe class FileExtents
{
    // struct fiemap: fm_start, fm_length (u64), fm_flags, fm_mapped_extents, fm_extent_count, fm_reserved (u32).
    [StructLayout(LayoutKind.Sequential)]
    private struct FiemapHeader
    {
        internal ulong fm_start;
        internal ulong fm_length;
        internal uint fm_flags;
        internal uint fm_mapped_extents;
        internal uint fm_extent_count;
        internal uint fm_reserved;
    }

    // struct fiemap_extent: 56 bytes.
    [StructLayout(LayoutKind.Sequential)]
    private struct FiemapExtent
    {
        internal ulong fe_logical;
        internal ulong fe_physical;
        internal ulong fe_length;
        internal ulong fe_reserved64_0;
        internal ulong fe_reserved64_1;
        internal uint fe_flags;
        internal uint fe_reserved_0;
        internal uint fe_reserved_1;
        internal uint fe_reserved_2;
    }

    private const int ExtentsPerCall = 64;

    /// <summary>
    /// The extents covering <c>[0, length)</c>, in file order; FIEMAP_FLAG_SYNC writes dirty pages
    /// back first so delayed allocations get their blocks. Holes have no extent.
    /// </summary>
    /// <returns>The errno of the failed ioctl (EOPNOTSUPP or ENOTTY on a file system without FIEMAP), or 0.</returns>
    internal static int Read(int fd, long length, List<FileExtent> into)
    {
        int size = sizeof(FiemapHeader) + ExtentsPerCall * sizeof(FiemapExtent);
        byte* buffer = stackalloc byte[size];
        var header = (FiemapHeader*)buffer;
        var extents = (FiemapExtent*)(buffer + sizeof(FiemapHeader));
        ulong start = 0;
        ulong end = (ulong)length;
        while (start < end)
        {
            new Span<byte>(buffer, size).Clear();
            header->fm_start = start;
            header->fm_length = end - start;
            header->fm_flags = Libc.FIEMAP_FLAG_SYNC;
            header->fm_extent_count = ExtentsPerCall;
            if (Libc.Ioctl(fd, Libc.FS_IOC_FIEMAP, buffer) != 0)
            {
                return SyscallError.LastErrno;
            }
            uint mapped = Math.Min(header->fm_mapped_extents, ExtentsPerCall);
            if (mapped == 0)
            {
                return 0;
            }
            bool last = false;
            for (uint i = 0; i < mapped; i++)
            {
                FiemapExtent e = extents[i];
                if (e.fe_length > 0 && e.fe_logical <= long.MaxValue && e.fe_physical <= long.MaxValue && e.fe_length <= long.MaxValue - e.fe_logical)
                {
                    into.Add(new FileExtent((long)e.fe_logical, (long)e.fe_physical, (long)e.fe_length, e.fe_flags));
                }
                last |= (e.fe_flags & Libc.FIEMAP_EXTENT_LAST) != 0;
            }
            FiemapExtent final = extents[mapped - 1];
            ulong next = final.fe_logical + final.fe_length;
            if (last || next <= start)
            {
                return 0;
            }
            start = next;
        }
        return 0;
    }
}

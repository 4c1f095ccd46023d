using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static unsafe partial class Libc
{
    /// <summary><c>struct statx</c> (256 bytes); only the attribute words are read.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    internal struct StatxBuf
    {
        [FieldOffset(0)] public uint stx_mask;
        [FieldOffset(8)] public ulong stx_attributes;
        [FieldOffset(40)] public ulong stx_size;
        [FieldOffset(56)] public ulong stx_attributes_mask;
    }

    [LibraryImport(LibraryName, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Statx(int dirfd, string path, int flags, uint mask, StatxBuf* buf);
}

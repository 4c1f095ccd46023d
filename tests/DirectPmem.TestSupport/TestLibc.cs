using System.Runtime.InteropServices;

namespace DirectPmem.TestSupport;

/// <summary>
/// The C library calls tests make themselves (not through DirectPmem), each bound once. A failed call is an
/// <see cref="IOException"/> naming the call, the path and errno.
/// </summary>
public static partial class TestLibc
{
    /// <summary>
    /// Truncates <paramref name="path"/> to <paramref name="length"/> bytes the way another program would: by path,
    /// not through a FileStream (which would take a lock a PmemFile holds), under DirectPmem's lock and mappings,
    /// so a load past the new end raises a real SIGBUS (<c>BUS_ADRERR</c>).
    /// </summary>
    public static void Truncate(string path, long length)
    {
        if (TruncatePath(path, length) != 0)
        {
            throw new IOException($"truncate({path}, {length}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Creates a FIFO at <paramref name="path"/> with exactly <paramref name="mode"/> (mkfifo applies the umask; the bits are set again after it).</summary>
    public static void MakeFifo(string path, UnixFileMode mode)
    {
        if (MkFifo(path, (uint)mode) != 0)
        {
            throw new IOException($"mkfifo({path}, 0{Convert.ToString((int)mode, 8)}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        File.SetUnixFileMode(path, mode);
    }

    [LibraryImport("libc.so.6", EntryPoint = "truncate", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int TruncatePath(string path, long length);

    [LibraryImport("libc.so.6", EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MkFifo(string path, uint mode);
}

using System.Runtime.InteropServices;
using DirectPmem.Interop;

namespace DirectPmem.Internal;

/// <summary>Owns a Linux file descriptor opened by DirectPmem (always with O_CLOEXEC).</summary>
internal sealed class SafeFileDescriptor : SafeHandle
{
    public SafeFileDescriptor() : base(-1, ownsHandle: true)
    {
    }

    internal SafeFileDescriptor(int fd) : base(-1, ownsHandle: true) => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    /// <summary>The descriptor number; valid while the handle is open.</summary>
    internal int Fd => (int)handle;

    protected override bool ReleaseHandle()
    {
        // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
        return Libc.Close((int)handle) == 0;
    }
}

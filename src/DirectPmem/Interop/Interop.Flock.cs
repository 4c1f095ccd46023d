using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

internal static partial class Libc
{
    [LibraryImport(LibraryName, EntryPoint = "flock", SetLastError = true)]
    internal static partial int Flock(int fd, int operation);

    /// <summary>How long <see cref="TryFlock"/> keeps asking for a lock another open file description holds.</summary>
    internal const int FlockPatienceMilliseconds = 250;

    /// <summary>
    /// flock with LOCK_NB, asked again for up to <see cref="FlockPatienceMilliseconds"/> while it fails
    /// with EWOULDBLOCK. A lock lives on the open file description, and fork gives the child a reference
    /// to every description, O_CLOEXEC ones included, until it reaches exec: a file closed and opened
    /// again while another thread starts a process (Process.Start) can find its own old lock still held
    /// for that moment. A holder that keeps the lock longer is still refused, a quarter of a second later.
    /// </summary>
    /// <returns>0, or the errno of the last attempt.</returns>
    internal static int TryFlock(int fd, int operation)
    {
        long deadline = Environment.TickCount64 + FlockPatienceMilliseconds;
        int delay = 1;
        while (true)
        {
            if (Flock(fd, operation) == 0)
            {
                return 0;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EWOULDBLOCK || Environment.TickCount64 >= deadline)
            {
                return errno;
            }
            Thread.Sleep(delay);
            delay = Math.Min(delay * 2, 32);
        }
    }
}

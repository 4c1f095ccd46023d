using DirectPmem.Interop;
using DirectPmem.Mapping;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// The lock an open takes waits out a holder that lets go within a moment (a forked child holds every
/// open file description until it reaches exec), and still refuses one that keeps the lock.
/// </summary>
public sealed class FlockTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("directpmem-flock-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ALockReleasedWithinTheWaitIsTakenAndOneHeldLongerIsRefusedWithEwouldblock()
    {
        string path = Path.Combine(_dir, "file");
        File.WriteAllBytes(path, new byte[4096]);
        int holder = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        int asker = Libc.Open(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        Assert.True(holder >= 0 && asker >= 0, "open");
        try
        {
            // Held for good: refused with EWOULDBLOCK once the wait is over.
            Assert.Equal(0, Libc.Flock(holder, Libc.LOCK_EX | Libc.LOCK_NB));
            Assert.Equal(Errno.EWOULDBLOCK, Libc.TryFlock(asker, Libc.LOCK_EX | Libc.LOCK_NB));

            // Let go a few milliseconds into the wait (as a forked child reaching exec would): taken.
            int unlock = -1;
            var release = new Thread(() =>
            {
                Thread.Sleep(20);
                unlock = Libc.Flock(holder, Libc.LOCK_UN);
            });
            release.Start();
            int taken = Libc.TryFlock(asker, Libc.LOCK_EX | Libc.LOCK_NB);
            release.Join();
            Assert.Equal(0, unlock);
            Assert.Equal(0, taken);
        }
        finally
        {
            Libc.Close(holder);
            Libc.Close(asker);
        }
    }

    [Fact]
    public void ASecondWritableOpenOfAFileStillFailsTypedNamingTheLock()
    {
        string path = Path.Combine(_dir, "pool");
        using PmemFile first = PmemFile.Create(path, 1 << 20);
        PmemException e = Assert.ThrowsAny<PmemException>(() => PmemFile.Open(path, writable: true));
        Assert.Contains("flock(LOCK_EX|LOCK_NB)", e.Message, StringComparison.Ordinal);
        Assert.Contains("EAGAIN", e.Message, StringComparison.Ordinal);
    }
}

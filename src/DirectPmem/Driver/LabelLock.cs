using System.Runtime.CompilerServices;
using DirectPmem.Internal;
using DirectPmem.Interop;

namespace DirectPmem.Driver;

/// <summary>
/// The allocator's ownership of a device's label area. Within the process one allocator per
/// <see cref="DaxDevice"/> instance (a flag kept beside the device, not in it); across instances
/// and processes the emulated device's own file lock (exclusive when it was opened writable), or
/// for a real device flock on its node: exclusive for a writable allocator, shared for a
/// read-only one. Held until disposed.
/// </summary>
internal sealed class LabelLock : IDisposable
{
    private static readonly ConditionalWeakTable<DaxDevice, StrongBox<int>> s_owned = new();

    private readonly StrongBox<int> _flag;
    private readonly SafeFileDescriptor? _node;
    private int _released;

    private LabelLock(StrongBox<int> flag, SafeFileDescriptor? node)
    {
        _flag = flag;
        _node = node;
    }

    /// <summary>Whether an allocator in this process holds <paramref name="device"/>'s labels.</summary>
    internal static bool IsHeld(DaxDevice device) => s_owned.TryGetValue(device, out StrongBox<int>? flag) && Volatile.Read(ref flag.Value) != 0;

    /// <summary>Takes the label area of <paramref name="device"/>.</summary>
    /// <exception cref="PmemInUseException">Another allocator owns it, in this process or (for a real device) in another.</exception>
    internal static LabelLock Acquire(DaxDevice device, bool shared)
    {
        StrongBox<int> flag = s_owned.GetValue(device, static _ => new StrongBox<int>());
        if (Interlocked.Exchange(ref flag.Value, 1) != 0)
        {
            throw new PmemInUseException($"a DaxRangeAllocator is already open on '{device.DevicePath}'; dispose it first.", null, 0, device.DevicePath);
        }
        SafeFileDescriptor? node = null;
        try
        {
            if (!device.IsEmulated)
            {
                node = device.OpenNode(readOnly: true);
                int operation = (shared ? Libc.LOCK_SH : Libc.LOCK_EX) | Libc.LOCK_NB;
                if (Libc.Flock(node.Fd, operation) != 0)
                {
                    int errno = SyscallError.LastErrno;
                    throw SyscallError.Create(errno, shared ? "flock(LOCK_SH|LOCK_NB)" : "flock(LOCK_EX|LOCK_NB)", device.DevicePath,
                        hint: errno == Errno.EWOULDBLOCK ? "Another DaxRangeAllocator (in this or another process) owns the device's labels." : null);
                }
            }
            return new LabelLock(flag, node);
        }
        catch
        {
            node?.Dispose();
            Volatile.Write(ref flag.Value, 0);
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _node?.Dispose();
            Volatile.Write(ref _flag.Value, 0);
        }
    }
}

using System.Runtime.CompilerServices;
using DirectPmem.Internal;
using DirectPmem.Interop;

namespace DirectPmem.Driver;

/// <summary>
/// The allocator's ownership of a device's label area, held until disposed: one writable
/// allocator, or any number of read-only ones.
/// </summary>
/// <remarks>
/// <para>Within the process the rule is kept per <see cref="DaxDevice"/> instance by a count
/// beside the device (not in it): -1 while a writable allocator holds it, else the number of
/// read-only ones.</para>
/// <para>Across instances and processes a real device is locked with flock on its node, which
/// each allocator opens for itself: flock belongs to the open file description, so two opens
/// are two lockers even in one process. LOCK_SH (read-only) coexists with other LOCK_SH holders
/// and LOCK_EX (writable) with none, in this process or any other. An emulated device relies on
/// the lock <c>DaxDevice.OpenEmulated</c> took on the file (exclusive
/// when opened writable, shared when read-only), so only the in-process count applies.</para>
/// </remarks>
internal sealed class LabelLock : IDisposable
{
    private static readonly ConditionalWeakTable<DaxDevice, StrongBox<int>> s_owned = new();

    private const int Writer = -1;

    private readonly StrongBox<int> _flag;
    private readonly bool _shared;
    private readonly SafeFileDescriptor? _node;
    private int _released;

    private LabelLock(StrongBox<int> flag, bool shared, SafeFileDescriptor? node)
    {
        _flag = flag;
        _shared = shared;
        _node = node;
    }

    /// <summary>Whether an allocator in this process holds <paramref name="device"/>'s labels.</summary>
    internal static bool IsHeld(DaxDevice device) => s_owned.TryGetValue(device, out StrongBox<int>? flag) && Volatile.Read(ref flag.Value) != 0;

    /// <summary>Takes the label area of <paramref name="device"/>: shared with other read-only allocators, or exclusively.</summary>
    /// <exception cref="PmemInUseException">A writable allocator owns it (or, for an exclusive take, any allocator), in this process or (for a real device) in another.</exception>
    internal static LabelLock Acquire(DaxDevice device, bool shared)
    {
        StrongBox<int> flag = s_owned.GetValue(device, static _ => new StrongBox<int>());
        int state = Volatile.Read(ref flag.Value);
        while (true)
        {
            if (state == Writer || (!shared && state != 0))
            {
                throw new PmemInUseException(state == Writer
                    ? $"a writable DaxRangeAllocator is open on '{device.DevicePath}'; dispose it first."
                    : $"{state} read-only DaxRangeAllocator(s) are open on '{device.DevicePath}'; a writable one is refused until they are disposed.",
                    null, 0, device.DevicePath);
            }
            int seen = Interlocked.CompareExchange(ref flag.Value, shared ? state + 1 : Writer, state);
            if (seen == state)
            {
                break;
            }
            state = seen;
        }
        SafeFileDescriptor? node = null;
        try
        {
            if (!device.IsEmulated)
            {
                node = device.OpenNode(readOnly: true);
                int operation = (shared ? Libc.LOCK_SH : Libc.LOCK_EX) | Libc.LOCK_NB;
                if (Libc.TryFlock(node.Fd, operation) is int errno and not 0)
                {
                    throw SyscallError.Create(errno, shared ? "flock(LOCK_SH|LOCK_NB)" : "flock(LOCK_EX|LOCK_NB)", device.DevicePath,
                        hint: errno == Errno.EWOULDBLOCK
                            ? (shared
                                ? "A writable DaxRangeAllocator (in this or another process) owns the device's labels."
                                : "Another DaxRangeAllocator (in this or another process) owns the device's labels.")
                            : null);
                }
            }
            return new LabelLock(flag, shared, node);
        }
        catch
        {
            node?.Dispose();
            Release(flag, shared);
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _node?.Dispose();
            Release(_flag, _shared);
        }
    }

    private static void Release(StrongBox<int> flag, bool shared)
    {
        if (shared)
        {
            Interlocked.Decrement(ref flag.Value);
        }
        else
        {
            Volatile.Write(ref flag.Value, 0);
        }
    }
}

namespace DirectPmem.Placement;

/// <summary>Why a device's mode could not be changed.</summary>
public enum DaxReconfigurationProblem
{
    /// <summary>Changing a mode writes driver and memory-block files in sysfs, which only root may do.</summary>
    NotRoot,

    /// <summary>The driver to bind is not loaded (no <c>/sys/bus/dax/drivers/NAME</c>): <c>modprobe kmem</c> or <c>modprobe device_dax</c>.</summary>
    DriverMissing,

    /// <summary>A process maps the device (<c>/dev/daxX.Y</c> in its <c>/proc/PID/maps</c>): taking it away would make the mapping fault.</summary>
    DeviceInUse,

    /// <summary>
    /// The device's memory blocks were onlined by someone else first, in a zone other than the one
    /// asked for (<c>auto_online_blocks</c> or a udev rule): memory in the Normal zone may never be
    /// given back. Set <c>/sys/devices/system/memory/auto_online_blocks</c> to <c>offline</c> and
    /// disable the udev rule, or ask for the zone they are in.
    /// </summary>
    BlocksOnlineInOtherZone,

    /// <summary>The kernel would not offline a memory block (EBUSY: it holds pages it cannot move, typical of the Normal zone); the blocks offlined so far were onlined again.</summary>
    OfflineBusy,

    /// <summary>The device has no memory blocks (its ranges hold no whole block), so system-ram mode gives the kernel nothing.</summary>
    NoMemoryBlocks,

    /// <summary>After the writes the device is not bound to the driver asked for; the message says what it is bound to.</summary>
    BindFailed,

    /// <summary>The device is not in a mode this change starts from (for example a device bound to an unknown driver).</summary>
    WrongMode,
}

/// <summary>
/// A device-DAX mode change (devdax to system-ram or back) that was refused or failed. The message
/// says what to do; a refusal changes nothing, and a failure part way puts back what it can and says
/// what it left.
/// </summary>
public sealed class DaxReconfigurationException : PmemException
{
    internal DaxReconfigurationException(DaxReconfigurationProblem problem, string device, string message, string? path = null, int errno = 0)
        : base($"{device}: {message}", errno == 0 ? null : "write", errno, path)
    {
        Problem = problem;
        Device = device;
    }

    /// <summary>What went wrong.</summary>
    public DaxReconfigurationProblem Problem { get; }

    /// <summary>The device's name (<c>dax0.0</c>).</summary>
    public string Device { get; }
}

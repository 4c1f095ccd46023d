using System.Globalization;

namespace DirectPmem.Driver;

/// <summary>How a dax device is used now: by its driver binding.</summary>
public enum DaxDeviceMode
{
    /// <summary>Bound to no driver.</summary>
    Unbound,

    /// <summary>Bound to <c>device_dax</c>: mappable through <c>/dev/daxX.Y</c>.</summary>
    DeviceDax,

    /// <summary>Bound to <c>kmem</c>: handed to the kernel as system RAM, in memory blocks.</summary>
    SystemRam,

    /// <summary>Bound to another driver (see <see cref="DaxDevice.Mode"/> for its name).</summary>
    Other,
}

/// <summary>The state of a memory block (<c>state</c>).</summary>
public enum MemoryBlockState
{
    /// <summary>Not one of the kernel's states.</summary>
    Unknown,

    /// <summary><c>online</c>: the kernel allocates from it.</summary>
    Online,

    /// <summary><c>offline</c>.</summary>
    Offline,

    /// <summary><c>going-offline</c>: the kernel is migrating pages out of it.</summary>
    GoingOffline,
}

/// <summary>
/// One memory block of system RAM (<c>/sys/devices/system/memory/memoryN</c>) inside a dax
/// device's physical ranges: how daxctl finds a system-ram device's memory. Built only by discovery.
/// </summary>
public sealed class MemoryBlock
{
    internal MemoryBlock(long id, ulong start, long size, MemoryBlockState state, string stateText, bool online, IReadOnlyList<string> validZones)
    {
        Id = id;
        Start = start;
        Size = size;
        State = state;
        StateText = stateText;
        IsOnline = online;
        ValidZones = validZones;
    }

    /// <summary>N in <c>memoryN</c> (its <c>phys_index</c>).</summary>
    public long Id { get; }

    /// <summary>The block's physical start address (<c>phys_index</c> times the block size).</summary>
    public ulong Start { get; }

    /// <summary>The block size (<c>block_size_bytes</c>).</summary>
    public long Size { get; }

    /// <summary>The block's state (<c>state</c>).</summary>
    public MemoryBlockState State { get; }

    /// <summary>The raw content of <c>state</c>.</summary>
    public string StateText { get; }

    /// <summary>Whether the block is online (<c>online</c> reads 1).</summary>
    public bool IsOnline { get; }

    /// <summary>The zones the block is in or may be onlined to (<c>valid_zones</c>, for example <c>Movable</c> or <c>Normal Movable</c>); empty for <c>none</c>.</summary>
    public IReadOnlyList<string> ValidZones { get; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"memory{Id} at 0x{Start:x}: {StateText} ({string.Join(' ', ValidZones)})");
}

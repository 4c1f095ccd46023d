using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Persistence;

namespace DirectPmem.Testing;

/// <summary>
/// The simulator's side of DirectPmem's internal persistence seam: a simulated device's mapping is
/// ordinary shared anonymous memory whose operations object records flushes and drains on the
/// <see cref="SimulatedDevice"/> instead of executing CLWB/SFENCE. The core has no simulator code
/// and no per-call test hook; it calls these exactly as it calls the real cache-line operations.
/// </summary>
/// <remarks>
/// The seam (MapSource, PersistOps) is internal to DirectPmem and this package is packed with an
/// exact-version dependency on DirectPmem ([x.y.z]), so the two always match: a public seam would
/// freeze an implementation detail, and mixed versions would fail with MissingMethodException.
/// </remarks>
internal sealed unsafe class SimulatedSource(SimulatedDevice device, PageSize pageSize) : MapSource
{
    internal override MappingBacking Backing => MappingBacking.Anonymous;

    internal override string? Path => null;

    internal override string What => "simulated device";

    internal override PageSize MinimumPageSize => PageSize.Pte;

    internal override PageSize FaultGranularity => PageSize.Pte;

    internal override DurabilityClass Durability => DurabilityClass.Volatile;

    internal override int MapFlags => Libc.MAP_ANONYMOUS;

    internal override bool HasOffsets => false;

    internal override long CurrentSize() => long.MaxValue;

    internal override PageSize DefaultPageSize(DaxMappingOptions options) => pageSize;

    internal override SafeFileDescriptor? AcquireDescriptor(bool readOnly, out bool owned)
    {
        owned = false;
        return null;
    }

    // A simulated device is persistent memory without eADR, whatever the machine.
    internal override PersistGranularity ChooseGranularity(bool forceCacheLine, PersistGranularity? required)
        => required is PersistGranularity r && !PersistGranularity.CacheLine.IsAtLeastAsFineAs(r)
            ? throw new PmemCapabilityException($"a simulated device has cache-line granularity, not {r}.")
            : PersistGranularity.CacheLine;

    internal override PersistOps CreateOps(byte* mappingBase, long length) => new SimulatorOps(device, mappingBase);
}

/// <summary>Cache-line operations that report to the simulated device instead of the CPU.</summary>
internal sealed unsafe class SimulatorOps(SimulatedDevice device, byte* mappingBase) : PersistOps
{
    internal override PersistGranularity Granularity => PersistGranularity.CacheLine;

    internal override void Flush(byte* address, nuint length) => device.OnFlush(address - mappingBase, (long)length);

    internal override void Drain() => device.OnDrain();

    internal override void Copy(byte* destination, byte* source, nuint length, PmemCopyOptions flags)
    {
        // The simulator reads the memory at each reported flush: do the stores, then report what
        // would have been flushed (non-temporal stores count as flushed) and drained.
        CopyEngine.MoveNoDrain(destination, source, length, PmemCopyOptions.Temporal | PmemCopyOptions.NoFlush, null);
        Report(destination, length, flags);
    }

    internal override void Fill(byte* destination, byte value, nuint length, PmemCopyOptions flags)
    {
        CopyEngine.TemporalFill(destination, value, length);
        Report(destination, length, flags);
    }

    private void Report(byte* destination, nuint length, PmemCopyOptions flags)
    {
        if ((flags & PmemCopyOptions.NoFlush) == 0 && length != 0)
        {
            device.OnFlush(destination - mappingBase, (long)length);
        }
        if ((flags & PmemCopyOptions.NoDrain) == 0)
        {
            device.OnDrain();
        }
    }
}

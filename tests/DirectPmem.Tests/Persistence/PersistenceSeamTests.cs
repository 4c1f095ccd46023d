using DirectPmem.Geometry;
using DirectPmem.Internal;
using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Tests.Persistence;

/// <summary>
/// The seam DirectPmem.Testing plugs into: a source may supply the operations object, and then
/// every flush, drain, persist, copy and fill of the mapping goes to it, with the checked range
/// turned into pointers inside the mapping, after the stores of Publish.
/// </summary>
public sealed unsafe class PersistenceSeamTests
{
    private sealed class RecordingOps(Func<nint> mappingBase) : PersistOps
    {
        public List<string> Events { get; } = [];

        internal override PersistGranularity Granularity => PersistGranularity.CacheLine;

        private long Offset(byte* address) => (nint)address - mappingBase();

        internal override void Flush(byte* address, nuint length) => Events.Add($"flush {Offset(address)} {length} {(length > 0 ? *address : 0)}");

        internal override void Drain() => Events.Add("drain");

        internal override void Persist(byte* address, nuint length) => Events.Add($"persist {Offset(address)} {length} {(length > 0 ? *address : 0)}");

        internal override void Copy(byte* destination, byte* source, nuint length, PmemCopyOptions flags)
        {
            CopyEngine.TemporalForward(destination, source, length);
            Events.Add($"copy {Offset(destination)} {length} {flags}");
        }

        internal override void Fill(byte* destination, byte value, nuint length, PmemCopyOptions flags)
        {
            CopyEngine.TemporalFill(destination, value, length);
            Events.Add($"fill {Offset(destination)} {length} {flags}");
        }

        internal override void Release() => Events.Add("release");
    }

    private sealed class RecordingSource : MapSource
    {
        public RecordingOps? Ops { get; private set; }

        private nint _base;

        internal override MappingBacking Backing => MappingBacking.Anonymous;

        internal override string? Path => null;

        internal override PageSize MinimumPageSize => PageSize.Pte;

        internal override PageSize FaultGranularity => PageSize.Pte;

        internal override DurabilityClass Durability => DurabilityClass.Volatile;

        internal override int MapFlags => Libc.MAP_ANONYMOUS;

        internal override bool HasOffsets => false;

        internal override long CurrentSize() => long.MaxValue;

        internal override SafeFileDescriptor? AcquireDescriptor(bool readOnly, out bool owned)
        {
            owned = false;
            return null;
        }

        internal override PersistGranularity ChooseGranularity(bool forceCacheLine, PersistGranularity? required) => PersistGranularity.CacheLine;

        internal override PersistOps CreateOps(byte* mappingBase, long length)
        {
            _base = (nint)mappingBase;
            Ops = new RecordingOps(() => _base);
            return Ops;
        }
    }

    [Fact]
    public void EveryOperationGoesToTheSuppliedOperationsWithPointersInsideTheMapping()
    {
        var source = new RecordingSource();
        DaxMapping mapping = MappingFactory.Map(source, new DaxMappingOptions { Length = 8192 });
        RecordingOps ops = source.Ops!;
        Assert.Equal(PersistGranularity.CacheLine, mapping.Granularity);

        mapping.Persist(10, 20);
        mapping.Flush(100, 5);
        mapping.Drain();
        mapping.Publish(64, 0x0102030405060708UL);
        mapping.Write(new byte[] { 9, 9, 9 }, 1000, PmemCopyOptions.NoDrain);
        mapping.Move(1000, 5000, 3, PmemCopyOptions.Temporal);
        mapping.Fill(7000, 100, 5, PmemCopyOptions.NoFlush);
        mapping.Dispose();

        Assert.Equal(
            ["persist 10 20 0", "flush 100 5 0", "drain", "persist 64 8 8", "copy 1000 3 NoDrain", "copy 5000 3 Temporal", "fill 7000 100 NoFlush", "release"],
            ops.Events);
    }

    [Fact]
    public void NoOperationReachesTheSuppliedOperationsAfterDispose()
    {
        var source = new RecordingSource();
        DaxMapping mapping = MappingFactory.Map(source, new DaxMappingOptions { Length = 4096 });
        mapping.Dispose();
        Assert.Throws<ObjectDisposedException>(() => mapping.Persist(0, 8));
        Assert.Throws<ObjectDisposedException>(() => mapping.Drain());
        Assert.Throws<ObjectDisposedException>(() => mapping.Write(new byte[8], 0));
        Assert.Equal(["release"], source.Ops!.Events);
    }
}

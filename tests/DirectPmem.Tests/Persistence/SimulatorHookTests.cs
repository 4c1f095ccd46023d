using DirectPmem.Geometry;
using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Tests.Persistence;

/// <summary>The contract the crash simulator relies on: every flush and fence goes to the hook, after the stores.</summary>
public sealed class SimulatorHookTests
{
    private sealed class RecordingHook : IPersistenceHook
    {
        public DaxMapping? Mapping { get; set; }
        public List<string> Events { get; } = [];

        public void Flush(long offset, long length)
        {
            // The stores must already be in memory when a flush is reported.
            byte first = length > 0 ? Mapping!.GetReadOnlySpan(offset, 1)[0] : (byte)0;
            Events.Add($"flush {offset} {length} {first}");
        }

        public void Drain() => Events.Add("drain");
    }

    private static (DaxMapping Mapping, RecordingHook Hook) Create()
    {
        var hook = new RecordingHook();
        DaxMapping mapping = MappingFactory.CreateSimulated(8192, PageSize.Pte, hook);
        hook.Mapping = mapping;
        return (mapping, hook);
    }

    [Fact]
    public void PersistFlushDrainAndPublishReportToTheHook()
    {
        (DaxMapping mapping, RecordingHook hook) = Create();
        using (mapping)
        {
            Assert.Equal(PersistGranularity.CacheLine, mapping.Granularity);
            mapping.Persist(10, 20);
            mapping.Flush(100, 5);
            mapping.Drain();
            mapping.Publish(64, 0x0102030405060708UL);
            Assert.Equal(["flush 10 20 0", "drain", "flush 100 5 0", "drain", "flush 64 8 8", "drain"], hook.Events);
        }
    }

    [Fact]
    public void CopiesReportFlushAndDrainAsTheirFlagsSay()
    {
        (DaxMapping mapping, RecordingHook hook) = Create();
        using (mapping)
        {
            byte[] data = new byte[1000];
            data.AsSpan().Fill(9);
            mapping.Write(data, 0);
            mapping.Write(data, 1000, PmemCopyOptions.NoDrain);
            mapping.Write(data, 2000, PmemCopyOptions.NoFlush);
            mapping.Write(data, 3000, PmemCopyOptions.NonTemporal | PmemCopyOptions.NoDrain);
            mapping.Move(0, 5000, 300, PmemCopyOptions.Temporal);
            mapping.Fill(6000, 100, 4, PmemCopyOptions.NoFlush | PmemCopyOptions.NoDrain);
            mapping.Fill(7000, 100, 5);
            Assert.Equal(
                ["flush 0 1000 9", "drain", "flush 1000 1000 9", "drain", "flush 3000 1000 9", "flush 5000 300 9", "drain", "flush 7000 100 5", "drain"],
                hook.Events);
            Assert.Equal(4, mapping.GetReadOnlySpan(6099, 1)[0]);
        }
    }
}

using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;
using static DirectPmem.Testing.Tests.Pm;

namespace DirectPmem.Testing.Tests;

/// <summary>DaxMapping's copy, move, fill and publish report to the simulator as the real hardware would behave.</summary>
public sealed class PersistenceApiTests
{
    private static readonly byte[] s_payload = [.. Enumerable.Range(1, 128).Select(i => (byte)i)];

    [Theory]
    [InlineData(PmemCopyOptions.None)]
    [InlineData(PmemCopyOptions.NonTemporal)]
    [InlineData(PmemCopyOptions.Temporal)]
    public void AWriteWithoutNoDrainIsDurableOnReturn(PmemCopyOptions flags)
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        device.Mapping.Write(s_payload, 256, flags);
        Assert.Equal(s_payload, device.GetMediaCopy().AsSpan(256, 128).ToArray());
        Assert.Empty(device.Crash().InFlight);
        Assert.Equal(1, device.DrainCount);
    }

    [Theory]
    [InlineData(PmemCopyOptions.NoDrain)]
    [InlineData(PmemCopyOptions.NoDrain | PmemCopyOptions.NonTemporal)]
    public void AWriteWithNoDrainIsFlushedAndInFlightUntilADrain(PmemCopyOptions flags)
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        device.Mapping.Write(s_payload, 256, flags);
        CrashState crash = device.Crash();
        Assert.Equal(16, crash.InFlight.Count);
        Assert.All(crash.InFlight, w => Assert.True(w.WasFlushed && !w.CurrentNeedsEviction));
        Assert.Equal(0, device.DrainCount);
        device.Mapping.Drain();
        Assert.Equal(s_payload, device.GetMediaCopy().AsSpan(256, 128).ToArray());
    }

    [Fact]
    public void AWriteWithNoFlushLeavesDirtyLinesThatOnlyEvictionCanPersist()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        device.Mapping.Write(s_payload, 256, PmemCopyOptions.NoFlush | PmemCopyOptions.NoDrain);
        CrashState crash = device.Crash();
        Assert.Equal(16, crash.InFlight.Count);
        Assert.All(crash.InFlight, w => Assert.True(!w.WasFlushed && w.CurrentNeedsEviction));
        Assert.Equal(2, device.CheckUnflushedStores());   // 128 bytes at 256: two lines
    }

    [Fact]
    public void FillMoveAndPublishAreDurableOnReturn()
    {
        using SimulatedDevice device = SimulatedDevice.Create(4096);
        device.Mapping.Fill(1024, 64, 0xAB);
        device.Mapping.Write(s_payload, 0);
        device.Mapping.Move(0, 2048, 128);
        device.Mapping.Publish(3072, 0x1122334455667788);
        byte[] media = device.GetMediaCopy();
        Assert.All(media.AsSpan(1024, 64).ToArray(), b => Assert.Equal(0xAB, b));
        Assert.Equal(s_payload, media.AsSpan(2048, 128).ToArray());
        Assert.Equal(0x1122334455667788UL, WordOf(media, 3072));
        Assert.Empty(device.Crash().InFlight);
        Assert.Equal(4, device.DrainCount);
    }

    // A copy with NoDrain, then the commit flag published: the flag's drain orders the copy too,
    // so this is correct; without any drain after the copy, it is not.
    private static void CopyThenPublish(DaxMapping map, bool drain)
    {
        map.Write(s_payload, 256, PmemCopyOptions.NoDrain);
        if (drain)
        {
            map.Drain();
        }
        Store(map, 0, 1);
        map.Flush(0, 8);                    // the flag's write-back, racing the copy's without a drain between
        map.Drain();
    }

    private static void RecoverCopy(DaxMapping map)
    {
        if (Load(map, 0) == 1)
        {
            Assert.Equal(s_payload, map.GetReadOnlySpan(256, 128).ToArray());
        }
    }

    [Fact]
    public void ACopyWithNoDrainCommittedWithoutADrainBetweenIsCaught()
    {
        CrashTestResult result = new CrashTest { DeviceLength = 4096, Workload = m => CopyThenPublish(m, drain: false), Recover = RecoverCopy }.Run();
        Assert.False(result.Passed);
        Assert.Contains("crash point: before drain 1 completed", result.Failures[0].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ACopyDrainedBeforeItsCommitSurvivesEveryImage()
    {
        CrashTestResult result = new CrashTest { DeviceLength = 4096, Workload = m => CopyThenPublish(m, drain: true), Recover = RecoverCopy, RandomImages = 500 }.Run();
        Assert.True(result.Passed, result.Summary());
        Assert.Equal(2, result.Statistics.Drains);
        Assert.True(result.Statistics.ImagesTried > 500);
    }
}

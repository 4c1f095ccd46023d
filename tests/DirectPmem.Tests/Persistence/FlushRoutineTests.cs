using DirectPmem.Mapping;
using DirectPmem.Persistence;
using Xunit;

namespace DirectPmem.Tests.Persistence;

public sealed unsafe class FlushRoutineTests
{
    public static TheoryData<FlushInstruction> Instructions() =>
        new(FlushInstruction.Clwb, FlushInstruction.ClflushOpt, FlushInstruction.Clflush);

    private static bool Supported(FlushInstruction instruction) => instruction switch
    {
        FlushInstruction.Clwb => Pmem.Features.Clwb,
        FlushInstruction.ClflushOpt => Pmem.Features.ClflushOpt,
        FlushInstruction.Clflush => Pmem.Features.Clflush,
        _ => false,
    };

    [Theory]
    [MemberData(nameof(Instructions))]
    public void EachFlushRoutineRunsAndReturnsForRangesCrossingLineAndPageBoundaries(FlushInstruction instruction)
    {
        if (!Supported(instruction))
        {
            Assert.Skip($"this processor has no {instruction}");
        }
        if (FlushCode.Page is not { IsAvailable: true })
        {
            Assert.Skip("the system refused executable memory: " + FlushCode.Page?.Failure);
        }
        var flush = FlushCode.Get(instruction);
        Assert.True(flush != null);

        using DaxMapping mapping = DaxMapping.CreateAnonymous(4 * 4096);
        byte* b = mapping.DangerousGetPointer();
        (long Offset, long Length)[] ranges =
        [
            (0, 0), (0, 1), (0, 64), (63, 2), (60, 8), (1, 4095), (4090, 12), (4095, 2),
            (4032, 128), (100, 3 * 4096), (0, 4 * 4096), (4 * 4096 - 1, 1),
        ];
        foreach ((long offset, long length) in ranges)
        {
            // Dirty the lines so the flush has something to write back, then check the data survives.
            for (long i = 0; i < length; i++)
            {
                b[offset + i] = (byte)(offset + i);
            }
            flush(b + offset, (nuint)length);
            Pmem.Drain();
            for (long i = 0; i < length; i++)
            {
                Assert.Equal((byte)(offset + i), b[offset + i]);
            }
        }
    }

    [Fact]
    public void TheRoutinesEncodeTheFlushInstructionsOfTheIntelManual()
    {
        byte[] clwb = FlushCode.Assemble([0x66, 0x0F, 0xAE, 0x37]);
        Assert.Equal(
            new byte[] { 0x48, 0x85, 0xF6, 0x74, 0x15, 0x48, 0x8D, 0x34, 0x37, 0x48, 0x83, 0xE7, 0xC0, 0x66, 0x0F, 0xAE, 0x37, 0x48, 0x83, 0xC7, 0x40, 0x48, 0x39, 0xF7, 0x72, 0xF3, 0xC3 },
            clwb);
        byte[] clflush = FlushCode.Assemble([0x0F, 0xAE, 0x3F]);
        // One byte shorter: both jumps adjust.
        Assert.Equal(0x14, clflush[4]);
        Assert.Equal(unchecked((byte)-12), clflush[^2]);
    }

    [Fact]
    public void TheChosenInstructionFollowsTheOrderClwbClflushOptClflush()
    {
        var page = new FlushCodePage(4096, null);
        var all = new CpuFeatures(Clflush: true, ClflushOpt: true, Clwb: true, Avx2: true, Avx512F: true, MovDir64B: false);
        var settings = new PersistenceSettings();
        Assert.Equal(FlushInstruction.Clwb, PersistencePlatform.ChooseInstruction(all, settings, page, out _));
        Assert.Equal(FlushInstruction.ClflushOpt, PersistencePlatform.ChooseInstruction(all with { Clwb = false }, settings, page, out _));
        Assert.Equal(FlushInstruction.ClflushOpt, PersistencePlatform.ChooseInstruction(all, settings with { NoClwb = true }, page, out _));
        Assert.Equal(FlushInstruction.Clflush, PersistencePlatform.ChooseInstruction(all, settings with { NoClwb = true, NoClflushOpt = true }, page, out _));
        Assert.Equal(FlushInstruction.None, PersistencePlatform.ChooseInstruction(all, settings, new FlushCodePage(0, "refused"), out string reason));
        Assert.Equal("refused", reason);
    }

    [Fact]
    public void TheCodePageIsReadableAndExecutableButNeverWritable()
    {
        if (FlushCode.Page is not { IsAvailable: true } page)
        {
            Assert.Skip("the system refused executable memory: " + FlushCode.Page?.Failure);
            return;
        }
        string? permissions = null;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            // VMA header: "start-end perms offset dev inode [path]"
            int dash = line.IndexOf('-', StringComparison.Ordinal);
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash <= 0 || space <= dash || !ulong.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out ulong start)
                || !ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber, null, out ulong end))
            {
                continue;
            }
            if ((ulong)page.Address >= start && (ulong)page.Address < end)
            {
                permissions = line.Substring(space + 1, 4);
                break;
            }
        }
        Assert.NotNull(permissions);
        Assert.Equal("r-xp", permissions);
    }

    [Fact]
    public void TheCpuFeaturesMatchProcCpuinfo()
    {
        string? flagsLine = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
        if (flagsLine is null)
        {
            Assert.Skip("/proc/cpuinfo has no flags line");
        }
        HashSet<string> flags = [.. flagsLine[(flagsLine.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        CpuFeatures cpu = Pmem.Features;
        Assert.Equal(flags.Contains("clflush"), cpu.Clflush);
        Assert.Equal(flags.Contains("clflushopt"), cpu.ClflushOpt);
        Assert.Equal(flags.Contains("clwb"), cpu.Clwb);
        Assert.Equal(flags.Contains("movdir64b"), cpu.MovDir64B);
    }
}

using System.Text.Json;
using DirectPmem.Driver;
using DirectPmem.Geometry;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

public sealed class CheckTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-check-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AFreshDeviceWithLabelsIsClean()
    {
        string path = Path.Combine(_dir, "dev.emu");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M", "--labels").Code);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(0, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
        Assert.Equal("emulated", doc.RootElement.GetProperty("kind").GetString());
        Assert.Contains(doc.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.StartsWith("label table: slot", StringComparison.Ordinal));
    }

    [Fact]
    public void EveryDescriptorProblemIsReportedNotJustTheFirst()
    {
        string path = Path.Combine(_dir, "dev.emu");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M").Code);
        // Descriptor at 8 MiB: a reserved word (offset 40) and the checksum (offset 56) both broken.
        Corrupt(path, (8L << 20) + 40, 0x01);
        Corrupt(path, (8L << 20) + 56, 0xFF);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        string[] problems = Problems(doc, "descriptor");
        Assert.Contains(problems, p => p.Contains("reserved", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("checksum", StringComparison.Ordinal));
        Assert.False(doc.RootElement.GetProperty("clean").GetBoolean());
    }

    [Fact]
    public void AResizedFileIsReportedAsNotHoldingItsDescriptor()
    {
        string path = Path.Combine(_dir, "dev.emu");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M").Code);
        using (var file = new FileStream(path, FileMode.Open))
        {
            file.SetLength(file.Length + 4096);
        }
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using JsonDocument doc = JsonDocument.Parse(output);
        Assert.Contains(Problems(doc, "descriptor"), p => p.Contains("no descriptor", StringComparison.Ordinal));
    }

    [Fact]
    public void ACorruptLabelSlotIsReportedAndRepairFallsBackToTheOtherSlot()
    {
        string path = Path.Combine(_dir, "dev.emu");
        int newest = CreateWithTwoPublishedSlots(path);
        // Break the newest slot twice: its entry's page size (a rule) and, through that, its checksum.
        Corrupt(path, newest * 4096 + 64 + 48, 0x03);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            string[] slotProblems = Problems(doc, $"label slot {newest}");
            Assert.Contains(slotProblems, p => p.Contains("checksum", StringComparison.Ordinal));
            Assert.Contains(slotProblems, p => p.Contains("page size", StringComparison.Ordinal));
            Assert.Contains(Problems(doc, "label table"), p => p.Contains("BadChecksum", StringComparison.Ordinal));
            Assert.All(doc.RootElement.GetProperty("problems").EnumerateArray().Where(p => p.GetProperty("area").GetString() == $"label slot {newest}"),
                p => Assert.Contains("unpublish", p.GetProperty("repair").GetString(), StringComparison.Ordinal));
        }

        // Declined: nothing changes.
        (code, _, _) = Dpmem.RunWithInput("n\n", "check", path, "--repair");
        Assert.Equal(2, code);
        Assert.Equal(2, Dpmem.Run("check", path).Code);

        (code, output, _) = Dpmem.Run("check", path, "--repair", "--yes", "--json");
        Assert.Equal(0, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.Contains(doc.RootElement.GetProperty("repaired").EnumerateArray(), r => r.GetString() == $"label slot {newest} unpublished");
            Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
        }
        Assert.Equal(0, Dpmem.Run("check", path).Code);
        using DaxDevice device = DaxDevice.OpenEmulated(path);
        using DaxRangeAllocator table = DaxRangeAllocator.Open(device);
        Assert.Equal(1 - newest, table.ActiveSlot);
    }

    [Fact]
    public void RepairIsRefusedWhenNoValidSlotRemains()
    {
        string path = Path.Combine(_dir, "dev.emu");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M", "--labels").Code);
        string info = Dpmem.Run("info", path, "--json").Output;
        int published;
        using (JsonDocument doc = JsonDocument.Parse(info))
        {
            published = doc.RootElement.GetProperty("label_slots").EnumerateArray().Single(s => s.GetProperty("published").GetBoolean()).GetProperty("slot").GetInt32();
        }
        Corrupt(path, published * 4096 + 8, 0x00);
        (int code, string output, _) = Dpmem.Run("check", path, "--repair", "--yes", "--json");
        Assert.Equal(2, code);
        using JsonDocument report = JsonDocument.Parse(output);
        Assert.Empty(report.RootElement.GetProperty("repaired").EnumerateArray());
        Assert.Contains(Problems(report, $"label slot {published}"), p => p.Contains("magic", StringComparison.Ordinal));
        Assert.Contains(report.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("no known repair", StringComparison.Ordinal));
    }

    [Fact]
    public void YesWithoutRepairIsAUsageError()
    {
        string path = Path.Combine(_dir, "dev.emu");
        Assert.Equal(0, Dpmem.Run("create", path, "--size", "8M").Code);
        (int code, _, string error) = Dpmem.Run("check", path, "--yes");
        Assert.NotEqual(0, code);
        Assert.Contains("--repair", error, StringComparison.Ordinal);
    }

    private static int CreateWithTwoPublishedSlots(string path)
    {
        using DaxDevice device = DaxDevice.CreateEmulated(path, 16L << 20, PageSize.Pmd);
        using DaxRangeAllocator table = DaxRangeAllocator.Format(device);
        table.Allocate("log", 2L << 20);
        return table.ActiveSlot;
    }

    private static void Corrupt(string path, long offset, byte value)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset;
        int old = file.ReadByte();
        file.Position = offset;
        file.WriteByte(value == 0 ? (byte)(old ^ 0x5A) : (byte)(old ^ value));
    }

    private static string[] Problems(JsonDocument doc, string area)
        => doc.RootElement.GetProperty("problems").EnumerateArray()
            .Where(p => p.GetProperty("area").GetString() == area)
            .Select(p => p.GetProperty("message").GetString()!).ToArray();
}

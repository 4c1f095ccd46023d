using System.Text.Json;
using DirectPmem.Storage;
using DirectPmem.Tool.Tests.Support;
using Xunit;

namespace DirectPmem.Tool.Tests;

/// <summary><c>dpmem check</c> and <c>dpmem info</c> on a pool holding a Garnet volume (a structure with a pool-written header).</summary>
public sealed class VolumeCheckTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpmem-volume-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string CreatePoolWithVolume(out PoolDirectoryEntry entry)
    {
        string path = Path.Combine(_dir, "pool");
        using PmemPool pool = TestPools.CreateFile(path, 1 << 20, "DirectPmem.Garnet");
        pool.CreateLog("wal", 64 << 10).Dispose();
        // The tool sees the volume through Storage's public API only; the body's format is the volume's business.
        entry = pool.CreateStructure("garnet", PoolStructureKind.GarnetVolume, 128 << 10, [2, 0, 0, 0], _ => { }).Entry;
        return path;
    }

    [Fact]
    public void AVolumeIsListedWithItsKindRangeAndHeaderState()
    {
        string path = CreatePoolWithVolume(out PoolDirectoryEntry entry);
        (int code, string output, string error) = Dpmem.Run("check", path, "--json");
        Assert.True(code == 0, output + error);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
            JsonElement volume = doc.RootElement.GetProperty("pool").GetProperty("structures").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "garnet");
            Assert.Equal("GarnetVolume", volume.GetProperty("kind").GetString());
            Assert.Equal(entry.Offset, volume.GetProperty("offset").GetInt64());
            Assert.Equal(128 << 10, volume.GetProperty("length").GetInt64());
            Assert.Equal("primary header intact; backup header intact", volume.GetProperty("header").GetString());
        }
        (code, output, error) = Dpmem.Run("check", path);
        Assert.True(code == 0, output + error);
        Assert.Contains($"structure \"garnet\": GarnetVolume at {entry.Offset}, {128 << 10} bytes; primary header intact; backup header intact", output, StringComparison.Ordinal);
        (code, output, error) = Dpmem.Run("info", path);
        Assert.True(code == 0, output + error);
        Assert.Contains("GarnetVolume", output, StringComparison.Ordinal);
    }

    [Fact]
    public void ADamagedVolumeHeaderCopyIsAProblemOfTheVolumeAndBothCopiesDamagedSaySo()
    {
        string path = CreatePoolWithVolume(out PoolDirectoryEntry entry);
        PoolCheckTests.Flip(path, entry.Offset + 4096 + 300);
        (int code, string output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement problem = Assert.Single(doc.RootElement.GetProperty("problems").EnumerateArray());
            Assert.Equal("volume", problem.GetProperty("area").GetString());
            Assert.Contains("the backup copy of the structure header of GarnetVolume \"garnet\"", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        PoolCheckTests.Flip(path, entry.Offset + 300);
        (code, output, _) = Dpmem.Run("check", path, "--json");
        Assert.Equal(2, code);
        using (JsonDocument doc = JsonDocument.Parse(output))
        {
            JsonElement problem = Assert.Single(doc.RootElement.GetProperty("problems").EnumerateArray());
            Assert.Contains("neither copy of the structure header", problem.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
    }
}

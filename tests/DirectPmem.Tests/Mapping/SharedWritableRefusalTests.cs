using DirectPmem.Interop;
using DirectPmem.Mapping;
using DirectPmem.TestSupport;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// A file system that refuses shared writable mappings (9p, as WSL2's /mnt/c and VM shares are) gets an error
/// in plain words: it names the path and the file system, and suggests one that works.
/// </summary>
public sealed class SharedWritableRefusalTests
{
    [Theory]
    [InlineData(0x01021997L, "9p")]
    [InlineData(0x65735546L, "fuse")]
    [InlineData(0x6969L, "nfs")]
    [InlineData(0x12345678L, "type 0x12345678")]
    public void TheHintNamesThePathTheFileSystemAndOnesThatWork(long fType, string name)
    {
        string hint = FileSystemTypes.SharedWritableMappingRefused("/mnt/c/data/pool", fType);
        Assert.Contains("'/mnt/c/data/pool'", hint, StringComparison.Ordinal);
        Assert.Contains(name, hint, StringComparison.Ordinal);
        Assert.Contains("refuses shared writable memory mappings", hint, StringComparison.Ordinal);
        Assert.Contains("ext4 or xfs", hint, StringComparison.Ordinal);
        Assert.Contains("-o dax", hint, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0x01021994L, false)] // tmpfs
    [InlineData(0xEF53L, false)] // ext4
    [InlineData(0x58465342L, false)] // xfs
    [InlineData(0x9123683EL, false)] // btrfs
    [InlineData(0x01021997L, true)] // 9p
    [InlineData(0x65735546L, true)] // fuse
    [InlineData(unchecked((long)0xFFFFFFFFFE534D42UL), true)] // smb2 as a sign-extended f_type
    public void OnlyFileSystemsNotKnownToMapSharedWritableGetTheHint(long fType, bool hinted)
        => Assert.Equal(hinted, FileSystemTypes.MayRefuseSharedWritableMapping(fType));

    [Fact]
    public void MappingAFileOnAFileSystemThatRefusesSaysSoInPlainWords()
    {
        // Ask the machine: a writable mount of a kind that may refuse (9p, FUSE, NFS, SMB, vboxsf) whose probe
        // really fails. The qemu tier's guest has one (its checkout and share are 9p); most machines have none.
        var tried = new List<string>();
        foreach (string mountPoint in CandidateMounts())
        {
            string dir;
            try
            {
                dir = Support.TempDirectory.CreateBelow(mountPoint, "directpmem-refusal-");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                tried.Add($"{mountPoint}: not writable");
                continue;
            }
            try
            {
                string? problem = PageCacheProbe.Problem(dir);
                if (problem is null || !problem.Contains("refused a shared writable mapping", StringComparison.Ordinal))
                {
                    tried.Add($"{mountPoint}: takes shared writable mappings");
                    continue;
                }
                string path = Path.Combine(dir, "device");
                using PmemFile file = PmemFile.Create(path, 2 << 20);
                PmemCapabilityException e = Assert.Throws<PmemCapabilityException>(() => file.Map());
                Assert.Contains(path, e.Message, StringComparison.Ordinal);
                Assert.Contains("refuses shared writable memory mappings", e.Message, StringComparison.Ordinal);
                Assert.Contains("ext4 or xfs", e.Message, StringComparison.Ordinal);
                Assert.Contains(PageCacheProbe.Mount(dir).Type is "9p" ? "9p" : "statfs f_type", e.Message, StringComparison.Ordinal);
                Assert.Equal("mmap", e.Call);
                return;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        Assert.Skip("no writable file system here refuses shared writable mappings (9p, some FUSE and network file systems do; "
            + "tests/devdax-vm/run.sh --core runs this on a 9p share)" + (tried.Count > 0 ? "; tried " + string.Join("; ", tried) : ""));
    }

    private static IEnumerable<string> CandidateMounts()
    {
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string[] fields = line.Split(' ');
            int separator = Array.IndexOf(fields, "-");
            if (fields.Length < 6 || separator < 0 || separator + 1 >= fields.Length)
            {
                continue;
            }
            string type = fields[separator + 1];
            bool writable = fields[5].Split(',').Contains("rw");
            if (writable && (type is "9p" or "nfs" or "nfs4" or "cifs" or "smb3" or "vboxsf" or "virtiofs" || type.StartsWith("fuse", StringComparison.Ordinal)))
            {
                yield return fields[4].Replace("\\040", " ", StringComparison.Ordinal);
            }
        }
    }
}

using DirectPmem.Interop;
using DirectPmem.Mapping;
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
    [InlineData(0x65735546L, "fuse (or virtiofs)")]
    [InlineData(0x6969L, "nfs")]
    [InlineData(0x12345678L, "type 0x12345678")]
    public void TheHintNamesThePathTheFileSystemAndOnesThatWork(long fType, string name)
    {
        string hint = FileSystemTypes.SharedWritableMappingRefused("/mnt/c/data/pool", FileSystemTypes.Name(fType), fType);
        Assert.Contains("'/mnt/c/data/pool'", hint, StringComparison.Ordinal);
        Assert.Contains($"({name}; statfs f_type 0x{fType:x})", hint, StringComparison.Ordinal);
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
    public void TheFileSystemTypeComesFromTheMountOfTheFilesDeviceBecause9pPassesTheHostsFTypeThrough()
    {
        // A 9p share of an ext4 host directory reports f_type 0xef53 (the host's) to statfs: only mountinfo says 9p.
        string[] mountInfo =
        [
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
            "40 22 0:45 / /mnt/c rw,relatime - 9p hostshare rw,trans=virtio",
            "41 22 0:46 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw",
        ];
        Assert.Equal("9p", FileSystemTypes.MountType(mountInfo, 0, 45));
        Assert.Equal("ext4", FileSystemTypes.MountType(mountInfo, 8, 1));
        Assert.Null(FileSystemTypes.MountType(mountInfo, 0, 99));
        Assert.True(FileSystemTypes.MayRefuseSharedWritableMapping("9p"));
        Assert.False(FileSystemTypes.MayRefuseSharedWritableMapping("ext4"));
        Assert.Contains("(9p; statfs f_type 0xef53)", FileSystemTypes.SharedWritableMappingRefused("/mnt/c/x", "9p", 0xEF53), StringComparison.Ordinal);
    }

    [Fact]
    public void AFileOnALocalFileSystemThatTakesSharedWritableMappingsGetsNoHint()
    {
        // The hint must not blame a file system that works: here, the temporary directory's (tmpfs or a disk).
        string path = Path.Combine(Path.GetTempPath(), "directpmem-hint-" + Guid.NewGuid().ToString("N"));
        string type = PageCacheProbe.Mount(Path.GetFullPath(Path.GetTempPath())).Type;
        Assert.SkipUnless(type is "ext4" or "xfs" or "btrfs" or "tmpfs", $"the temporary directory is on {type}, not a file system known to take shared writable mappings");
        try
        {
            using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite);
            Assert.Null(FileSystemTypes.SharedWritableRefusalHint((int)stream.SafeFileHandle.DangerousGetHandle(), path));
        }
        finally
        {
            File.Delete(path);
        }
    }

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
                dir = TempDirectory.CreateBelow(mountPoint, "directpmem-refusal-");
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
                Assert.Contains($"({PageCacheProbe.Mount(dir).Type}; statfs f_type 0x", e.Message, StringComparison.Ordinal);
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
        => PageCacheProbe.Mounts()
            .Where(m => m.Options.Split(',').Contains("rw")
                && (m.Type is "9p" or "nfs" or "nfs4" or "cifs" or "smb3" or "vboxsf" or "virtiofs" || m.Type.StartsWith("fuse", StringComparison.Ordinal)))
            .Select(m => m.MountPoint);
}

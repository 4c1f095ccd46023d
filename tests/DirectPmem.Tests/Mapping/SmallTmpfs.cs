using DirectPmem.Tests.Support;
using Xunit;

namespace DirectPmem.Tests.Mapping;

/// <summary>
/// A private tmpfs of a few hundred KiB mounted (as root) in a fresh directory, for out-of-space
/// cases; unmounted on dispose. Skips with the reason when mounting is impossible (not root, no
/// CAP_SYS_ADMIN, no mount(8)).
/// </summary>
internal sealed class SmallTmpfs : IDisposable
{
    private readonly TempDirectory _dir;

    private SmallTmpfs(TempDirectory dir) => _dir = dir;

    internal string Path => _dir.Path;

    internal string File(string name) => _dir.File(name);

    internal static SmallTmpfs Mount(string size)
    {
        var dir = new TempDirectory();
        (int code, string output) = Run("mount", "-t", "tmpfs", "-o", $"size={size},mode=0700", "directpmem-test", dir.Path);
        if (code != 0)
        {
            dir.Dispose();
            Assert.Skip($"cannot mount a private tmpfs of {size} to run out of space (needs root): mount exited {code}: {output.Trim()}");
        }
        return new SmallTmpfs(dir);
    }

    public void Dispose()
    {
        (int code, string output) = Run("umount", _dir.Path);
        Assert.True(code == 0, $"umount {_dir.Path} failed: {output}");
        _dir.Dispose();
    }

    private static (int Code, string Output) Run(string program, params string[] args)
    {
        TestProcess.Result result = TestProcess.Run(program, args);
        return (result.ExitCode, result.Output + result.Error);
    }
}

namespace DirectPmem.Tests.Support;

/// <summary>
/// A private directory removed with everything in it on dispose: under /tmp (or $TMPDIR) by default, which may
/// be a tmpfs; use <see cref="PageCacheDirectory.Create"/> where a page-cache file system is needed.
/// </summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("directpmem-test-").FullName;
    }

    /// <summary>A private directory below <paramref name="parent"/>.</summary>
    public TempDirectory(string parent)
    {
        Path = CreateBelow(parent, "directpmem-test-");
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);

    /// <summary>Creates a fresh directory, mode 0700, named <paramref name="prefix"/> plus a random suffix below <paramref name="parent"/>.</summary>
    public static string CreateBelow(string parent, string prefix)
    {
        string path = System.IO.Path.Combine(parent, prefix + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}

namespace DirectPmem.TestSupport;

/// <summary>
/// A private directory (mode 0700) removed with everything in it on dispose: under /tmp (or $TMPDIR) by default,
/// which may be a tmpfs; use <c>PageCacheDirectory.Create</c> (DirectPmem.Tests) or <see cref="PageCacheProbe"/>
/// where a page-cache file system is needed.
/// </summary>
/// <remarks>The one temporary directory of every test project (it was written three times).</remarks>
public sealed class TempDirectory : IDisposable
{
    /// <summary>The prefix of every directory this class creates.</summary>
    public const string Prefix = "directpmem-test-";

    /// <summary>A private directory below the temporary directory.</summary>
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory(Prefix).FullName;
    }

    /// <summary>A private directory below <paramref name="parent"/>.</summary>
    public TempDirectory(string parent)
    {
        Path = CreateBelow(parent, Prefix);
    }

    /// <summary>The directory's full path.</summary>
    public string Path { get; }

    /// <summary>The path of <paramref name="name"/> in the directory (not created).</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Removes the directory and everything in it.</summary>
    public void Dispose() => Directory.Delete(Path, recursive: true);

    /// <summary>Creates a fresh directory, mode 0700, named <paramref name="prefix"/> plus a random suffix below <paramref name="parent"/>.</summary>
    public static string CreateBelow(string parent, string prefix)
    {
        string path = System.IO.Path.Combine(parent, prefix + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}

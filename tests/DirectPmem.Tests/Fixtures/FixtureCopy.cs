using DirectPmem.Tests.Support;

namespace DirectPmem.Tests.Fixtures;

/// <summary>A private copy of a fixture tree (symbolic links copied as links, with their relative targets), for tests that change a file in it.</summary>
internal static class FixtureCopy
{
    internal static TempDirectory Of(string tree)
    {
        var copy = new TempDirectory();
        CopyDirectory(FixturePaths.Sysfs(tree), copy.Path);
        return copy;
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string entry in Directory.EnumerateFileSystemEntries(from))
        {
            string target = Path.Join(to, Path.GetFileName(entry));
            var info = new FileInfo(entry);
            if (info.LinkTarget is string link)
            {
                File.CreateSymbolicLink(target, link);
            }
            else if (Directory.Exists(entry))
            {
                CopyDirectory(entry, target);
            }
            else
            {
                File.Copy(entry, target);
            }
        }
    }
}

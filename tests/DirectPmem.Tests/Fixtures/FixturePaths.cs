namespace DirectPmem.Tests.Fixtures;

/// <summary>Finds the fixture trees in the source tree (they hold symbolic links, so they are not copied to the output).</summary>
internal static class FixturePaths
{
    private static readonly Lazy<string> s_sysfs = new(() =>
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "DirectPmem.Tests", "Fixtures", "sysfs");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new DirectoryNotFoundException("tests/DirectPmem.Tests/Fixtures/sysfs not found above " + AppContext.BaseDirectory);
    });

    /// <summary>The root of one fixture tree (it plays /sys).</summary>
    internal static string Sysfs(string tree) => Path.Combine(s_sysfs.Value, tree);
}

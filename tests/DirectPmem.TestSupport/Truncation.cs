namespace DirectPmem.TestSupport;

/// <summary>
/// Truncates a file the way another program would, under DirectPmem's lock and its mappings, so a load past
/// the new end raises a real SIGBUS (<c>BUS_ADRERR</c>). The name the test projects used before it was shared;
/// <see cref="TestLibc.Truncate"/> does the work.
/// </summary>
public static class Truncation
{
    /// <summary>truncate(2) by path; a failure throws naming the path and errno.</summary>
    public static void Truncate(string path, long length) => TestLibc.Truncate(path, length);
}

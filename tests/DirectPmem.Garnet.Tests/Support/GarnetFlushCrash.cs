namespace DirectPmem.Garnet.Tests.Support;

/// <summary>
/// Garnet's page-flush crash (docs/garnet-known-defects.md, "A node ends itself while flushing a
/// page"): an <see cref="IndexOutOfRangeException"/> thrown while Tsavorite's object allocator
/// serialises a page's records (<c>ObjectAllocatorImpl.WriteAsync</c>), seen in
/// <c>LogRecord.get_KeyOverflow</c> and in <c>OverflowByteArray.get_StartOffset</c>.
/// </summary>
internal static class GarnetFlushCrash
{
    /// <summary>What the crash is, for a skip or failure message.</summary>
    internal const string Description = "Garnet's known page-flush crash (IndexOutOfRangeException while Tsavorite's ObjectAllocatorImpl.WriteAsync serialises a page, " +
        "in LogRecord.get_KeyOverflow or OverflowByteArray.get_StartOffset; docs/garnet-known-defects.md)";

    /// <summary>Whether a server's output shows the crash.</summary>
    internal static bool In(string output) =>
        output.Contains("System.IndexOutOfRangeException", StringComparison.Ordinal)
        && output.Contains("Tsavorite.core.ObjectAllocatorImpl`1.WriteAsync", StringComparison.Ordinal);
}

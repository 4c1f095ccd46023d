using System.Globalization;
using System.Text;

namespace DirectPmem.Placement;

/// <summary>
/// Where the kernel says the pages of a mapping are, page by base page, as
/// <c>move_pages(0, n, pages, NULL, status, 0)</c> reports it. Made by <see cref="NodeMemory.QueryPlacement"/>.
/// </summary>
public sealed class PagePlacement
{
    internal PagePlacement(long pageCount, int pageSize, IReadOnlyDictionary<int, long> pagesPerNode, long notPresent, IReadOnlyDictionary<int, long> errors)
    {
        PageCount = pageCount;
        PageSize = pageSize;
        PagesPerNode = pagesPerNode;
        PagesNotPresent = notPresent;
        PagesWithError = errors;
    }

    /// <summary>The number of base pages queried.</summary>
    public long PageCount { get; }

    /// <summary>The base page size the query stepped by (the system page size).</summary>
    public int PageSize { get; }

    /// <summary>The number of present pages on each NUMA node, by node id.</summary>
    public IReadOnlyDictionary<int, long> PagesPerNode { get; }

    /// <summary>The pages not present (never touched, <c>-ENOENT</c>).</summary>
    public long PagesNotPresent { get; }

    /// <summary>The pages the kernel reported another error for, by positive errno (for example <c>EFAULT</c>).</summary>
    public IReadOnlyDictionary<int, long> PagesWithError { get; }

    /// <summary>Whether every page is present and on <paramref name="node"/>.</summary>
    /// <param name="node">The node.</param>
    /// <returns>True when all <see cref="PageCount"/> pages are on the node.</returns>
    public bool IsEntirelyOn(int node) => PagesPerNode.TryGetValue(node, out long n) && n == PageCount;

    /// <summary>Whether every page is present and on one of <paramref name="nodes"/>.</summary>
    /// <param name="nodes">The nodes.</param>
    /// <returns>True when the pages on those nodes add up to <see cref="PageCount"/>.</returns>
    public bool IsEntirelyOn(IEnumerable<int> nodes)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        long sum = 0;
        foreach (int node in nodes.Distinct())
        {
            sum += PagesPerNode.GetValueOrDefault(node);
        }
        return sum == PageCount;
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{PageCount} pages of {PageSize} bytes:");
        foreach ((int node, long count) in PagesPerNode.OrderBy(p => p.Key))
        {
            text.Append(CultureInfo.InvariantCulture, $" node{node} {count}");
        }
        if (PagesNotPresent > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $" not present {PagesNotPresent}");
        }
        foreach ((int errno, long count) in PagesWithError.OrderBy(p => p.Key))
        {
            text.Append(CultureInfo.InvariantCulture, $" {Interop.Errno.Name(errno)} {count}");
        }
        return text.ToString();
    }
}

using System.Globalization;
using DirectPmem.Driver;
using DirectPmem.Interop;
using DirectPmem.Mapping;

namespace DirectPmem.Placement;

/// <summary>How memory is bound to its nodes (the kernel's NUMA memory policy, <c>mbind(2)</c>).</summary>
public enum NodePolicy
{
    /// <summary><c>MPOL_BIND</c>: only the nodes given; a page that cannot be had there is an allocation failure, never a page elsewhere.</summary>
    Bind,

    /// <summary><c>MPOL_PREFERRED_MANY</c> (Linux 5.15+): the nodes given first, any other node when they are full. Check <see cref="NodeMemory.QueryPlacement"/> for where pages went.</summary>
    PreferredMany,
}

/// <summary>
/// Memory placed on NUMA nodes: anonymous, memfd or hugetlb mappings bound with <c>mbind(2)</c>,
/// populated, and checked page by page with <c>move_pages(2)</c>. This is how the memory of a
/// device in system-ram mode (bound to <c>kmem</c>, so its node's memory) is asked for.
/// Placement is verified, never assumed.
/// </summary>
public static class NodeMemory
{
    // move_pages is asked about this many pages at a time.
    private const int QueryBatch = 512;

    /// <summary>
    /// Maps shared anonymous memory (hugetlb pages when <see cref="DaxMappingOptions.HugePages"/> asks)
    /// on <paramref name="nodes"/>, populates it and checks where every page is.
    /// </summary>
    /// <param name="nodes">The nodes, each online and with memory.</param>
    /// <param name="length">The number of bytes; a multiple of the page size.</param>
    /// <param name="policy">Bind (every page on the nodes or a failure) or preferred-many.</param>
    /// <param name="options">Mapping options as for <see cref="DaxMapping.CreateAnonymous"/>; <see cref="DaxMappingOptions.Populate"/> is implied.</param>
    /// <returns>The populated mapping; with <see cref="NodePolicy.Bind"/> every page is on <paramref name="nodes"/>.</returns>
    /// <exception cref="MemoryPlacementException">A node does not exist or has no memory (the message lists the nodes there are), or with <see cref="NodePolicy.Bind"/> a page is not on the nodes.</exception>
    /// <exception cref="PmemException">mbind or populating failed (for example ENOMEM: the nodes have too little free memory); nothing stays mapped.</exception>
    public static DaxMapping Map(IReadOnlyCollection<int> nodes, long length, NodePolicy policy = NodePolicy.Bind, DaxMappingOptions? options = null)
        => Map(DaxBus.Default.SysfsRoot, nodes, length, policy, options);

    internal static DaxMapping Map(string sysfsRoot, IReadOnlyCollection<int> nodes, long length, NodePolicy policy, DaxMappingOptions? options)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        CheckNodes(sysfsRoot, nodes);
        DaxMapping mapping = DaxMapping.CreateAnonymous(length, (options ?? DaxMappingOptions.Default) with { Populate = false });
        try
        {
            BindCore(mapping, nodes, policy);
            return mapping;
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Binds an existing mapping of volatile memory (anonymous, memfd or hugetlb, such as a device
    /// made by <see cref="DaxDevice.CreateEmulatedMemory"/>) to <paramref name="nodes"/>: pages it
    /// already has are moved, the rest are populated there, and every page is checked.
    /// </summary>
    /// <param name="mapping">The mapping; not a device-DAX or file mapping.</param>
    /// <param name="nodes">The nodes, each online and with memory.</param>
    /// <param name="policy">Bind or preferred-many.</param>
    /// <returns>Where the pages are after populating.</returns>
    /// <exception cref="ArgumentException">The mapping is of a device or a file (their memory is where the device or page cache put it).</exception>
    /// <exception cref="MemoryPlacementException">A node does not exist or has no memory, or under <see cref="NodePolicy.Bind"/> a page is elsewhere.</exception>
    /// <exception cref="PmemException">mbind failed (EIO: a page could not be moved) or populating failed (ENOMEM).</exception>
    public static PagePlacement Bind(DaxMapping mapping, IReadOnlyCollection<int> nodes, NodePolicy policy = NodePolicy.Bind)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        ArgumentNullException.ThrowIfNull(nodes);
        if (mapping.Backing is not (MappingBacking.Anonymous or MappingBacking.SharedMemory or MappingBacking.Hugetlb))
        {
            throw new ArgumentException($"only volatile memory (anonymous, memfd, hugetlb) is placed by node; a {mapping.Backing} mapping ('{mapping.Path}') lives where its device or file puts it.", nameof(mapping));
        }
        CheckNodes(DaxBus.Default.SysfsRoot, nodes);
        return BindCore(mapping, nodes, policy);
    }

    private static unsafe PagePlacement BindCore(DaxMapping mapping, IReadOnlyCollection<int> nodes, NodePolicy policy)
    {
        int maxNode = nodes.Max() + 1;
        ulong[] mask = new ulong[(maxNode + 63) / 64];
        foreach (int node in nodes)
        {
            mask[node / 64] |= 1UL << (node % 64);
        }
        nint address = (nint)mapping.DangerousGetPointer();
        nuint length = (nuint)mapping.Length;
        int mode = policy == NodePolicy.Bind ? Libc.MPOL_BIND : Libc.MPOL_PREFERRED_MANY;
        // MOVE: pages already there (a populated mapping) follow the policy; STRICT: a page that cannot move is EIO, not left behind.
        uint flags = Libc.MPOL_MF_MOVE | (policy == NodePolicy.Bind ? Libc.MPOL_MF_STRICT : 0);
        string what = "nodes " + string.Join(',', nodes.Order());
        fixed (ulong* maskPointer = mask)
        {
            // SAFETY: the mask holds maxNode bits (rounded up to whole words); the range is the live mapping.
            // The kernel reads maxnode - 1 bits, so one more than the highest node is passed.
            SyscallError.Check(Libc.MBind(address, length, mode, maskPointer, (nuint)(maxNode + 1), flags), "mbind", what, 0, mapping.Length);
        }
        int advice = mapping.IsReadOnly ? Libc.MADV_POPULATE_READ : Libc.MADV_POPULATE_WRITE;
        if (Libc.MAdvise(address, length, advice) != 0)
        {
            int errno = SyscallError.LastErrno;
            // A fault under MPOL_BIND that finds no page would be SIGBUS; MADV_POPULATE_* (Linux 5.14+) reports it as an error
            // instead, so an older kernel is refused rather than touched page by page.
            throw SyscallError.Create(errno, mapping.IsReadOnly ? "madvise(MADV_POPULATE_READ)" : "madvise(MADV_POPULATE_WRITE)", what, 0, mapping.Length,
                errno == Errno.EINVAL ? "populating bound memory needs Linux 5.14 or later" : "the nodes may have too little free memory for the mapping");
        }
        PagePlacement placement = QueryPlacement(mapping);
        if (policy == NodePolicy.Bind && !placement.IsEntirelyOn(nodes))
        {
            throw new MemoryPlacementException(MemoryPlacementFailure.PagesElsewhere,
                $"memory bound to {what} with MPOL_BIND is not all there after populating: {placement}.", []);
        }
        return placement;
    }

    /// <summary>
    /// Asks the kernel where each base page of <paramref name="mapping"/> is
    /// (<c>move_pages(0, n, pages, NULL, status, 0)</c>): nothing is moved or touched.
    /// </summary>
    /// <param name="mapping">The mapping.</param>
    /// <returns>The pages per node, and those not present.</returns>
    /// <exception cref="PmemException">move_pages failed (ENOSYS: a kernel without NUMA support).</exception>
    /// <exception cref="ObjectDisposedException">The mapping was disposed.</exception>
    public static unsafe PagePlacement QueryPlacement(DaxMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        nint start = (nint)mapping.DangerousGetPointer();
        int pageSize = Environment.SystemPageSize;
        long pages = mapping.Length / pageSize;
        var perNode = new Dictionary<int, long>();
        var errors = new Dictionary<int, long>();
        long notPresent = 0;
        nint* addresses = stackalloc nint[QueryBatch];
        int* status = stackalloc int[QueryBatch];
        for (long first = 0; first < pages; first += QueryBatch)
        {
            int count = (int)Math.Min(QueryBatch, pages - first);
            for (int i = 0; i < count; i++)
            {
                addresses[i] = start + (nint)((first + i) * pageSize);
            }
            // SAFETY: count addresses and count status slots; with nodes null the kernel only reads the pages' nodes.
            SyscallError.Check(Libc.MovePages(0, (nuint)count, addresses, null, status, 0), "move_pages", null, first * pageSize, (long)count * pageSize);
            for (int i = 0; i < count; i++)
            {
                int s = status[i];
                if (s >= 0)
                {
                    perNode[s] = perNode.GetValueOrDefault(s) + 1;
                }
                else if (s == -Errno.ENOENT)
                {
                    notPresent++;
                }
                else
                {
                    errors[-s] = errors.GetValueOrDefault(-s) + 1;
                }
            }
        }
        return new PagePlacement(pages, pageSize, perNode.AsReadOnly(), notPresent, errors.AsReadOnly());
    }

    /// <summary>Checks every node exists and has memory; the error lists the nodes there are.</summary>
    internal static void CheckNodes(string sysfsRoot, IReadOnlyCollection<int> nodes)
    {
        if (nodes.Count == 0)
        {
            throw new ArgumentException("at least one node is needed.", nameof(nodes));
        }
        var reader = new MemoryTopologyReader(sysfsRoot);
        foreach (int id in nodes)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(id, nameof(nodes));
            MemoryNode node = reader.Node(id)!;
            if (!node.IsOnline)
            {
                throw Unmet(reader, MemoryPlacementFailure.NoSuchNode, string.Create(CultureInfo.InvariantCulture, $"NUMA node {id} does not exist"));
            }
            if (node.HasMemory == false)
            {
                throw Unmet(reader, MemoryPlacementFailure.NodeHasNoMemory, string.Create(CultureInfo.InvariantCulture, $"NUMA node {id} has no online memory"));
            }
        }
    }

    private static MemoryPlacementException Unmet(MemoryTopologyReader reader, MemoryPlacementFailure failure, string what)
    {
        List<string> available = reader.AllNodes().Select(Describe).ToList();
        return new MemoryPlacementException(failure, $"{what}; the nodes are: {(available.Count == 0 ? "none" : string.Join("; ", available))}.", available.AsReadOnly());
    }

    /// <summary>One line for a node: its id, CPUs, memory, tier and HMAT read figures.</summary>
    internal static string Describe(MemoryNode node)
    {
        var parts = new List<string> { string.Create(CultureInfo.InvariantCulture, $"node{node.Id}") };
        parts.Add(node.HasCpu == true ? "cpus" : "no cpus");
        parts.Add(node.HasMemory == false ? "no memory" : "memory");
        if (node.Tier is { } tier)
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"memory_tier{tier.Id}"));
        }
        if ((node.Access1 ?? node.Access0) is { } hmat)
        {
            parts.Add(hmat.ToString());
        }
        return string.Join(", ", parts);
    }
}

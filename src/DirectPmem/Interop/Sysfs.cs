using System.Globalization;

namespace DirectPmem.Interop;

// sysfs is a kernel ABI like the system calls beside this file: it is read here, at the bottom,
// into raw text. Validation into typed values happens above (Driver's DaxBus turns regions and
// devices into DaxRegion and DaxDevice; Persistence asks the same region records about eADR), so
// both read a region the same way and neither layer names the other.

/// <summary>Raw reads of sysfs attribute files and directories.</summary>
internal static class Sysfs
{
    // sysfs attributes are at most one page; anything larger is not an attribute.
    private const int MaxAttributeLength = 4096;

    /// <summary>The trimmed content, or null when the file is missing or not readable by this user.</summary>
    internal static string? TryReadText(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                return null;
            }
            using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
            Span<byte> buffer = stackalloc byte[MaxAttributeLength];
            int total = 0;
            int read;
            while (total < buffer.Length && (read = stream.Read(buffer[total..])) > 0)
            {
                total += read;
            }
            return System.Text.Encoding.UTF8.GetString(buffer[..total]).Trim();
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        catch (IOException)
        {
            // Some attributes refuse to be read (EIO, ENXIO, EOPNOTSUPP): unreadable, like root-only ones.
            return null;
        }
    }

    /// <summary>The target of a symbolic link (as written in the link), or null when the path is not a link.</summary>
    internal static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Resolves every symbolic link in <paramref name="path"/> (realpath), so the ancestry of a
    /// device in <c>/sys/devices</c> can be walked; null after more than 40 links (a loop), like the kernel.
    /// </summary>
    internal static string? TryResolvePath(string path)
    {
        var pending = new Stack<string>();
        string full = Path.GetFullPath(path);
        foreach (string part in full.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
        {
            pending.Push(part);
        }
        string current = "/";
        int hops = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }
            string next = Path.Join(current, part);
            string? target = ReadLink(next);
            if (target is null)
            {
                current = next;
                continue;
            }
            if (++hops > 40)
            {
                return null;
            }
            if (target.StartsWith('/'))
            {
                current = "/";
            }
            foreach (string t in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
            {
                pending.Push(t);
            }
        }
        return current;
    }

    /// <summary>regionN, or daxX.Y: the names the kernel gives; anything else on a bus is not ours.</summary>
    internal static bool IsKernelName(string name, string prefix)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal) || name.Length == prefix.Length)
        {
            return false;
        }
        ReadOnlySpan<char> rest = name.AsSpan(prefix.Length);
        if (prefix == "region")
        {
            return int.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out _);
        }
        int dot = rest.IndexOf('.');
        return dot > 0
            && int.TryParse(rest[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out _)
            && int.TryParse(rest[(dot + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out _);
    }

    /// <summary>The kernel-named entries of <paramref name="directory"/> in ordinal order; empty when it does not exist.</summary>
    /// <exception cref="IOException">The directory cannot be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">The directory cannot be listed.</exception>
    internal static List<string> ListKernelNames(string directory, string prefix)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        var names = new List<string>();
        foreach (string entry in Directory.EnumerateFileSystemEntries(directory))
        {
            string name = Path.GetFileName(entry);
            if (IsKernelName(name, prefix))
            {
                names.Add(name);
            }
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }
}

/// <summary>What <c>persistence_domain</c> of an NVDIMM region says.</summary>
internal enum NdPersistenceDomain
{
    /// <summary>Missing, empty, or a word this library does not know.</summary>
    Unknown,

    /// <summary><c>memory_controller</c>: ADR, caches must be flushed.</summary>
    MemoryController,

    /// <summary><c>cpu_cache</c>: eADR, the caches are flushed on power loss.</summary>
    CpuCache,
}

/// <summary>
/// The attributes of one NVDIMM region directory (<c>bus/nd/devices/regionN</c>) as sysfs holds
/// them: text, not yet validated; null where the file is missing or unreadable.
/// </summary>
internal sealed record NdRegionAttributes(
    string Name,
    string Path,
    string? Size,
    string? Align,
    string? PersistenceDomainText,
    string? BadBlocks,
    bool DeepFlushPresent,
    bool DeepFlushWritable,
    string? DeepFlushText,
    string? NumaNode,
    string? TargetNode,
    string? Resource)
{
    /// <summary>The parsed persistence domain: the one place <c>persistence_domain</c> is interpreted.</summary>
    internal NdPersistenceDomain PersistenceDomain => PersistenceDomainText switch
    {
        "cpu_cache" => NdPersistenceDomain.CpuCache,
        "memory_controller" => NdPersistenceDomain.MemoryController,
        _ => NdPersistenceDomain.Unknown,
    };

    /// <summary>The path of an attribute file of this region.</summary>
    internal string Attribute(string name) => System.IO.Path.Join(Path, name);
}

/// <summary>
/// The one reader of NVDIMM regions: lists <c>bus/nd/devices/regionN</c> under a sysfs root and
/// reads each region's attributes. <c>DaxBus</c> validates them into <c>DaxRegion</c>; the eADR
/// detector reads their persistence domains.
/// </summary>
internal static class NdRegionReader
{
    /// <summary>The directory that lists the regions under <paramref name="sysfsRoot"/>.</summary>
    internal static string DevicesPath(string sysfsRoot) => Path.Join(sysfsRoot, "bus", "nd", "devices");

    /// <summary>The region names (<c>regionN</c>) under <paramref name="sysfsRoot"/>, ordered.</summary>
    /// <exception cref="IOException">The directory cannot be listed.</exception>
    /// <exception cref="UnauthorizedAccessException">The directory cannot be listed.</exception>
    internal static List<string> ListNames(string sysfsRoot) => Sysfs.ListKernelNames(DevicesPath(sysfsRoot), "region");

    /// <summary>Reads one region directory.</summary>
    internal static NdRegionAttributes Read(string sysfsRoot, string name)
    {
        string path = Path.Join(DevicesPath(sysfsRoot), name);
        string deepFlush = Path.Join(path, "deep_flush");
        bool deepPresent = File.Exists(deepFlush);
        return new NdRegionAttributes(
            name,
            path,
            Sysfs.TryReadText(Path.Join(path, "size")),
            Sysfs.TryReadText(Path.Join(path, "align")),
            Sysfs.TryReadText(Path.Join(path, "persistence_domain")),
            Sysfs.TryReadText(Path.Join(path, "badblocks")),
            deepPresent,
            deepPresent && NdRegionLocator.IsWritable(deepFlush),
            deepPresent ? Sysfs.TryReadText(deepFlush) : null,
            Sysfs.TryReadText(Path.Join(path, "numa_node")),
            Sysfs.TryReadText(Path.Join(path, "target_node")),
            Sysfs.TryReadText(Path.Join(path, "resource")));
    }
}

namespace DirectPmem.Storage;

/// <summary>How <see cref="PmemPool"/> creates a pool.</summary>
public sealed class PoolCreateOptions
{
    /// <summary>The default options.</summary>
    public static PoolCreateOptions Default { get; } = new();

    /// <summary>
    /// Bytes reserved after the two header blocks for the library's own structures (transaction
    /// lanes, allocator metadata), a multiple of 4096; zeroed at creation. 0 by default.
    /// </summary>
    public long ReservedLength { get; init; }

    /// <summary>Whether to overwrite a mapping that already holds an intact pool header; off by default (refused).</summary>
    public bool Overwrite { get; init; }

    /// <summary>The sysfs root the NVDIMM dirty-shutdown counts are read from; <c>/sys</c> by default (tests use fixture trees).</summary>
    public string SysfsRoot { get; init; } = "/sys";
}

/// <summary>How <see cref="PmemPool"/> opens a pool.</summary>
public sealed class PoolOpenOptions
{
    /// <summary>The default options.</summary>
    public static PoolOpenOptions Default { get; } = new();

    /// <summary>Open read-only: nothing is written (no repair, no in-use mark). Off by default.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>The sysfs root the NVDIMM dirty-shutdown counts are read from; <c>/sys</c> by default (tests use fixture trees).</summary>
    public string SysfsRoot { get; init; } = "/sys";
}

/// <summary>Which copy of the header an open repaired from the other.</summary>
public enum PoolHeaderRepair
{
    /// <summary>Both copies were intact and equal.</summary>
    None,
    /// <summary>The primary header was torn or damaged and was restored from the intact backup.</summary>
    PrimaryRestoredFromBackup,
    /// <summary>The backup header was torn, damaged or stale and was restored from the intact primary.</summary>
    BackupRestoredFromPrimary,
}

using System.Globalization;
using System.Numerics;
using DirectPmem.Geometry;
using DirectPmem.Interop;

namespace DirectPmem.Driver;

/// <summary>
/// Reads sysfs attribute files and validates every number before it is used. Missing and
/// unreadable files are told apart from malformed ones: optional attributes (root-only ones such
/// as <c>resource</c>) read as absent, required ones raise <see cref="DaxConfigurationException"/>.
/// </summary>
internal static class SysfsReader
{
    /// <summary>The trimmed content, or null when the file is missing or not readable by this user.</summary>
    internal static string? TryReadText(string path) => Interop.Sysfs.TryReadText(path);

    internal static string ReadText(string path)
        => TryReadText(path) ?? throw new DaxConfigurationException(path, DaxConfigurationRule.MissingAttribute,
            "the attribute is missing or unreadable.");

    /// <summary>Parses a sysfs number: decimal, or hexadecimal with a 0x prefix.</summary>
    internal static bool TryParseUInt64(string text, out ulong value)
    {
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && text.Length > 2;
        }
        return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    internal static ulong ParseUInt64(string path, string text)
    {
        if (!TryParseUInt64(text, out ulong value))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotANumber, $"'{Shorten(text)}' is not a number.");
        }
        return value;
    }

    internal static ulong ReadUInt64(string path) => ParseUInt64(path, ReadText(path));

    internal static ulong? TryReadUInt64(string path)
    {
        string? text = TryReadText(path);
        return text is null ? null : ParseUInt64(path, text);
    }

    /// <summary>A number already read as text (null when absent), validated.</summary>
    internal static ulong? TryParseUInt64(string path, string? text) => text is null ? null : ParseUInt64(path, text);

    /// <summary>A positive size that fits a signed 64-bit offset.</summary>
    internal static long ReadSize(string path) => ParseSize(path, ReadText(path));

    /// <summary>A positive size that fits a signed 64-bit offset, from text already read (null when missing).</summary>
    internal static long ParseSize(string path, string? text)
    {
        ulong value = ParseUInt64(path, text ?? throw new DaxConfigurationException(path, DaxConfigurationRule.MissingAttribute,
            "the attribute is missing or unreadable."));
        if (value == 0 || value > long.MaxValue)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.OutOfRange,
                string.Create(CultureInfo.InvariantCulture, $"size {value} must be positive and below 2^63."));
        }
        return (long)value;
    }

    /// <summary>A NUMA node: -1 (none) or a non-negative node number; null when absent.</summary>
    internal static int? TryReadNode(string path) => ParseNode(path, TryReadText(path));

    /// <summary>A NUMA node from text already read (null when absent).</summary>
    internal static int? ParseNode(string path, string? text)
    {
        if (text is null)
        {
            return null;
        }
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int node))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotANumber, $"'{Shorten(text)}' is not a node number.");
        }
        if (node < -1)
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.OutOfRange, $"node {node} is below -1.");
        }
        return node;
    }

    /// <summary>An alignment that must be a power of two and one of the x86-64 page sizes.</summary>
    internal static PageSize ParseAlign(string path, ulong value)
    {
        if (value == 0 || !BitOperations.IsPow2(value))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotAPowerOfTwo,
                string.Create(CultureInfo.InvariantCulture, $"alignment {value} (0x{value:x}) is not a power of two."));
        }
        if (value > long.MaxValue || !PageSizes.TryFromBytes((long)value, out PageSize pageSize))
        {
            throw new DaxConfigurationException(path, DaxConfigurationRule.NotAPageSize,
                string.Create(CultureInfo.InvariantCulture, $"alignment {value} is not a page size (4096, 2097152 or 1073741824)."));
        }
        return pageSize;
    }

    /// <summary>The target of a symbolic link (as written in the link), or null when the path is not a link.</summary>
    internal static string? ReadLink(string path) => Sysfs.ReadLink(path);

    /// <summary>The last component of a link target (<c>../../bus/dax</c> gives <c>dax</c>), or null.</summary>
    internal static string? LinkName(string path)
    {
        string? target = ReadLink(path);
        return target is null ? null : Path.GetFileName(target.TrimEnd('/'));
    }

    /// <summary>
    /// Resolves every symbolic link in <paramref name="path"/> (realpath), so the ancestry of a
    /// device in <c>/sys/devices</c> can be walked. At most 40 links are followed, like the kernel.
    /// </summary>
    internal static string ResolvePath(string path)
        => Sysfs.TryResolvePath(path)
            ?? throw new DaxConfigurationException(path, DaxConfigurationRule.InvalidRange, "more than 40 symbolic links (a loop).");

    /// <summary>At most 64 characters of a bad attribute, for an error message.</summary>
    internal static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "...";
}

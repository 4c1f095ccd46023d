using System.Globalization;
using DirectPmem.Geometry;

namespace DirectPmem.Tool.Cli;

/// <summary>Parses and prints byte sizes the way daxctl and ndctl users write them (4K, 2M, 1G, 512M).</summary>
internal static class Sizes
{
    internal static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        text = text.Trim();
        long multiplier = char.ToUpperInvariant(text[^1]) switch
        {
            'K' => 1L << 10,
            'M' => 1L << 20,
            'G' => 1L << 30,
            'T' => 1L << 40,
            _ => 1,
        };
        string digits = multiplier == 1 ? text : text[..^1];
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value > long.MaxValue / multiplier)
        {
            return false;
        }
        bytes = value * multiplier;
        return true;
    }

    internal static bool TryParsePageSize(string text, out PageSize pageSize)
    {
        pageSize = default;
        return TryParse(text, out long bytes) && PageSizes.TryFromBytes(bytes, out pageSize);
    }

    internal static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : value.ToString(value % 1 == 0 ? "0" : "0.##", CultureInfo.InvariantCulture) + " " + units[unit];
    }
}

using System.Globalization;
using System.Text;

namespace DirectPmem.Internal;

/// <summary>Refuses paths and names that the kernel would not see as the caller wrote them.</summary>
internal static class PathValidation
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// A path or name must be non-empty, hold no NUL (the kernel would stop there and open another
    /// file) and be valid UTF-16 (an unpaired surrogate would be replaced while marshalling to UTF-8).
    /// </summary>
    internal static void Validate(string? value, string paramName, string what = "path")
    {
        ArgumentException.ThrowIfNullOrEmpty(value, paramName);
        int nul = value.IndexOf('\0', StringComparison.Ordinal);
        if (nul >= 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{what} '{Escape(value)}' holds a NUL character at index {nul}: the kernel would see only '{Escape(value[..nul])}'."), paramName);
        }
        try
        {
            _ = s_strictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{what} '{Escape(value)}' is not valid Unicode (unpaired surrogate at index {e.Index}): it would not round-trip through the kernel's UTF-8 bytes."), paramName);
        }
    }

    /// <summary>The UTF-8 length, after <see cref="Validate"/>.</summary>
    internal static int Utf8Length(string value) => s_strictUtf8.GetByteCount(value);

    /// <summary>
    /// Control characters and surrogates shown as \uXXXX, and a value longer than 64 characters cut
    /// with its length, so that a message names the value visibly and stays one line.
    /// </summary>
    internal static string Escape(string value)
    {
        var text = new StringBuilder(Math.Min(value.Length, 80));
        foreach (char c in value.Length > 64 ? value[..64] : value)
        {
            if (char.IsControl(c) || char.IsSurrogate(c))
            {
                text.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                text.Append(c);
            }
        }
        if (value.Length > 64)
        {
            text.Append(CultureInfo.InvariantCulture, $"... ({value.Length} chars)");
        }
        return text.ToString();
    }
}

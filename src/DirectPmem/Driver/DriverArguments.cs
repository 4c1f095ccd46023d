using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Unicode;

namespace DirectPmem.Driver;

/// <summary>
/// Checks for inputs that the kernel would silently alter: a NUL ends a C string early (the kernel
/// would open another file), and an unpaired UTF-16 surrogate becomes U+FFFD in UTF-8 (another name).
/// </summary>
internal static class DriverArguments
{
    /// <summary>The longest memfd name the kernel keeps (NAME_MAX minus the "memfd:" prefix).</summary>
    internal const int MaxMemfdNameBytes = 249;

    /// <summary>Refuses a path that would not reach the kernel unchanged.</summary>
    /// <exception cref="ArgumentException">The path is empty, holds a NUL, or is not valid UTF-16.</exception>
    internal static void ValidatePath(string path, string paramName)
    {
        ArgumentException.ThrowIfNullOrEmpty(path, paramName);
        ValidateKernelString(path, "path", paramName);
    }

    /// <summary>Refuses a memfd name the kernel would cut or alter.</summary>
    /// <exception cref="ArgumentException">The name is empty, too long, holds a NUL or a '/', or is not valid UTF-16.</exception>
    internal static void ValidateMemfdName(string name, string paramName)
    {
        ArgumentException.ThrowIfNullOrEmpty(name, paramName);
        ValidateKernelString(name, "memfd name", paramName);
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes > MaxMemfdNameBytes)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"memfd name '{LabelSlot.Escape(name)}' is {bytes} bytes of UTF-8; the kernel keeps at most {MaxMemfdNameBytes}."), paramName);
        }
    }

    private static void ValidateKernelString(string value, string what, string paramName)
    {
        int nul = value.IndexOf('\0', StringComparison.Ordinal);
        if (nul >= 0)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"{what} '{LabelSlot.Escape(value)}' holds a NUL character at index {nul}: the kernel would see only '{LabelSlot.Escape(value[..nul])}'."),
                paramName);
        }
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(value.Length));
        try
        {
            if (Utf8.FromUtf16(value, buffer, out int charsRead, out _, replaceInvalidSequences: false) == OperationStatus.InvalidData)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"{what} '{LabelSlot.Escape(value)}' holds an unpaired UTF-16 surrogate at index {charsRead}: it would reach the kernel as another name (U+FFFD)."),
                    paramName);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;

namespace DirectPmem.Interop;

/// <summary>
/// The one checker every system-call result goes through: it reads errno at once and maps it,
/// through one table, to the DirectPmem exception that names the call, the errno and the
/// path or range involved.
/// </summary>
internal static class SyscallError
{
    /// <summary>Throws for a result of -1 (or <see cref="Libc.MAP_FAILED"/>); returns the result otherwise.</summary>
    internal static int Check(int result, string call, string? path = null, long offset = -1, long length = -1)
    {
        if (result == -1)
        {
            Throw(Marshal.GetLastPInvokeError(), call, path, offset, length);
        }
        return result;
    }

    /// <summary>Throws for <see cref="Libc.MAP_FAILED"/>; returns the address otherwise.</summary>
    internal static nint CheckMap(nint result, string call, string? path = null, long offset = -1, long length = -1)
    {
        if (result == Libc.MAP_FAILED)
        {
            Throw(Marshal.GetLastPInvokeError(), call, path, offset, length);
        }
        return result;
    }

    /// <summary>Throws for a call that returns its error number (posix_fallocate) rather than setting errno.</summary>
    internal static void CheckReturned(int errno, string call, string? path = null, long offset = -1, long length = -1)
    {
        if (errno != 0)
        {
            Throw(errno, call, path, offset, length);
        }
    }

    /// <summary>The errno of the last failed P/Invoke on this thread.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    [DoesNotReturn]
    internal static void Throw(int errno, string call, string? path = null, long offset = -1, long length = -1)
        => throw Create(errno, call, path, offset, length);

    /// <summary>Builds the typed exception for <paramref name="errno"/> (the table).</summary>
    internal static PmemException Create(int errno, string call, string? path = null, long offset = -1, long length = -1, string? hint = null)
    {
        string message = Describe(errno, call, path, offset, length, hint);
        return errno switch
        {
            Errno.EWOULDBLOCK or Errno.EBUSY or Errno.ETXTBSY => new PmemInUseException(message, call, errno, path),
            Errno.ENOENT or Errno.ENODEV or Errno.ENOTDIR => new PmemNotFoundException(message, call, errno, path),
            Errno.EACCES or Errno.EPERM or Errno.EROFS => new PmemAccessDeniedException(message, call, errno, path),
            Errno.ENOSPC or Errno.EDQUOT or Errno.ENOMEM or Errno.EFBIG => new PmemOutOfSpaceException(message, call, errno, path),
            _ => new PmemException(message, call, errno, path),
        };
    }

    internal static string Describe(int errno, string call, string? path, long offset, long length, string? hint)
    {
        var text = new System.Text.StringBuilder();
        text.Append(call).Append(" failed: ").Append(Errno.Name(errno))
            .Append(" (").Append(errno.ToString(CultureInfo.InvariantCulture)).Append(", ")
            .Append(new System.ComponentModel.Win32Exception(errno).Message).Append(')');
        if (path is not null)
        {
            text.Append(", path '").Append(path).Append('\'');
        }
        if (offset >= 0 || length >= 0)
        {
            text.Append(", range [0x").Append(Math.Max(offset, 0).ToString("x", CultureInfo.InvariantCulture))
                .Append(", +0x").Append(Math.Max(length, 0).ToString("x", CultureInfo.InvariantCulture)).Append(')');
        }
        if (hint is not null)
        {
            text.Append(". ").Append(hint);
        }
        return text.ToString();
    }
}

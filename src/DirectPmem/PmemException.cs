using System.IO;

namespace DirectPmem;

/// <summary>
/// The root of every error DirectPmem raises for a failed operation on a device, file or
/// mapping. When the failure came from the kernel, <see cref="Errno"/> holds the errno and
/// <see cref="Call"/> the system call; the message names both and the path or range involved.
/// </summary>
public class PmemException : IOException
{
    /// <summary>Creates an exception with a message and no errno.</summary>
    /// <param name="message">What failed and why.</param>
    public PmemException(string message) : base(message)
    {
    }

    /// <summary>Creates an exception that wraps another.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="innerException">The underlying failure.</param>
    public PmemException(string message, Exception? innerException) : base(message, innerException)
    {
    }

    /// <summary>Creates an exception for a failed system call.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="call">The system call that failed, for example <c>mmap</c>.</param>
    /// <param name="errno">The errno the call returned.</param>
    /// <param name="path">The path involved, if any.</param>
    public PmemException(string message, string? call, int errno, string? path) : base(message)
    {
        Call = call;
        Errno = errno;
        Path = path;
        HResult = errno;
    }

    /// <summary>The system call that failed, or <see langword="null"/> when the error did not come from one.</summary>
    public string? Call { get; }

    /// <summary>The errno the kernel returned (0 when the error did not come from a system call).</summary>
    public int Errno { get; }

    /// <summary>The kernel's name for <see cref="Errno"/> (for example <c>EINVAL</c>), or <see langword="null"/>.</summary>
    public string? ErrnoName => Errno == 0 ? null : Interop.Errno.Name(Errno);

    /// <summary>The path of the file or device involved, if any.</summary>
    public string? Path { get; }
}

/// <summary>The file or device is opened elsewhere in a way that excludes this open (EWOULDBLOCK from flock, EBUSY).</summary>
public sealed class PmemInUseException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="call">The system call that failed.</param>
    /// <param name="errno">The errno the call returned.</param>
    /// <param name="path">The path involved.</param>
    public PmemInUseException(string message, string? call, int errno, string? path) : base(message, call, errno, path)
    {
    }
}

/// <summary>The file or device does not exist (ENOENT, ENODEV).</summary>
public sealed class PmemNotFoundException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="call">The system call that failed.</param>
    /// <param name="errno">The errno the call returned.</param>
    /// <param name="path">The path involved.</param>
    public PmemNotFoundException(string message, string? call, int errno, string? path) : base(message, call, errno, path)
    {
    }
}

/// <summary>Permission was refused (EACCES, EPERM, EROFS).</summary>
public sealed class PmemAccessDeniedException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="call">The system call that failed.</param>
    /// <param name="errno">The errno the call returned.</param>
    /// <param name="path">The path involved.</param>
    public PmemAccessDeniedException(string message, string? call, int errno, string? path) : base(message, call, errno, path)
    {
    }
}

/// <summary>Space or memory ran out (ENOSPC, EDQUOT, ENOMEM, EFBIG).</summary>
public sealed class PmemOutOfSpaceException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed and why.</param>
    /// <param name="call">The system call that failed.</param>
    /// <param name="errno">The errno the call returned.</param>
    /// <param name="path">The path involved.</param>
    public PmemOutOfSpaceException(string message, string? call, int errno, string? path) : base(message, call, errno, path)
    {
    }
}

/// <summary>
/// A mapping cannot be backed by the page size or persistence granularity the caller required;
/// the message says why and how to fix it. DirectPmem never silently downgrades.
/// </summary>
public sealed class PmemCapabilityException : PmemException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was required, what is available, and how to fix it.</param>
    public PmemCapabilityException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception for a refusal that came from a system call.</summary>
    /// <param name="message">What was required, what is available, and how to fix it.</param>
    /// <param name="call">The system call that failed.</param>
    /// <param name="errno">The errno the call returned.</param>
    /// <param name="path">The path involved, if any.</param>
    public PmemCapabilityException(string message, string? call, int errno, string? path) : base(message, call, errno, path)
    {
    }
}
